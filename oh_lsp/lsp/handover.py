"""Finished tasks of this session's submitter: a completed one's edit delivered to the editor (or to disk), with its
store record kept current; a failed one explained on its target. Results that another process (a CLI `run-engine`)
finished are delivered when the session finds them in the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types as t

from oh_lsp import events as ev
from oh_lsp.lsp import editor
from oh_lsp.lsp.diagnostics import DiagnosticStore, findings_of, publish_task_diagnostics
from oh_lsp.progress_text import final_text, outcome_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.lsp.delivery import Delivery
    from oh_lsp.lsp.folders import Folder, Folders
    from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)
DELIVERY_POLL_SECONDS = 2.0
NOT_TRUSTED = "not-run-untrusted"


@dataclass
class Ending:
    """How a finished task ended for the editor: the progress's last words, their level, and what became of a
    completed task's edit."""

    text: str
    level: t.MessageType
    delivery: Delivery | None = None


class Handover:
    def __init__(self, ls: LanguageServer, diagnostics: DiagnosticStore, review: Callable[[], bool]) -> None:
        self.ls = ls
        self.diagnostics = diagnostics
        self.review = review  # the `reviewEdits` setting now: whether an edit is sent for review before it lands
        self.claimed: set[str] = set()  # tasks whose result this session is delivering or has delivered

    def claim(self, event: ev.Event) -> None:
        """A completed task's result is this session's to deliver (the store's poll must not deliver it again)."""
        if event.kind == ev.COMPLETED:
            self.claimed.add(event.task_id)

    async def outcome(self, folder: Folder, event: ev.Event, task: QueuedTask) -> Ending:
        """Deliver or explain a finished task of this session's submitter; returns how it ended: the progress's last
        words are a stage of `MAX_CHARS`, and the whole account goes to the editor's log."""
        if event.kind == ev.COMPLETED:
            delivery = await self.deliver(folder, task)
            self._log_outcome(task, delivery.summary())
            text = final_text("completed", task.result, written=delivery.applied)
            if delivery.applied:
                return Ending(text, t.MessageType.Info, delivery)
            editor.show(
                self.ls, f"oh-lsp: the result for {task.target_file} was {delivery.summary()}", t.MessageType.Warning
            )
            return Ending(text, t.MessageType.Warning, delivery)
        if event.kind == ev.FAILED:
            publish_task_diagnostics(self.ls, self.diagnostics, folder.root, task)
            self._explain_failure(task)
            self._log_outcome(task)
            return Ending(final_text("failed", task.result, error=task.error), t.MessageType.Error)
        return Ending("cancelled", t.MessageType.Info)

    def _log_outcome(self, task: QueuedTask, delivered: str | None = None) -> None:
        text = outcome_text(task.status.value, task.result, cost=task.cost, error=task.error, delivered=delivered)
        editor.log(self.ls, f"oh-lsp: {task.kind} {task.target_file} ({task.task_id[:8]}): {text}")

    def _explain_failure(self, task: QueuedTask) -> None:
        findings = findings_of(task.result)
        if any(f.get("code") == NOT_TRUSTED for f in findings):
            editor.show(
                self.ls,
                f"oh-lsp did not run the generated tests for {task.target_file}: the workspace is not trusted."
                " To run generated code, set ohLsp.trusted to true (in VS Code: trust the workspace).",
                t.MessageType.Warning,
            )
        elif not findings:
            editor.show(
                self.ls, f"oh-lsp: {task.kind} for {task.target_file} failed: {task.error}", t.MessageType.Error
            )

    async def deliver(self, folder: Folder, task: QueuedTask) -> Delivery:
        from oh_lsp.lsp.delivery import deliver

        assert folder.engine is not None
        self.claimed.add(task.task_id)
        await folder.engine.queue.set_delivery(task.task_id, "delivering")
        delivery = await deliver(
            self.ls,
            folder.root,
            task,
            lambda p: editor.text_of(self.ls, folder.root, p),
            lambda p: editor.uri_of(folder.root, p),
            review=self.review(),
        )
        await folder.engine.queue.set_delivery(task.task_id, delivery.state)
        log.info("task %s %s: %s", task.task_id, "written" if delivery.applied else "not written", delivery.summary())
        if delivery.applied:
            publish_task_diagnostics(self.ls, self.diagnostics, folder.root, task)
        return delivery

    async def poll_undelivered(self, folders: Folders) -> None:
        """Deliver results of this session's submitter that another process finished, every few seconds."""
        while True:
            for folder in folders:
                if folder.engine is None:
                    continue
                try:
                    waiting = await folder.engine.queue.undelivered(folder.submitter)
                except Exception:
                    log.exception("could not read undelivered results of %s", folder.root)
                    continue
                for task in waiting:
                    if task.task_id not in self.claimed:
                        self.claimed.add(task.task_id)
                        delivery = await self.deliver(folder, task)
                        editor.log(
                            self.ls,
                            f"oh-lsp: result of task {task.task_id[:8]} ({task.kind} {task.target_file},"
                            f" finished elsewhere): {delivery.summary()}",
                        )
            await asyncio.sleep(DELIVERY_POLL_SECONDS)
