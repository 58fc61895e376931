"""Mutation analysis: the AST mutator (pure), and all mutants run in one real pytest process in the sandbox, switched
by code object, each with only the tests that cover its line, under a hard time cap."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

from oh_lsp.kinds.unit_test_gaps import Left, mutants_in_words
from oh_lsp.validation.baseline import measure_baseline
from oh_lsp.validation.gap_findings import survivor_findings
from oh_lsp.validation.mutants import Mutant, mutants_of
from oh_lsp.validation.mutation import CRASHED, GRACE_SECONDS, MutantResult, analyse_mutants
from oh_lsp.validation.sandbox import Sandbox

SAMPLE = '''\
def price(total, rate, items):
    """Docstring: never mutated."""
    assert total >= 0, "never mutated either"
    label: str = "x"  # the annotation is not mutated; the string is
    if total >= 100 and not items:
        total -= 5
    log(f"total {total + 1}")  # an f-string is left alone; the call may go
    return total * rate


def keep(x):
    return x + 1  # pragma: no mutate


VALUE = 1 + 2  # module level: not switchable, not mutated
'''


def by_description(mutants: list[Mutant]) -> dict[str, Mutant]:
    return {f"{m.line}: {m.description}": m for m in mutants}


def test_operators_and_what_is_left_alone() -> None:
    found = by_description(mutants_of(SAMPLE))
    assert set(found) == {
        "4: `'x'` becomes `'XXxXX'`",
        "5: `>=` becomes `>`",
        "5: `>=` becomes `<`",
        "5: `100` becomes `101`",
        "5: `and` becomes `or`",
        "5: `not` is removed",
        "6: `-=` becomes `+=`",
        "6: `5` becomes `6`",
        '7: the call `log(f"total {total + 1}")` is removed',
        "8: returns `None` instead of `total * rate`",
        "8: `*` becomes `/`",
    }
    boundary = found["5: `>=` becomes `>`"]
    assert (boundary.line, boundary.col, boundary.end_col) == (5, 13, 15)  # the operator itself
    assert boundary.operator == "boundary" and boundary.function == "price" and boundary.path == (("price", 1),)
    assert boundary.id == "5:13:gte-gt"
    assert found["5: `>=` becomes `<`"].operator == "comparison"


def test_every_mutant_parses_keeps_lines_and_changes_the_code() -> None:
    source = Path(__file__).parents[1].joinpath("oh_lsp/validation/mutants.py").read_text()
    original = ast.dump(ast.parse(source))
    mutants = mutants_of(source)
    assert len(mutants) > 100
    assert len({m.id for m in mutants}) == len(mutants)
    for mutant in mutants:
        text = mutant.apply(source)
        assert ast.dump(ast.parse(text)) != original, mutant
        assert text.count("\n") == source.count("\n"), mutant
    assert mutants_of(source) == mutants  # stable ids for the same text
    assert Mutant.from_dict(mutants[0].to_dict()) == mutants[0]


def test_columns_are_characters_and_multi_line_expressions_keep_their_lines() -> None:
    source = 'def f(a, b):\n    s = "é✓" + a\n    return (a +\n            b)\n'
    found = by_description(mutants_of(source))
    plus = found["2: `+` becomes `-`"]
    assert source[plus.start : plus.end] == "+" and plus.col == 13
    multi = found["3: returns `None` instead of `a + b`"]
    text = multi.apply(source)
    assert text.count("\n") == source.count("\n") and "return ((None\n))" in text
    assert source[found["3: `+` becomes `-`"].start] == "+"
    compile(text, "f.py", "exec")


def test_methods_that_use_super_keep_their_free_variables() -> None:
    source = "class A(B):\n    def f(self):\n        super().f()\n        return super().g() + 1\n"
    mutants = mutants_of(source)
    assert [m.description for m in mutants] == ["`+` becomes `-`", "`1` becomes `2`"]
    assert mutants[0].path == (("A", 1), ("f", 2)) and mutants[0].function == "A.f"


SHAPES = """\
import functools
import os


def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def count_up(n):
    i = 0
    while i < n:
        i += 1
    return i


def guard(x):
    if x > 100:
        os._exit(3)
    return x


@functools.lru_cache(maxsize=None)
def square(x):
    return x * x


class Box:
    def __init__(self, width):
        self.width = width

    @property
    def double(self):
        return self.width * 2

    @staticmethod
    def unit():
        return 1

    @classmethod
    def make(cls, width):
        return cls(width + 0)


class Child(Box):
    def __init__(self, width):
        super().__init__(width)
        self.kind = "child"
"""

SHAPES_TESTS = """\
from pkg.shapes import Box, Child, clamp, count_up, guard, square


def test_clamp_low():
    assert clamp(-5, 0, 10) == 0


def test_clamp_mid():
    assert clamp(5, 0, 10) == 5


def test_count_up():
    assert count_up(3) == 3


def test_guard():
    assert guard(5) == 5


def test_square():
    assert square(3) == 9


def test_box():
    assert Box(2).double == 4
    assert Box.unit() == 1
    assert Box.make(3).width == 3


def test_child():
    assert Child(2).kind == "child"
"""


def shapes_project(project: Path) -> Path:
    (project / "pkg" / "shapes.py").write_text(SHAPES)
    (project / "tests").mkdir()
    (project / "tests" / "test_shapes.py").write_text(SHAPES_TESTS)
    return project


async def analyse(project: Path, seconds: float):
    python = Path(os.environ["OH_LSP_PYTHON"])
    async with Sandbox(project, project / "scratch", secrets=[]) as box:
        baseline = await measure_baseline(
            box, python, "pkg/shapes.py", "pkg.shapes", timeout=60, test_files=["tests/test_shapes.py"]
        )
        started = time.monotonic()
        report = await analyse_mutants(
            box, python, "pkg/shapes.py", "pkg.shapes", SHAPES, baseline.coverage, baseline.passing, seconds=seconds
        )
        return baseline, report, time.monotonic() - started


def result_for(report, function: str, description: str):
    return next(r for r in report.results if r.mutant.function == function and r.mutant.description == description)


async def test_all_mutants_in_one_process_with_only_covering_tests(project: Path) -> None:
    baseline, report, _ = await analyse(shapes_project(project), seconds=60)
    assert len(baseline.passing) == 7
    status = {(r.mutant.function, r.mutant.description): r for r in report.results}
    # the boundary nobody pins survives; the untested `return high` is not covered; both are reports, not failures
    assert status[("clamp", "`<` becomes `<=`")].status == "survived"
    assert status[("clamp", "returns `None` instead of `high`")].status == "no-coverage"
    # killed by the one test that covers it, and only covering tests ran
    killed = status[("count_up", "`<` becomes `<=`")]
    assert killed.status == "killed" and killed.killed_by == "tests/test_shapes.py::test_count_up"
    # an endless loop is stopped by the per-test timer
    assert status[("count_up", "`+=` becomes `-=`")].status == "timeout"
    # a mutant that kills the interpreter counts as killed, and a new process goes on with the rest
    crashed = status[("guard", "`>` becomes `<=`")]
    assert crashed.status == "killed" and crashed.killers == [CRASHED] and report.processes == 2
    # decorated functions are switched too: lru_cache (its cache is cleared), property, staticmethod, classmethod
    assert status[("square", "`*` becomes `/`")].status == "killed"
    assert status[("Box.double", "`*` becomes `/`")].status == "killed"
    assert status[("Box.unit", "`1` becomes `2`")].status == "killed"
    assert status[("Box.make", "`0` becomes `1`")].status == "killed"
    assert status[("Box.make", "`+` becomes `-`")].status == "survived"  # equivalent: width - 0 == width + 0
    assert status[("Child.__init__", "`'child'` becomes `'XXchildXX'`")].status == "killed"  # a method with super()
    assert report.counts()["not-analysed"] == 0 and report.complete and report.findings == []
    assert report.score == report.detected / report.analysed
    survivors = survivor_findings(report, "pkg/shapes.py")
    boundary = next(f for f in survivors if "`<` becomes `<=`" in f.message)
    assert boundary.message == "no test notices if `<` becomes `<=` here" and boundary.line == 6
    assert all(f.code == "surviving-mutant" for f in survivors)
    data = report.to_dict()
    assert data["counts"]["timeout"] == 1 and data["mutants"][0]["status"]


async def test_the_cap_reports_what_was_not_analysed(project: Path) -> None:
    (shapes_project(project) / "tests" / "test_slow.py").write_text(
        "import time\nfrom pkg.shapes import clamp, count_up\n\n\n"
        "def test_slow():\n    time.sleep(0.4)\n    assert clamp(5, 0, 10) == 5 and count_up(2) == 2\n"
    )
    python = Path(os.environ["OH_LSP_PYTHON"])
    async with Sandbox(project, project / "scratch", secrets=[]) as box:
        baseline = await measure_baseline(
            box,
            python,
            "pkg/shapes.py",
            "pkg.shapes",
            timeout=60,
            test_files=["tests/test_shapes.py", "tests/test_slow.py"],
        )
        slow = ["tests/test_slow.py::test_slow"]
        started = time.monotonic()
        report = await analyse_mutants(
            box, python, "pkg/shapes.py", "pkg.shapes", SHAPES, baseline.coverage, slow, seconds=2.0
        )
        took = time.monotonic() - started
    counts = report.counts()
    assert counts["not-analysed"] > 0 and not report.complete
    assert counts["no-coverage"] > 0  # the lines test_slow never runs need no time at all
    assert report.findings[0].code == "mutation-incomplete" and "2 s cap" in report.findings[0].message
    assert took < 2.0 + GRACE_SECONDS + 5  # the cap holds (pytest's own start and stop aside)
    assert report.score is None or 0 <= report.score <= 1


def test_surviving_mutants_are_a_short_line_each_in_the_prompt() -> None:
    """The prompt shows the source with line numbers, so a mutant is named by its line and its change only (P6b):
    the line's code is not quoted again, and what is past the limit is counted."""
    survivors = [MutantResult(m, "survived") for m in sorted(mutants_of(SAMPLE), key=lambda m: (m.line, m.col))]
    text = Left([], survivors).words(SAMPLE)
    lines = text.splitlines()
    assert lines[0] == "No test notices these changes:"
    assert "- line 5: `>=` becomes `>`" in lines and "- line 8: `*` becomes `/`" in lines
    assert len(lines) == 1 + len(survivors) and "if total >= 100" not in text, "the line's code is not quoted"
    assert mutants_in_words(survivors, limit=3).splitlines()[-1] == f"- and {len(survivors) - 3} more"
