"""Batching similar tasks for the providers' prompt caches: a scheduler choice, not a merged prompt.

Tasks of the same kind on the same target (other symbols, other gaps of one module) share their prompt's stable part
word for word (`oh_lsp.llm.prompt_cache`). A provider caches that part once a call has sent it, for that model only.
So when several such tasks become runnable within `window` seconds of the first (the batch's leader), the leader goes
ahead and the others wait until its first model call is being answered (the provider has read the prompt, and cached
it, by its first words), and then go to the model that answers it, all at once. A task that comes after the window
leads a batch of its own: the selector's choice stands for it. Tasks with no target, or with the window at 0, are not
batched.

The engine feeds every event to `on_event` (the leader's `model_chosen` and first `tokens` events say which model
answers, and when) and asks `admit` before a task's first model call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from oh_lsp import events as ev
from oh_lsp.tasks import QueuedTask

MAX_WAIT_SECONDS = 120.0  # a follower never waits longer than this for its leader's first answer


@dataclass
class Batch:
    leader: str  # task id
    started: float  # time.monotonic() of the leader's start
    model: str | None = None  # the model that answered the leader's first call
    warm: asyncio.Event = field(default_factory=asyncio.Event)  # set once that call answers (or the leader ends)
    members: int = 1


class Batches:
    def __init__(self, window: float) -> None:
        self.window = window
        self._batches: dict[tuple[str, str], Batch] = {}
        self._leading: dict[str, Batch] = {}  # leader task id -> its batch
        self._chosen: dict[str, str] = {}  # leader task id -> the model its current call went to

    @staticmethod
    def key(task: QueuedTask) -> tuple[str, str] | None:
        return (task.kind, task.target_file.as_posix()) if task.target_file is not None else None

    async def admit(self, task: QueuedTask) -> str | None:
        """Place `task` in its batch before its first model call: the model it should prefer (None: the selector's
        choice). A task that joins a batch whose leader has not been answered yet waits for that answer here."""
        key = self.key(task)
        if key is None or self.window <= 0:
            return None
        now = time.monotonic()
        batch = self._batches.get(key)
        if batch is None or batch.leader == task.task_id or now - batch.started > self.window:
            batch = self._batches[key] = Batch(leader=task.task_id, started=now)
            self._leading[task.task_id] = batch
            return None
        batch.members += 1
        if not batch.warm.is_set():
            try:
                await asyncio.wait_for(batch.warm.wait(), MAX_WAIT_SECONDS)
            except TimeoutError:
                pass
        return batch.model

    def waits(self, task: QueuedTask) -> bool:
        """Whether `admit` would make `task` wait for a leader's first answer (for a progress line)."""
        key = self.key(task)
        batch = self._batches.get(key) if key is not None and self.window > 0 else None
        return (
            batch is not None
            and batch.leader != task.task_id
            and not batch.warm.is_set()
            and time.monotonic() - batch.started <= self.window
        )

    def on_event(self, event: ev.Event) -> None:
        """Learn from the leaders' events which model answered their first call, and when."""
        batch = self._leading.get(event.task_id)
        if batch is None:
            return
        if event.kind == ev.MODEL_CHOSEN and event.data.get("model"):
            self._chosen[event.task_id] = str(event.data["model"])
        elif event.kind == ev.TOKENS:  # its first streamed words: the provider has read the prompt and cached it
            batch.model = batch.model or self._chosen.get(event.task_id)
            batch.warm.set()
        elif event.is_final or event.kind == ev.RETRYING:  # ended before an answer: nobody waits any longer
            batch.warm.set()
        if event.is_final:
            self._leading.pop(event.task_id, None)
            self._chosen.pop(event.task_id, None)
            for key, known in list(self._batches.items()):
                if known is batch and time.monotonic() - batch.started > self.window:
                    del self._batches[key]  # no task can join it any more
