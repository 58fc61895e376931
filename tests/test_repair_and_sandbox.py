"""The repair loop, the sandbox's defences, and an event loop that keeps serving while generated tests run."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path

import pytest

from oh_lsp import TaskStatus
from oh_lsp.edits import Edit, FileEdit, apply_to_disk
from oh_lsp.errors import TargetError
from oh_lsp.testing.model_server import Reply
from tests.conftest import FAILING_TESTS, GOOD_TESTS, SENTINEL_KEY, fenced, run_task


async def test_repair_sends_the_findings_back_and_the_second_answer_passes(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(FAILING_TESTS)), Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, max_repair_iterations=2, quality_threshold=0.8)
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result["iterations"] == 2
    assert [a["passed"] for a in task.result["attempts"]] == [False, True]
    second = model_server.requests[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": fenced(FAILING_TESTS)}
    feedback = second[-1]["content"]
    assert "test_add_is_wrong" in feedback and "assert 4 == 5" in feedback
    assert len(model_server.requests) == 2, "it stops as soon as the threshold is met"


async def test_repair_lists_earlier_attempts_and_stops_after_n(project: Path, model_server) -> None:
    model_server.default = Reply.text(fenced(FAILING_TESTS))
    task = await run_task(project, model_server, max_repair_iterations=2)
    assert task.status is TaskStatus.FAILED and task.result["iterations"] == 3
    assert len(model_server.requests) == 3
    third = model_server.requests[2].body["messages"][-1]["content"]
    assert "Earlier attempts" in third and "attempt 1: kept 0" in third


async def test_attacks_fail_inside_the_sandbox(project: Path, model_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SENTINEL_KEY)  # as a user would have it: in the engine's environment
    (project / ".env").write_text(f"OPENROUTER_API_KEY={SENTINEL_KEY}\n")
    victim = project / "pyproject.toml"
    outside = project.parent / "escaped.txt"
    attacks = (
        GOOD_TESTS
        + f"""

import os
import pathlib


def test_no_key_in_environment():
    assert not [v for v in os.environ.values() if "SENTINEL" in v]


def test_no_key_in_parent_environ():
    for pid in (os.getppid(), {os.getpid()}, 1):
        try:
            text = open(f"/proc/{{pid}}/environ", errors="replace").read()
        except OSError:
            continue
        assert "SENTINEL" not in text, pid


def test_no_key_in_dotenv():
    for env_file in (pathlib.Path(".env"), pathlib.Path({str(project / ".env")!r})):
        assert not (env_file.exists() and "SENTINEL" in env_file.read_text())


def test_delete_by_absolute_path():
    os.remove({str(victim)!r})


def test_write_outside_the_project():
    try:
        pathlib.Path({str(outside)!r}).write_text("escaped")
    except OSError:
        pass
"""
    )
    model_server.script(Reply.text(fenced(attacks)))
    task = await run_task(project, model_server)
    assert victim.exists(), "the real project was not touched"
    assert not outside.exists(), "nothing was written outside the project"
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result["validation"]["details"]["isolated"] is True
    outcomes = task.result["validation"]["details"]["tests"]
    for name in ("test_no_key_in_environment", "test_no_key_in_parent_environ", "test_no_key_in_dotenv"):
        assert outcomes[name] == "passed", f"{name}: a secret was readable"


async def test_without_a_sandbox_the_verdict_says_not_isolated(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, sandbox="none")
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result["validation"]["details"]["isolated"] is False
    notes = [w for w in task.result["validation"]["warnings"] if w["code"] == "not-isolated"]
    assert notes and "not isolated" in notes[0]["message"]


async def test_untrusted_workspace_runs_nothing_and_says_why(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS + "\n\ndef test_marker():\n    open('/tmp/ran', 'w')\n")))
    task = await run_task(project, model_server, trusted=False)
    assert task.status is TaskStatus.FAILED
    error = task.result["validation"]["errors"][0]
    assert error["code"] == "not-run-untrusted" and "workspace not trusted" in error["message"]


def test_edits_naming_paths_outside_the_project_are_refused(project: Path) -> None:
    for path in ("../evil.py", "/tmp/evil.py", "pkg/../../evil.py"):
        with pytest.raises(TargetError, match="outside the project root"):
            apply_to_disk(project, Edit("x", [FileEdit(path, "boom")]))
    (project / "link").symlink_to(project.parent)
    with pytest.raises(TargetError, match="outside the project root"):
        apply_to_disk(project, Edit("x", [FileEdit("link/evil.py", "boom")]))
    assert not (project.parent / "evil.py").exists()


async def test_event_loop_keeps_serving_while_a_slow_test_runs(project: Path, model_server) -> None:
    slow = GOOD_TESTS + "\n\ndef test_slow():\n    import time\n    time.sleep(5)\n"
    model_server.script(Reply.text(fenced(slow)))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    task = await run_task(project, model_server)
    ticking.cancel()
    assert task.status is TaskStatus.COMPLETED, task.error
    assert time.monotonic() - started >= 5
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25, f"the loop stalled for {max(gaps):.2f}s"
    assert len(ticks) > 5 / 0.05
    assert os.getpid()  # (the engine ran in this process, on this loop)
