"""The per-test value gate: the assertion check, the greedy choice (pure, on measured data), the score formula, and one
end-to-end run through real pytest, coverage.py and mutation analysis in the sandbox."""

from __future__ import annotations

import ast
import os
import random
from pathlib import Path

from oh_lsp.validation.baseline import measure_baseline
from oh_lsp.validation.candidates import measure_candidates
from oh_lsp.validation.coverage_map import FileCoverage, Totals, totals
from oh_lsp.validation.mutation import analyse_mutants
from oh_lsp.validation.sandbox import Sandbox
from oh_lsp.validation.scores import kept_share, mutation_after, score_report, validation_score
from oh_lsp.validation.value_gate import CandidateTest, asserting_lines, asserts_something, choose_tests

ASSERTING = """\
import pytest
import unittest
from unittest import mock


def check_positive(value):
    assert value > 0


def test_plain():
    assert 1 + 1 == 2


def test_raises():
    with pytest.raises(ValueError):
        int("x")


def test_helper():
    check_positive(3)


def test_mock():
    m = mock.Mock()
    m(1)
    m.assert_called_once_with(1)


def test_bare_comparison():
    1.0 == pytest.approx(1.0)


def test_only_calls():
    int("3")


@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n


class TestThing(unittest.TestCase):
    def _check(self, value):
        self.assertEqual(value, 2)

    def test_method(self):
        self._check(2)

    def test_nothing(self):
        self.setUp()
"""


def test_what_counts_as_asserting() -> None:
    tree = ast.parse(ASSERTING)
    verdicts = {
        name: asserts_something(tree, name)
        for name in (
            "test_plain",
            "test_raises",
            "test_helper",
            "test_mock",
            "test_bare_comparison",
            "test_only_calls",
            "test_param[1]",
            "TestThing::test_method",
            "TestThing::test_nothing",
        )
    }
    assert verdicts == {
        "test_plain": True,
        "test_raises": True,
        "test_helper": True,  # through the module's own helper
        "test_mock": True,
        "test_bare_comparison": False,  # a comparison on its own line cannot fail
        "test_only_calls": False,
        "test_param[1]": True,
        "TestThing::test_method": True,  # through self._check
        "TestThing::test_nothing": False,
    }
    assert asserting_lines(tree, "test_helper") == {7}  # the helper's assert, where the runtime check looks
    assert asserting_lines(tree, "test_missing") is None


def candidate(name: str, *, lines=(), branches=(), kills=(), outcomes=("passed",) * 3, asserts=True, ran=None):
    return CandidateTest(
        f"tests/t.py::{name}", list(outcomes), asserts, ran, set(lines), set(branches), set(kills), "boom"
    )


def test_the_choice_is_greedy_and_independent_of_order() -> None:
    tests = [
        candidate("test_a", lines={5, 6}),
        candidate("test_b", lines={5, 6}),  # the same as test_a: only one of the two is kept
        candidate("test_branch_only", branches={(3, 5)}),
        candidate("test_kills_only", kills={"4:7:gte-gt"}),
        candidate("test_nothing_new", lines={1}, branches={(3, 4)}, kills={"1:1:number"}),
        candidate("test_fails", lines={9}, outcomes=("failed",)),
        candidate("test_flaky", lines={9}, outcomes=("passed", "passed", "failed")),
        candidate("test_silent", lines={9}, asserts=False),
        candidate("test_assert_never_ran", lines={9}, ran=False),
    ]
    covered_lines, covered_branches, killed = {1, 2, 3}, {(3, 4)}, {"1:1:number"}
    first = choose_tests(tests, covered_lines, covered_branches, killed)
    shuffler = random.Random(7)
    for _ in range(30):
        order = list(tests)
        shuffler.shuffle(order)
        assert choose_tests(order, covered_lines, covered_branches, killed) == first
    verdicts = {v.nodeid.split("::")[1]: v for v in first}
    assert {name for name, v in verdicts.items() if v.kept} == {"test_a", "test_branch_only", "test_kills_only"}
    assert verdicts["test_a"].new_lines == [5, 6]
    assert verdicts["test_branch_only"].new_branches == [(3, 5)] and verdicts["test_branch_only"].new_lines == []
    assert verdicts["test_kills_only"].new_kills == ["4:7:gte-gt"]
    assert verdicts["test_b"].code == "adds-nothing" and "test_a" in verdicts["test_b"].reason
    assert verdicts["test_nothing_new"].code == "adds-nothing"
    assert verdicts["test_fails"].code == "test-failed" and "boom" in verdicts["test_fails"].reason
    assert verdicts["test_flaky"].code == "flaky-test" and "run 3" in verdicts["test_flaky"].reason
    assert verdicts["test_silent"].code == "no-assertion"
    assert verdicts["test_assert_never_ran"].reason == "its assertions never ran"
    # what earlier attempts kept counts as covered: test_a's lines are no gain any more
    later = choose_tests([candidate("test_c", lines={5, 6})], covered_lines | {5, 6}, covered_branches, killed)
    assert not later[0].kept and later[0].code == "adds-nothing"
    assert first[0].to_dict()["test"] == first[0].nodeid


def test_greedy_takes_the_largest_gain_first() -> None:
    tests = [candidate("test_small", lines={1}), candidate("test_big", lines={1, 2, 3})]
    verdicts = {v.nodeid.split("::")[1]: v for v in choose_tests(tests, set(), set(), set())}
    assert verdicts["test_big"].kept and not verdicts["test_small"].kept


def test_the_score_is_what_the_result_is_worth() -> None:
    after = Totals(statements=8, covered_lines=6, branches=4, covered_branches=2)  # (6 + 2) / 12
    assert validation_score(after, None) == round(8 / 12, 4)
    assert validation_score(after, 0.5) == round(0.5 * 8 / 12 + 0.25, 4)
    assert validation_score(Totals(0, 0, 0, 0), None) == 1.0
    assert mutation_after({"a", "b"}, 8, {"c", "a"}) == 3 / 8 and mutation_after(set(), 0, set()) is None
    assert kept_share(2, 3) == 2 / 3 and kept_share(0, 0) == 0.0
    before = Totals(8, 3, 4, 1)
    report = score_report(before, after, 0.25, 0.5)
    assert report["coverage"]["before"] == round(100 * 4 / 12, 2) and report["coverage"]["after"] == round(
        100 * 8 / 12, 2
    )
    assert report["mutation"] == {"before": 0.25, "after": 0.5} and report["score"] == validation_score(after, 0.5)


AGE = """\
def is_adult(age):
    return age >= 18


def category(age):
    if age < 0:
        raise ValueError("negative age")
    if age < 13:
        return "child"
    return "teen or adult"


def describe(n):
    text = "n"
    if n > 0:
        text += "+"
    return text
"""

AGE_TESTS = """\
from pkg.age import category, describe, is_adult


def test_is_adult():
    assert is_adult(30)
    assert not is_adult(5)


def test_category_child():
    assert category(5) == "child"


def test_describe_positive():
    assert describe(1) == "n+"
"""

CANDIDATES = """\
import pytest

from pkg.age import category, describe, is_adult


def test_adult_at_the_boundary():
    assert is_adult(18)


def test_adult_again():
    assert is_adult(40)


def test_no_assert():
    category(20)


def test_assert_never_runs():
    for item in []:
        assert item
    category(30)


def test_teen():
    assert category(15) == "teen or adult"


def test_negative():
    with pytest.raises(ValueError):
        category(-1)


def test_describe_zero():
    assert describe(0) == "n"


def test_wrong():
    assert category(5) == "adult"
"""


async def test_end_to_end_through_real_pytest(project: Path) -> None:
    (project / "pkg" / "age.py").write_text(AGE)
    (project / "tests").mkdir()
    (project / "tests" / "test_age.py").write_text(AGE_TESTS)
    python = Path(os.environ["OH_LSP_PYTHON"])
    target, module, test_file = "pkg/age.py", "pkg.age", "tests/test_age_generated.py"
    async with Sandbox(project, project / "scratch", secrets=[]) as box:
        baseline = await measure_baseline(box, python, target, module, timeout=60, test_files=["tests/test_age.py"])
        before = await analyse_mutants(
            box, python, target, module, AGE, baseline.coverage, baseline.passing, seconds=30
        )
        box.write(test_file, CANDIDATES)
        names = [n.name for n in ast.parse(CANDIDATES).body if isinstance(n, ast.FunctionDef)]
        measured = await measure_candidates(
            box,
            python,
            target=target,
            module=module,
            source=AGE,
            test_file=test_file,
            test_tree=ast.parse(CANDIDATES),
            nodeids=[f"{test_file}::{name}" for name in names],
            seeds=[1, 2, 3],
            timeout=60,
            alive=before,
            mutation_seconds=30,
        )
    boundary = next(r for r in before.results if r.mutant.description == "`>=` becomes `>`")
    assert boundary.status == "survived"  # the existing tests never pin 18
    covered = baseline.coverage
    verdicts = {
        v.nodeid.split("::")[1]: v
        for v in choose_tests(measured.tests, covered.lines_of(), covered.branches_of(), before.detected_ids())
    }
    kept = {name for name, v in verdicts.items() if v.kept}
    assert kept == {"test_adult_at_the_boundary", "test_teen", "test_negative", "test_describe_zero"}
    # a test that kills a surviving mutant without adding coverage is kept
    assert verdicts["test_adult_at_the_boundary"].new_lines == []
    assert boundary.mutant.id in verdicts["test_adult_at_the_boundary"].new_kills
    # a branch-only gain is kept: describe(0) runs no new line, only the branch 15→17
    assert verdicts["test_describe_zero"].new_lines == [] and verdicts["test_describe_zero"].new_branches == [(15, 17)]
    assert verdicts["test_teen"].new_lines == [10]
    assert verdicts["test_adult_again"].code == "adds-nothing"
    assert verdicts["test_no_assert"].code == "no-assertion"
    assert verdicts["test_assert_never_runs"].reason == "its assertions never ran"  # the runtime check
    assert verdicts["test_wrong"].code == "test-failed"
    # the score of the delivered result: every line and branch covered now, and the mutants the kept tests kill
    kept_ids = [f"{test_file}::{name}" for name in kept]
    after_coverage = covered.merged(measured.coverage.restricted(kept_ids))
    after = totals(after_coverage)
    assert after.fraction == 1.0 and totals(covered).fraction < 1.0
    kills = {m for name in kept for m in verdicts[name].new_kills}
    score_after = mutation_after(before.detected_ids(), before.analysed, kills)
    assert score_after is not None and before.score is not None and score_after > before.score
    assert validation_score(after, score_after) == round(0.5 + 0.5 * score_after, 4)
    assert FileCoverage.from_dict(after_coverage.to_dict()).lines_of() == after_coverage.lines_of()
