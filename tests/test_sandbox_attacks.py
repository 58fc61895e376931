"""The attacker's reproductions (issue 13, items 1-3): generated tests that steal the key, delete the real package,
kill oh-lsp, write the real `.env` and `conftest.py`, and leave processes behind. Under every sandbox layer this
machine has (the built-in namespaces with bubblewrap hidden from PATH, Landlock alone, bubblewrap when installed)
each is contained: the real project untouched, oh-lsp alive, the key nowhere, and the attacking test dropped with a
finding that names what it tried, while the honest tests are kept."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from oh_lsp import TaskStatus
from oh_lsp.sandbox.measure import path_without_bwrap
from oh_lsp.testing.model_server import Reply
from oh_lsp.validation import sandbox
from tests.conftest import CALC, GOOD_TESTS, SENTINEL_KEY, fenced, run_task
from tests.prerequisites import missing

MARK = "313.5"  # the sleep a test leaves behind: found on the host afterwards if it escaped


def attacks(project: Path) -> str:
    real = str(project)
    return (
        GOOD_TESTS
        + f'''

import glob
import os
import shutil
import subprocess


def test_steals_the_key_from_proc():
    found = []
    for path in glob.glob("/proc/*/environ"):
        try:
            found.append(open(path, errors="replace").read())
        except OSError:
            pass
    assert not found, "\\n".join(found)


def test_deletes_the_real_package():
    shutil.rmtree({real + "/pkg"!r})
    assert not os.path.exists({real + "/pkg"!r})  # it passes (in the sandbox's copy): dropped for what it did


def test_kills_oh_lsp():
    os.kill(os.getppid(), 9)


def test_writes_the_real_dotenv_and_conftest():
    try:
        with open({real + "/.env"!r}, "a") as env:
            env.write("OPENHANDS_BASE_URL=http://evil.example/v1\\n")
        with open({real + "/conftest.py"!r}, "w") as conftest:
            conftest.write("import os\\n")
    except OSError:
        pass


def test_leaves_a_process_behind():
    subprocess.Popen(["sleep", "{MARK}"], start_new_session=True)
'''
    )


LEAK = """from pkg.calc import add


def test_leaks():
    assert add(1, 1) == 3, open({env!r}).read()
"""
LAYERS = ["namespaces (bwrap hidden)", "landlock", "bubblewrap"]


@pytest.fixture(params=LAYERS)
def layer(request, monkeypatch, tmp_path) -> str:
    """The sandbox mode to run under; bubblewrap is hidden from PATH (as on a fresh machine) except for its own
    case, which needs it installed (.ci/run installs it)."""
    monkeypatch.setattr(sandbox, "_bwrap_ok", None)  # checked again with this PATH
    if request.param == "bubblewrap":
        if not sandbox.bwrap_available():
            missing("bubblewrap is not installed (apt-get install bubblewrap)")
        return "bwrap"
    monkeypatch.setenv("PATH", path_without_bwrap(os.environ["PATH"], tmp_path / "path"))
    assert not sandbox.bwrap_available()
    if request.param == "landlock":
        if not sandbox.probe_kernel()["landlock"]:
            missing("this kernel has no Landlock")
        return "landlock"
    if sandbox.probe_kernel()["namespaces"] is not None:
        missing(f"user namespaces are not available here: {sandbox.probe_kernel()['namespaces']}")
    return "auto"


def _files(project: Path) -> dict[Path, bytes]:
    """The real project's files (oh-lsp's own scratch folder aside)."""
    scratch = project / "openhands_workspace"
    return {
        p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file() and scratch not in p.parents
    }


def _sleepers() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if f"sleep {MARK}" in line]


async def test_attacking_tests_are_contained_and_dropped(project: Path, model_server, layer: str) -> None:
    (project / ".env").write_text(f"OPENROUTER_API_KEY={SENTINEL_KEY}\n")
    before = _files(project)
    model_server.script(Reply.text(fenced(attacks(project))), Reply.text(fenced(attacks(project))))
    task = await run_task(project, model_server, sandbox=layer, max_repair_iterations=1, quality_threshold=1.0)

    # oh-lsp is alive (this process ran the engine) and the real project is exactly as it was
    assert _files(project) == before
    assert not _sleepers(), "a process of the generated tests outlived the run"
    # the honest tests are kept, every attacking one is dropped with a finding naming what it tried and its line
    # (the task itself ends below the 1.0 threshold that made the repair prompt be sent: the status is not the point)
    validation = task.result["validation"]
    findings = [f for f in [*validation["errors"], *validation["warnings"]] if f["code"] == "unsafe-behaviour"]
    assert {f["test"] for f in findings} == {
        "test_steals_the_key_from_proc",
        "test_deletes_the_real_package",
        "test_kills_oh_lsp",
        "test_writes_the_real_dotenv_and_conftest",
        "test_leaves_a_process_behind",
    }, validation["errors"]
    text = "\n".join(f["message"] for f in findings)
    assert "environment (/proc/" in text and "removes the tree" in text and "sends SIGKILL" in text
    assert ".env" in text and "leaves a process running" in text
    assert f"sleep {MARK}" in text or layer == "landlock"  # Landlock alone hides other processes' command lines
    source = attacks(project).splitlines()
    lines = {(f["test"], f["line"]) for f in findings}
    assert ("test_kills_oh_lsp", source.index("    os.kill(os.getppid(), 9)") + 1) in lines
    assert ("test_deletes_the_real_package", source.index(f"    shutil.rmtree({str(project / 'pkg')!r})") + 1) in lines
    assert sorted(validation["details"]["kept"]) == ["test_add", "test_divide", "test_divide_by_zero"]
    # the repair prompt told the model what its tests tried
    repair = model_server.requests[1].body["messages"][-1]["content"]
    assert "unsafe-behaviour" in repair and "test_kills_oh_lsp was dropped" in repair
    # the key is nowhere: not in the result, not in any request the model server received, not in the store
    assert SENTINEL_KEY not in repr(task.result)
    for request in model_server.requests:
        assert SENTINEL_KEY not in repr(request.body)
    _assert_store_clean()


def _assert_store_clean() -> None:
    state = Path(os.environ["OH_LSP_STATE_DIR"])
    for db in state.rglob("*.sqlite*"):
        assert SENTINEL_KEY.encode() not in db.read_bytes(), db
        if db.suffix == ".sqlite":
            with sqlite3.connect(db) as conn:
                for (name,) in conn.execute("select name from sqlite_master where type='table'"):
                    for row in conn.execute(f"select * from {name}"):
                        assert SENTINEL_KEY not in repr(row), name


async def test_in_none_mode_the_key_a_test_prints_is_redacted_everywhere(project: Path, model_server) -> None:
    """With no sandbox (the user's explicit choice) a test can read the project's real `.env`; what it puts in its
    failure message is redacted before it reaches the result, the store and the repair prompt."""
    (project / ".env").write_text(f"OPENROUTER_API_KEY={SENTINEL_KEY}\n")
    model_server.script(Reply.text(fenced(LEAK.format(env=str(project / ".env")))), Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, sandbox="none", max_repair_iterations=1, quality_threshold=1.0)
    assert task.result["attempts"][0]["errors"], "the leaking test failed"
    repair = model_server.requests[1].body["messages"][-1]["content"]
    assert "OPENROUTER_API_KEY=[redacted]" in repair, "the failure message reached the model, redacted"
    assert SENTINEL_KEY not in repr(task.result)
    for request in model_server.requests:
        assert SENTINEL_KEY not in repr(request.body)
    _assert_store_clean()


async def test_none_mode_warns_before_the_run_that_the_key_is_readable(project: Path, model_server) -> None:
    from oh_lsp import events as ev

    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    seen: list[ev.Event] = []
    task = await run_task(project, model_server, sandbox="none", events=seen)
    assert task.status is TaskStatus.COMPLETED, task.error
    kinds = [(e.kind, e.data.get("message") or e.data.get("step") or "") for e in seen]
    warning = next(i for i, (kind, _) in enumerate(kinds) if kind == ev.WARNING)
    first_run = next(i for i, (kind, text) in enumerate(kinds) if kind == ev.VALIDATING and "checking " in text)
    assert warning < first_run, kinds
    assert "WITHOUT a sandbox" in kinds[warning][1] and "API key" in kinds[warning][1]


async def test_no_sandbox_no_run(project: Path, model_server, monkeypatch) -> None:
    """A machine with neither Landlock nor user namespaces nor bubblewrap (simulated: the kernel probe's answer is
    the edge that cannot be changed here): nothing runs, and the finding says how to get a sandbox."""
    monkeypatch.setattr(sandbox, "_probe", {"landlock": 0, "namespaces": "unshare: Operation not permitted"})
    monkeypatch.setattr(sandbox, "_bwrap_ok", False)
    marker = project / "ran"
    tests = GOOD_TESTS + f"\n\ndef test_marker():\n    open({str(marker)!r}, 'w').close()\n"
    model_server.script(Reply.text(fenced(tests)))
    task = await run_task(project, model_server)
    assert task.status is TaskStatus.FAILED
    error = task.result["validation"]["errors"][0]
    assert error["code"] == "no-sandbox"
    assert "apt-get install bubblewrap" in error["message"] and "OH_LSP_SANDBOX=none" in error["message"]
    assert "Landlock" in error["message"] and "Operation not permitted" in error["message"]
    assert not marker.exists() and not list((project / "openhands_workspace").glob("sandboxes/*"))
    assert (project / "pkg" / "calc.py").read_text() == CALC


def test_the_cli_warns_before_an_unsandboxed_run_and_prints_no_key(project: Path, model_server) -> None:
    """The CLI, as a user runs it: with OH_LSP_SANDBOX=none the engine's warning comes before the first run of the
    generated tests (here in `run-engine --json`'s event lines, on stderr), and what the leaking test printed is redacted in every
    output and in `get-status`."""
    import json
    import subprocess

    from tests.conftest import OH_LSP, cli_env

    (project / ".env").write_text(f"OPENROUTER_API_KEY={SENTINEL_KEY}\n")
    model_server.script(Reply.text(fenced(LEAK.format(env=str(project / ".env")))))
    env = cli_env(project, model_server.base_url, OH_LSP_SANDBOX="none", OH_LSP_MAX_REPAIR_ITERATIONS="0")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)

    submitted = cli("submit-task", "--task-type", "unit_test", "--target-file", "pkg/calc.py", "--json")
    task_id = json.loads(submitted.stdout)["submitted"][0]["task_id"]
    ran = cli("run-engine", "--until-idle", "--json")
    events = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]  # progress: stderr
    kinds = [e["event"] for e in events]
    assert "warning" in kinds, ran.stdout + ran.stderr
    first_run = next(
        i for i, e in enumerate(events) if e["event"] == "validating" and "checking " in str(e.get("step"))
    )
    assert kinds.index("warning") < first_run
    assert "API key" in events[kinds.index("warning")]["message"]
    status = cli("get-status", "--task-id", task_id, "--json")
    assert "OPENROUTER_API_KEY=[redacted]" in status.stdout, status.stdout[-2000:]
    for text in (submitted.stdout, submitted.stderr, ran.stdout, ran.stderr, status.stdout, status.stderr):
        assert SENTINEL_KEY not in text
    _assert_store_clean()
