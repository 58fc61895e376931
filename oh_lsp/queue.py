"""`TaskQueue`: the async, durable queue of the usage guide (docs/guide-compat.md#taskqueue).

It is a thin async face on a `TaskStore`: each call runs on the store's thread (`StoreThread`, shared with the model
gateway of the same engine), so the caller's event loop never waits on SQLite locks. With `inline_calls` (the
default; the language server turns it off, its event loop answers the editor) the short ones (submit, claim,
completion, heartbeat) are made at once on the caller's thread when that cannot wait (`StoreThread.now` / `soon`).
Leases handed out by `claim` are remembered here, so `finish(task_id, status)` works without the lease id while still
being fenced against a worker that lost its lease. Its words are the store's (`submit`, `claim`, `finish`, `retry`, `stats`); the usage guide's
names for them (`enqueue`, `dequeue`, `mark_completed`, `get_stats`) stay as aliases.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from oh_lsp.errors import TaskIdError
from oh_lsp.paths import project_root as resolve_root
from oh_lsp.paths import sha256_text
from oh_lsp.records import CachedResult, ExecutionMetrics, StatesSnapshot
from oh_lsp.store.base import Heartbeat, Submitted, TaskStore
from oh_lsp.store.thread import InlineStore, StoreThread
from oh_lsp.tasks import QueuedTask, TaskStatus

DEFAULT_LEASE_SECONDS = 30.0
SHORT_ID = 8  # front ends print a task id's first 8 characters; any unique start at least this long finds the task
log = logging.getLogger(__name__)


class TaskQueue:
    """Priority queue of tasks, stored in the project's state directory and shared by every process of that project.

    ``TaskQueue(max_size=1000)`` uses the store of the current directory's project (or `OH_LSP_STATE_DIR`);
    with `queue_url` (or `OPENHANDS_QUEUE_URL`) set to a ``postgresql://`` URL, the queue shared by a fleet.
    `inline_calls=False` sends every call to the store's thread: for an event loop that must answer something else
    within microseconds (the language server's), at the cost of two thread switches per call.
    """

    def __init__(
        self,
        max_size: int = 1000,
        *,
        store: TaskStore | None = None,
        project_root: str | Path | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        queue_url: str | None = None,
        inline_calls: bool = True,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.project_root = resolve_root(project_root)
        if store is None:
            from oh_lsp.store import open_store

            store = open_store(self.project_root, queue_url)
        self.store = store
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leases: dict[str, str] = {}
        self.model_states = StatesSnapshot()  # read with each claim once the model layer wants them
        self._transaction = getattr(store, "transaction", None)  # SQLite's group commit (PostgreSQL has none)
        # SQLite's short calls made at once on the caller's thread; off where the event loop also answers an editor
        inline = cast("InlineStore", store) if inline_calls and hasattr(store, "inline") else None
        self.store_thread = StoreThread(transaction=self._transaction, inline=inline)

    def dedupe_key(self, task: QueuedTask) -> str:
        """Equal tasks (kind, target path and content, description) share a key while one is unfinished."""
        if task.target_sha256 is None and task.target_file is not None:
            path = task.target_file if task.target_file.is_absolute() else self.project_root / task.target_file
            try:
                task.target_sha256 = sha256_text(path.read_text(encoding="utf-8", errors="surrogateescape"))
            except OSError:
                task.target_sha256 = None
        parts = (task.kind, str(task.target_file or ""), task.target_sha256 or "", task.description.strip())
        return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()

    async def submit(self, task: QueuedTask) -> Submitted:
        """Store `task`: its id, True and its position; or the id of an equal task still pending or running, False
        and that task's position. Raises `QueueFullError` when `max_size` tasks are unfinished; returns once the task
        is committed to the store (it survives kill -9 of this process). The position is read in the same
        transaction, and no claim of this queue overtakes the result: a "queued" event published with it comes
        before the "started" event of the worker that claims the task."""
        key = self.dedupe_key(task)
        return await self.store_thread.now(self.store.add, task, dedupe_key=key, max_size=self.max_size)

    async def claim(self, lease_seconds: float | None = None) -> QueuedTask | None:
        """The next ready task with a lease held by this queue, or None when nothing is ready."""
        return self._held(await self.store_thread.soon(self._claim, lease_seconds or self.lease_seconds))

    def _claim(self, lease_seconds: float) -> QueuedTask | None:
        """A claim and, when a task came and the model layer wants them, the models' states (the first thing its model
        call reads: one trip instead of two)."""
        task = self.store.claim(self.owner, lease_seconds)
        if task is not None and self.model_states.wanted:
            self.model_states.put(self.store.model_states())
        return task

    def _held(self, task: QueuedTask | None) -> QueuedTask | None:
        if task is not None and task.lease_id:
            self._leases[task.task_id] = task.lease_id
        return task

    def _lease(self, task_id: str, lease: str | None = None) -> str:
        """The lease to act with: the one given (a worker's own claim) or the last one this queue claimed."""
        lease = lease or self._leases.get(task_id)
        if lease is None:
            raise KeyError(f"task {task_id} is not held by this queue (dequeue it first)")
        return lease

    def _drop_lease(self, task_id: str, lease: str) -> None:
        # a claim whose lease expired may have been claimed again by this queue: keep the newer lease
        if self._leases.get(task_id) == lease:
            del self._leases[task_id]

    async def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, *, lease: str | None = None
    ) -> Heartbeat:
        return await self.store_thread.soon(
            self.store.heartbeat, task_id, self._lease(task_id, lease), lease_seconds or self.lease_seconds
        )

    async def finish(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        metrics: ExecutionMetrics | None = None,
        model: str | None = None,
        lease: str | None = None,
    ) -> bool:
        """End a task this queue holds: completed, failed (with `error`) or cancelled. False if the lease was lost."""
        done, _ = await self.finish_then_claim(
            task_id, status, result=result, error=error, metrics=metrics, model=model, claim=False, lease=lease
        )
        return done

    async def finish_then_claim(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        metrics: ExecutionMetrics | None = None,
        model: str | None = None,
        claim: bool = True,
        lease_seconds: float | None = None,
        lease: str | None = None,
    ) -> tuple[bool, QueuedTask | None]:
        """`finish`, then (with `claim`) `claim` the next ready task, in one trip to the store and, on a store with
        group commit, one transaction: a worker that ends a task asks for the next one at once."""
        if status is TaskStatus.CANCELLED:
            error = error or "cancelled"
        lease = self._lease(task_id, lease)
        lease_for = lease_seconds or self.lease_seconds

        def work() -> tuple[bool, QueuedTask | None]:
            done = self.store.finish(task_id, lease, status, result=result, error=error, metrics=metrics, model=model)
            if not claim:
                return done, None
            try:
                return done, self._claim(lease_for)
            except Exception:  # the worker claims again on its own; the task just finished stays finished
                log.warning("could not claim the next task after finishing %s", task_id, exc_info=True)
                return done, None

        if claim and self._transaction is not None:
            transaction = self._transaction

            def together() -> tuple[bool, QueuedTask | None]:
                with transaction():
                    return work()

            done, task = await self.store_thread.soon(together)
        else:
            done, task = await self.store_thread.soon(work)
        self._drop_lease(task_id, lease)
        return done, self._held(task)

    async def retry(
        self,
        task_id: str,
        reason: str,
        delay: float,
        *,
        metrics: ExecutionMetrics | None = None,
        model: str | None = None,
        result: dict[str, Any] | None = None,
        lease: str | None = None,
    ) -> TaskStatus | None:
        """Back to the queue after `delay` seconds, or failed if its retries are used up. None if the lease was lost."""
        lease = self._lease(task_id, lease)
        status = await self.store_thread.soon(
            self.store.retry,
            task_id,
            lease,
            reason=reason,
            delay=delay,
            metrics=metrics,
            model=model,
            result=result,
        )
        self._drop_lease(task_id, lease)
        return status

    async def release(self, task_id: str, *, lease: str | None = None) -> bool:
        """Give a task back unfinished (without charging the attempt)."""
        lease = self._lease(task_id, lease)
        done = await self.store_thread.soon(self.store.release, task_id, lease)
        self._drop_lease(task_id, lease)
        return done

    async def cancel(self, task_id: str) -> TaskStatus | None:
        """Cancel a pending task now, or ask the worker of a running one to stop.

        Returns the status the task had before: PENDING (now cancelled), RUNNING (its worker stops it at its next
        heartbeat), a final status (nothing changed), or None for an unknown task."""
        return await self.store_thread.run(self.store.request_cancel, task_id)

    def watch_for_work(self, wakeup: Callable[[], None]) -> Callable[[], None] | None:
        """Have `wakeup` called in the running event loop whenever another process makes a task ready (PostgreSQL's
        LISTEN/NOTIFY). Returns a function that stops watching, or None when the store cannot notify."""
        loop = asyncio.get_running_loop()

        def from_any_thread() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(wakeup)

        return self.store.watch_for_work(from_any_thread)

    async def get_task(self, task_id: str) -> QueuedTask | None:
        return await self.store_thread.now(self.store.get, task_id)

    async def find_id(self, text: str) -> str:
        """The id of the task `text` names: its whole id, or the start of it (at least `SHORT_ID` characters, as
        `run-engine` prints it) when exactly one task's id starts so. Raises `TaskIdError` saying why not."""
        found = await self.store_thread.run(self.store.ids_starting_with, text, 3)
        if text in found:
            return text
        if len(found) == 1 and len(text) >= SHORT_ID:
            return found[0]
        if len(found) > 1 and len(text) >= SHORT_ID:
            more = ", ..." if len(found) > 2 else ""
            raise TaskIdError(
                f"{text} is the start of several task ids ({found[0]}, {found[1]}{more}): give more of it"
            )
        hint = f" (give a task's whole id, or at least its first {SHORT_ID} characters)" if len(text) < SHORT_ID else ""
        raise TaskIdError(f"no task {text} in the store at {self.store.location}{hint}")

    async def list_tasks(self, status: TaskStatus | None = None, limit: int = 100) -> list[QueuedTask]:
        return await self.store_thread.run(self.store.list, status, limit)

    async def position(self, task_id: str) -> int | None:
        return await self.store_thread.run(self.store.position, task_id)

    async def stats(self) -> dict[str, Any]:
        stats = await self.store_thread.run(self.store.stats)
        stats["max_size"] = self.max_size
        return stats

    async def undelivered(self, submitter: str) -> list[QueuedTask]:
        """Completed tasks of `submitter` whose edit was not delivered yet."""
        return await self.store_thread.run(self.store.undelivered, submitter)

    async def set_delivery(self, task_id: str, state: str) -> None:
        await self.store_thread.run(self.store.set_delivery, task_id, state)

    async def outstanding(self, horizon: float) -> int:
        return await self.store_thread.run(self.store.outstanding, horizon)

    async def cache_get(self, key: str) -> CachedResult | None:
        """The result cache's entry for `key` (None: none, or one that cannot be read)."""
        return await self.store_thread.run(self.store.cache_get, key)

    async def cache_put(self, entry: CachedResult, limit: int) -> None:
        await self.store_thread.run(self.store.cache_put, entry, limit)

    # --- the usage guide's names for the same operations (docs/guide-compat.md#taskqueue) ----------------------
    async def enqueue(self, task: QueuedTask) -> str:
        """Store `task` and return its id, or the id of an equal task that is still pending or running (`submit`).

        Raises `QueueFullError` when `max_size` tasks are unfinished."""
        return (await self.submit(task)).task_id

    async def dequeue(self, lease_seconds: float | None = None) -> QueuedTask | None:
        """`claim`: the next ready task, leased to this queue."""
        return await self.claim(lease_seconds)

    async def mark_completed(
        self,
        task_id: str,
        result: dict[str, Any] | None = None,
        *,
        metrics: ExecutionMetrics | None = None,
        model: str | None = None,
    ) -> bool:
        """`finish` with the status completed."""
        return await self.finish(task_id, TaskStatus.COMPLETED, result=result, metrics=metrics, model=model)

    async def get_stats(self) -> dict[str, Any]:
        """`stats`: counts by status and priority."""
        return await self.stats()

    def close(self) -> None:
        self.store_thread.close()
        self.store.close()
