"""What the store interface (`TaskStore`) promises, run against every backend (SQLite and PostgreSQL): order,
capacity, idempotent submit, leases, bounded retries, cancel, delivery, metrics, sharing between processes, schema
migrations, and the model layer's state (cooldowns, breakers, rotations, model calls, costs and spending).

A new backend gets a `Backend` here; a method added to `TaskStore` fails `test_store_implements_the_whole_interface`
on every backend that lacks it.
"""

from __future__ import annotations

import inspect
import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oh_lsp import QueuedTask, TaskPriority, TaskQueue, TaskStatus
from oh_lsp.errors import QueueFullError, StoreError
from oh_lsp.records import CachedResult, ExecutionMetrics, ModelCall, ModelState, local_day
from oh_lsp.store.base import Heartbeat, TaskStore
from oh_lsp.store.sqlite import SQLiteStore

BACKENDS = ["sqlite", "postgres"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_spec(spec: str, clock: Callable[[], float] | None = None) -> Any:
    """A store from a backend's spec: a PostgreSQL URL, or a SQLite file path (also used by worker processes)."""
    if spec.startswith("postgresql://"):
        from oh_lsp.store.postgres import PostgresStore

        return PostgresStore(spec, clock=clock)
    return SQLiteStore(Path(spec), **({"clock": clock} if clock else {}))


class Backend:
    """One backend under test: `spec` says where its data lives (a file, or a URL with the test's own schema)."""

    def __init__(self, name: str, spec: str) -> None:
        self.name = name
        self.spec = spec
        self._opened: list[Any] = []

    def store(self, clock: Callable[[], float] | None = None) -> Any:
        store = open_spec(self.spec, clock)
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in self._opened:
            store.close()

    def schema(self) -> Any:
        """The backend's schema module (its `MIGRATIONS` and `LATEST`)."""
        if self.name == "postgres":
            from oh_lsp.store.postgres import schema

            return schema
        from oh_lsp.store.sqlite import schema

        return schema

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the backend's data, as a tool outside oh-lsp would (`?` placeholders)."""
        if self.name == "postgres":
            import psycopg

            with psycopg.connect(self.spec, autocommit=True) as conn:
                cursor = conn.execute(statement.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        import sqlite3

        with sqlite3.connect(self.spec) as db:
            return db.execute(statement, params).fetchall()

    def table(self, name: str) -> str:
        return f"oh_lsp_{name}" if self.name == "postgres" else name

    def columns(self, table: str) -> set[str]:
        if self.name == "postgres":
            rows = self.sql(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = ?",
                (self.table(table),),
            )
            return {row[0] for row in rows}
        return {row[1] for row in self.sql(f"PRAGMA table_info({table})")}

    def version(self) -> int:
        if self.name == "postgres":
            return int(self.sql("SELECT max(version) FROM oh_lsp_schema_version")[0][0])
        return int(self.sql("PRAGMA user_version")[0][0])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    spec = str(tmp_path / "q.sqlite3") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    backend = Backend(request.param, spec)
    yield backend
    backend.close()


@pytest.fixture
def queue(backend: Backend, tmp_path: Path, clock: Clock) -> TaskQueue:
    q = TaskQueue(max_size=10, store=backend.store(clock), project_root=tmp_path, lease_seconds=30)
    yield q
    q.close()


def task(description: str, priority: TaskPriority = TaskPriority.NORMAL, **kw) -> QueuedTask:
    return QueuedTask(task_type="unit_test", description=description, priority=priority, **kw)


async def test_priority_then_fifo(queue: TaskQueue) -> None:
    ids = {}
    for name, prio in [
        ("n1", TaskPriority.NORMAL),
        ("l1", TaskPriority.LOW),
        ("h1", TaskPriority.HIGH),
        ("n2", TaskPriority.NORMAL),
        ("c1", TaskPriority.CRITICAL),
        ("h2", TaskPriority.HIGH),
    ]:
        ids[await queue.enqueue(task(name, prio))] = name
    order = []
    while (t := await queue.claim()) is not None:
        order.append(ids[t.task_id])
    assert order == ["c1", "h1", "h2", "n1", "n2", "l1"]


async def test_dequeue_returns_none_when_empty(queue: TaskQueue) -> None:
    assert await queue.claim() is None


async def test_full_queue_raises_and_drops_nothing(queue: TaskQueue) -> None:
    for i in range(10):
        await queue.enqueue(task(f"t{i}"))
    with pytest.raises(QueueFullError, match="the queue is full: 10 tasks"):
        await queue.enqueue(task("one too many"))
    stats = await queue.stats()
    assert stats["pending"] == 10 and stats["total"] == 10
    # finishing one frees a place
    t = await queue.claim()
    await queue.finish(t.task_id, TaskStatus.COMPLETED, result={"result": "ok"})
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
    t = await queue.claim()
    assert t.task_id == first
    await queue.finish(first, TaskStatus.COMPLETED, result={})
    (tmp_path / "m.py").write_text("x = 1\n")
    assert await queue.enqueue(task("same", target_file=Path("m.py"))) != first


async def test_expired_lease_is_handed_out_again_and_fences_the_old_worker(
    backend: Backend, tmp_path: Path, clock: Clock
) -> None:
    # two "machines": each has its own store on the same data
    a = TaskQueue(store=backend.store(clock), project_root=tmp_path, lease_seconds=10)
    b = TaskQueue(store=backend.store(clock), project_root=tmp_path, lease_seconds=10)
    tid = await a.enqueue(task("x"))
    held = await a.claim()
    assert held.task_id == tid and held.status is TaskStatus.RUNNING
    clock.now += 5
    assert await b.claim() is None  # lease still held: never touched
    assert await a.heartbeat(tid) is Heartbeat.OK  # renewed until now + 10
    clock.now += 9
    assert await b.claim() is None
    clock.now += 2  # expired
    again = await b.claim()
    assert again.task_id == tid and again.attempts == 2
    # the first worker's late completion is refused, the second's counts
    assert await a.heartbeat(tid) is Heartbeat.LOST
    assert await a.finish(tid, TaskStatus.COMPLETED, result={"by": "a"}) is False
    assert await b.finish(tid, TaskStatus.COMPLETED, result={"by": "b"}) is True
    final = await b.get_task(tid)
    assert final.status is TaskStatus.COMPLETED and final.result == {"by": "b", "written": False}


async def test_one_queue_claiming_again_fences_its_own_earlier_claim(
    backend: Backend, tmp_path: Path, clock: Clock
) -> None:
    # an engine's two workers share one queue: a claim whose lease expired (a loaded machine) is handed to the other
    queue = TaskQueue(store=backend.store(clock), project_root=tmp_path, lease_seconds=10)
    tid = await queue.enqueue(task("x"))
    first = await queue.claim()
    clock.now += 11
    second = await queue.claim()
    assert (first.task_id, second.task_id) == (tid, tid) and first.lease_id != second.lease_id
    # the late worker is told its lease was lost (no KeyError), and leaves the newer claim usable
    assert await queue.heartbeat(tid, lease=first.lease_id) is Heartbeat.LOST
    assert await queue.finish(tid, TaskStatus.COMPLETED, result={"by": "first"}, lease=first.lease_id) is False
    assert await queue.heartbeat(tid, lease=second.lease_id) is Heartbeat.OK
    assert await queue.finish(tid, TaskStatus.COMPLETED, result={"by": "second"}, lease=second.lease_id) is True
    assert (await queue.get_task(tid)).result == {"by": "second", "written": False}


async def test_retries_are_bounded_and_back_off(queue: TaskQueue, clock: Clock) -> None:
    tid = await queue.enqueue(task("flaky provider", max_retries=2))
    for attempt in (1, 2):
        t = await queue.claim()
        assert t.attempts == attempt
        assert await queue.retry(tid, f"HTTP 503 #{attempt}", delay=5) is TaskStatus.PENDING
        assert await queue.claim() is None  # backing off
        assert "retrying in 5.0s" in (await queue.get_task(tid)).note
        clock.now += 6
    t = await queue.claim()
    assert t.attempts == 3
    assert await queue.retry(tid, "HTTP 503 #3", delay=5) is TaskStatus.FAILED
    final = await queue.get_task(tid)
    assert final.status is TaskStatus.FAILED
    assert final.error == "failed after 3 attempts; last error: HTTP 503 #3"


async def test_lease_expiry_counts_as_an_attempt(queue: TaskQueue, clock: Clock) -> None:
    tid = await queue.enqueue(task("dies", max_retries=0))
    await queue.claim()
    clock.now += 31
    assert await queue.claim() is None
    final = await queue.get_task(tid)
    assert final.status is TaskStatus.FAILED and "stopped renewing the lease" in final.error


async def test_cancel_pending_and_running(queue: TaskQueue) -> None:
    pending = await queue.enqueue(task("p"))
    running = await queue.enqueue(task("r", TaskPriority.HIGH))
    t = await queue.claim()
    assert t.task_id == running
    assert await queue.cancel(pending) is TaskStatus.PENDING  # it was pending: cancelled now
    assert (await queue.get_task(pending)).status is TaskStatus.CANCELLED
    assert await queue.cancel(running) is TaskStatus.RUNNING  # flagged for its worker
    assert await queue.heartbeat(running) is Heartbeat.CANCEL
    await queue.finish(running, TaskStatus.CANCELLED)
    assert (await queue.get_task(running)).status is TaskStatus.CANCELLED
    assert await queue.cancel(pending) is TaskStatus.CANCELLED  # already final: nothing changes
    assert await queue.cancel("no-such-task") is None
    assert await queue.claim() is None


async def test_release_returns_task_without_charging_the_attempt(queue: TaskQueue) -> None:
    tid = await queue.enqueue(task("x"))
    await queue.claim()
    assert await queue.release(tid)
    t = await queue.get_task(tid)
    assert t.status is TaskStatus.PENDING and t.attempts == 0


async def test_completion_records_metrics_atomically(queue: TaskQueue) -> None:
    tid = await queue.enqueue(task("x"))
    await queue.claim()
    m = ExecutionMetrics(
        task_id=tid,
        model_id="m",
        task_type="unit_test",
        success=True,
        tokens_used=120,
        cost=0.0042,
        quality_score=5.0,
        validation_passed=True,
        duration_seconds=1.5,
    )
    assert await queue.finish(tid, TaskStatus.COMPLETED, result={"ok": 1}, metrics=m, model="m")
    t = await queue.get_task(tid)
    assert (t.tokens, t.cost, t.model) == (120, 0.0042, "m")
    summary = queue.store.metrics_summary()
    assert summary["system"]["total_tokens"] == 120
    assert summary["models"]["m"]["total_cost"] == pytest.approx(0.0042)
    assert summary["system"]["success_rate"] == 1.0


def test_unwritable_state_dir_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=r"cannot use the oh-lsp store .* OH_LSP_STATE_DIR"):
        SQLiteStore(blocker / "sub" / "q.sqlite3")


WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from oh_lsp.queue import TaskQueue
    from oh_lsp.tasks import TaskStatus
    from tests.test_store_contract import open_spec

    async def main():
        q = TaskQueue(store=open_spec(sys.argv[1]), project_root=sys.argv[2])
        got = []
        while (t := await q.claim()) is not None:
            got.append(t.task_id)
            await asyncio.sleep(0.01)  # some work, so that every process gets a share
            await q.finish(t.task_id, TaskStatus.COMPLETED, result={"worker": sys.argv[3]})
        print(json.dumps(got))
        q.close()

    asyncio.run(main())
""")


async def test_processes_share_one_store_and_each_task_runs_once(backend: Backend, tmp_path: Path) -> None:
    q = TaskQueue(max_size=1000, store=backend.store(), project_root=tmp_path)
    ids = {await q.enqueue(task(f"t{i}")) for i in range(300)}
    q.close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, backend.spec, str(tmp_path), str(n)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        for n in range(3)
    ]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    flat = [tid for got in claimed for tid in got]
    assert len(flat) == len(set(flat)) == 300 and set(flat) == ids
    assert sum(1 for got in claimed if got) >= 2, "the work was not shared"


def test_store_implements_the_whole_interface(backend: Backend) -> None:
    store = backend.store()
    wanted = {name for name, _ in inspect.getmembers(TaskStore, inspect.isfunction) if not name.startswith("_")}
    missing = sorted(name for name in wanted if not callable(getattr(store, name, None)))
    assert not missing, f"{type(store).__name__} lacks {missing}"
    assert {"add", "claim", "heartbeat", "finish", "metrics_summary", "watch_for_work"} <= wanted
    assert isinstance(store.location, str) and store.location


async def test_a_cancel_from_another_machine_reaches_the_worker_at_its_heartbeat(
    backend: Backend, tmp_path: Path
) -> None:
    worker = TaskQueue(store=backend.store(), project_root=tmp_path)
    elsewhere = TaskQueue(store=backend.store(), project_root=tmp_path)
    tid = await elsewhere.enqueue(task("long"))
    assert (await worker.claim()).task_id == tid
    assert await worker.heartbeat(tid) is Heartbeat.OK
    assert await elsewhere.cancel(tid) is TaskStatus.RUNNING
    assert elsewhere.store.cancel_requested(tid) and worker.store.cancel_requested(tid)
    assert await worker.heartbeat(tid) is Heartbeat.CANCEL
    assert await worker.finish(tid, TaskStatus.CANCELLED)
    assert (await elsewhere.get_task(tid)).status is TaskStatus.CANCELLED


async def test_status_metrics_and_costs_are_visible_from_another_machine(
    backend: Backend, tmp_path: Path, clock: Clock
) -> None:
    worker = TaskQueue(store=backend.store(clock), project_root=tmp_path)
    viewer = TaskQueue(store=backend.store(clock), project_root=tmp_path)
    done, later = await worker.enqueue(task("done")), await worker.enqueue(task("later", max_retries=1))
    await worker.claim()
    m = ExecutionMetrics(
        task_id=done,
        model_id="m1",
        task_type="unit_test",
        success=True,
        tokens_used=50,
        prompt_tokens=30,
        completion_tokens=20,
        cost=0.25,
        quality_score=4.0,
        created_at=clock.now,
    )
    assert await worker.finish(done, TaskStatus.COMPLETED, result={"edit": {"files": []}}, metrics=m, model="m1")
    await worker.claim()
    failed = ExecutionMetrics(
        task_id=later,
        model_id="m2",
        task_type="unit_test",
        tokens_used=10,
        tokens_estimated=True,
        cost=0.5,
        error="HTTP 503",
        created_at=clock.now,
    )
    assert await worker.retry(later, "HTTP 503", delay=60, metrics=failed, model="m2") is TaskStatus.PENDING

    stats = await viewer.stats()
    assert (stats["completed"], stats["pending"], stats["total"]) == (1, 1, 2)
    assert stats["waiting_for_retry"] == 1 and stats["next_retry_at"] == pytest.approx(clock.now + 60)
    assert await viewer.outstanding(30) == 0 and await viewer.outstanding(90) == 1
    assert [t.task_id for t in await viewer.list_tasks()] == [later, done]
    assert [t.task_id for t in await viewer.list_tasks(TaskStatus.COMPLETED)] == [done]
    got = await viewer.get_task(later)
    assert (got.attempts, got.tokens, got.cost, got.model, got.error) == (1, 10, 0.5, "m2", "HTTP 503")
    summary = viewer.store.metrics_summary()
    system = summary["system"]
    assert (system["executions"], system["successful"], system["failed"]) == (2, 1, 1)
    assert system["total_cost"] == pytest.approx(0.75) and system["total_tokens"] == 60
    assert system["avg_quality_score"] == pytest.approx(4.0) and system["success_rate"] == 0.5
    assert summary["models"]["m1"]["total_cost"] == pytest.approx(0.25)
    assert summary["models"]["m2"]["failed"] == 1
    assert summary["task_types"]["unit_test"]["executions"] == 2
    assert summary["models"]["m2"]["tokens_estimated"] and not summary["models"]["m1"]["tokens_estimated"]
    assert system["tokens_estimated"] and summary["task_types"]["unit_test"]["tokens_estimated"]


def test_a_version_2_store_is_migrated_in_place_with_its_rows(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = backend.schema()
    with monkeypatch.context() as old_oh_lsp:  # what oh-lsp wrote before schema 3
        old_oh_lsp.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        old_oh_lsp.setattr(schema, "LATEST", 2)
        open_spec(backend.spec).close()
    task_id = "kept-task"  # the rows that oh-lsp wrote: a task and a model call, by that version's columns
    now = "now()" if backend.name == "postgres" else "1000000.0"
    backend.sql(
        f"INSERT INTO {backend.table('tasks')} (id, kind, description, priority, status, submitter, dedupe_key,"
        f" max_retries, created_at) VALUES (?, 'unit_test', 'kept', 2, 'pending', 'cli', 'k', 2, {now})",
        (task_id,),
    )
    backend.sql(
        f"INSERT INTO {backend.table('model_calls')} (created_at, day, task_id, model, outcome, cost)"
        f" VALUES ({now}, '2025-01-01', ?, 'm1', 'ok', 0.25)",
        (task_id,),
    )
    metrics = backend.table("metrics")
    backend.sql(
        f"INSERT INTO {metrics} (task_id, attempt, model_id, task_type, success, validation_passed, tokens_used,"
        " prompt_tokens, completion_tokens, cost, quality_score, duration_seconds, error, created_at, day)"
        + (
            " VALUES (?, 1, 'm1', 'unit_test', true, true, 40, 30, 10, 0.25, 4.0, 2.0, NULL, now(), '2025-01-01')"
            if backend.name == "postgres"
            else " VALUES (?, 1, 'm1', 'unit_test', 1, 1, 40, 30, 10, 0.25, 4.0, 2.0, NULL, 1000000.0, '2025-01-01')"
        ),
        (task_id,),
    )
    assert backend.version() == 2 and "task_type" in backend.columns("metrics")

    store = backend.store()  # opening it with this oh-lsp migrates
    assert backend.version() == schema.LATEST >= 3
    columns = backend.columns("metrics")
    assert {"kind", "tokens_estimated"} <= columns and "task_type" not in columns
    assert store.get(task_id).description == "kept" and store.spent(task_id=task_id) == 0.25
    assert store.stats()["pending"] == 1  # schema 4 counts the tasks by status from those already there
    summary = store.metrics_summary()
    assert summary["system"]["executions"] == 1 and summary["system"]["total_tokens"] == 40
    assert summary["task_types"]["unit_test"]["executions"] == 1
    assert summary["models"]["m1"]["tokens_estimated"] is False  # rows written before schema 3 were counted

    store.record_metrics(
        ExecutionMetrics(
            task_id=task_id, model_id="m2", task_type="documentation", tokens_used=7, tokens_estimated=True
        )
    )
    summary = store.metrics_summary()
    assert sorted(summary["task_types"]) == ["documentation", "unit_test"]
    assert summary["models"]["m2"]["tokens_estimated"] is True and summary["models"]["m1"]["tokens_estimated"] is False
    assert summary["system"]["tokens_estimated"] is True


def test_what_caching_saved_is_never_below_zero(backend: Backend) -> None:
    """A negative saving in the store (an earlier build wrote one when the provider's cost exceeded the catalog's
    price) counts as nothing saved: the summary's `saved_cost`, shown as "saved $x", never goes below 0."""
    store = backend.store()
    store.record_metrics(ExecutionMetrics(task_id="a", model_id="m", task_type="unit_test", saved_cost=0.002))
    store.record_metrics(ExecutionMetrics(task_id="b", model_id="m", task_type="unit_test", saved_cost=-0.000183))
    assert store.metrics_summary()["system"]["saved_cost"] == pytest.approx(0.002)
    store.record_metrics(ExecutionMetrics(task_id="c", model_id="n", task_type="unit_test", saved_cost=-0.000183))
    assert store.metrics_summary()["models"]["n"]["saved_cost"] == 0.0


async def test_delivery_waits_in_the_store_for_its_submitter(backend: Backend, tmp_path: Path) -> None:
    worker = TaskQueue(store=backend.store(), project_root=tmp_path)
    editor = TaskQueue(store=backend.store(), project_root=tmp_path)
    mine = await editor.enqueue(task("from the editor", submitter="lsp:/ws"))
    other = await editor.enqueue(task("from the cli", submitter="cli"))
    for _ in range(2):
        t = await worker.claim()
        await worker.finish(t.task_id, TaskStatus.COMPLETED, result={"edit": {"files": [{"path": "x.py"}]}})
    assert [t.task_id for t in await editor.undelivered("lsp:/ws")] == [mine]
    assert (await editor.undelivered("lsp:/ws"))[0].result == {"edit": {"files": [{"path": "x.py"}]}, "written": False}
    await editor.set_delivery(mine, "applied")
    assert await editor.undelivered("lsp:/ws") == []
    assert [t.task_id for t in await editor.undelivered("cli")] == [other]
    assert (await worker.get_task(mine)).delivery == "applied"


async def test_a_task_reads_back_as_it_was_submitted(queue: TaskQueue, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\n")
    sent = task(
        "describe it",
        TaskPriority.HIGH,
        target_file=Path("m.py"),
        submitter="cli",
        max_retries=4,
        metadata={"category": "unit_test", "nested": {"b": [1, 2.5, None]}, "a": "é"},
    )
    tid = await queue.enqueue(sent)
    got = await queue.get_task(tid)
    assert (got.task_type, got.description, got.target_file, got.priority, got.submitter, got.max_retries) == (
        "unit_test",
        "describe it",
        Path("m.py"),
        TaskPriority.HIGH,
        "cli",
        4,
    )
    assert got.metadata == sent.metadata and got.status is TaskStatus.PENDING and got.attempts == 0
    assert got.target_sha256 == sent.target_sha256 and got.created_at == pytest.approx(1_000_000.0)
    assert await queue.position(tid) == 1


# --- model health and spending (the model layer's state, shared by every process and machine) -----------------------
def test_model_state_read_modify_write_loses_no_change_across_machines(backend: Backend) -> None:
    machines = [backend.store(), backend.store()]

    def bump(state) -> int:
        seen = state.rotations_away
        time.sleep(0.002)  # widen the window between read and write: without a lock, changes would be lost
        state.rotations_away = seen + 1
        return seen

    seen: list[int] = []

    def worker(store) -> None:
        for _ in range(15):
            seen.append(store.update_model_state("fresh-model", bump))  # the first change creates its state

    threads = [threading.Thread(target=worker, args=(store,)) for store in machines for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert machines[0].model_states()["fresh-model"].rotations_away == 60
    assert sorted(seen) == list(range(60)), "two changes read the same state"


def test_model_state_round_trips_resets_and_rolls_back(backend: Backend, clock: Clock) -> None:
    worker, viewer = backend.store(clock), backend.store(clock)

    def open_breaker(state: ModelState) -> str:
        state.cooldown_until, state.cooldown_reason = clock.now + 30, "429 per-minute"
        state.breaker, state.failures, state.opened_at = "open", [clock.now - 1, clock.now], clock.now
        state.breaker_retry_at, state.last_error = clock.now + 60, "HTTP 503 é"
        return "opened"

    assert worker.update_model_state("model-a", open_breaker) == "opened"
    assert worker.update_model_state("model-b", lambda state: state.breaker) == "closed"  # a fresh state
    state = viewer.model_states()["model-a"]
    assert (
        state.model,
        state.cooldown_until,
        state.cooldown_reason,
        state.breaker,
        state.failures,
        state.breaker_retry_at,
        state.last_error,
    ) == ("model-a", clock.now + 30, "429 per-minute", "open", [clock.now - 1, clock.now], clock.now + 60, "HTTP 503 é")
    assert set(viewer.model_states()) == {"model-a", "model-b"}  # touched once: stored, as on every backend

    def broken(state: ModelState) -> None:
        state.rotations_away = 99
        raise RuntimeError("a bug in the change")

    with pytest.raises(RuntimeError, match="a bug in the change"):
        worker.update_model_state("model-a", broken)
    assert viewer.model_states()["model-a"].rotations_away == 0, "a failed change was written"
    worker.update_model_state("model-a", lambda state: setattr(state, "rotations_away", 1))  # still usable
    assert viewer.model_states()["model-a"].rotations_away == 1

    assert viewer.reset_model_states("model-a") == 1 and set(worker.model_states()) == {"model-b"}
    assert viewer.reset_model_states("no-such-model") == 0
    worker.update_model_state("model-c", lambda state: None)
    assert viewer.reset_model_states() == 2 and worker.model_states() == {}


def test_model_calls_costs_and_spending_are_shared(backend: Backend, clock: Clock) -> None:
    worker, viewer = backend.store(clock), backend.store(clock)
    today, earlier = clock.now, clock.now - 2 * 86_400
    calls = [
        ModelCall(
            "model-a",
            "ok",
            task_id="t1",
            task_kind="unit_test",
            latency_ms=100,
            prompt_tokens=10,
            completion_tokens=5,
            cost=0.25,
            cost_source="provider",
            created_at=today,
        ),
        ModelCall("model-a", "transient", task_id="t1", task_kind="unit_test", latency_ms=900, created_at=today),
        ModelCall("model-a", "rate_limit", task_id="t2", task_kind="documentation", latency_ms=5, created_at=today),
        ModelCall(
            "model-a",
            "ok",
            task_id="t2",
            task_kind="documentation",
            latency_ms=300,
            prompt_tokens=7,
            completion_tokens=3,
            cost=0.5,
            cost_source="catalog",
            created_at=today,
        ),
        ModelCall("model-b", "ok", latency_ms=50, prompt_tokens=1, completion_tokens=1, cost=0.125, created_at=earlier),
    ]
    for call in calls:
        worker.record_model_call(call)

    assert viewer.spent(task_id="t1") == 0.25 and viewer.spent(task_id="t2") == 0.5
    assert viewer.spent(task_id="none") == 0.0
    assert viewer.spent(day=local_day(today)) == 0.75 and viewer.spent(day=local_day(earlier)) == 0.125
    with pytest.raises(ValueError, match="needs a task_id or a day"):
        viewer.spent()
    # the model's own record: successes and its own failures (not rate limits), latency of the successes
    assert viewer.model_call_stats(today - 1) == {
        "model-a": {"calls": 3, "ok": 2, "avg_latency_ms": pytest.approx(200.0)}
    }
    assert viewer.model_call_stats(earlier) == {
        "model-a": {"calls": 3, "ok": 2, "avg_latency_ms": pytest.approx(200.0)},
        "model-b": {"calls": 1, "ok": 1, "avg_latency_ms": pytest.approx(50.0)},
    }
    assert viewer.model_call_stats(today + 1) == {}

    worker.update_model_state("model-a", lambda state: setattr(state, "rotations_away", 2))
    worker.update_model_state("model-b", lambda state: setattr(state, "rotations_to", 2))
    worker.update_model_state("model-b", lambda state: setattr(state, "cooldown_until", clock.now + 30))
    clock.now += 10
    summary = viewer.metrics_summary()
    assert summary["costs"] == {
        "by_model": {
            "model-a": {"calls": 4, "cost": 0.75, "tokens": 25},
            "model-b": {"calls": 1, "cost": 0.125, "tokens": 2},
        },
        "by_kind": {
            "-": {"calls": 1, "cost": 0.125, "tokens": 2},
            "documentation": {"calls": 2, "cost": 0.5, "tokens": 10},
            "unit_test": {"calls": 2, "cost": 0.25, "tokens": 15},
        },
        "by_day": {
            local_day(earlier): {"calls": 1, "cost": 0.125, "tokens": 2},
            local_day(today): {"calls": 4, "cost": 0.75, "tokens": 25},
        },
    }
    assert list(summary["costs"]["by_kind"]) == ["-", "documentation", "unit_test"]
    assert summary["rotations"] == 2
    assert list(summary["model_state"]) == ["model-a", "model-b"]
    cooling = summary["model_state"]["model-b"]
    assert (cooling["cooldown_seconds_left"], cooling["cooldown_until"], cooling["rotations_to"]) == (
        20.0,
        clock.now + 20,
        2,
    )
    assert summary["model_state"]["model-a"] == ModelState("model-a", rotations_away=2).view(clock.now)


# --- the result cache (issue 14) ------------------------------------------------------------------------------
def cache_entry(key: str, **result: object) -> CachedResult:
    return CachedResult(
        key=key, kind="unit_test", task_id=f"task-{key}", result={"kind": "unit_test", **result}, tokens=5, cost=0.5
    )


def test_an_entry_is_kept_replaced_and_read_back(backend: Backend, clock: Clock) -> None:
    store = backend.store(clock)
    assert store.cache_get("k1") is None
    store.cache_put(cache_entry("k1", edit={"files": []}), limit=10)
    got = store.cache_get("k1")
    assert got is not None and got.result == {"kind": "unit_test", "edit": {"files": []}}
    assert (got.task_id, got.tokens, got.cost, got.created_at) == ("task-k1", 5, 0.5, clock.now)
    store.cache_put(CachedResult("k1", "unit_test", "newer", {"kind": "unit_test", "n": 2}), limit=10)
    again = store.cache_get("k1")
    assert again is not None and (again.task_id, again.result["n"]) == ("newer", 2)


def test_the_cache_is_bounded_and_the_oldest_go_first(backend: Backend, clock: Clock) -> None:
    store = backend.store(clock)
    for n in range(5):
        clock.now += 1
        store.cache_put(cache_entry(f"k{n}"), limit=3)
    assert [k for k in ("k0", "k1", "k2", "k3", "k4") if store.cache_get(k)] == ["k2", "k3", "k4"]
    clock.now += 1
    store.cache_put(cache_entry("k2", n=1), limit=3)  # replacing an entry makes it the newest
    clock.now += 1
    store.cache_put(cache_entry("k5"), limit=3)
    assert [k for k in ("k2", "k3", "k4", "k5") if store.cache_get(k)] == ["k2", "k4", "k5"]


def corrupt(backend: Backend, key: str) -> None:
    """Damage an entry as a crash or a hand edit could: its result is no longer JSON."""
    if backend.name == "postgres":
        import psycopg

        with psycopg.connect(backend.spec, autocommit=True) as conn:
            conn.execute("UPDATE oh_lsp_result_cache SET result = '{\"kind\": trunc' WHERE key = %s", (key,))
    else:
        with sqlite3.connect(backend.spec) as db:
            db.execute("UPDATE result_cache SET result = '{\"kind\": trunc' WHERE key = ?", (key,))


def test_a_corrupt_entry_is_ignored_and_replaced(
    backend: Backend, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.store(clock)
    store.cache_put(cache_entry("k1"), limit=10)
    corrupt(backend, "k1")
    with caplog.at_level(logging.WARNING):
        assert store.cache_get("k1") is None
    assert "cannot be read" in caplog.text and "will be replaced" in caplog.text
    store.cache_put(cache_entry("k1", fresh=True), limit=10)
    fixed = store.cache_get("k1")
    assert fixed is not None and fixed.result["fresh"] is True


async def test_a_task_is_found_by_the_start_of_its_id(queue: TaskQueue) -> None:
    from oh_lsp.errors import TaskIdError

    ids = [f"feedface{tail}" for tail in ("a" * 24, "b" * 24)]
    for task_id in ids:
        await queue.submit(QueuedTask(task_type="unit_test", description=task_id, task_id=task_id))
    assert await queue.find_id("feedfacea") == ids[0] and await queue.find_id(ids[1]) == ids[1]
    with pytest.raises(TaskIdError, match="several task ids"):
        await queue.find_id("feedface")
    with pytest.raises(TaskIdError, match="no task 0000000000"):
        await queue.find_id("0000000000")
    with pytest.raises(TaskIdError, match="first 8 characters"):
        await queue.find_id("feedfac")


async def test_a_task_that_fails_after_one_attempt_says_so_in_the_singular(queue: TaskQueue) -> None:
    await queue.submit(QueuedTask(task_type="unit_test", description="once", max_retries=0))
    task = await queue.claim()
    assert await queue.retry(task.task_id, "HTTP 503", 0) is TaskStatus.FAILED
    assert (await queue.get_task(task.task_id)).error == "failed after 1 attempt; last error: HTTP 503"
