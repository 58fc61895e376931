"""The queue's short calls made on the caller's thread (`StoreThread.now` / `soon`, `SQLiteStore.inline`): they never
wait on another process's lock, keep the order in which calls were made, commit the calls of one turn together, leave
the WAL's checkpoints to the store's thread, and a submitted task is in the file once `submit` returns (it survives
kill -9 of the process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from oh_lsp import QueuedTask, TaskQueue, TaskStatus
from oh_lsp.store.sqlite import SQLiteStore
from oh_lsp.store.sqlite import store as sqlite_store

ROOT = Path(__file__).parent.parent


def task(description: str) -> QueuedTask:
    return QueuedTask(task_type="unit_test", description=description)


@pytest.fixture
def queue(tmp_path: Path) -> TaskQueue:
    q = TaskQueue(max_size=100_000, store=SQLiteStore(tmp_path / "q.sqlite3"), project_root=tmp_path)
    yield q
    q.close()


async def test_a_submit_made_inline_runs_on_the_callers_thread(queue: TaskQueue) -> None:
    threads = record_threads(queue)
    await queue.submit(task("one"))
    assert threads == [threading.get_ident()], "no hand-off to the store's thread when nothing waits there"


def record_threads(queue: TaskQueue) -> list[int]:
    """The threads on which `queue`'s store adds tasks, from now on."""
    threads: list[int] = []
    add = queue.store.add

    def recording_add(*args, **kwargs):
        threads.append(threading.get_ident())
        return add(*args, **kwargs)

    queue.store.add = recording_add  # type: ignore[method-assign]
    return threads


async def test_without_inline_calls_every_call_goes_to_the_store_thread(tmp_path: Path) -> None:
    q = TaskQueue(store=SQLiteStore(tmp_path / "q.sqlite3"), project_root=tmp_path, inline_calls=False)
    try:
        threads = record_threads(q)
        await q.submit(task("one"))
        assert len(threads) == 1 and threads[0] != threading.get_ident(), "made on the store's thread"
    finally:
        q.close()


async def test_the_language_servers_engine_never_makes_store_calls_on_its_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The language server's event loop answers the editor: its folders' engines send every store call to the store's
    thread (the CLI's and the Python API's make the short ones inline)."""
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.lsp.folders import Folders

    monkeypatch.setenv("OH_LSP_STATE_DIR", str(tmp_path / "state"))
    config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1")
    folders = Folders(lambda folder, event: None)
    folder = await folders.add(tmp_path, lambda: config, 1)
    assert folder.engine is not None, folder.error
    try:
        threads = record_threads(folder.engine.queue)
        await folder.engine.submit_task(task("from the editor"))
        assert len(threads) == 1 and threads[0] != threading.get_ident(), "made on the store's thread"
    finally:
        await folder.engine.stop()


async def test_a_submit_never_blocks_the_event_loop_on_another_process_lock(queue: TaskQueue, tmp_path: Path) -> None:
    """Another process holds the write lock: the inline submit gives way at once (nothing written) and the store's
    thread makes it once the lock is free, while the event loop goes on."""
    await queue.submit(task("first"))  # the file exists, with its tables
    other = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    submitting = asyncio.create_task(queue.submit(task("second")))
    await asyncio.sleep(0.3)
    assert not submitting.done(), "the submit waits for the lock (on the store's thread)"
    assert ticks >= 10, f"the event loop kept running meanwhile ({ticks} ticks in 0.3 s)"
    other.execute("COMMIT")
    other.close()
    task_id, created, _ = await asyncio.wait_for(submitting, 30)
    ticking.cancel()
    assert created and (await queue.get_task(task_id)) is not None


async def test_calls_are_made_in_the_order_they_were_made(queue: TaskQueue) -> None:
    """A cancel queued for the store's thread comes before a later submit of an equal task, though the submit could
    have been made at once: the submit sees the first task cancelled and adds a new one."""
    first, _, _ = await queue.submit(task("same"))
    cancelled = queue.store_thread.later(queue.store.request_cancel, first)
    second, created, _ = await queue.submit(task("same"))
    assert await cancelled is TaskStatus.PENDING
    assert created and second != first, "the submit came after the cancel"


async def test_an_inline_call_never_overtakes_a_result_on_its_way(queue: TaskQueue) -> None:
    """A call made on the store's thread whose result has not reached this event loop yet is not overtaken by an
    inline call (a worker's claim would start a task before its submitter heard that it was queued)."""
    made = threading.Event()
    first = queue.store_thread.later(made.set)
    assert made.wait(10)
    time.sleep(0.1)  # the event loop is held: the first result waits in its queue
    await queue.store_thread.now(queue.store.stats)
    assert first.done(), "the second call's result came before the first one's"


async def test_the_calls_of_one_turn_commit_together_and_fail_alone(queue: TaskQueue) -> None:
    """The completions of several workers made in one turn of the event loop are one transaction (one commit), each
    call in its own savepoint: one that fails is rolled back alone."""
    for i in range(4):
        await queue.submit(task(f"t{i}"))
    claimed = [await queue.claim() for _ in range(4)]
    commits: list[str] = []
    conn = queue.store._inline_conn()  # this thread's connection for inline calls
    conn.set_trace_callback(lambda statement: commits.append(statement) if statement == "COMMIT" else None)

    def write_then_fail() -> None:
        with queue.store._write() as db:
            db.execute("UPDATE tasks SET note = 'rolled back' WHERE id = ?", (claimed[3].task_id,))
            raise RuntimeError("this call fails")

    async def failing() -> None:  # a coroutine, as the finishes are: its call is made in the same turn as theirs
        return await queue.store_thread.soon(write_then_fail)

    ends = [queue.finish(t.task_id, TaskStatus.COMPLETED, result={"n": i}) for i, t in enumerate(claimed[:3])]
    outcomes = await asyncio.gather(*ends, failing(), return_exceptions=True)
    conn.set_trace_callback(None)
    assert outcomes[:3] == [True, True, True] and isinstance(outcomes[3], RuntimeError)
    assert len(commits) == 1, f"{len(commits)} commits for one turn's calls"
    after = [await queue.get_task(t.task_id) for t in claimed]
    assert [t.status for t in after] == [TaskStatus.COMPLETED] * 3 + [TaskStatus.RUNNING]
    assert after[3].note is None, "the failed call's write was rolled back"


async def test_a_call_that_fails_inside_a_nested_write_is_rolled_back_whole(queue: TaskQueue) -> None:
    """Writes nested in a group's call make no savepoint of their own: a failure in the innermost one rolls back the
    whole call (its outer write included), and the group's other calls are kept."""
    for i in range(2):
        await queue.submit(task(f"t{i}"))
    first, second = await queue.claim(), await queue.claim()
    store = queue.store

    def finish_then_fail() -> None:
        with store._write() as db:
            db.execute("UPDATE tasks SET note = 'outer' WHERE id = ?", (first.task_id,))
            with store._write() as inner:
                inner.execute("UPDATE tasks SET note = 'inner' WHERE id = ?", (second.task_id,))
                raise RuntimeError("fails after two writes")

    commits: list[str] = []
    queue.store._inline_conn().set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    outcomes = await asyncio.gather(  # both in this turn of the event loop: one group
        queue.store_thread.soon(finish_then_fail),
        queue.store_thread.soon(store.finish, second.task_id, second.lease_id, TaskStatus.COMPLETED, result={"ok": 1}),
        return_exceptions=True,
    )
    queue.store._inline_conn().set_trace_callback(None)
    assert isinstance(outcomes[0], RuntimeError) and outcomes[1] is True
    assert len(commits) == 1, "one transaction for the group"
    after = {t.task_id: await queue.get_task(t.task_id) for t in (first, second)}
    assert after[first.task_id].note is None and after[second.task_id].note is None, "both writes were rolled back"
    assert after[second.task_id].status is TaskStatus.COMPLETED, "the other call of the group was kept"


async def test_inline_writes_leave_checkpoints_to_the_store_thread(
    queue: TaskQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline calls never checkpoint (that waits on the disk), so the WAL would grow without end: the store's thread
    checkpoints every `CHECKPOINT_EVERY` inline commits, and the WAL stays small."""
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 20)
    for i in range(600):
        await queue.submit(task(f"t{i}"))
    await queue.stats()  # a call on the store's thread: the checkpoints asked for before it are done
    frames = 600 * 6  # about 6 pages a submit
    wal = os.path.getsize(tmp_path / "q.sqlite3-wal") // 4096
    assert wal < frames / 3, f"the WAL holds {wal} pages after 600 submits"


SUBMITTER = textwrap.dedent("""
    import asyncio, os, sys, time
    from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask

    async def main():
        config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1")
        engine = ExecutionEngine(config, 1, project_root=sys.argv[1])  # not started: the tasks stay pending
        for i in range(int(sys.argv[2])):
            task_id = await engine.submit_task(QueuedTask(task_type="unit_test", description=f"task {i}"))
            print(task_id, flush=True)  # the submit returned: the task must be in the file now
        time.sleep(600)  # blocks the event loop too: nothing more gets a chance to be written

    asyncio.run(main())
""")


def test_a_submitted_task_survives_kill_9_of_the_submitting_process(tmp_path: Path) -> None:
    env = {**os.environ, "OH_LSP_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBMITTER, str(tmp_path), "50"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    assert proc.stdout is not None
    ids = [proc.stdout.readline().strip() for _ in range(50)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert all(ids), "the submitter printed every id before the kill"
    store = next((tmp_path / "state").rglob("*.sqlite3"))
    with sqlite3.connect(store) as db:
        rows = dict(db.execute("SELECT id, status FROM tasks").fetchall())
    assert {task_id: rows.get(task_id) for task_id in ids} == dict.fromkeys(ids, "pending"), json.dumps(rows)[:300]
