"""Storage faults: a read-only or full state directory, a corrupted store, two engines on one store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, TaskStatus
from oh_lsp.attempt import Outcome
from oh_lsp.paths import state_dir
from oh_lsp.records import ExecutionMetrics
from oh_lsp.store.sqlite import SQLiteStore
from oh_lsp.validation.sandbox import bwrap_available
from tests.conftest import OH_LSP, cli_env

needs_bwrap = pytest.mark.skipif(
    not bwrap_available(),
    reason="bubblewrap is not installed (.ci/run installs it);"
    " as root it is the way to make a directory read-only or small",
)


def cli_in_bwrap(project: Path, env: dict[str, str], mount: list[str], *args: str) -> subprocess.CompletedProcess:
    command = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *mount, "--", *OH_LSP, *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)


@needs_bwrap
def test_read_only_state_dir_gives_a_clear_error(project: Path) -> None:
    env = cli_env(project, "http://127.0.0.1:9/v1")
    state = Path(env["OH_LSP_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    out = cli_in_bwrap(
        project, env, ["--ro-bind", str(state), str(state)], "submit-task", "--task-type", "unit_test", "pkg/calc.py"
    )
    assert out.returncode == 1
    assert "cannot use the oh-lsp store" in out.stderr and "OH_LSP_STATE_DIR" in out.stderr
    assert "Traceback" not in out.stderr


@needs_bwrap
def test_full_state_dir_gives_a_clear_error(project: Path) -> None:
    env = cli_env(project, "http://127.0.0.1:9/v1")
    state = Path(env["OH_LSP_STATE_DIR"])
    fill = f'head -c 126000 /dev/zero > {state}/filler && exec "$@"'  # leave ~5 KB of a 128 KB disk
    command = [
        "bwrap",
        "--bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        "131072",
        "--tmpfs",
        str(state),
        "--",
        "sh",
        "-c",
        fill,
        "sh",
        *OH_LSP,
        "submit-task",
        "--task-type",
        "unit_test",
        "pkg/calc.py",
    ]
    out = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "the oh-lsp store at" in out.stderr and "free space" in out.stderr and "disk is full" in out.stderr
    assert "Traceback" not in out.stderr


def test_corrupted_store_is_moved_aside_and_the_user_is_told(project: Path) -> None:
    env = cli_env(project, "http://127.0.0.1:9/v1")
    store = state_dir(project) / "oh-lsp.sqlite3"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    out = subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "was corrupted" in out.stderr and "moved aside" in out.stderr
    assert json.loads(out.stdout)["submitted"][0]["new"] is True
    assert [p.name for p in store.parent.glob("oh-lsp.sqlite3.corrupt-*")]
    again = subprocess.run(
        [*OH_LSP, "queue-stats", "--json"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(again.stdout)["pending"] == 1 and "corrupted" not in again.stderr


def test_store_with_a_damaged_page_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    for i in range(200):
        store.record_metrics(ExecutionMetrics(task_id=f"t{i}", model_id="m" * 200, task_type="unit_test"))
    store.close()
    data = bytearray(path.read_bytes())
    for offset in range(4096 * 2, min(len(data), 4096 * 6)):
        data[offset] = 0xFF
    path.write_bytes(bytes(data))
    fresh = SQLiteStore(path)
    assert fresh.recovered and "moved aside" in fresh.recovered
    assert fresh.metrics_summary()["system"]["executions"] == 0


async def test_two_engines_on_one_store_never_run_a_task_at_the_same_time(project: Path) -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    runs: list[str] = []

    async def executor(task: QueuedTask, ctx) -> Outcome:
        if task.task_id in running:
            overlaps.append(task.task_id)
        running.add(task.task_id)
        runs.append(task.task_id)
        await asyncio.sleep(0.01)
        running.discard(task.task_id)
        metrics = ExecutionMetrics(task_id=task.task_id, model_id="stub", task_type=task.task_type, success=True)
        return Outcome("completed", result={}, model="stub", metrics=metrics)

    config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1")
    engines = [
        ExecutionEngine(config, 4, project_root=project, executor=executor, poll_interval=0.02) for _ in range(2)
    ]
    ids = [await engines[0].submit_task(QueuedTask(task_type="unit_test", description=f"t{i}")) for i in range(200)]
    await asyncio.gather(*(e.start() for e in engines))
    await asyncio.gather(*(e.run_until_idle(timeout=60) for e in engines))
    for engine in engines:
        await engine.stop()
    statuses = [(await engines[0].get_task_status(i)).status for i in ids]
    for engine in engines:
        engine.close()
    assert not overlaps and sorted(runs) == sorted(ids), "each task ran exactly once"
    assert set(statuses) == {TaskStatus.COMPLETED}
    assert os.getpid()


COMMANDS = [
    ["submit-task", "--task-type", "unit_test", "pkg/calc.py"],
    ["get-status", "--task-id", "0123456789abcdef"],
    ["cancel-task", "--task-id", "0123456789abcdef"],
    ["list-tasks"],
    ["queue-stats"],
    ["metrics"],
    ["run-engine", "--until-idle"],
    ["generate-tests", "pkg/calc.py"],
    ["select-model", "--task-type", "unit_test"],
    ["models"],
    ["queue", "migrate"],
]


def assert_clear_store_error(out: subprocess.CompletedProcess, args: list[str]) -> None:
    assert out.returncode == 1, (args, out.stdout, out.stderr)
    assert "cannot use the oh-lsp store" in out.stderr and "OH_LSP_STATE_DIR" in out.stderr, (args, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout, (args, out.stderr)


@needs_bwrap
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0] if a[0] != "queue" else "queue-migrate")
def test_every_command_on_a_read_only_state_dir_says_so_without_a_traceback(project: Path, args: list[str]) -> None:
    """`run-engine` used to crash here with `OSError: [Errno 30]` from the log file handler."""
    env = cli_env(project, "http://127.0.0.1:9/v1")
    state = Path(env["OH_LSP_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    assert_clear_store_error(cli_in_bwrap(project, env, ["--ro-bind", str(state), str(state)], *args), args)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0] if a[0] != "queue" else "queue-migrate")
def test_every_command_on_a_state_dir_that_cannot_exist_says_so(project: Path, args: list[str]) -> None:
    blocker = project.parent / "a-file"
    blocker.write_text("not a directory\n")
    env = cli_env(project, "http://127.0.0.1:9/v1", OH_LSP_STATE_DIR=str(blocker / "state"))
    out = subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert_clear_store_error(out, args)


def test_the_log_falls_back_to_stderr_when_its_file_cannot_be_written(project: Path, model_server) -> None:
    from oh_lsp.testing.model_server import Reply
    from tests.conftest import GOOD_TESTS, fenced

    (state_dir(project) / "oh-lsp.log").mkdir(parents=True)  # the store can be written, its log file cannot
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url, OH_LSP_MUTATION="off")
    subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "pkg/calc.py"], cwd=project, env=env, check=True
    )
    out = subprocess.run(
        [*OH_LSP, "run-engine", "--until-idle"], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cannot write the log file" in out.stderr and "logging to stderr" in out.stderr
    assert "Traceback" not in out.stderr
    assert (project / "tests" / "pkg" / "test_calc.py").exists()


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_store_lost_under_a_running_engine_stops_it_and_keeps_the_result(
    project: Path, model_server, fault: str
) -> None:
    """The store is deleted (or replaced by another file) while the engine validates a task: the engine notices at
    its next write (a heartbeat), stops with a clear error, and keeps the outcome it holds: in the log (so on
    stderr) and, the result being the CLI's to deliver, in the project. Before, it went on, and all history was gone
    without a word."""
    import time

    from oh_lsp.testing.model_server import Reply
    from tests.conftest import SLOW_TESTS, engine_in_background, fenced

    model_server.script(Reply.text(fenced(SLOW_TESTS)))
    env = cli_env(project, model_server.base_url, OH_LSP_MUTATION="off", OH_LSP_HEARTBEAT_SECONDS="0.3")
    subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "pkg/calc.py"], cwd=project, env=env, check=True
    )
    store = state_dir(project) / "oh-lsp.sqlite3"
    engine = engine_in_background(project, env, model_server)
    time.sleep(0.5)  # the answer is in: the engine is validating it (each run of test_add takes 1.5 s)
    for part in store.parent.glob("oh-lsp.sqlite3*"):
        part.unlink()
    if fault == "replaced":
        SQLiteStore(store).close()  # another, empty store at the same path
    out, err = engine.communicate(timeout=120)
    assert engine.returncode == 1, out + err
    assert f"the oh-lsp store at {store} was {fault}" in err and "oh-lsp stopped" in err, err
    assert "Traceback" not in err
    assert "is kept here" in err and '"status": "completed"' in err, "the outcome is in the log (and on stderr)"
    assert "def test_divide" in (project / "tests" / "pkg" / "test_calc.py").read_text(), "and delivered"


@pytest.mark.asyncio
async def test_the_editor_is_told_when_its_store_is_deleted(tmp_path: Path) -> None:
    """The language server's engine notices too (its idle workers poll the store), and the editor gets an error
    message saying so, instead of a server that goes on writing into a deleted file."""
    import pytest_lsp

    from tests.lsp_client import make_project, start_server, stop_server, until

    project = make_project(tmp_path / "proj")
    state = tmp_path / "state"
    client = await start_server(project, state, "http://127.0.0.1:9/v1", pytest_lsp.client_capabilities("neovim"))
    try:
        await until(lambda: client.statuses, 30, "the engine to run")  # type: ignore[attr-defined]
        store = next(state.rglob("oh-lsp.sqlite3"))
        for part in store.parent.glob("oh-lsp.sqlite3*"):
            part.unlink()
        await until(lambda: any("oh-lsp stopped in" in m.message for m in client.messages), 30, "the message")
        text = next(m for m in client.messages if "oh-lsp stopped in" in m.message)
        assert text.type == 1 and f"the oh-lsp store at {store} was deleted" in text.message  # 1: Error
    finally:
        await stop_server(client)
