"""The durable queue: order, capacity, idempotent submit, leases, bounded retries, cancel, sharing across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oh_lsp import QueuedTask, TaskPriority, TaskQueue, TaskStatus
from oh_lsp.errors import QueueFullError, StoreError
from oh_lsp.metrics import ExecutionMetrics
from oh_lsp.store.base import Heartbeat
from oh_lsp.store.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> TaskQueue:
    q = TaskQueue(max_size=10, store=SQLiteStore(tmp_path / "q.sqlite3", clock=clock), project_root=tmp_path,
                  lease_seconds=30)
    yield q
    q.close()


def task(description: str, priority: TaskPriority = TaskPriority.NORMAL, **kw) -> QueuedTask:
    return QueuedTask(task_type="unit_test", description=description, priority=priority, **kw)


async def test_priority_then_fifo(queue: TaskQueue) -> None:
    ids = {}
    for name, prio in [("n1", TaskPriority.NORMAL), ("l1", TaskPriority.LOW), ("h1", TaskPriority.HIGH),
                       ("n2", TaskPriority.NORMAL), ("c1", TaskPriority.CRITICAL), ("h2", TaskPriority.HIGH)]:
        ids[await queue.enqueue(task(name, prio))] = name
    order = []
    while (t := await queue.dequeue()) is not None:
        order.append(ids[t.task_id])
    assert order == ["c1", "h1", "h2", "n1", "n2", "l1"]


async def test_dequeue_returns_none_when_empty(queue: TaskQueue) -> None:
    assert await queue.dequeue() is None


async def test_full_queue_raises_and_drops_nothing(queue: TaskQueue) -> None:
    for i in range(10):
        await queue.enqueue(task(f"t{i}"))
    with pytest.raises(QueueFullError, match="the queue is full: 10 tasks"):
        await queue.enqueue(task("one too many"))
    stats = await queue.get_stats()
    assert stats["pending"] == 10 and stats["total"] == 10
    # finishing one frees a place
    t = await queue.dequeue()
    await queue.mark_completed(t.task_id, {"result": "ok"})
    await queue.enqueue(task("now it fits"))


async def test_equal_unfinished_task_returns_existing_id(queue: TaskQueue, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\n")
    first = await queue.enqueue(task("same", target_file=Path("m.py")))
    again = await queue.enqueue(task("same", target_file=Path("m.py")))
    assert again == first
    other = await queue.enqueue(task("different words", target_file=Path("m.py")))
    assert other != first
    (tmp_path / "m.py").write_text("x = 2\n")  # new content: a new task
    changed = await queue.enqueue(task("same", target_file=Path("m.py")))
    assert changed != first
    # once finished, an equal task is new work again
    t = await queue.dequeue()
    assert t.task_id == first
    await queue.mark_completed(first, {})
    (tmp_path / "m.py").write_text("x = 1\n")
    assert await queue.enqueue(task("same", target_file=Path("m.py"))) != first


async def test_expired_lease_is_handed_out_again_and_fences_the_old_worker(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(tmp_path / "q.sqlite3", clock=clock)
    a = TaskQueue(store=store, project_root=tmp_path, lease_seconds=10)
    b = TaskQueue(store=store, project_root=tmp_path, lease_seconds=10)
    tid = await a.enqueue(task("x"))
    held = await a.dequeue()
    assert held.task_id == tid and held.status is TaskStatus.RUNNING
    clock.now += 5
    assert await b.dequeue() is None  # lease still held: never touched
    assert await a.heartbeat(tid) is Heartbeat.OK  # renewed until now + 10
    clock.now += 9
    assert await b.dequeue() is None
    clock.now += 2  # expired
    again = await b.dequeue()
    assert again.task_id == tid and again.attempts == 2
    # the first worker's late completion is refused, the second's counts
    assert await a.heartbeat(tid) is Heartbeat.LOST
    assert await a.mark_completed(tid, {"by": "a"}) is False
    assert await b.mark_completed(tid, {"by": "b"}) is True
    final = await b.get_task(tid)
    assert final.status is TaskStatus.COMPLETED and final.result == {"by": "b"}


async def test_retries_are_bounded_and_back_off(queue: TaskQueue, clock: Clock) -> None:
    tid = await queue.enqueue(task("flaky provider", max_retries=2))
    for attempt in (1, 2):
        t = await queue.dequeue()
        assert t.attempts == attempt
        assert await queue.retry_later(tid, f"HTTP 503 #{attempt}", delay=5) is TaskStatus.PENDING
        assert await queue.dequeue() is None  # backing off
        assert "retrying in 5.0s" in (await queue.get_task(tid)).note
        clock.now += 6
    t = await queue.dequeue()
    assert t.attempts == 3
    assert await queue.retry_later(tid, "HTTP 503 #3", delay=5) is TaskStatus.FAILED
    final = await queue.get_task(tid)
    assert final.status is TaskStatus.FAILED
    assert final.error == "failed after 3 attempts; last error: HTTP 503 #3"


async def test_lease_expiry_counts_as_an_attempt(queue: TaskQueue, clock: Clock) -> None:
    tid = await queue.enqueue(task("dies", max_retries=0))
    await queue.dequeue()
    clock.now += 31
    assert await queue.dequeue() is None
    final = await queue.get_task(tid)
    assert final.status is TaskStatus.FAILED and "stopped renewing the lease" in final.error


async def test_cancel_pending_and_running(queue: TaskQueue) -> None:
    pending = await queue.enqueue(task("p"))
    running = await queue.enqueue(task("r", TaskPriority.HIGH))
    t = await queue.dequeue()
    assert t.task_id == running
    assert await queue.cancel(pending) is TaskStatus.PENDING  # it was pending: cancelled now
    assert (await queue.get_task(pending)).status is TaskStatus.CANCELLED
    assert await queue.cancel(running) is TaskStatus.RUNNING  # flagged for its worker
    assert await queue.heartbeat(running) is Heartbeat.CANCEL
    await queue.mark_cancelled(running)
    assert (await queue.get_task(running)).status is TaskStatus.CANCELLED
    assert await queue.cancel(pending) is TaskStatus.CANCELLED  # already final: nothing changes
    assert await queue.cancel("no-such-task") is None
    assert await queue.dequeue() is None


async def test_release_returns_task_without_charging_the_attempt(queue: TaskQueue) -> None:
    tid = await queue.enqueue(task("x"))
    await queue.dequeue()
    assert await queue.release(tid)
    t = await queue.get_task(tid)
    assert t.status is TaskStatus.PENDING and t.attempts == 0


async def test_completion_records_metrics_atomically(queue: TaskQueue) -> None:
    tid = await queue.enqueue(task("x"))
    await queue.dequeue()
    m = ExecutionMetrics(task_id=tid, model_id="m", task_type="unit_test", success=True, tokens_used=120,
                         cost=0.0042, quality_score=5.0, validation_passed=True, duration_seconds=1.5)
    assert await queue.mark_completed(tid, {"ok": 1}, metrics=m, model="m")
    t = await queue.get_task(tid)
    assert (t.tokens, t.cost, t.model) == (120, 0.0042, "m")
    summary = queue.store.metrics_summary()
    assert summary["system"]["total_tokens"] == 120
    assert summary["models"]["m"]["total_cost"] == pytest.approx(0.0042)
    assert summary["system"]["success_rate"] == 1.0


def test_unwritable_state_dir_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot use the oh-lsp store .* OH_LSP_STATE_DIR"):
        SQLiteStore(blocker / "sub" / "q.sqlite3")


WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from oh_lsp.queue import TaskQueue
    from oh_lsp.store.sqlite import SQLiteStore

    async def main():
        q = TaskQueue(store=SQLiteStore(Path(sys.argv[1])), project_root=sys.argv[2])
        got = []
        while (t := await q.dequeue()) is not None:
            got.append(t.task_id)
            await asyncio.sleep(0.01)  # some work, so that every process gets a share
            await q.mark_completed(t.task_id, {"worker": sys.argv[3]})
        print(json.dumps(got))

    asyncio.run(main())
""")


async def test_processes_share_one_store_and_each_task_runs_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"
    q = TaskQueue(max_size=1000, store=SQLiteStore(db), project_root=tmp_path)
    ids = {await q.enqueue(task(f"t{i}")) for i in range(300)}
    q.close()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(tmp_path), str(n)], stdout=subprocess.PIPE,
                              text=True) for n in range(3)]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    flat = [tid for got in claimed for tid in got]
    assert len(flat) == len(set(flat)) == 300 and set(flat) == ids
    assert sum(1 for got in claimed if got) >= 2, "the work was not shared"
