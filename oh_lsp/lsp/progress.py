"""Work-done progress, one per task: begun when the task is queued, a report for each stage, ended with the outcome.

Each progress has a fresh uuid token (pygls never forgets a token). It is cancellable: the client's cancel reaches
the session, which cancels the task. Clients without `window.workDoneProgress` get `window/logMessage` lines for the
stages instead (not for each streamed chunk). Streamed-token reports are throttled per task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lsprotocol import types as t

from oh_lsp import events as ev
from oh_lsp.lsp import editor
from oh_lsp.progress_text import stage_text
from oh_lsp.redaction import redact

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.lsp.folders import Folder

log = logging.getLogger(__name__)
TOKEN_REPORT_INTERVAL = 0.25  # seconds between "streaming" reports of one task
TITLES = {"unit_test": "Generate tests for", "documentation": "Document", "refactoring": "Refactor"}


@dataclass
class Track:
    """A task this session shows: its progress token, title, target, and where its progress stands."""

    task_id: str
    folder: Folder
    kind: str
    target: str  # relative to the folder, POSIX
    token: str
    symbol: str | None = None
    adopted: bool = False  # shown since a restart (or started elsewhere), not started by this session
    began: bool = False
    ended: bool = False
    pending: list[str] = field(default_factory=list)  # messages before the client accepted the token
    pending_end: str | None = None
    last_tokens_report: float = 0.0
    log_only: bool = False

    @property
    def title(self) -> str:
        return f"oh-lsp: {TITLES.get(self.kind, self.kind)} {self.symbol or self.target}"


class Progress:
    """Sends the progress of tracked tasks to the client (or log lines when it cannot show progress)."""

    def __init__(self, ls: LanguageServer) -> None:
        self.ls = ls
        self._background: set[asyncio.Task[None]] = set()

    @property
    def supported(self) -> bool:
        window = self.ls.client_capabilities.window
        return bool(window and window.work_done_progress)

    def _log(self, track: Track, message: str, level: t.MessageType = t.MessageType.Info) -> None:
        editor.log(self.ls, f"{track.title}: {message}", level)

    def begin(self, track: Track, message: str) -> None:
        message = redact(message)
        if not self.supported:
            track.log_only = track.began = True
            self._log(track, message)
            return
        track.pending.append(message)
        task = asyncio.ensure_future(self._create(track))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _create(self, track: Track) -> None:
        try:
            await self.ls.work_done_progress.create_async(track.token)
        except Exception as exc:  # noqa: BLE001 - the client refused the token: log lines instead
            log.info("client refused progress token for task %s: %s", track.task_id, exc)
            track.log_only = True
        track.began = True
        first, *rest = track.pending or ["started"]
        track.pending = []
        if track.log_only:
            self._log(track, first)
        else:
            self.ls.work_done_progress.begin(
                track.token, t.WorkDoneProgressBegin(title=track.title, message=first, cancellable=True)
            )
        for message in rest:
            self.report(track, message)
        if track.pending_end is not None:
            self.end(track, track.pending_end)

    def update(self, track: Track, event: ev.Event) -> None:
        if track.ended:
            return
        if event.kind == ev.TOKENS and not event.data.get("final"):
            now = time.monotonic()
            if track.log_only or now - track.last_tokens_report < TOKEN_REPORT_INTERVAL:
                return
            track.last_tokens_report = now
        message = stage_text(event)
        if message is not None:
            self.report(track, message)

    def report(self, track: Track, message: str) -> None:
        message = redact(message)
        if not track.began:
            if track.pending and track.pending[-1].startswith("streaming") and message.startswith("streaming"):
                track.pending[-1] = message
            else:
                track.pending.append(message)
        elif track.log_only:
            self._log(track, message)
        else:
            self.ls.work_done_progress.report(track.token, t.WorkDoneProgressReport(message=message))

    def end(self, track: Track, message: str, level: t.MessageType = t.MessageType.Info) -> None:
        message = redact(message)
        if track.ended:
            return
        if not track.began:
            track.pending_end = message
            return
        track.ended = True
        if track.log_only:
            self._log(track, message, level)
        else:
            self.ls.work_done_progress.end(track.token, t.WorkDoneProgressEnd(message=message))
            self.ls.work_done_progress.tokens.pop(track.token, None)
