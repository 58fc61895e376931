"""The unit_test task kind: ask for pytest tests of a module, aimed at what its existing tests miss, and keep each
generated test that earns it (docs/validation.md#unit_test).

A task runs as a session (unit_test_session.py): the coverage baseline and mutation report of the existing tests
before the first model call (unit_test_baseline.py), prompts that name the gaps (unit_test_gaps.py), the value gate
answer by answer with kept tests accumulating (unit_test_gate.py), and the generated module placed beside the
project's tests (unit_test_module.py). `check` judges one answer on its own the same way (the OpenHands agent's
result), and `check_test_module` is `ResultValidator`'s check of a test module on disk.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from oh_lsp.edits import FileEdit, Recompute
from oh_lsp.errors import InterpreterError
from oh_lsp.extract import extract_python
from oh_lsp.kinds.base import Candidate, CheckEnv, Target
from oh_lsp.kinds.context import context_files
from oh_lsp.kinds.placement import merge_tests
from oh_lsp.kinds.test_layout import tests_of
from oh_lsp.kinds.unit_test_baseline import existing_test_files
from oh_lsp.kinds.unit_test_gaps import Aim, Left
from oh_lsp.kinds.unit_test_gate import judge_answer
from oh_lsp.kinds.unit_test_module import (
    case_key,
    def_lines,
    not_isolated_finding,
    place,
    possible_bug,
    run_details,
    run_findings,
    static_findings,
    test_finding,
)
from oh_lsp.kinds.unit_test_session import SYSTEM_PROMPT, UnitTestSession, first_messages
from oh_lsp.paths import module_name, sha256_text
from oh_lsp.tasks import QueuedTask
from oh_lsp.validation import findings as F
from oh_lsp.validation.baseline import measure_baseline
from oh_lsp.validation.behaviour import attempted, behaviour_findings, module_findings
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.mutation import analyse_mutants
from oh_lsp.validation.pytest_runner import PytestRun, ensure_pytest, run_pytest, run_seeds
from oh_lsp.validation.result import ValidationResult
from oh_lsp.validation.sandbox import sandbox_refusal
from oh_lsp.validation.scores import validation_score
from oh_lsp.validation.value_gate import asserts_something

NAME = "unit_test"
# part of the result cache's key (kinds/base.py); "2": the session's prompts aimed at the gaps, the value gate; "3":
# the same rules in fewer words, the incremental prompt without the existing tests' unused imports (P6b); "4": the
# surviving mutants a short line each, without quoting their line again
PROMPT_VERSION = "4"
RUNS = 3
__all__ = [
    "NAME",
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "build_messages",
    "cache_inputs",
    "check",
    "make_candidate",
    "open_session",
    "place",
    "recompute",
]


def open_session(target: Target, task: QueuedTask, env: CheckEnv, threshold: float) -> UnitTestSession:
    """The task as a session (kinds/base.py, `TaskSession`)."""
    return UnitTestSession(target, task, env, threshold)


def build_messages(target: Target, task: QueuedTask, context_tokens: int | None = None) -> list[dict[str, str]]:
    """The first prompt without measures (the OpenHands agent's way in): the target with line numbers, the project
    context and the instruction; the session's prompts add the gaps."""
    return first_messages(target, task, Aim(), Left(), None, context_tokens)


def make_candidate(answer: str, target: Target, task: QueuedTask | None = None) -> Candidate:
    """Take the test module out of `answer` and place it where the project's tests go."""
    return place(extract_python(answer, prefer="def test"), target)


def recompute(result: dict[str, Any]) -> Recompute:
    """Redo the placement of the kept tests against the test module's current text."""
    generated = result.get("generated_source") or ""

    def redo(change: FileEdit, current: str) -> FileEdit | None:
        if change.path != result.get("output_file"):
            return None
        try:
            placement = merge_tests(current, generated)
        except SyntaxError:
            return None
        return FileEdit(
            path=change.path, new_text=placement.text, edits=placement.edits, base_sha256=sha256_text(current)
        )

    return redo


async def check(candidate: Candidate, target: Target, env: CheckEnv) -> tuple[ValidationResult, Candidate]:
    """One answer judged on its own, as a task judges each of its answers: the verdict, and the candidate narrowed to
    the kept tests (unchanged when none was kept)."""
    session = UnitTestSession(target, None, env, 0.0)
    refused = await session.prepare()
    if refused is not None:
        return refused, candidate
    code = str(candidate.extra.get("generated_source") or candidate.content)
    assert session.ledger is not None
    session.judged.append(await judge_answer(env, session.ledger, code))
    ending = await session.finish()
    return ending.verdict, ending.candidate if ending.status == "completed" and ending.candidate else candidate


# --- ResultValidator's check of a test module on disk --------------------------------------------------------------
async def check_test_module(
    env: CheckEnv, output_file: str, content: str, *, target_path: str | None
) -> ValidationResult:
    """The checks on a test module given as text: it parses (and imports the target, when given); every test passes 3
    runs with different seeds (errors otherwise) and asserts something (a warning otherwise). Score: with a target,
    the formula of docs/validation.md for the project's tests of it with this module; without one, the share of its
    tests that pass."""
    tree, found = static_findings(output_file, content, target_path, env.config.trusted)
    if found or tree is None:
        return ValidationResult.from_findings(found, 0.0, run=False)
    refused = await sandbox_refusal(env.config.sandbox)
    if refused:
        return ValidationResult.from_findings([Finding(F.NO_SANDBOX, refused, file=output_file)], 0.0, run=False)
    seeds = list(env.config.test_seeds or [random.randrange(1, 2**31) for _ in range(RUNS)])
    timeout = env.config.test_timeout_seconds
    async with env.sandbox() as box:
        try:
            await ensure_pytest(box, env.python)
        except InterpreterError as exc:
            return ValidationResult.from_findings([Finding(F.INTERPRETER, str(exc), file=output_file)], 0.0)
        box.write(output_file, content)
        first = await run_pytest(box, env.python, [output_file], timeout=timeout, seed=seeds[0])
        findings = run_findings(first, output_file) + module_findings(first, output_file)
        unsafe = attempted(first)
        passing = [t.nodeid for t in first.passed if t.nodeid not in unsafe]
        later: list[PytestRun] = []
        if passing and not findings:
            later = await run_seeds(box, env.python, passing, seeds[1:], timeout=timeout)
        defs = def_lines(tree)
        for test in first.failed:
            findings.append(
                test_finding(
                    F.TEST_FAILED if test.outcome == "failed" else F.TEST_ERROR,
                    case_key(test.nodeid),
                    f"{test.outcome}: {test.message}".rstrip(": "),
                    defs,
                    output_file,
                    F.ERROR,
                )
            )
            bug = possible_bug(test, target_path)
            if bug is not None:
                findings.append(bug)
        for run in later:
            for test in run.tests.values():
                if test.outcome != "passed" and not any(f.test == case_key(test.nodeid) for f in findings):
                    words = f"is flaky: it passed with seed {seeds[0]}, then {test.outcome} with seed {run.seed}"
                    findings.append(
                        test_finding(F.FLAKY_TEST, case_key(test.nodeid), words, defs, output_file, F.ERROR)
                    )
        unsafe = attempted(first, *later)
        findings += behaviour_findings(
            unsafe, {t.nodeid: t.name for t in first.tests.values()}, output_file, severity=F.ERROR
        )
        for key in sorted({case_key(n) for n in passing}):
            if not asserts_something(tree, key):
                findings.append(test_finding(F.NO_ASSERTION, key, "asserts nothing", defs, output_file, F.WARNING))
        details: dict[str, Any] = run_details(first, box.sandboxed, env.python, seeds)
        total = len(first.tests)
        score = (len(passing) / total) if total else 0.0
        if target_path and not any(f.severity == F.ERROR for f in findings):
            module = module_name(Path(target_path))
            tests = sorted({*existing_test_files(box.root, module), output_file})
            baseline = await measure_baseline(box, env.python, target_path, module, timeout=timeout, test_files=tests)
            report = None
            if env.config.mutation:
                source = (box.root / target_path).read_text(encoding="utf-8")
                report = await analyse_mutants(
                    box,
                    env.python,
                    target_path,
                    module,
                    source,
                    baseline.coverage,
                    baseline.passing,
                    seconds=env.config.mutation_seconds,
                )
                details["mutation"] = {"score": report.score, "counts": report.counts()}
            details["coverage"] = baseline.totals.to_dict()
            score = validation_score(baseline.totals, report.score if report else None)
    if not box.sandboxed:
        findings.append(not_isolated_finding())
    return ValidationResult.from_findings(findings, round(score, 4), **details)


def cache_inputs(target: Target) -> list[Path]:
    """The files besides the target whose text changes what this task returns: its test module, the tests that
    import it (the baseline and mutation analysis run them), their conftest files, and the prompt's project context."""
    return [*tests_of(target.root, target.path, target.module), *context_files(target)]
