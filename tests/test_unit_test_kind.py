"""unit_test verdicts on scripted answers: kept, partly kept, flaky, adds nothing, syntax error, wrong import."""

from __future__ import annotations

import ast
from pathlib import Path

from oh_lsp import TaskStatus
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, codes, fenced, run_task

SEEDS = [1, 2, 3]  # random.random() after seed 1, 2, 3: 0.134, 0.956, 0.238

MIXED = """\
from pkg.calc import add, divide


def test_add():
    assert add(2, 3) == 5


def test_divide_by_zero_returns_zero():
    assert divide(1, 0) == 0
"""

FLAKY = """\
import random

from pkg.calc import add


def test_add():
    assert add(1, 2) == 3


def test_lucky():
    assert random.random() < 0.5
"""

NO_GAIN = """\
from pkg import calc


def test_module_has_add():
    assert callable(calc.add)
"""


async def test_all_good_is_kept_and_coverage_rises(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, quality_threshold=0.7)
    assert task.status is TaskStatus.COMPLETED, task.error
    details = task.result["validation"]["details"]
    assert details["kept"] == ["test_add", "test_divide", "test_divide_by_zero"] and details["dropped"] == []
    assert details["coverage"]["before"] < details["coverage"]["after"] == 100.0
    assert task.result["coverage"]["gained_lines"] > 0 and task.result["coverage"]["gained_branches"] == 2
    # the score: 0.5 x line+branch coverage after + 0.5 x mutation score after. GOOD_TESTS notice 5 of calc's 7
    # mutants: not `b == 0` -> `b == 1` (dividing by 0 raises the same error) nor the error's message changing
    mutation = task.result["mutation"]
    assert (mutation["before"], mutation["after"], mutation["analysed"]) == (0.0, round(5 / 7, 4), 7)
    assert task.result["score"] == round(0.5 * 1.0 + 0.5 * 5 / 7, 4)
    survivors = [w for w in task.result["validation"]["warnings"] if w["code"] == "surviving-mutant"]
    assert sorted(w["line"] for w in survivors) == [9, 10] and all(w["severity"] == "info" for w in survivors)
    assert len(details["seeds"]) == 3 and len(set(details["seeds"])) == 3


async def test_partly_good_drops_the_failing_test_and_flags_a_possible_bug(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(MIXED)))
    task = await run_task(project, model_server, apply_edits=True)
    assert task.status is TaskStatus.COMPLETED, task.error
    delivered = (project / "tests/pkg/test_calc.py").read_text()
    assert "def test_add" in delivered and "test_divide_by_zero_returns_zero" not in delivered
    assert "divide" not in delivered.split("\n")[0], "the import only the dropped test used is gone"
    ast.parse(delivered)
    warnings = task.result["validation"]["warnings"]
    dropped = next(w for w in warnings if w["code"] == "test-failed")
    assert dropped["test"] == "test_divide_by_zero_returns_zero" and dropped["line"] == 8
    bug = next(w for w in warnings if w["code"] == "possible-bug")
    assert bug["file"] == "pkg/calc.py" and bug["line"] == 10  # the `raise` in divide()
    details = task.result["validation"]["details"]
    assert details["kept"] == ["test_add"] and details["dropped"] == ["test_divide_by_zero_returns_zero"]


async def test_flaky_test_is_dropped_as_flaky(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(FLAKY)))
    task = await run_task(project, model_server, test_seeds=SEEDS)
    assert task.status is TaskStatus.COMPLETED, task.error
    flaky = [w for w in task.result["validation"]["warnings"] if w["code"] == "flaky-test"]
    assert [w["test"] for w in flaky] == ["test_lucky"] and "seed 2" in flaky[0]["message"]
    assert "test_lucky" not in task.result["content"]
    assert task.result["validation"]["details"]["seeds"] == SEEDS


async def test_a_test_that_adds_nothing_is_not_delivered(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(NO_GAIN)))
    task = await run_task(project, model_server, apply_edits=True)
    assert task.status is TaskStatus.FAILED
    assert codes(task) == ["adds-nothing"]
    assert "test_module_has_add" in task.result["validation"]["errors"][0]["message"]
    assert not (project / "tests").exists()


async def test_syntax_error_is_reported_at_its_line(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced("from pkg.calc import add\n\n\ndef test_add(:\n    assert add(1, 1) == 2\n")))
    task = await run_task(project, model_server)
    assert task.status is TaskStatus.FAILED
    error = task.result["validation"]["errors"][0]
    assert (error["code"], error["line"]) == ("syntax-error", 4)


async def test_import_of_a_wrong_module_is_rejected(project: Path, model_server) -> None:
    wrong = "from pkg.calculator import add\n\n\ndef test_add():\n    assert add(1, 1)\n"
    model_server.script(
        Reply.text(fenced(wrong)),
        Reply.text(
            fenced(
                "from pkg.calc import add\nfrom pkg.helpers import twice\n\n\n"
                "def test_add():\n    assert add(1, 1) == twice(1)\n"
            )
        ),
    )
    first = await run_task(project, model_server)
    assert first.status is TaskStatus.FAILED and codes(first) == ["target-not-imported"]
    second = await run_task(project, model_server, description="again")
    assert second.status is TaskStatus.FAILED and codes(second) == ["import-error"]
    assert "pkg.helpers" in second.result["validation"]["errors"][0]["message"]


async def test_tests_are_added_to_an_existing_module_through_the_ast(project: Path, model_server) -> None:
    existing = "# my tests\nfrom pkg.calc import add\n\n\ndef test_add():\n    assert add(0, 0) == 0  # mine\n"
    (project / "tests" / "pkg").mkdir(parents=True)
    (project / "tests" / "__init__.py").write_text("")
    (project / "tests" / "pkg" / "__init__.py").write_text("")
    (project / "tests" / "pkg" / "test_calc.py").write_text(existing)
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, apply_edits=True)
    assert task.status is TaskStatus.COMPLETED, task.error
    text = (project / "tests/pkg/test_calc.py").read_text()
    assert text.startswith("# my tests\nfrom pkg.calc import add\n") and "# mine" in text
    assert [n.name for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)] == [
        "test_add",
        "test_add_2",
        "test_divide",
        "test_divide_by_zero",
    ]
    assert task.result["validation"]["details"]["coverage"]["before"] > 33.0  # the existing test is the baseline
