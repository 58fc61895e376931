"""The value gate of a unit_test task, answer by answer (docs/validation.md#the-value-gate-per-test).

A task keeps a `Ledger`: the coverage baseline and mutation report of the project's own tests, and every test kept so
far with what it adds (lines, branch arcs, killed mutants). `judge_answer` runs one answer's new tests in the sandbox
(oh_lsp.validation.candidates: 3 seeded runs, per-test coverage, the mutants still alive) and keeps each test that
passes every run, asserts something, tries nothing a test must not, and adds value over the baseline plus the tests
kept so far (oh_lsp.validation.value_gate). The kept tests of every answer accumulate in one generated module
(`Ledger.kept_source`); `final_run` runs that module as it will be delivered, once, and what fails there is dropped
too. A parametrized test is kept or dropped whole (one failing case drops every case); the methods of a test class
are judged one by one.
"""

from __future__ import annotations

import ast
import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from oh_lsp import progress_text
from oh_lsp.errors import InterpreterError
from oh_lsp.kinds.base import Candidate, CheckEnv, Target
from oh_lsp.kinds.placement import filter_generated, merge_tests
from oh_lsp.kinds.unit_test_module import (
    case_key,
    def_lines,
    place,
    possible_bug,
    run_details,
    run_findings,
    static_findings,
    test_finding,
    top_level_tests,
)
from oh_lsp.validation import findings as F
from oh_lsp.validation.baseline import Baseline
from oh_lsp.validation.behaviour import attempted, behaviour_findings, module_findings
from oh_lsp.validation.candidates import Measured, measure_candidates
from oh_lsp.validation.coverage_map import Arc, FileCoverage, Totals
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.mutation import MutationReport
from oh_lsp.validation.pytest_runner import PytestRun, ensure_pytest, run_pytest
from oh_lsp.validation.scores import mutation_after, validation_score
from oh_lsp.validation.value_gate import CandidateTest, GateVerdict, choose_tests


@dataclass
class KeptTest:
    """A kept test (a function, a class, or every case of a parametrized test), by its name in `kept_source`."""

    key: str
    lines: set[int] = field(default_factory=set)
    branches: set[Arc] = field(default_factory=set)
    kills: set[str] = field(default_factory=set)
    answer: int = 0  # which answer of the task gave it (1-based)


@dataclass
class Ledger:
    """What a unit_test task knows and keeps (module docstring). One task, one ledger, shared by its segments."""

    target: Target
    baseline: Baseline
    before: MutationReport | None  # None: mutation analysis is off
    seeds: list[int]
    mutation_left: float  # seconds of the task's mutation analysis not spent yet
    kept_source: str = ""
    kept: dict[str, KeptTest] = field(default_factory=dict)
    generated: int = 0  # tests the model wrote, over every answer
    answers: int = 0
    dropped: list[Finding] = field(default_factory=list)  # one per dropped test, over every answer
    bugs: list[Finding] = field(default_factory=list)  # failing tests whose traceback ends in the target
    isolated: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    survived_later: set[str] = field(default_factory=set)  # mutants the existing tests never ran, that survived
    # the candidates' tests that run them (answers judged so far)
    # a run of a whole module of kept tests, all together, under coverage: (its text, the run, what it covered)
    proven: tuple[str, PytestRun, FileCoverage] | None = None

    @property
    def coverage(self) -> FileCoverage:
        return self.baseline.coverage

    @property
    def lines(self) -> set[int]:
        return self.coverage.lines_of() | {line for t in self.kept.values() for line in t.lines}

    @property
    def branches(self) -> set[Arc]:
        return self.coverage.branches_of() | {arc for t in self.kept.values() for arc in t.branches}

    @property
    def killed_before(self) -> set[str]:
        return self.before.detected_ids() if self.before else set()

    @property
    def kills(self) -> set[str]:
        """Mutants the kept tests kill that the existing tests did not."""
        return {m for t in self.kept.values() for m in t.kills}

    @property
    def killed(self) -> set[str]:
        return self.killed_before | self.kills

    def alive(self) -> MutationReport | None:
        """The mutants neither the existing tests nor the kept ones detect: survived (the existing tests', or a
        judged answer's tests ran them) or never run."""
        if self.before is None:
            return None
        killed = self.killed
        results = [
            replace(r, status="survived") if r.mutant.id in self.survived_later else r
            for r in self.before.alive()
            if r.mutant.id not in killed
        ]
        return MutationReport(results=results, seconds=self.before.seconds)

    def totals(self) -> Totals:
        cov = self.coverage
        return Totals(
            len(cov.statements),
            len(self.lines & cov.statements),
            len(cov.branches),
            len(self.branches & cov.branches),
        )

    def mutation_score(self) -> float | None:
        if self.before is None:
            return None
        return mutation_after(self.killed_before, self.before.analysed, self.kills)

    def score(self) -> float:
        return validation_score(self.totals(), self.mutation_score())


@dataclass
class Judged:
    """The verdict on one answer."""

    findings: list[Finding]  # whole-module problems (errors) and dropped tests
    kept: list[str] = field(default_factory=list)  # keys (in `kept_source`) of the tests this answer added
    dropped: list[str] = field(default_factory=list)
    generated: int = 0
    candidate: Candidate | None = None  # the answer's tests placed beside the earlier kept ones
    failures: dict[str, str] = field(default_factory=dict)  # test name -> its traceback (for the repair message)
    details: dict[str, Any] = field(default_factory=dict)
    verdicts: list[GateVerdict] = field(default_factory=list)
    answer: int = 0  # which answer of the task it was (1-based; 0: none was judged)


def _names_back(candidate: Candidate) -> dict[str, str]:
    """placed name -> name in the generated module (placement renames a test whose name the file already has)."""
    return {new: old for old, new in candidate.extra.get("renamed", {}).items()}


def _generated_key(nodeid: str, back: dict[str, str]) -> str:
    head, _, rest = case_key(nodeid).partition("::")
    head = back.get(head, head)
    return f"{head}::{rest}" if rest else head


def _outcome_words(test: CandidateTest, code: str, reason: str, seeds: list[int]) -> str:
    if code == F.FLAKY_TEST:
        run = next((i for i, o in enumerate(test.outcomes) if o != "passed"), 1)
        return f"is flaky: it passed with seed {seeds[0]}, then {test.outcomes[run]} with seed {seeds[run]}"
    if code in (F.TEST_FAILED, F.TEST_ERROR):
        return f"{test.outcomes[0] if test.outcomes else 'error'}: {test.message}".rstrip(": ")
    return reason


def _choose(measured: Measured, ledger: Ledger) -> tuple[list[GateVerdict], dict[str, tuple[str, str]]]:
    """The gate's verdicts on `measured`, a test function (or method) at a time: every case of one whose cases fail,
    are flaky, assert nothing or try something unsafe is dropped with that reason, and the others are chosen without
    it. Returns (verdicts, key -> (code, reason) of each function dropped whole)."""
    by_id = {t.nodeid: t for t in measured.tests}
    safe = [t for t in measured.tests if t.nodeid not in measured.unsafe]
    lines, branches, killed = ledger.lines, ledger.branches, ledger.killed
    verdicts = choose_tests(safe, lines, branches, killed)
    whole: dict[str, tuple[str, str]] = {}
    for nodeid in measured.unsafe:
        whole.setdefault(case_key(nodeid), (F.UNSAFE_BEHAVIOUR, "tried something a test must not"))
    for verdict in verdicts:
        if not verdict.kept and verdict.code != F.NO_VALUE:
            test = by_id[verdict.nodeid]
            words = _outcome_words(test, verdict.code, verdict.reason, ledger.seeds)
            whole.setdefault(case_key(verdict.nodeid), (verdict.code, words))
    if whole:
        verdicts = choose_tests([t for t in safe if case_key(t.nodeid) not in whole], lines, branches, killed)
    return verdicts, whole


def _beside_kept(kept_source: str, code: str) -> tuple[str, list[str]] | None:
    """The answer's tests added to the module of the tests kept so far (the answer itself when none is), and the
    names its tests have there; None when the answer does not parse."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    wanted = top_level_tests(tree)
    if not kept_source.strip():
        return code, wanted
    placement = merge_tests(kept_source, code)
    before = set(top_level_tests(ast.parse(kept_source)))
    placed = {
        n.name
        for n in ast.parse(placement.text).body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    names = [placement.renamed.get(name, name) for name in wanted]  # a name kept before is not new (left out)
    return placement.text, [name for name in names if name in placed and name not in before]


async def judge_answer(env: CheckEnv, ledger: Ledger, code: str, *, label: str = "") -> Judged:
    """Judge the test module `code` (the model's answer) against `ledger`, and keep what earns it (module
    docstring). One answer at a time per ledger: the segments of a task take turns here."""
    async with ledger.lock:
        return await _judge(env, ledger, code, label)


async def _judge(env: CheckEnv, ledger: Ledger, code: str, label: str) -> Judged:
    target = ledger.target
    target_path = target.path.as_posix()
    ledger.answers += 1
    answer = ledger.answers
    combined = _beside_kept(ledger.kept_source, code)
    candidate = place(combined[0] if combined else code, target)
    output_file = candidate.output_file
    tree, found = static_findings(output_file, candidate.content, target_path, env.config.trusted)
    if found or combined is None or tree is None:
        return Judged(found, candidate=candidate)
    combined_text, new_names = combined
    back = _names_back(candidate)
    renamed = candidate.extra.get("renamed", {})
    nodeids = [f"{output_file}::{renamed.get(name, name)}" for name in new_names]
    if not nodeids:
        return Judged([Finding(F.NO_TESTS, "the answer holds no test function or class", file=output_file)])
    env.progress(progress_text.tests_checked(len(nodeids), label))
    async with env.sandbox() as box:
        try:
            await ensure_pytest(box, env.python)
        except InterpreterError as exc:
            return Judged([Finding(F.INTERPRETER, str(exc), file=output_file)], candidate=candidate)

        async def write() -> None:
            for change in candidate.edit.files:
                box.write(change.path, change.new_text)

        await write()
        ledger.isolated = ledger.isolated and box.sandboxed
        spend = ledger.mutation_left if env.config.mutation else 0.0
        measured = await measure_candidates(
            box,
            env.python,
            target=target_path,
            module=target.module,
            source=target.text,
            test_file=output_file,
            test_tree=tree,
            nodeids=nodeids,
            seeds=ledger.seeds,
            timeout=env.config.test_timeout_seconds,
            alive=ledger.alive(),
            mutation_seconds=spend,
            covered=(ledger.lines, ledger.branches),
            restore=write,
        )
    first = measured.first_run
    details = run_details(first, box.sandboxed, env.python, ledger.seeds)
    if measured.mutation is not None:
        ledger.mutation_left = max(ledger.mutation_left - measured.mutation.seconds, 0.0)
        ledger.survived_later |= {r.mutant.id for r in measured.mutation.results if r.status == "survived"}
    broken = run_findings(first, output_file) + module_findings(first, output_file)
    failures = {t.name: t.longrepr for run in measured.runs for t in run.failed}
    generated = len({case_key(t.nodeid) for t in measured.tests})
    ledger.generated += generated
    if broken:
        return Judged(
            broken, generated=generated, candidate=candidate, failures=failures, details=details, answer=answer
        )
    verdicts, whole = _choose(measured, ledger)
    kept_keys = {case_key(v.nodeid) for v in verdicts if v.kept}
    for v in verdicts:  # a function is kept whole when any of its cases is; its other cases come along
        if not v.kept and case_key(v.nodeid) not in kept_keys:
            whole.setdefault(case_key(v.nodeid), (v.code, v.reason))
    by_id = {t.nodeid: t for t in measured.tests}
    defs = def_lines(ast.parse(candidate.content))
    findings: list[Finding] = []
    severity = F.WARNING if kept_keys else F.ERROR
    names = {t.nodeid: t.name for run in measured.runs for t in run.tests.values()}
    for key, (code_, reason) in sorted(whole.items()):
        if code_ == F.UNSAFE_BEHAVIOUR:
            tried = {n: a for n, a in measured.unsafe.items() if case_key(n) == key}
            findings += behaviour_findings(tried, names, output_file, severity=severity)
            continue
        findings.append(test_finding(code_, key, reason, defs, output_file, severity))
    bugs = [
        bug for t in first.failed if case_key(t.nodeid) in whole and (bug := possible_bug(t, target_path)) is not None
    ]
    findings += bugs
    ledger.bugs += bugs
    ledger.dropped += [f for f in findings if f.code != F.POSSIBLE_BUG]
    # what this answer adds, a function at a time, in the generated module's names
    added: dict[str, KeptTest] = {}
    for v in verdicts:
        key = case_key(v.nodeid)
        if key not in kept_keys:
            continue
        test = by_id[v.nodeid]
        name = _generated_key(v.nodeid, back)
        entry = added.setdefault(name, KeptTest(name, answer=answer))
        entry.lines |= test.lines
        entry.branches |= test.branches
        entry.kills |= test.kills - ledger.killed_before
    dropped_names = {_generated_key(f"{output_file}::{key}", back) for key in whole}
    if not ledger.kept and not dropped_names:  # run 1 ran the module as it stands, every test in it: no need again
        ledger.proven = (candidate.content, first, measured.coverage)
    ledger.kept_source = filter_generated(combined_text, dropped_names) if dropped_names else combined_text
    ledger.kept.update(added)
    return Judged(
        findings,
        answer=answer,
        kept=sorted(added),
        dropped=sorted(dropped_names),
        generated=generated,
        candidate=candidate,
        failures=failures,
        details=details,
        verdicts=verdicts,
    )


@dataclass
class Delivered:
    """The kept tests as they will be delivered, after one run of the module together."""

    candidate: Candidate
    run: PytestRun | None
    coverage: FileCoverage  # the target: the existing passing tests and the kept tests
    findings: list[Finding] = field(default_factory=list)  # tests dropped by this run


async def final_run(env: CheckEnv, ledger: Ledger) -> Delivered:
    """Run every kept test in the module as it will be delivered (seed 1, under coverage). A test that fails here
    (beside the others), or tries something unsafe, is dropped; the ledger and the module follow. When the module is
    exactly one answer's, every test of it kept, that answer's first run was this run already."""
    target = ledger.target
    target_path = target.path.as_posix()
    candidate = place(ledger.kept_source, target)
    output_file = candidate.output_file
    renamed = candidate.extra.get("renamed", {})
    back = _names_back(candidate)

    def placed(key: str) -> str:
        head, _, rest = key.partition("::")
        return f"{output_file}::{renamed.get(head, head)}" + (f"::{rest}" if rest else "")

    nodeids = [placed(key) for key in sorted(ledger.kept)]
    if ledger.proven is not None and ledger.proven[0] == candidate.content:
        _, proof, covered = ledger.proven
        return Delivered(candidate, proof, ledger.coverage.merged(covered.restricted([t.nodeid for t in proof.passed])))
    env.progress(progress_text.kept_tests_run(len(nodeids)))
    async with env.sandbox() as box:
        for change in candidate.edit.files:
            box.write(change.path, change.new_text)
        run = await run_pytest(
            box,
            env.python,
            nodeids,
            timeout=env.config.test_timeout_seconds,
            seed=ledger.seeds[0],
            cover_map=[target_path],
        )
    ledger.isolated = ledger.isolated and box.sandboxed
    unsafe = attempted(run)
    broken = run_findings(run, output_file) + module_findings(run, output_file)
    if broken:  # the module of kept tests does not even run: nothing can be delivered
        for key in list(ledger.kept):
            ledger.kept.pop(key)
        return Delivered(candidate, run, ledger.coverage, broken)
    failing = {_generated_key(t.nodeid, back): t for t in run.failed}
    failing.update({_generated_key(n, back): run.tests[n] for n in unsafe if n in run.tests})
    findings: list[Finding] = []
    if failing:
        defs = def_lines(ast.parse(candidate.content))
        names = {t.nodeid: t.name for t in run.tests.values()}
        for key, test in sorted(failing.items()):
            ledger.kept.pop(key, None)
            if test.nodeid in unsafe:
                findings += behaviour_findings(
                    {test.nodeid: unsafe[test.nodeid]}, names, output_file, severity=F.WARNING
                )
                continue
            words = f"passed on its own but {test.outcome} beside the other kept tests: {test.message}"
            findings.append(test_finding(F.TEST_FAILED, key, words.rstrip(": "), defs, output_file, F.WARNING))
            bug = possible_bug(test, target_path)
            if bug is not None:
                findings.append(bug)
        ledger.kept_source = filter_generated(ledger.kept_source, set(failing))
        ledger.dropped += [f for f in findings if f.code != F.POSSIBLE_BUG]
        candidate = place(ledger.kept_source, target)
    passing = [t.nodeid for t in run.passed if t.nodeid not in unsafe]
    measured = FileCoverage.from_dump((run.coverage_map or {}).get(target_path)).restricted(passing)
    for key, kept in ledger.kept.items():  # what the kept tests run, as measured together
        ran = [n for n in passing if _generated_key(n, back) == key]
        kept.lines = measured.lines_of(ran)
        kept.branches = measured.branches_of(ran)
    coverage = ledger.coverage.merged(measured)
    return Delivered(candidate, run, coverage, findings)
