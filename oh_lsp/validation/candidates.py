"""Measuring generated tests for the value gate (value_gate.py), in the sandbox, with real pytest:

1. run 1 (first seed) of every new test, under coverage with a context per test: the target's lines and branches
   each one runs, and the lines of the test module itself (for the runtime assertion check);
2. runs 2 and 3 (the other seeds, together) of the tests that passed run 1;
3. the static assertion check of each test's AST;
4. mutation analysis of the mutants still alive (survived or not covered by the existing and kept tests), with the
   candidates that passed every run and assert something, naming every candidate that kills each mutant.

The result is one `CandidateTest` per new test, ready for `choose_tests`.
"""

from __future__ import annotations

import ast
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from oh_lsp.validation.coverage_map import FileCoverage
from oh_lsp.validation.mutation import MutationReport, analyse_mutants
from oh_lsp.validation.pytest_runner import PytestRun, run_pytest
from oh_lsp.validation.sandbox import Sandbox
from oh_lsp.validation.value_gate import CandidateTest, asserting_lines


@dataclass
class Measured:
    tests: list[CandidateTest]
    coverage: FileCoverage  # the target, per candidate test
    first_run: PytestRun
    mutation: MutationReport | None  # the candidates against the mutants still alive


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
    mutation_seconds: float = 0.0,
) -> Measured:
    """Measure the new tests `nodeids` of `test_file` (already written in `box`); a class or a parametrized function
    stands for each test it holds, and an id that collects nothing gets an "error" outcome. `alive` is the mutation
    report of the existing and kept tests: its surviving and uncovered mutants are tried against the candidates."""
    started = time.monotonic()
    first = await run_pytest(box, python, nodeids, timeout=timeout, seed=seeds[0], cover_map=[target, test_file])
    asked = nodeids  # a test class or a parametrized function stands for every test it holds
    nodeids = [n for n in first.tests if any(n == a or n.startswith((a + "::", a + "[")) for a in asked)]
    nodeids += [a for a in asked if not any(n == a or n.startswith((a + "::", a + "[")) for n in first.tests)]
    maps = first.coverage_map or {}
    coverage = FileCoverage.from_dump(maps.get(target))
    own_lines = FileCoverage.from_dump(maps.get(test_file))
    passing = [t.nodeid for t in first.passed if t.nodeid in nodeids]
    later: list[PytestRun] = []
    if passing:
        later = list(
            await asyncio.gather(*(run_pytest(box, python, passing, timeout=timeout, seed=seed) for seed in seeds[1:]))
        )
    tests = []
    for nodeid in nodeids:
        case = first.tests.get(nodeid)
        outcomes = [case.outcome if case else "error"]
        if nodeid in passing:
            for run in later:
                again = run.tests.get(nodeid)
                outcomes.append("timeout" if run.timed_out else (again.outcome if again else "error"))
        asserting = asserting_lines(test_tree, _test_key(nodeid)) or set()
        ran = own_lines.lines_by_test.get(nodeid)
        tests.append(
            CandidateTest(
                nodeid=nodeid,
                outcomes=outcomes,
                asserts=bool(asserting),
                assertion_ran=None if ran is None else bool(asserting & ran),
                lines=coverage.lines_by_test.get(nodeid, set()) & coverage.statements,
                branches=coverage.arcs_by_test.get(nodeid, set()) & coverage.branches,
                message=(case.message if case else "not collected"),
            )
        )
    report = None
    sound = [
        t.nodeid for t in tests if t.outcomes == ["passed"] * len(seeds) and t.asserts and t.assertion_ran is not False
    ]
    remaining = mutation_seconds - (time.monotonic() - started)
    if alive is not None and sound and remaining > 0:
        candidates = [r.mutant for r in alive.alive()]
        report = await analyse_mutants(
            box,
            python,
            target,
            module,
            source,
            coverage,
            sound,
            seconds=remaining,
            mutants=candidates,
            all_killers=True,
        )
        kills: dict[str, set[str]] = {}
        for result in report.results:
            for killer in result.killers:
                kills.setdefault(killer, set()).add(result.mutant.id)
        for test in tests:
            test.kills = kills.get(test.nodeid, set())
    return Measured(tests, coverage, first, report)
