"""The CLI as users run it: separate processes sharing one durable store, against the scripted model server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oh_lsp.paths import state_dir
from oh_lsp.testing.model_server import Reply
from tests.conftest import (
    FAILING_TESTS,
    GOOD_TESTS,
    OH_LSP,
    SENTINEL_KEY,
    SLOW_TESTS,
    cli_env,
    engine_in_background,
    fenced,
)

USAGE = {"prompt_tokens": 812, "completion_tokens": 164, "total_tokens": 976, "cost": 0.000913}


def run(project: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SENTINEL_KEY not in text


def store_bytes(project: Path) -> bytes:
    folder = state_dir(project)
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_every_command_of_the_parser_has_one_handler() -> None:
    import argparse

    from oh_lsp.cli.commands import COMMANDS
    from oh_lsp.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) - {"serve"} == set(COMMANDS), "serve starts the language server; the rest dispatch"


def test_three_processes_complete_a_task_end_to_end(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    env = cli_env(project, model_server.base_url)
    a = run(
        project,
        env,
        "submit-task",
        "--task-type",
        "unit_test",
        "--target-file",
        "pkg/calc.py",
        "--priority",
        "high",
        "--description",
        "Generate tests for calc.py",
        "--json",
    )
    assert a.returncode == 0, a.stderr
    task_id = json.loads(a.stdout)["submitted"][0]["task_id"]

    b = run(project, env, "run-engine", "--workers", "5", "--until-idle")
    assert b.returncode == 0, b.stdout + b.stderr
    assert f"{task_id}  unit_test pkg/calc.py: completed: tests/pkg/test_calc.py (written)" in b.stdout

    c = run(project, env, "get-status", "--task-id", task_id, "--json")
    assert c.returncode == 0, c.stderr
    status = json.loads(c.stdout)
    assert status["status"] == "completed" and status["delivery"] == "applied"
    test_file = project / "tests" / "pkg" / "test_calc.py"
    assert test_file.read_text() == GOOD_TESTS
    pytest_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pytest_run.returncode == 0, pytest_run.stdout
    assert "3 passed" in pytest_run.stdout

    human = run(project, env, "get-status", "--task-id", task_id)
    assert "status:   completed" in human.stdout and "tests/pkg/test_calc.py" in human.stdout
    # coverage and mutation score, before -> after, in the JSON and in the summary
    result = status["result"]
    assert (result["coverage"]["after"], result["mutation"]["before"], result["mutation"]["after"]) == (
        100.0,
        0.0,
        round(5 / 7, 4),
    )
    assert f"coverage: {result['coverage']['before']:.0f}% → 100%" in human.stdout
    assert "mutation: 0.00 → 0.71 (5 of 7 mutants noticed)" in human.stdout
    assert "tests:    3 kept of 3 generated" in human.stdout

    m = run(project, env, "metrics", "--json")
    summary = json.loads(m.stdout)
    assert summary["system"]["total_tokens"] == USAGE["total_tokens"]
    assert summary["system"]["total_cost"] == pytest.approx(USAGE["cost"])
    assert summary["models"]["test-model"]["successful"] == 1
    assert summary["models"]["test-model"]["tokens_estimated"] is False  # the server reported its usage
    quality = summary["model_state"]["test-model"]  # the share of the model's tests that were kept
    assert (quality["tests_generated"], quality["tests_kept"], quality["kept_share"]) == (3, 3, 1.0)

    stats = json.loads(run(project, env, "queue-stats", "--json").stdout)
    assert stats["completed"] == 1 and stats["pending"] == 0 and stats["running"] == 0

    # the key went to the model server only, and nowhere else
    assert model_server.requests[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert_no_secret(a.stdout, a.stderr, b.stdout, b.stderr, c.stdout, c.stderr, m.stdout, human.stdout)
    assert SENTINEL_KEY.encode() not in store_bytes(project)
    assert (state_dir(project) / "oh-lsp.log").exists()


def test_failing_answer_ends_failed_and_leaves_no_file(project: Path, model_server) -> None:
    model_server.default = Reply.text(fenced(FAILING_TESTS))  # every repair iteration fails the same way
    env = cli_env(project, model_server.base_url)
    a = run(project, env, "submit-task", "--task-type", "unit_test", "--target-file", "pkg/calc.py", "--json")
    task_id = json.loads(a.stdout)["submitted"][0]["task_id"]
    b = run(project, env, "run-engine", "--until-idle")
    assert b.returncode == 1, "run-engine reports that a task failed"
    status = json.loads(run(project, env, "get-status", "--task-id", task_id, "--json").stdout)
    assert status["status"] == "failed"
    assert "test_add_is_wrong" in status["error"]
    assert any(e["test"] == "test_add_is_wrong" for e in status["result"]["validation"]["errors"])
    assert not (project / "tests").exists()
    human = run(project, env, "get-status", "--task-id", task_id).stdout
    assert "test-failed" in human and "test_add_is_wrong" in human


def test_kill_9_during_a_task_loses_nothing_and_completes_once(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), latency=60))  # the first attempt hangs
    model_server.default = Reply.text(fenced(GOOD_TESTS), usage=USAGE)
    env = cli_env(project, model_server.base_url, OH_LSP_LEASE_SECONDS="2", OH_LSP_HEARTBEAT_SECONDS="0.5")
    a = run(project, env, "submit-task", "--task-type", "unit_test", "--target-file", "pkg/calc.py", "--json")
    task_id = json.loads(a.stdout)["submitted"][0]["task_id"]
    engine = engine_in_background(project, env, model_server, answered=False)
    running = json.loads(run(project, env, "get-status", "--task-id", task_id, "--json").stdout)
    assert running["status"] == "running"
    os.kill(engine.pid, signal.SIGKILL)
    engine.communicate(timeout=10)

    again = run(project, env, "run-engine", "--until-idle")  # a new engine reclaims it once the lease expires
    assert again.returncode == 0, again.stdout + again.stderr
    status = json.loads(run(project, env, "get-status", "--task-id", task_id, "--json").stdout)
    assert status["status"] == "completed" and status["attempts"] == 2, (again.stdout, again.stderr)
    assert (project / "tests/pkg/test_calc.py").read_text() == GOOD_TESTS
    with sqlite3.connect(state_dir(project) / "oh-lsp.sqlite3") as db:
        rows = db.execute("SELECT success FROM metrics WHERE task_id = ?", (task_id,)).fetchall()
        statuses = db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall()
    assert rows == [(1,)], "the task ran to completion exactly once"
    assert statuses == [("completed", 1)], "no task lost and none left running"
    assert len(model_server.requests) == 2


def test_usage_errors_exit_2_with_a_message(project: Path, model_server) -> None:
    env = cli_env(project, model_server.base_url)
    no_target = run(project, env, "submit-task", "--task-type", "unit_test")
    assert no_target.returncode == 2 and "needs a target" in no_target.stderr
    missing = run(project, env, "submit-task", "--task-type", "unit_test", "--target-file", "nope.py")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    outside = run(project, env, "submit-task", "--task-type", "unit_test", "--target-file", "../x.py")
    assert outside.returncode == 2 and "outside the project root" in outside.stderr
    (project.parent / "secret.py").write_text("KEY = 1\n")
    (project / "pkg" / "link.py").symlink_to(project.parent / "secret.py")
    via_link = run(project, env, "submit-task", "--task-type", "unit_test", "--target-file", "pkg/link.py")
    assert via_link.returncode == 2 and "outside the project root" in via_link.stderr
    absolute = run(project, env, "submit-task", "--task-type", "unit_test", str(project.parent / "secret.py"))
    assert absolute.returncode == 2 and "outside the project root" in absolute.stderr
    not_python = run(project, env, "submit-task", "--task-type", "unit_test", "--target-file", "pyproject.toml")
    assert not_python.returncode == 2 and "not a Python file" in not_python.stderr
    bad_priority = run(project, env, "submit-task", "--task-type", "unit_test", "--priority", "urgent", "pkg/calc.py")
    assert bad_priority.returncode == 2
    bad_env = run(
        project, {**env, "OPENHANDS_TIMEOUT": "soon"}, "submit-task", "--task-type", "unit_test", "pkg/calc.py"
    )
    assert bad_env.returncode == 2 and "OPENHANDS_TIMEOUT" in bad_env.stderr
    unknown = run(project, env, "get-status", "--task-id", "does-not-exist")
    assert unknown.returncode == 2 and "no task does-not-exist" in unknown.stderr


def test_full_queue_is_reported_and_nothing_is_dropped(project: Path, model_server) -> None:
    (project / "pkg" / "other.py").write_text("def f():\n    return 1\n")
    env = cli_env(project, model_server.base_url, OH_LSP_QUEUE_MAX_SIZE="1")
    first = run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py")
    assert first.returncode == 0
    second = run(project, env, "submit-task", "--task-type", "unit_test", "pkg/other.py")
    assert second.returncode == 1 and "the queue is full" in second.stderr
    stats = json.loads(run(project, env, "queue-stats", "--json").stdout)
    assert stats["pending"] == 1


def test_submit_takes_files_as_arguments_and_staged_files(project: Path, model_server) -> None:
    (project / "pkg" / "other.py").write_text("def f():\n    return 1\n")
    env = cli_env(project, model_server.base_url)
    several = run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "pkg/other.py", "--json")
    assert [s["target_file"] for s in json.loads(several.stdout)["submitted"]] == ["pkg/calc.py", "pkg/other.py"]

    git = {
        **env,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q"], cwd=project, check=True, env=git)
    nothing = run(project, env, "submit-task", "--task-type", "unit_test", "--description", "staged")
    assert nothing.returncode == 0 and "no staged Python files" in nothing.stdout
    (project / "pkg" / "test_skip_me.py").write_text("")
    subprocess.run(["git", "add", "pkg/other.py", "pkg/test_skip_me.py"], cwd=project, check=True, env=git)
    staged = run(project, env, "submit-task", "--task-type", "unit_test", "--description", "staged", "--json")
    assert [s["target_file"] for s in json.loads(staged.stdout)["submitted"]] == ["pkg/other.py"]


def test_cancel_task_command(project: Path, model_server) -> None:
    env = cli_env(project, model_server.base_url)
    task_id = json.loads(run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "--json").stdout)[
        "submitted"
    ][0]["task_id"]
    out = run(project, env, "cancel-task", "--task-id", task_id)
    assert out.returncode == 0 and "cancelled" in out.stdout
    status = json.loads(run(project, env, "get-status", "--task-id", task_id, "--json").stdout)
    assert status["status"] == "cancelled"
    again = run(project, env, "cancel-task", "--task-id", task_id)
    assert again.returncode == 1 and "already cancelled" in again.stdout


def test_generate_tests_runs_and_waits(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url)
    out = run(project, env, "generate-tests", "pkg/calc.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "status:   completed" in out.stdout and "tests/pkg/test_calc.py  (written)" in out.stdout
    assert (project / "tests/pkg/test_calc.py").exists()


def test_mutation_off_leaves_the_score_to_coverage(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url, OH_LSP_MUTATION="off")
    out = run(project, env, "generate-tests", "pkg/calc.py", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["mutation"] is None and result["score"] == 1.0 == result["coverage"]["after"] / 100
    assert not any(f["code"] == "surviving-mutant" for f in result["validation"]["warnings"])


def test_python_dash_m_and_console_script_agree(project: Path) -> None:
    """`python -m oh_lsp` and the `oh-lsp` console script are one program: the same output and the same exit code, for
    the parser's own exits and for a command's return value."""
    env = cli_env(project, "http://127.0.0.1:9/v1")  # nothing here calls the model
    script = Path(sys.executable).with_name("oh-lsp")
    runs = {"help": ["--help"], "usage error": ["no-such-command"], "missing task": ["get-status", "--task-id", "nope"]}
    outputs = {}
    for name, args in runs.items():
        module = run(project, env, *args)
        console = subprocess.run(
            [str(script), *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
        )
        outputs[name] = (module.returncode, module.stdout, module.stderr)
        assert (console.returncode, console.stdout, console.stderr) == outputs[name], name
    # what they agree on is the real thing, not two identical failures
    assert outputs["help"][0] == 0 and "submit-task" in outputs["help"][1]
    assert outputs["usage error"][0] == 2 and "invalid choice: 'no-such-command'" in outputs["usage error"][2]
    assert outputs["missing task"][0] == 2 and "no task nope in the store" in outputs["missing task"][2]


def test_run_engine_on_a_terminal_shows_live_progress(project: Path, model_server) -> None:
    """Progress on stderr, a terminal here: rich redraws each task's row in place; stdout, piped, has the result."""
    from tests.terminal import run_on_a_terminal

    model_server.script(Reply.text(fenced(GOOD_TESTS), chunk_delay=0.01))
    env = cli_env(project, model_server.base_url, TERM="xterm-256color", COLUMNS="100")
    task_id = json.loads(run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "--json").stdout)[
        "submitted"
    ][0]["task_id"]
    code, screen, stdout = run_on_a_terminal([*OH_LSP, "run-engine", "--until-idle"], project, env)
    assert code == 0, screen
    assert "\x1b[2K" in screen, "the task's row is redrawn in place"
    assert "unit_test pkg/calc.py" in screen and "✓" in screen and "done: 3 tests kept" in screen
    assert stdout.startswith(f"{task_id}  unit_test pkg/calc.py: completed: tests/pkg/test_calc.py (written)")
    assert "\x1b[" not in stdout


def test_the_short_ids_run_engine_prints_find_their_task(project: Path, model_server) -> None:
    """`run-engine` prints each task's first 8 characters; `get-status` and `cancel-task` take them (any unique start
    of at least 8 characters), and a start that several ids share is refused, naming them."""
    import asyncio

    from oh_lsp import QueuedTask, TaskQueue

    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url)
    run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py")
    ran = run(project, env, "run-engine", "--until-idle")
    printed = {line.split()[0] for line in ran.stderr.splitlines() if " done: " in line}  # the progress lines
    assert len(printed) == 1 and len(next(iter(printed))) == 8, ran.stdout + ran.stderr
    short = printed.pop()
    status = run(project, env, "get-status", "--task-id", short, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["task_id"].startswith(short) and json.loads(status.stdout)["status"] == "completed"

    async def twins() -> None:
        queue = TaskQueue(project_root=project)
        for suffix in ("1", "2"):
            await queue.submit(QueuedTask(task_type="unit_test", description=suffix, task_id=f"abcdef12{suffix * 24}"))
        queue.close()

    asyncio.run(twins())
    ambiguous = run(project, env, "get-status", "--task-id", "abcdef12")
    assert (
        ambiguous.returncode == 2
        and "several task ids" in ambiguous.stderr
        and "abcdef12" + "1" * 24 in ambiguous.stderr
    )
    cancelled = run(project, env, "cancel-task", "--task-id", "abcdef122", "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["task_id"] == "abcdef12" + "2" * 24
    short_one = run(project, env, "get-status", "--task-id", "abcdef1")
    assert short_one.returncode == 2 and "at least its first 8 characters" in short_one.stderr


def test_workers_are_bounded_as_in_the_editor(project: Path) -> None:
    """`--workers 100000` used to run for minutes, take 527 MB and end in a BlockingIOError traceback: now it is
    refused at once by the rule of the editors' `workers` setting (config.WORKERS), and so is the engine's own."""
    from oh_lsp import ExecutionEngine, OpenHandsConfig
    from oh_lsp.config import WORKERS
    from oh_lsp.errors import ConfigError

    env = cli_env(project, "http://127.0.0.1:9/v1")
    started = time.monotonic()
    huge = run(project, env, "run-engine", "--workers", "100000", "--until-idle", timeout=60)
    assert huge.returncode == 2 and "--workers: it must be a whole number from 1 to 64" in huge.stderr
    assert "Traceback" not in huge.stderr and time.monotonic() - started < 30
    assert run(project, env, "run-engine", "--workers", "0").returncode == 2
    ok = run(project, env, "run-engine", "--workers", str(WORKERS.metadata[-1].le), "--until-idle", "--json")
    assert ok.returncode == 0, ok.stderr
    with pytest.raises(ConfigError, match="max_concurrent_tasks must be a whole number from 1 to 64"):
        ExecutionEngine(OpenHandsConfig(), 65, project_root=project)


def test_every_model_cooling_down_for_an_hour_is_said_at_once(project: Path, model_server) -> None:
    """Every model answers 429 with `Retry-After: 3600`: `generate-tests` used to wait an hour in silence and
    `run-engine --until-idle` to exit 0 saying nothing while the task was still pending. Now both stop at once, name
    each model and when it is free again, exit 3 (not 0, not 1), and the task stays queued."""
    model_server.default = Reply.http_error(429, "rate limited", headers={"Retry-After": "3600"})
    env = cli_env(project, model_server.base_url)
    started = time.monotonic()
    first = run(project, env, "generate-tests", "pkg/calc.py", timeout=120)
    assert first.returncode == 3, first.stdout + first.stderr
    assert time.monotonic() - started < 60, "it did not wait for the reset"
    assert "nothing can run now: every model is cooling down" in first.stderr
    assert "test-model: free again at" in first.stderr and "(in 60 min)" in first.stderr, first.stderr
    assert "waiting: " in first.stderr and "unit_test pkg/calc.py  until" in first.stderr
    stats = json.loads(run(project, env, "queue-stats", "--json").stdout)
    assert stats["pending"] == 1 and stats["failed"] == 0, "the task stays queued for a later run-engine"

    again = run(project, env, "run-engine", "--until-idle", "--json", timeout=120)
    assert again.returncode == 3, again.stdout + again.stderr
    waiting = json.loads(again.stdout)["waiting"]  # stdout: the result alone, one JSON document
    assert waiting["models"][0]["model"] == "test-model"
    assert waiting["tasks"][0]["runs_at"] > time.time() + 3000 and "rate-limit reset" in waiting["tasks"][0]["note"]
    assert "Run `oh-lsp run-engine` again after" in again.stderr
    assert len(model_server.requests) == 1, "the cooling model was not called again"
    text = run(project, env, "run-engine", "--until-idle", timeout=120)
    assert text.returncode == 3 and "test-model: free again at" in text.stderr


def test_kill_9_during_validation_ends_the_task_once_through_its_lease(project: Path, model_server) -> None:
    """What a run that kills oh-lsp's own process leaves (the attacker's `os.kill(os.getppid(), 9)` before the
    sandbox): the engine dies while the generated tests run. The sandboxed run dies with it, and the lease machinery
    ends the task: a second engine takes it once the lease runs out and completes it, exactly once."""
    model_server.script(Reply.text(fenced(SLOW_TESTS)))
    model_server.default = Reply.text(fenced(GOOD_TESTS))
    env = cli_env(  # a lease long enough that a loaded machine never loses it, short enough to wait out here
        project, model_server.base_url, OH_LSP_LEASE_SECONDS="6", OH_LSP_HEARTBEAT_SECONDS="0.5", OH_LSP_MUTATION="off"
    )
    task_id = json.loads(run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "--json").stdout)[
        "submitted"
    ][0]["task_id"]
    engine = engine_in_background(project, env, model_server)
    time.sleep(1.0)  # the answer is in: its tests are running (test_add takes 1.5 s a run)
    sandboxes = list((project / "openhands_workspace" / "sandboxes").glob(f"{engine.pid}-*"))
    assert sandboxes, "the engine was validating"
    os.kill(engine.pid, signal.SIGKILL)
    engine.communicate(timeout=10)
    time.sleep(1.0)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(sandboxes[0]) not in ps, "a process of the killed engine's sandbox outlived it"
    assert json.loads(run(project, env, "get-status", "--task-id", task_id, "--json").stdout)["status"] == "running"

    again = run(project, env, "run-engine", "--until-idle")
    assert again.returncode == 0, again.stdout + again.stderr
    status = json.loads(run(project, env, "get-status", "--task-id", task_id, "--json").stdout)
    assert status["status"] == "completed" and status["attempts"] == 2, (status["error"], status["result"])
    with sqlite3.connect(state_dir(project) / "oh-lsp.sqlite3") as db:
        rows = db.execute("SELECT success FROM metrics WHERE task_id = ?", (task_id,)).fetchall()
        statuses = db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall()
    assert rows == [(1,)] and statuses == [("completed", 1)], "ended once, none left running"
    assert not sandboxes[0].exists(), "the next engine removed the killed one's sandbox copy"
