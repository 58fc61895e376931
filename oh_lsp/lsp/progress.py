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
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t

from oh_lsp import events as ev
from oh_lsp.cli.progress import describe
from oh_lsp.cli.render import money

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)
TOKEN_REPORT_INTERVAL = 0.25  # seconds between "streaming" reports of one task
TITLES = {"unit_test": "Generate tests for", "documentation": "Document", "refactoring": "Refactor"}


@dataclass
class Track:
    """A task this session shows: its progress token, title, target, and where its progress stands."""

    task_id: str
    folder: Any  # session.Folder
    kind: str
    target: str  # relative to the folder, POSIX
    token: str
    symbol: str | None = None
    began: bool = False
    ended: bool = False
    pending: list[str] = field(default_factory=list)  # messages before the client accepted the token
    pending_end: str | None = None
    last_tokens_report: float = 0.0
    log_only: bool = False

    @property
    def title(self) -> str:
        return f"oh-lsp: {TITLES.get(self.kind, self.kind)} {self.symbol or self.target}"


def stage_text(event: ev.Event) -> str | None:
    """A progress report for a stage (None: nothing to report). The same wording as the CLI's live view."""
    if event.kind == ev.QUEUED:
        position = event.data.get("position")
        return f"queued (position {position})" if position else "queued"
    return describe(event)


def _coverage_text(coverage: Any) -> str | None:
    if isinstance(coverage, dict):
        before, after = coverage.get("before"), coverage.get("after")
        if isinstance(before, (int, float)) and isinstance(after, (int, float)):
            return f"coverage {before:.0f}% → {after:.0f}% ({after - before:+.0f} pts)"
        gain = coverage.get("gain")
        return f"coverage {gain:+.0f} pts" if isinstance(gain, (int, float)) else None
    if isinstance(coverage, (int, float)):
        return f"coverage {coverage:.0f}%"
    return None


def outcome_text(
    status: str,
    result: dict[str, Any] | None,
    *,
    cost: float = 0.0,
    error: str | None = None,
    delivered: str | None = None,
) -> str:
    """The end of a task's progress: the file, the score, tests kept and dropped, coverage gain and cost."""
    result = result or {}
    validation = result.get("validation") or {}
    details = validation.get("details") or {}
    dropped = details.get("dropped")
    if dropped is None:
        dropped = sorted({f["test"] for f in validation.get("errors", []) if f.get("test")})
    kept = details.get("kept")
    if kept is None:
        kept = [name for name in result.get("tests") or [] if name not in dropped] if status == "completed" else []
    parts = []
    if status == "completed":
        parts.append(f"{result.get('output_file') or 'done'}" + (f" ({delivered})" if delivered else ""))
    else:
        parts.append(status + (f": {error}" if error and status == "failed" else ""))
    if result.get("score") is not None:
        parts.append(f"score {float(result['score']):.2f}")
    if result.get("kind", "unit_test") == "unit_test" and (kept or dropped):
        parts.append(f"{len(kept)} tests kept, {len(dropped)} dropped")
    coverage = _coverage_text(result.get("coverage"))
    if coverage:
        parts.append(coverage)
    parts.append(money(cost))
    return ", ".join(parts)


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
        self.ls.window_log_message(t.LogMessageParams(type=level, message=f"{track.title}: {message}"))

    def begin(self, track: Track, message: str) -> None:
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
