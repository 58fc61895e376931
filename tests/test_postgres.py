"""The PostgreSQL backend beyond the shared contract: backend choice, schema migrations, submits racing from many
processes, wakeups by NOTIFY, and fleets of worker processes (the real engine with a stub model) that survive a
kill -9 and a database outage. The store interface's tests, run against SQLite too, are in `test_store_contract.py`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, TaskPriority, TaskQueue, TaskStatus
from oh_lsp.errors import ConfigError, StoreError
from oh_lsp.records import ModelCall
from oh_lsp.store import migrate_store, open_store
from oh_lsp.store.sqlite import SQLiteStore
from oh_lsp.testing.fleet_worker import stub_executor
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, OH_LSP, SENTINEL_KEY, cli_env, fenced
from tests.prerequisites import missing

pytest.importorskip("psycopg")
from oh_lsp.store.postgres import (
    PostgresStore,
    schema,
)
from oh_lsp.store.postgres.schema import LATEST, MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent


def sql(url: str, query: str, *params: Any) -> list[dict[str, Any]]:
    """Look at the database directly (what the assertions count)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def task(description: str, **kw: Any) -> QueuedTask:
    return QueuedTask(task_type="unit_test", description=description, **kw)


async def submit(url: str, root: Path, tasks: list[QueuedTask]) -> list[str]:
    queue = TaskQueue(max_size=10_000, queue_url=url, project_root=root)
    try:
        return [await queue.enqueue(t) for t in tasks]
    finally:
        queue.close()


def worker(url: str, root: Path, *args: str) -> subprocess.Popen:
    """A fleet worker process: the real engine on the shared queue, with the model call stubbed."""
    return subprocess.Popen(
        [sys.executable, "-m", "oh_lsp.testing.fleet_worker", "--queue-url", url, "--project-root", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[dict[str, Any], str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_each_completed_once(url: str, ids: list[str]) -> None:
    rows = sql(url, "SELECT id, status FROM oh_lsp_tasks")
    assert {r["id"] for r in rows} == set(ids) and {r["status"] for r in rows} == {"completed"}
    per_task = sql(url, "SELECT task_id, count(*) AS n FROM oh_lsp_metrics GROUP BY task_id")
    assert {r["task_id"] for r in per_task} == set(ids)
    assert {r["n"] for r in per_task} == {1}, "a task was completed more than once"


@pytest.fixture
async def server() -> Any:
    """A PostgreSQL server of the test's own, to stop and start again."""
    from oh_lsp.testing.postgres_server import TemporaryPostgres, bin_dir

    if bin_dir() is None:
        missing("stopping and restarting a database needs PostgreSQL's server programs (apt-get install postgresql)")
    own = TemporaryPostgres()
    await asyncio.to_thread(own.start)
    yield own
    await asyncio.to_thread(own.stop)


# --- choosing the backend ------------------------------------------------------------------------------------------
def test_the_url_chooses_the_backend(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite = open_store(tmp_path)
    assert isinstance(sqlite, SQLiteStore)
    sqlite.close()
    store = open_store(tmp_path, pg_url)
    assert isinstance(store, PostgresStore) and store.location == pg_url
    store.close()
    monkeypatch.setenv("OPENHANDS_QUEUE_URL", pg_url)
    from_env = open_store(tmp_path)
    assert isinstance(from_env, PostgresStore)
    from_env.close()
    assert OpenHandsConfig.from_env(env_file=None).queue_url == pg_url
    with pytest.raises(ConfigError, match="must start with postgresql://"):
        open_store(tmp_path, "mysql://u:pw@h/db")


def test_the_password_never_shows(pg_url: str, tmp_path: Path) -> None:
    secret = "s3cret-Pw-never-print"
    url = pg_url.replace("postgres@", f"postgres:{secret}@", 1)  # the test server trusts loopback: any password
    store = PostgresStore(url)
    assert secret not in store.location and ":***@" in store.location
    assert secret not in json.dumps(store.stats())
    store.close()
    assert OpenHandsConfig(queue_url=url).secrets() == [secret]  # redacted from logs, kept out of generated code
    assert secret not in repr(OpenHandsConfig(queue_url=url))
    dead = "postgresql://postgres:" + secret + "@127.0.0.1:1/postgres"
    with pytest.raises(StoreError, match=r"cannot use the PostgreSQL queue .* Check the URL") as caught:
        PostgresStore(dead, connect_timeout=2)
    assert secret not in str(caught.value)


def test_a_server_that_refuses_writes_gives_clear_store_errors(pg_url: str, project: Path) -> None:
    PostgresStore.migrate(pg_url)
    read_only = pg_url + "%20-cdefault_transaction_read_only%3Don"  # as a standby, or a read-only default
    store = PostgresStore(read_only)
    standby = r"cannot execute \w+ in a read-only transaction\. The server accepts no writes .* at the primary\."
    with pytest.raises(StoreError, match=rf"queue at .* refused a request: {standby}"):
        store.add(task("x"), dedupe_key="k", max_size=10)
    with pytest.raises(StoreError, match=standby):
        store.update_model_state("m", lambda state: setattr(state, "rotations_to", 1))
    with pytest.raises(StoreError, match=standby):
        store.record_model_call(ModelCall("m", "ok", cost=0.1))
    assert store.model_states() == {} and store.stats()["total"] == 0  # reads work, on clean connections
    store.close()
    env = cli_env(project, "http://127.0.0.1:9/v1")
    out = subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "--queue-url", read_only],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "The server accepts no writes" in out.stderr and "Traceback" not in out.stderr


def test_a_user_without_rights_on_the_tables_is_told_what_to_grant(pg_url: str) -> None:
    PostgresStore.migrate(pg_url)
    schema_name = sql(pg_url, "SELECT current_schema() AS name")[0]["name"]
    role = f"reader_{schema_name}"
    sql(pg_url, f"CREATE ROLE {role} LOGIN")
    try:
        sql(pg_url, f"GRANT USAGE ON SCHEMA {schema_name} TO {role}")
        sql(pg_url, f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema_name} TO {role}")
        store = PostgresStore(pg_url.replace("postgres@", f"{role}@", 1))  # the test server trusts loopback
        try:
            grant = r"permission denied for table oh_lsp_\w+\. The URL's user may not use oh-lsp's tables: grant"
            with pytest.raises(StoreError, match=grant):
                store.add(task("x"), dedupe_key="k", max_size=10)
            with pytest.raises(StoreError, match=grant):
                store.update_model_state("m", lambda state: None)
            assert store.metrics_summary()["costs"]["by_model"] == {}
        finally:
            store.close()
    finally:
        sql(pg_url, f"DROP OWNED BY {role}")
        sql(pg_url, f"DROP ROLE {role}")


# --- schema --------------------------------------------------------------------------------------------------------
def test_migrations_are_versioned_idempotent_and_run_once_under_a_race(pg_url: str) -> None:
    results: list[tuple[int, int]] = []
    threads = [threading.Thread(target=lambda: results.append(PostgresStore.migrate(pg_url))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(0, LATEST)] + [(LATEST, LATEST)] * 3
    assert (
        [r["version"] for r in sql(pg_url, "SELECT version FROM oh_lsp_schema_version ORDER BY version")]
        == [version for version, _, _ in MIGRATIONS]
        == list(range(1, LATEST + 1))
    )
    assert PostgresStore.migrate(pg_url) == (LATEST, LATEST)
    sql(pg_url, "INSERT INTO oh_lsp_schema_version (version, description) VALUES (99, 'from the future')")
    with pytest.raises(StoreError, match="schema version 99, newer than this oh-lsp knows"):
        PostgresStore(pg_url)


def test_a_version_1_queue_is_upgraded_in_place_to_the_model_tables(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old_oh_lsp:  # what the first release of the PostgreSQL queue created
        old_oh_lsp.setattr(schema, "MIGRATIONS", MIGRATIONS[:1])
        old_oh_lsp.setattr(schema, "LATEST", 1)
        assert PostgresStore.migrate(pg_url) == (0, 1)
        old = PostgresStore(pg_url)
        task_id = old.add(task("kept"), dedupe_key="k", max_size=10).task_id
        old.close()
    assert sql(pg_url, "SELECT to_regclass('oh_lsp_model_calls') IS NULL AS absent")[0]["absent"]
    store = PostgresStore(pg_url)  # opening it with this oh-lsp migrates
    store.record_model_call(ModelCall("m", "ok", task_id=task_id, cost=0.25))
    store.update_model_state("m", lambda state: setattr(state, "rotations_to", 1))
    assert store.get(task_id).description == "kept" and store.spent(task_id=task_id) == 0.25
    assert store.model_states()["m"].rotations_to == 1
    store.close()
    assert PostgresStore.migrate(pg_url) == (LATEST, LATEST)
    described = sql(pg_url, "SELECT version, description FROM oh_lsp_schema_version ORDER BY version")
    assert described[1] == {"version": 2, "description": "model state and model calls"}


def test_queue_migrate_command(pg_url: str, project: Path) -> None:
    env = cli_env(project, "http://127.0.0.1:9/v1")
    first = subprocess.run(
        [*OH_LSP, "queue", "migrate", "--queue-url", pg_url],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert f"migrated from schema version 0 to {LATEST}" in first.stdout
    again = subprocess.run(
        [*OH_LSP, "queue", "migrate", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**env, "OPENHANDS_QUEUE_URL": pg_url},
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) | {"message": ""} == {
        "backend": "postgresql",
        "location": pg_url,
        "before": LATEST,
        "after": LATEST,
        "message": "",
    }
    assert migrate_store(project)["backend"] == "sqlite"  # no URL: the project's embedded store


# --- submits from many machines ------------------------------------------------------------------------------------
SUBMITTER = textwrap.dedent("""
    import asyncio, json, sys, time
    from oh_lsp.errors import QueueFullError
    from oh_lsp.queue import TaskQueue
    from oh_lsp.tasks import QueuedTask

    async def main(url, root, prefix, count, max_size, start_at):
        queue = TaskQueue(max_size=max_size, queue_url=url, project_root=root)
        await queue.get_stats()  # connected: now wait for the others, then all submit at once
        time.sleep(max(0.0, start_at - time.time()))
        ids, full = [], 0
        for i in range(count):
            try:
                ids.append(await queue.enqueue(QueuedTask(task_type="unit_test", description=f"{prefix}-{i}")))
            except QueueFullError:
                full += 1
        queue.close()
        print(json.dumps({"ids": ids, "full": full}))

    url, root, prefix, count, max_size, start_at = sys.argv[1:]
    asyncio.run(main(url, root, prefix, int(count), int(max_size), float(start_at)))
""")


def submit_from_processes(url: str, root: Path, prefixes: list[str], count: int, max_size: int) -> list[dict]:
    start_at = str(time.time() + 2.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, url, str(root), prefix, str(count), str(max_size), start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for prefix in prefixes
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    return outs


def test_max_size_and_idempotent_submit_hold_across_processes(pg_url: str, tmp_path: Path) -> None:
    PostgresStore.migrate(pg_url)
    outs = submit_from_processes(pg_url, tmp_path, ["a", "b", "c", "d"], count=20, max_size=30)
    assert sum(len(o["ids"]) for o in outs) == 30 and sum(o["full"] for o in outs) == 50
    assert sql(pg_url, "SELECT count(*) AS n FROM oh_lsp_tasks")[0]["n"] == 30

    sql(pg_url, "DELETE FROM oh_lsp_tasks")
    outs = submit_from_processes(pg_url, tmp_path, ["same"] * 4, count=10, max_size=1000)
    assert all(o["ids"] == outs[0]["ids"] for o in outs), "equal tasks got different ids on different machines"
    assert sql(pg_url, "SELECT count(*) AS n FROM oh_lsp_tasks")[0]["n"] == 10


# --- wakeups -------------------------------------------------------------------------------------------------------
async def test_idle_workers_wake_on_notify_not_on_their_poll(pg_url: str, tmp_path: Path) -> None:
    config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1", queue_url=pg_url)
    engine = ExecutionEngine(config, 2, project_root=tmp_path, executor=stub_executor, poll_interval=60.0)
    await engine.start()
    try:
        store = engine.queue.store
        assert await asyncio.to_thread(store.listener.listening.wait, 10)
        await asyncio.sleep(0.3)  # both workers found nothing and sleep on their 60 s poll
        started = time.monotonic()
        (task_id,) = await submit(pg_url, tmp_path, [task("from another machine")])
        final = await engine.wait_for(task_id, timeout=10)
        assert final.status is TaskStatus.COMPLETED
        assert time.monotonic() - started < 5, "the worker waited for its poll instead of the notification"
        assert store.listener.notifications >= 1
    finally:
        await engine.stop()
        engine.close()


# --- fleets --------------------------------------------------------------------------------------------------------
async def test_a_fleet_of_processes_completes_500_tasks_each_exactly_once(pg_url: str, tmp_path: Path) -> None:
    ids = await submit(pg_url, tmp_path, [task(f"t{i}", metadata={"seconds": 0.03}) for i in range(500)])
    procs = [worker(pg_url, tmp_path, "--workers", "3", "--until-idle") for _ in range(3)]
    outs = [finish(p)[0] for p in procs]
    completed = [tid for out in outs for tid in out["completed"]]
    assert sorted(completed) == sorted(ids), "each task is reported completed by exactly one worker"
    assert sum(1 for out in outs if out["completed"]) >= 2, "the work was not shared"
    assert sum(out["started"] for out in outs) == 500, "a task was started twice"
    assert_each_completed_once(pg_url, ids)
    assert sql(pg_url, "SELECT DISTINCT attempts FROM oh_lsp_tasks") == [{"attempts": 1}]

    # status, metrics and cost totals, from yet another process
    env = cli_env(tmp_path, "http://127.0.0.1:9/v1")
    metrics = subprocess.run(
        [*OH_LSP, "metrics", "--json", "--queue-url", pg_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert metrics.returncode == 0, metrics.stderr
    system = json.loads(metrics.stdout)["system"]
    assert system["executions"] == 500 and system["total_cost"] == pytest.approx(500 * 0.0001)
    stats = subprocess.run(
        [*OH_LSP, "queue-stats", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**env, "OPENHANDS_QUEUE_URL": pg_url},
        timeout=60,
    )
    assert json.loads(stats.stdout)["completed"] == 500


async def test_kill_9_of_a_worker_mid_task_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    (slow,) = await submit(pg_url, tmp_path, [task("slow", priority=TaskPriority.HIGH, metadata={"seconds": 1.5})])
    quick = await submit(pg_url, tmp_path, [task(f"quick {i}") for i in range(20)])
    lease = ["--lease-seconds", "2", "--heartbeat-seconds", "0.3", "--poll-interval", "0.2"]
    doomed = worker(pg_url, tmp_path, "--workers", "1", "--duration", "60", *lease)
    wait_until(
        lambda: sql(pg_url, "SELECT status FROM oh_lsp_tasks WHERE id = %s", slow)[0]["status"] == "running",
        30,
        "the first worker to take the slow task",
    )
    doomed.kill()  # SIGKILL: no clean-up, the lease just stops being renewed
    doomed.wait(timeout=10)
    assert sql(pg_url, "SELECT status FROM oh_lsp_tasks WHERE id = %s", slow)[0]["status"] == "running"

    out, _ = finish(worker(pg_url, tmp_path, "--workers", "2", "--until-idle", *lease))
    assert slow in out["completed"]
    assert_each_completed_once(pg_url, [slow, *quick])
    row = sql(pg_url, "SELECT attempts, error FROM oh_lsp_tasks WHERE id = %s", slow)[0]
    assert row["attempts"] == 2 and row["error"] is None


async def test_a_running_task_is_cancelled_from_another_machine(pg_url: str, project: Path) -> None:
    (task_id,) = await submit(pg_url, project, [task("long", metadata={"seconds": 60})])
    proc = worker(pg_url, project, "--workers", "1", "--until-idle", "--heartbeat-seconds", "0.3")
    wait_until(
        lambda: sql(pg_url, "SELECT status FROM oh_lsp_tasks WHERE id = %s", task_id)[0]["status"] == "running",
        30,
        "the worker to start the task",
    )
    cancel = subprocess.run(
        [*OH_LSP, "cancel-task", "--task-id", task_id, "--queue-url", pg_url],
        cwd=project,
        env=cli_env(project, "http://127.0.0.1:9/v1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    asked = time.monotonic()
    assert cancel.returncode == 0 and "cancel requested" in cancel.stdout, cancel.stdout + cancel.stderr
    wait_until(
        lambda: sql(pg_url, "SELECT status FROM oh_lsp_tasks WHERE id = %s", task_id)[0]["status"] == "cancelled",
        10,
        "the worker to stop the task",
    )
    assert time.monotonic() - asked < 5
    out, _ = finish(proc, timeout=30)
    assert out["completed"] == []


async def test_a_database_outage_is_survived_with_clear_errors(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.url
    # 1. A busy fleet: the server stops mid-run. Attempts that end during the outage keep their result.
    ids = await submit(url, tmp_path, [task(f"t{i}", metadata={"seconds": 0.15}) for i in range(60)])
    lease = ["--lease-seconds", "6", "--heartbeat-seconds", "0.5", "--poll-interval", "0.2"]
    procs = [worker(url, tmp_path, "--workers", "2", "--until-idle", *lease) for _ in range(2)]
    done = "SELECT count(*) AS n FROM oh_lsp_tasks WHERE status = 'completed'"
    await asyncio.to_thread(wait_until, lambda: sql(url, done)[0]["n"] >= 10, 60, "the fleet to get going")
    await asyncio.to_thread(server.stop_server, "fast")  # every connection is cut
    await asyncio.sleep(2)
    assert all(p.poll() is None for p in procs), "a worker died with the database"
    await asyncio.to_thread(server.start_server)
    results = [await asyncio.to_thread(finish, p) for p in procs]
    assert_each_completed_once(url, ids)
    errors = "".join(err for _, err in results)
    assert "cannot be reached" in errors and "is the server running? oh-lsp keeps retrying" in errors
    assert "answers again" in errors
    completed = [tid for out, _ in results for tid in out["completed"]]
    assert len(completed) == len(set(completed))

    # 2. An idle engine: its workers' polls fail while the server is down; the loop logs it and carries on.
    config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1", queue_url=url)
    engine = ExecutionEngine(config, 2, project_root=tmp_path, executor=stub_executor, poll_interval=0.2)
    await engine.start()
    try:
        await asyncio.to_thread(server.stop_server, "fast")
        deadline = time.monotonic() + 30
        while "could not read the queue; retrying" not in caplog.text:  # a poll failed, and was logged
            assert time.monotonic() < deadline, "no worker noticed that the database is gone"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        assert all(not w.done() for w in engine._workers), "a worker loop ended"
        await asyncio.to_thread(server.start_server)
        (late,) = await submit(url, tmp_path, [task("after the outage")])
        assert (await engine.wait_for(late, timeout=30)).status is TaskStatus.COMPLETED
    finally:
        await engine.stop()
        engine.close()
    assert "cannot be reached" in caplog.text and "answers again" in caplog.text


async def test_an_outage_during_a_model_call_puts_the_attempt_back(
    server: Any, project: Path, model_server, caplog: pytest.LogCaptureFixture
) -> None:
    from pydantic import SecretStr

    # the first answer arrives while the server is down: the gateway cannot record the call or the model's health
    model_server.script(Reply.text(fenced(GOOD_TESTS), latency=8.0), Reply.text(fenced(GOOD_TESTS)))
    config = OpenHandsConfig(
        api_key=SecretStr(SENTINEL_KEY),
        model="test-model",
        base_url=model_server.base_url,
        python=Path(os.environ["OH_LSP_PYTHON"]),
        max_repair_iterations=0,
        quality_threshold=0.0,
        heartbeat_seconds=0.5,
        queue_url=server.url,
    )
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        task_id = await engine.submit_task(QueuedTask(task_type="unit_test", target_file=Path("pkg/calc.py")))
        deadline = time.monotonic() + 60
        while not model_server.requests:
            assert time.monotonic() < deadline, "the model was never called"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(server.stop_server, "fast")
        assert not model_server.requests[0].completed, "the database took longer to stop than the model to answer"
        while "goes back to the queue" not in caplog.text and "crashed" not in caplog.text:
            assert time.monotonic() < deadline, "the attempt neither failed nor went back to the queue"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(server.start_server)
        final = await engine.wait_for(task_id, timeout=120)
    finally:
        await engine.stop()
        engine.close()
    assert final.status is TaskStatus.COMPLETED and final.attempts == 2, (final.status, final.error)
    assert len(model_server.requests) == 2
    assert "the attempt goes back to the queue" in caplog.text and "cannot be reached" in caplog.text
    assert "crashed" not in caplog.text


# --- the CLI end to end, with the model -----------------------------------------------------------------------------
def test_cli_processes_share_a_postgres_queue(pg_url: str, project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url)
    submitted = subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "--target-file", "pkg/calc.py", "--json"],
        cwd=project,
        env={**env, "OPENHANDS_QUEUE_URL": pg_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    task_id = json.loads(submitted.stdout)["submitted"][0]["task_id"]
    assert sql(pg_url, "SELECT status FROM oh_lsp_tasks WHERE id = %s", task_id)[0]["status"] == "pending"

    ran = subprocess.run(
        [*OH_LSP, "run-engine", "--until-idle", "--queue-url", pg_url],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status = subprocess.run(
        [*OH_LSP, "get-status", "--task-id", task_id, "--json", "--queue-url", pg_url],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(status.stdout)["status"] == "completed"
    assert (project / "tests" / "pkg" / "test_calc.py").read_text() == GOOD_TESTS
    # the model layer's records went to the shared queue too: every machine sees the call, its cost and the health
    metrics = subprocess.run(
        [*OH_LSP, "metrics", "--json", "--queue-url", pg_url],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    summary = json.loads(metrics.stdout)
    assert summary["costs"]["by_model"]["test-model"]["calls"] == 1
    assert summary["costs"]["by_kind"]["unit_test"]["calls"] == 1 and summary["model_state"]["test-model"]
    assert sql(pg_url, "SELECT task_id, outcome FROM oh_lsp_model_calls") == [{"task_id": task_id, "outcome": "ok"}]
    dump = json.dumps(
        [
            sql(pg_url, f"SELECT * FROM {table}")
            for table in ("oh_lsp_tasks", "oh_lsp_metrics", "oh_lsp_model_state", "oh_lsp_model_calls")
        ],
        default=str,
    )
    assert task_id in dump and SENTINEL_KEY not in dump, "the API key reached the database"
    reset = subprocess.run(
        [*OH_LSP, "models", "reset", "--json", "--queue-url", pg_url],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(reset.stdout) == {"reset": 1} and sql(pg_url, "SELECT * FROM oh_lsp_model_state") == []
    local = subprocess.run(
        [*OH_LSP, "queue-stats", "--json"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(local.stdout)["total"] == 0, "without a URL the CLI uses the project's own SQLite store"
