"""Crash: kill -9 the engine with 100 tasks queued and as many in flight as `--workers` allows (64), during model
streaming and during validation. After a restart every task is completed, none is lost, no result is written twice,
and none is left running."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from oh_lsp.config import WORKERS
from oh_lsp.paths import state_dir
from oh_lsp.testing.model_server import Reply
from tests.conftest import OH_LSP, cli_env, fenced, oh_lsp_process

TASKS = 100
MOST_WORKERS = int(WORKERS.metadata[-1].le)  # the bound of --workers


def many_modules(project: Path) -> list[str]:
    names = []
    for i in range(TASKS):
        (project / "pkg" / f"mod_{i:03d}.py").write_text(f"def value():\n    return {i}\n")
        names.append(f"pkg/mod_{i:03d}.py")
    return names


def generated_tests_for(module: str, slow: float) -> str:
    number = int(module.rsplit("_", 1)[1])
    pause = f"    import time\n    time.sleep({slow})\n" if slow else ""
    return f"from {module} import value\n\n\ndef test_value():\n{pause}    assert value() == {number}\n"


def respond(slow_stream: bool, slow_tests: float):
    def responder(request) -> Reply:
        prompt = "\n".join(m["content"] for m in request.body["messages"])
        module = "pkg." + re.search(r"pkg[./](mod_\d{3})", prompt).group(1)
        return Reply.text(
            fenced(generated_tests_for(module, slow_tests)), chunk_delay=0.5 if slow_stream else 0.0, chunk_size=4
        )

    return responder


def crash_and_recover(project: Path, server, *, phase: str, workers: int) -> None:
    files = many_modules(project)
    env = cli_env(
        project,
        server.base_url,
        OH_LSP_LEASE_SECONDS="2",
        OH_LSP_HEARTBEAT_SECONDS="0.5",
        OH_LSP_MAX_REPAIR_ITERATIONS="0",
        OH_LSP_QUALITY_THRESHOLD="0",
        OH_LSP_MUTATION="off",  # durability is the point here, not the tests' worth: 100 mutation analyses are not
    )
    submitted = subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "--json", *files],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    ids = [s["task_id"] for s in json.loads(submitted.stdout)["submitted"]]
    server.responder = respond(slow_stream=phase == "streaming", slow_tests=2.0 if phase == "validation" else 0)
    engine = oh_lsp_process(project, env, "run-engine", "--workers", str(workers))  # progress: stderr
    deadline = time.monotonic() + 120
    if phase == "streaming":
        while sum(1 for r in server.requests if not r.completed) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        validating = 0
        while validating < 3 and time.monotonic() < deadline:
            line = engine.stderr.readline()
            validating += "checking " in line  # the generated tests run (progress_text.tests_checked)
    os.kill(engine.pid, signal.SIGKILL)
    engine.wait(timeout=30)
    in_flight = sum(1 for r in server.requests if not r.completed) if phase == "streaming" else validating
    assert in_flight >= (30 if phase == "streaming" else 3), f"the kill came while work was in flight ({phase})"

    server.responder = respond(slow_stream=False, slow_tests=0)
    again = subprocess.run(
        [*OH_LSP, "run-engine", "--workers", "4", "--until-idle"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    unfinished = [line for line in again.stdout.splitlines() if ": completed: " not in line]
    assert again.returncode == 0, (again.returncode, unfinished, again.stderr[-3000:])
    with sqlite3.connect(state_dir(project) / "oh-lsp.sqlite3") as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())
        deliveries = dict(db.execute("SELECT delivery, count(*) FROM tasks GROUP BY delivery").fetchall())
        successes = db.execute("SELECT task_id, count(*) FROM metrics WHERE success = 1 GROUP BY task_id").fetchall()
        retried = db.execute("SELECT count(*) FROM tasks WHERE attempts > 1").fetchone()[0]
    assert statuses == {"completed": TASKS}, "none lost, none left running"
    assert deliveries == {"applied": TASKS}
    assert len(successes) == TASKS and all(n == 1 for _, n in successes), "each ran to completion exactly once"
    assert retried >= 3, "the killed attempts were reclaimed and run again"
    assert len(set(ids)) == TASKS
    for i in range(TASKS):
        module = f"pkg.mod_{i:03d}"
        text = (project / "tests" / "pkg" / f"test_mod_{i:03d}.py").read_text()
        assert text in (generated_tests_for(module, 0), generated_tests_for(module, 2.0)), "written once"
    leftovers = list((project / "openhands_workspace" / "sandboxes").glob("*"))
    assert not leftovers, "sandbox copies of the killed engine were cleaned up"


def test_kill_9_during_streaming(project: Path, model_server) -> None:
    crash_and_recover(project, model_server, phase="streaming", workers=MOST_WORKERS)


def test_kill_9_during_validation(project: Path, model_server) -> None:
    crash_and_recover(project, model_server, phase="validation", workers=10)
