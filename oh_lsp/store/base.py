"""The storage interface behind the queue, the metrics and the delivery of results.

Two implementations: SQLite (embedded, one file per project root; the default) and PostgreSQL (one queue shared by
workers on many machines, chosen by a `postgresql://` queue URL). The engine, CLI and language server only see this
interface; `tests/test_store_contract.py` runs the same tests against both. Methods are synchronous and short;
`TaskQueue` runs them on its own thread (or, when that never waits, on the caller's: `StoreThread`) so the event
loop never waits on the database.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from oh_lsp.records import CachedResult, ExecutionMetrics, ModelCall, ModelState
    from oh_lsp.tasks import QueuedTask, TaskStatus

T = TypeVar("T")


class Submitted(NamedTuple):
    """What `TaskStore.add` did: the task's id (or an equal unfinished task's), whether it was added, and its
    1-based position among pending tasks (None when it is not pending)."""

    task_id: str
    created: bool
    position: int | None


class Heartbeat(str, enum.Enum):
    """What a lease renewal found."""

    OK = "ok"  # lease renewed
    CANCEL = "cancel"  # lease renewed, and a cancel was requested
    LOST = "lost"  # the lease is gone (expired and taken by another worker, or the task ended)


class TaskStore(Protocol):
    location: str

    # --- queue -------------------------------------------------------------------------------------------------
    def add(self, task: QueuedTask, *, dedupe_key: str, max_size: int) -> Submitted:
        """Insert `task`, or return the id of an equal unfinished task (`created` False), with its position.

        Raises `QueueFullError` when `max_size` tasks are pending or running."""

    def claim(self, owner: str, lease_seconds: float) -> QueuedTask | None:
        """Hand out the next ready task (priority, then FIFO) with a fresh lease, after reclaiming expired leases."""

    def heartbeat(self, task_id: str, lease_id: str, lease_seconds: float) -> Heartbeat: ...

    def finish(
        self,
        task_id: str,
        lease_id: str,
        status: TaskStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        model: str | None = None,
        metrics: ExecutionMetrics | None = None,
    ) -> bool:
        """End a running task (completed, failed or cancelled) if `lease_id` still holds it. Records `metrics`
        in the same transaction. Returns False when the lease was lost (nothing is written then)."""

    def retry(
        self,
        task_id: str,
        lease_id: str,
        *,
        reason: str,
        delay: float,
        model: str | None = None,
        metrics: ExecutionMetrics | None = None,
        result: dict[str, Any] | None = None,
    ) -> TaskStatus | None:
        """Put a running task back to pending after `delay` seconds, or fail it when its retries are used up.
        Returns the new status, or None when the lease was lost."""

    def release(self, task_id: str, lease_id: str) -> bool:
        """Give a running task back to the queue without charging the attempt (engine shutdown)."""

    def request_cancel(self, task_id: str) -> TaskStatus | None:
        """Cancel a pending task at once; flag a running one for its worker. Returns the status it had before
        (None for an unknown task): PENDING means cancelled now, RUNNING means its worker was asked to stop."""

    def cancel_requested(self, task_id: str) -> bool: ...

    def get(self, task_id: str) -> QueuedTask | None: ...

    def ids_starting_with(self, prefix: str, limit: int) -> builtins.list[str]:
        """Up to `limit` task ids that begin with `prefix` (to find a task from the short id a front end printed)."""

    def list(self, status: TaskStatus | None = None, limit: int = 100) -> list[QueuedTask]: ...

    def position(self, task_id: str) -> int | None:
        """1-based position among ready pending tasks, or None if not pending."""

    def stats(self) -> dict[str, Any]: ...

    def outstanding(self, horizon: float) -> int:
        """Tasks pending or running, counting pending ones only if they become ready within `horizon` seconds."""

    # --- results -----------------------------------------------------------------------------------------------
    def undelivered(self, submitter: str) -> builtins.list[QueuedTask]:  # `list` here is the method above
        """Finished tasks of `submitter` whose edit has not been delivered yet."""

    def set_delivery(self, task_id: str, delivery: str) -> None: ...

    # --- metrics -----------------------------------------------------------------------------------------------
    def record_metrics(self, metrics: ExecutionMetrics) -> None: ...

    def metrics_summary(self) -> dict[str, Any]:
        """Numbers: ``system``, ``models``, ``task_types`` (per attempt), ``costs`` (per call: by model, task kind and
        day), ``model_state`` (cooldowns, breakers, rotations per model) and ``rotations`` (their total)."""

    # --- model health and spending (shared by every process of the project) ---------------------------------------
    def update_model_state(self, model: str, change: Callable[[ModelState], T]) -> T:
        """Read `model`'s state, let `change` modify it, and write it back, as one atomic step. Returns what
        `change` returns."""

    def model_states(self) -> dict[str, ModelState]: ...

    def reset_model_states(self, model: str | None = None) -> int:
        """Forget cooldowns, breakers and rotation counts (of one model, or all). Returns how many were reset."""

    def record_model_call(self, call: ModelCall) -> None: ...

    def model_call_stats(self, since: float) -> dict[str, dict[str, Any]]:
        """Per model since `since`: ``calls`` (successes and failures of the model itself, not rate limits or our
        own refusals), ``ok``, and ``avg_latency_ms`` of the successful ones."""

    def spent(self, *, task_id: str | None = None, day: str | None = None) -> float:
        """Cost of the calls made for one task, or on one local day (``YYYY-MM-DD``)."""

    # --- the result cache (shared by every process and machine on this store) ---------------------------------------
    def cache_get(self, key: str) -> CachedResult | None:
        """The result stored under `key`; None when there is none, or when the entry cannot be read (a corrupt entry
        is ignored; the next `cache_put` of that key replaces it)."""

    def cache_put(self, entry: CachedResult, limit: int) -> None:
        """Store `entry` (replacing one with the same key), then keep only the `limit` newest entries."""

    # --- wakeups -----------------------------------------------------------------------------------------------
    def watch_for_work(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Have `callback` called (from any thread) when another process makes a task ready. Returns a function
        that stops the watching, or None when this store cannot tell (then idle workers just poll)."""

    def close(self) -> None: ...
