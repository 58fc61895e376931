"""documentation and refactoring on scripted answers: accepted, rejected, warned, with edits that keep the file."""

from __future__ import annotations

from pathlib import Path

from oh_lsp import TaskStatus
from oh_lsp.testing.model_server import Reply
from tests.conftest import CALC, GOOD_TESTS, codes, fenced, run_task

SHAPES = '''\
"""Shapes."""
import math  # needed for pi


class Circle:
    def __init__(self, r):
        self.r = r  # the radius

    def area(self):
        return math.pi * self.r ** 2


def scale(shape, factor=2):
    return shape  # unchanged on purpose
'''

DOCUMENTED = '''\
"""Shapes."""
import math  # needed for pi


class Circle:
    """A circle.

    Args:
        r: The radius.
    """

    def __init__(self, r):
        self.r = r  # the radius

    def area(self):
        """The area of the circle.

        Returns:
            pi times the radius squared.
        """
        return math.pi * self.r ** 2


def scale(shape, factor=2):
    """Scale a shape.

    Args:
        shape: The shape to scale.
        factor: How much bigger it gets.
    """
    return shape
'''


def shapes(project: Path) -> None:
    (project / "pkg" / "shapes.py").write_text(SHAPES)


async def test_docstrings_only_are_accepted_and_coverage_rises(project: Path, model_server) -> None:
    shapes(project)
    model_server.script(Reply.text(fenced(DOCUMENTED)))
    task = await run_task(project, model_server, "documentation", "pkg/shapes.py", apply_edits=True)
    assert task.status is TaskStatus.COMPLETED, task.error
    text = (project / "pkg" / "shapes.py").read_text()
    assert '    """A circle.\n\n    Args:\n        r: The radius.\n    """\n' in text
    assert '        """The area of the circle.' in text
    assert "# needed for pi" in text and "# the radius" in text and "# unchanged on purpose" in text
    coverage = task.result["validation"]["details"]["docstring_coverage"]
    assert coverage == {"before": [1, 4], "after": [4, 4]}
    assert task.result["score"] == 1.0 and task.result["validation"]["warnings"] == []
    assert task.result["edit"]["files"][0]["path"] == "pkg/shapes.py", "an edit of the target, not a new file"


async def test_an_answer_that_changes_code_is_rejected(project: Path, model_server) -> None:
    shapes(project)
    model_server.default = Reply.text(fenced(DOCUMENTED.replace("self.r ** 2", "self.r * self.r")))
    task = await run_task(project, model_server, "documentation", "pkg/shapes.py", apply_edits=True)
    assert task.status is TaskStatus.FAILED and codes(task) == ["behaviour-changed"]
    assert "behaviour changed" in task.error
    assert (project / "pkg" / "shapes.py").read_text() == SHAPES


async def test_a_documented_parameter_that_does_not_exist_is_a_warning(project: Path, model_server) -> None:
    shapes(project)
    wrong = DOCUMENTED.replace(
        "        factor: How much bigger it gets.\n",
        "        factor: How much bigger it gets.\n        ratio: Not a parameter.\n",
    )
    model_server.script(Reply.text(fenced(wrong)))
    task = await run_task(project, model_server, "documentation", "pkg/shapes.py")
    assert task.status is TaskStatus.COMPLETED, task.error
    warning = task.result["validation"]["warnings"][0]
    assert warning["code"] == "unknown-parameter" and "`ratio`" in warning["message"]
    assert task.result["content"].split("\n")[warning["line"] - 1].strip() == "ratio: Not a parameter."


async def test_documenting_one_symbol_touches_only_it(project: Path, model_server) -> None:
    shapes(project)
    model_server.script(Reply.text(fenced(DOCUMENTED)))
    task = await run_task(project, model_server, "documentation", "pkg/shapes.py", metadata={"symbol": "scale"})
    assert task.status is TaskStatus.COMPLETED, task.error
    assert "Scale a shape." in task.result["content"] and "A circle." not in task.result["content"]


CALC_TESTS_EXISTING = GOOD_TESTS

REFACTORED_OK = '''\
"""A small module to test."""


def add(a, b):
    return sum((a, b))


def divide(a, b):
    if not b:
        raise ZeroDivisionError("b must not be zero")
    return a / b
'''

REFACTORED_BROKEN = REFACTORED_OK.replace("return a / b", "return a // b")


def with_tests(project: Path) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_calc.py").write_text(
        CALC_TESTS_EXISTING.replace("divide(6, 3) == 2", "divide(7, 2) == 3.5")
    )


async def test_refactoring_that_breaks_a_test_is_rejected_naming_it(project: Path, model_server) -> None:
    with_tests(project)
    model_server.default = Reply.text(fenced(REFACTORED_BROKEN))
    task = await run_task(project, model_server, "refactoring", description="simplify", apply_edits=True)
    assert task.status is TaskStatus.FAILED
    broken = [e for e in task.result["validation"]["errors"] if e["code"] == "existing-tests-broken"]
    assert [e["test"] for e in broken] == ["test_divide"]
    assert broken[0]["file"] == "tests/test_calc.py"
    assert (project / "pkg" / "calc.py").read_text() == CALC


async def test_good_refactoring_is_accepted_with_its_diff(project: Path, model_server) -> None:
    with_tests(project)
    model_server.script(Reply.text(fenced(REFACTORED_OK)))
    task = await run_task(
        project, model_server, "refactoring", description="use sum()", apply_edits=True, quality_threshold=0.9
    )
    assert task.status is TaskStatus.COMPLETED, task.error
    assert (project / "pkg" / "calc.py").read_text() == REFACTORED_OK
    diff = task.result["diff"]
    assert "-    return a + b\n+    return sum((a, b))\n" in diff and "-    if b == 0:\n+    if not b:\n" in diff
    assert task.result["score"] == 1.0
    edits = task.result["edit"]["files"][0]["edits"]
    assert all(e["end_line"] - e["start_line"] == 1 for e in edits), "only the changed lines are replaced"


async def test_removing_a_public_name_is_rejected(project: Path, model_server) -> None:
    with_tests(project)
    model_server.default = Reply.text(fenced("def add(a, b):\n    return a + b\n"))
    task = await run_task(project, model_server, "refactoring", description="drop divide")
    assert task.status is TaskStatus.FAILED and codes(task) == ["public-name-removed"]
    assert "`divide`" in task.result["validation"]["errors"][0]["message"]


async def test_refactoring_one_symbol_replaces_only_its_lines(project: Path, model_server) -> None:
    with_tests(project)
    model_server.script(Reply.text(fenced("def add(a, b):\n    total = a + b\n    return total\n")))
    task = await run_task(project, model_server, "refactoring", metadata={"symbol": "add"}, description="name it")
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result["content"] == CALC.replace("    return a + b\n", "    total = a + b\n    return total\n")


async def test_unverifiable_refactoring_says_so(project: Path, model_server) -> None:
    model_server.default = Reply.text(fenced(REFACTORED_OK))
    task = await run_task(project, model_server, "refactoring", description="use sum()", quality_threshold=0.7)
    assert task.status is TaskStatus.FAILED
    assert codes(task) == ["below-threshold"]
    assert task.result["validation"]["warnings"][0]["code"] == "not-verified"
    assert "rejected_edit" in task.result  # kept, deliverable on request


async def test_an_answer_that_does_not_parse_is_a_syntax_error_at_its_line_and_column(
    project: Path, model_server
) -> None:
    broken = "def add(a, b):\n    return a +* b\n"  # Python: line 2, offset 15 (1-based) -> column 14
    for kind, what in (("documentation", "the answer"), ("refactoring", "the refactored module")):
        model_server.script(Reply.text(fenced(broken)))
        task = await run_task(project, model_server, kind, description="tidy", apply_edits=True)
        assert task.status is TaskStatus.FAILED, kind
        error = task.result["validation"]["errors"][0]
        assert (error["code"], error["line"], error["col"]) == ("syntax-error", 2, 14), error
        assert error["message"].startswith(f"{what} does not parse: "), error
    assert (project / "pkg" / "calc.py").read_text() == CALC, "nothing was written"
