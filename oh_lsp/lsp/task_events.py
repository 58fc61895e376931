"""The engines' events, as the editor sees them: the status counts, a progress for each tracked task (and for a task
of this session's submitter that resumed after a restart), and the hand-over of each finished task.

The engine knows nothing about LSP: it calls `on_event` on its event loop, which must not block, so the work that
reads the store runs as background tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t

from oh_lsp import events as ev
from oh_lsp.lsp import editor
from oh_lsp.lsp.handover import Ending
from oh_lsp.lsp.ids import TASK_ENDED_NOTIFICATION
from oh_lsp.lsp.task_ended import task_ended
from oh_lsp.progress_text import fit, stage_text, warning_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.lsp.folders import Folder
    from oh_lsp.lsp.handover import Handover
    from oh_lsp.lsp.progress import Track
    from oh_lsp.lsp.status import SessionCounts
    from oh_lsp.lsp.tracking import Tracker
    from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)


class TaskEvents:
    def __init__(
        self,
        ls: LanguageServer,
        tracker: Tracker,
        handover: Handover,
        counts: SessionCounts,
        status_changed: Callable[[], None],
    ) -> None:
        self.ls = ls
        self.tracker = tracker
        self.progress = tracker.progress
        self.handover = handover
        self.counts = counts
        self.status_changed = status_changed
        self._background: set[asyncio.Task[Any]] = set()

    def on_event(self, folder: Folder, event: ev.Event) -> None:
        if event.kind == ev.WARNING:  # shown now, before what it warns about (e.g. code about to run unsandboxed)
            editor.show(self.ls, warning_text(event), t.MessageType.Warning)
            return
        if event.kind == ev.HALTED:  # the folder's engine stopped (its store was lost)
            editor.show(self.ls, f"oh-lsp stopped in {folder.root}: {event.data.get('message')}", t.MessageType.Error)
            return
        if self.counts.on_event(event):
            self.status_changed()
        track = self.tracker.get(event.task_id)
        if event.is_final:
            self.handover.claim(event)
            self._spawn(self._finish(folder, event, track))
        elif track is None:
            if event.kind == ev.STARTED:  # resumed after a restart, or queued by another front end
                self._spawn(self._adopt(folder, event))
        elif event.kind == ev.QUEUED:
            self.progress.begin(track, stage_text(event) or "queued")
        elif event.kind == ev.PROGRESS and str(event.data.get("message", "")).startswith("re-queued"):
            self.progress.end(track, "re-queued: resumes when oh-lsp starts again")
            self.tracker.forget(track)
        else:
            self.progress.update(track, event)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def _adopt(self, folder: Folder, event: ev.Event) -> None:
        """Show progress for a task of this submitter that this session did not start (e.g. after a restart)."""
        assert folder.engine is not None
        task = await folder.engine.get_task_status(event.task_id)
        if (
            task is None
            or task.submitter != folder.submitter
            or task.status.is_final
            or self.tracker.get(event.task_id) is not None
            or task.target_file is None
        ):
            return
        track = self.tracker.track(
            folder, task.task_id, task.kind, task.target_file.as_posix(), task.metadata.get("symbol"), adopted=True
        )
        self.progress.begin(track, fit(f"resumed: {stage_text(event)}"))

    async def _finish(self, folder: Folder, event: ev.Event, track: Track | None) -> None:
        assert folder.engine is not None
        task = await folder.engine.get_task_status(event.task_id)
        track = track or self.tracker.get(event.task_id)
        if task is None or task.submitter != folder.submitter:
            if track:
                self.progress.end(track, stage_text(event) or event.kind)
                self.tracker.forget(track)
            return
        try:
            ending = await self.handover.outcome(folder, event, task)
        except Exception as exc:  # a bug of ours: say so, and still end the progress
            log.exception("could not finish task %s", task.task_id)
            text = f"{event.kind}, but oh-lsp could not hand over the result: {exc}"
            editor.show(self.ls, f"oh-lsp: {text}", t.MessageType.Error)
            ending = Ending(fit(text), t.MessageType.Error)
        if track:
            if not track.adopted:  # the editor that started it says how it ended (with its own actions)
                self._tell_ended(folder, task, track, ending)
            self.progress.end(track, ending.text, ending.level)
            self.tracker.forget(track)
        self.status_changed()

    def _tell_ended(self, folder: Folder, task: QueuedTask, track: Track, ending: Ending) -> None:
        try:
            payload = task_ended(task, folder.root, track.token, ending.delivery, ending.text)
        except Exception:  # a bug of ours must not keep the progress from ending
            log.exception("could not describe the end of task %s", task.task_id)
            return
        self.ls.protocol.notify(TASK_ENDED_NOTIFICATION, payload)
