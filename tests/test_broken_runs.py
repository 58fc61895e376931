"""A pytest run that breaks (the test process dies, by a crash or a signal) is a fact about that run, not a verdict
on the tests it did not report: a test counts as passed only once pytest reported it passed, and a later seed's run
that broke is made again before anything is called flaky."""

from __future__ import annotations

from pathlib import Path

from oh_lsp import TaskStatus
from oh_lsp.testing.model_server import Reply
from tests.conftest import fenced, run_task

CRASHING = """\
import faulthandler

import pytest

from pkg.calc import add, divide


def test_add():
    assert add(2, 3) == 5
    assert divide(6, 3) == 2


def test_crashes_the_interpreter():
    faulthandler._sigsegv()
    assert add(1, 1) == 2


def test_divide_by_zero():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)
"""

# The run with seed 2 (run 2, beside run 3) dies of a segmentation fault the first time; every other run passes.
# The runs of one check share the sandbox's home folder, where the first crash is remembered.
CRASHES_ONE_LATER_RUN = """\
import faulthandler
import os

from pkg.calc import add, divide


def test_add():
    if os.environ.get("PYTHONHASHSEED") == "2":
        try:
            os.close(os.open(os.path.expanduser("~/crashed-once"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            faulthandler._sigsegv()
    assert add(2, 3) == 5
    assert divide(6, 3) == 2
"""


async def test_a_test_that_crashes_the_test_process_is_not_counted_as_passed(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(CRASHING)))
    task = await run_task(project, model_server, apply_edits=True)
    assert task.status is TaskStatus.COMPLETED, task.error
    details = task.result["validation"]["details"]
    # the test after the one that took the process down was run again, and kept
    assert details["kept"] == ["test_add", "test_divide_by_zero"], details
    assert details["dropped"] == ["test_crashes_the_interpreter"]
    dropped = next(w for w in task.result["validation"]["warnings"] if w["test"] == "test_crashes_the_interpreter")
    assert dropped["code"] == "test-error" and "killed by SIGSEGV" in dropped["message"], dropped
    delivered = (project / "tests/pkg/test_calc.py").read_text()
    assert "def test_divide_by_zero" in delivered and "test_crashes_the_interpreter" not in delivered
    assert task.result["coverage"]["gained_branches"] == 2, "the kept tests' coverage was measured without the crash"


async def test_a_later_run_that_broke_is_made_again_rather_than_calling_the_test_flaky(
    project: Path, model_server, caplog, tmp_path: Path
) -> None:
    model_server.script(Reply.text(fenced(CRASHES_ONE_LATER_RUN)))
    # the sandboxes (and their home folder) outside the project: a test writes in its home, not in the project
    scratch = tmp_path / "workspace"
    task = await run_task(project, model_server, apply_edits=True, test_seeds=[1, 2, 3], workspace_path=scratch)
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result["validation"]["details"]["kept"] == ["test_add"]
    assert not [w for w in task.result["validation"]["warnings"] if w["code"] == "flaky-test"]
    assert "def test_add" in (project / "tests/pkg/test_calc.py").read_text()
    said = [r.getMessage() for r in caplog.records if "broke" in r.getMessage()]
    assert len(said) == 1 and "SIGSEGV" in said[0], said


async def test_resuming_stops_when_a_run_gets_no_further() -> None:
    """A resumed run that breaks again before any test starts ends the resuming (it would never end otherwise); its
    tests stay errors that say they did not run."""
    from oh_lsp.validation.pytest_runner import CaseResult, PytestRun, run_the_rest

    def broken(nodeids: list[str], crashed: str | None) -> PytestRun:
        run = PytestRun(exit_code=139, collected=len(nodeids))
        for nodeid in nodeids:
            run.tests[nodeid] = CaseResult(nodeid, nodeid, outcome="error", message="it did not run")
        run.tests[nodeids[0]].outcome = "passed"
        run.never_started = [n for n in nodeids if n not in (nodeids[0], crashed)]
        return run

    asked: list[list[str]] = []

    async def again(nodeids: list[str]) -> PytestRun:
        asked.append(nodeids)
        assert len(asked) < 5, "resumed again and again with no progress"
        run = PytestRun(exit_code=139, collected=len(nodeids))
        run.tests = {n: CaseResult(n, n, outcome="error", message="it did not run") for n in nodeids}
        run.never_started = list(nodeids)  # broke before its first test, every time
        return run

    first = broken(["t::a", "t::b", "t::c", "t::d"], crashed="t::b")
    done = await run_the_rest(first, again)
    assert asked == [["t::c", "t::d"]], "one more try, then no further"
    assert done.resumed and done.broken and done.never_started == ["t::c", "t::d"]
    assert [done.tests[n].outcome for n in ("t::a", "t::c", "t::d")] == ["passed", "error", "error"]
