"""Measuring generated tests for the value gate (value_gate.py), in the sandbox, with real pytest:

1. run 1 (first seed) of every new test, under coverage with a context per test: the target's lines and branches
   each one runs, and the lines of the test module itself (for the runtime assertion check);
2. runs 2 and 3 (the other seeds, together) of the tests that passed run 1 and tried nothing a test must not
   (`oh_lsp.validation.behaviour`; a test that changed the project copy makes the copy fresh again first);
3. the static assertion check of each test's AST;
4. mutation analysis of the mutants still alive (survived or not covered by the existing and kept tests), with the
   candidates that passed run 1 and assert something, beside runs 2 and 3 (in parallel). With `covered` (what the
   existing and kept tests already run), each mutant tries its candidates in the order the gate would keep them (the
   most new lines and branches first) and stops at the first that kills it; without it, every candidate that kills
   a mutant is named. A kill counts only for a test that then passed every run (a flaky first killer kills nothing:
   the count errs on the low side).

The result is one `CandidateTest` per new test, ready for `choose_tests`.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp.validation.behaviour import attempted
from oh_lsp.validation.coverage_map import Arc, FileCoverage
from oh_lsp.validation.mutation import MutationReport, analyse_mutants
from oh_lsp.validation.pytest_runner import PytestRun, run_pytest, run_seeds, run_the_rest
from oh_lsp.validation.sandbox import Sandbox
from oh_lsp.validation.value_gate import CandidateTest, asserting_lines


@dataclass
class Measured:
    tests: list[CandidateTest]
    coverage: FileCoverage  # the target, per candidate test
    first_run: PytestRun
    mutation: MutationReport | None  # the candidates against the mutants still alive
    later_runs: list[PytestRun] = field(default_factory=list)  # runs 2 and 3
    unsafe: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # node id -> what it tried (all runs)

    @property
    def runs(self) -> list[PytestRun]:
        return [self.first_run, *self.later_runs]


def _order(tests: list[str], coverage: FileCoverage, covered: tuple[set[int], set[Arc]] | None) -> list[str] | None:
    """The candidates as the gate would take them on coverage alone (the most new lines and branches first), when
    `covered` says what is covered already."""
    if covered is None:
        return None
    lines, branches = covered

    def gain(nodeid: str) -> int:
        return len(coverage.lines_of([nodeid]) - lines) + len(coverage.branches_of([nodeid]) - branches)

    return sorted(tests, key=lambda nodeid: (-gain(nodeid), nodeid))


async def _no_runs() -> list[PytestRun]:
    return []


async def _no_report() -> MutationReport | None:
    return None


def _test_key(nodeid: str) -> str:
    """`tests/x.py::TestA::test_b[1]` -> `TestA::test_b[1]`."""
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


async def measure_candidates(
    box: Sandbox,
    python: Path,
    *,
    target: str,
    module: str,
    source: str,
    test_file: str,
    test_tree: ast.Module,
    nodeids: list[str],
    seeds: list[int],
    timeout: float,
    alive: MutationReport | None = None,
    mutation_seconds: float = 0.0,  # the cap on the candidates' mutation analysis
    covered: tuple[set[int], set[Arc]] | None = None,
    restore: Callable[[], Awaitable[None]] | None = None,
) -> Measured:
    """Measure the new tests `nodeids` of `test_file` (already written in `box`); a class or a parametrized function
    stands for each test it holds, and an id that collects nothing gets an "error" outcome. `alive` is the mutation
    report of the existing and kept tests: its surviving and uncovered mutants are tried against the candidates
    (`covered`: see the module docstring). `restore` writes the candidate into the copy again after a test changed
    the project copy and the copy was made fresh."""

    async def restored(run: PytestRun) -> PytestRun:
        if run.changed_the_copy:
            await box.reset()
            if restore is not None:
                await restore()
        return run

    async def run_rest(rest: list[str]) -> PytestRun:  # the tests a test that took the run down kept from running
        return await restored(await run_pytest(box, python, rest, timeout=timeout, seed=seeds[0], resume=False))

    first = await run_pytest(
        box, python, nodeids, timeout=timeout, seed=seeds[0], cover_map=[target, test_file], resume=False
    )
    first = await run_the_rest(await restored(first), run_rest)
    asked = nodeids  # a test class or a parametrized function stands for every test it holds
    nodeids = [n for n in first.tests if any(n == a or n.startswith((a + "::", a + "[")) for a in asked)]
    nodeids += [a for a in asked if not any(n == a or n.startswith((a + "::", a + "[")) for n in first.tests)]
    unsafe = attempted(first)
    passing = [t.nodeid for t in first.passed if t.nodeid in nodeids and t.nodeid not in unsafe]
    maps = first.coverage_map or {}
    if (unsafe or first.resumed) and passing:  # a test that kills the run leaves no coverage: measure the others
        alone = await run_pytest(box, python, passing, timeout=timeout, seed=seeds[0], cover_map=[target, test_file])
        maps = alone.coverage_map or {}
    coverage = FileCoverage.from_dump(maps.get(target))
    own_lines = FileCoverage.from_dump(maps.get(test_file))
    asserting = {nodeid: asserting_lines(test_tree, _test_key(nodeid)) or set() for nodeid in nodeids}
    ran = {nodeid: own_lines.lines_by_test.get(nodeid) for nodeid in nodeids}
    # the mutation analysis runs beside runs 2 and 3, with the tests that passed run 1 and assert something
    hopeful = [n for n in passing if asserting[n] and (ran[n] is None or asserting[n] & (ran[n] or set()))]
    candidates = [r.mutant for r in alive.alive()] if alive is not None else []
    analysis = None
    if candidates and hopeful and mutation_seconds > 0:
        analysis = analyse_mutants(
            box,
            python,
            target,
            module,
            source,
            coverage,
            hopeful,
            seconds=mutation_seconds,
            mutants=candidates,
            all_killers=covered is None,
            order=_order(hopeful, coverage, covered),
        )
    later_runs = run_seeds(box, python, passing, seeds[1:], timeout=timeout) if passing else _no_runs()
    later, report = await asyncio.gather(later_runs, analysis if analysis is not None else _no_report())
    tests = []
    for nodeid in nodeids:
        case = first.tests.get(nodeid)
        outcomes = [case.outcome if case else "error"]
        if nodeid in passing:
            for run in later:
                again = run.tests.get(nodeid)
                outcomes.append("timeout" if run.timed_out else (again.outcome if again else "error"))
        tests.append(
            CandidateTest(
                nodeid=nodeid,
                outcomes=outcomes,
                asserts=bool(asserting[nodeid]),
                assertion_ran=None if ran[nodeid] is None else bool(asserting[nodeid] & (ran[nodeid] or set())),
                lines=coverage.lines_by_test.get(nodeid, set()) & coverage.statements,
                branches=coverage.arcs_by_test.get(nodeid, set()) & coverage.branches,
                message=(case.message if case else "not collected"),
            )
        )
    unsafe = attempted(first, *later)
    sound = {t.nodeid for t in tests if t.outcomes == ["passed"] * len(seeds) and t.nodeid not in unsafe}
    if report is not None:  # a mutant counts as killed by a sound test only (a flaky first killer kills nothing)
        kills: dict[str, set[str]] = {}
        for result in report.results:
            for killer in result.killers:
                if killer in sound:
                    kills.setdefault(killer, set()).add(result.mutant.id)
        for test in tests:
            test.kills = kills.get(test.nodeid, set())
    return Measured(tests, coverage, first, report, later, unsafe)
