"""The refactoring task kind: change a module, or one function or class in it, as the user instructs, keeping its
behaviour and its public names.

For a symbol (`metadata["symbol"]`, a dotted name) the model answers with the new definition only, and it replaces
the symbol's lines; for a module it answers with the whole module, and only the lines that differ are replaced.
Everything else in the user's file stays as it was. The result carries a unified diff.

Checks:
1. the new module parses;
2. every public name of the original is still defined ("public name removed" otherwise);
3. the existing tests that import the module pass against the new code in the sandbox; a test that passes on the
   original but fails now is "existing tests broken", naming the test. With no such tests the change cannot be
   verified: a `not-verified` warning, and the score stays at 0.5.

Score: 1.0 when verified by passing tests, 0.5 when no test covers the module, 0 when a check fails.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Any

from oh_lsp import progress_text
from oh_lsp.edits import Recompute, TextEdit
from oh_lsp.errors import InterpreterError
from oh_lsp.extract import extract_python, parse_python
from oh_lsp.kinds.base import Candidate, CheckEnv, Target
from oh_lsp.kinds.context import context_files, prompt_sections, user_message
from oh_lsp.kinds.placement import apply_text_edits
from oh_lsp.kinds.pysource import find_symbol, line_edits, public_names, unified_diff
from oh_lsp.kinds.test_layout import tests_importing, tests_of
from oh_lsp.tasks import QueuedTask
from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.pytest_runner import ensure_pytest, run_pytest
from oh_lsp.validation.result import ValidationResult
from oh_lsp.validation.sandbox import sandbox_refusal

NAME = "refactoring"
PROMPT_VERSION = "1"  # part of the result cache's key (kinds/base.py)


def _scope(task: QueuedTask | None) -> str | None:
    symbol = task.metadata.get("symbol") if task else None
    return symbol if isinstance(symbol, str) and symbol else None


def build_messages(target: Target, task: QueuedTask, context_tokens: int | None = None) -> list[dict[str, str]]:
    scope = _scope(task)
    answer = f"the complete new definition of `{scope}` only" if scope else "the complete new module"
    system = (
        "You refactor Python code as instructed. Keep its behaviour and every public name (functions,"
        " classes, methods, module constants) so that existing callers and tests keep working. Keep comments"
        f" that still apply. Answer with exactly one fenced ```python block holding {answer}."
    )
    instruction = task.description.strip() or "Refactor for readability without changing behaviour."
    if scope:
        instruction += f" Refactor only `{scope}`."
    prompt = prompt_sections(target, task, context_tokens=context_tokens, instruction=instruction)
    return [{"role": "system", "content": system}, user_message(prompt)]


def _symbol_lines(tree: ast.Module, scope: str) -> tuple[int, int, int]:
    """(first line incl. decorators, last line, indentation) of `scope`, 1-based."""
    node = find_symbol(tree, scope)
    if node is None:
        raise ValueError(f"`{scope}` is not defined in the module")
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first, node.end_lineno or node.lineno, node.col_offset


def splice(original: str, code: str, scope: str) -> tuple[str, list[TextEdit]]:
    """Replace the lines of `scope` in `original` by `code` (re-indented to the symbol's indentation)."""
    first, last, indent = _symbol_lines(ast.parse(original), scope)
    body = textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", " " * indent)
    edit = TextEdit(first - 1, 0, last, 0, body)
    return apply_text_edits(original, [edit]), [edit]


def make_candidate(answer: str, target: Target, task: QueuedTask | None = None) -> Candidate:
    code = extract_python(answer)
    scope = _scope(task)
    path = target.path.as_posix()
    try:
        content, edits = splice(target.text, code, scope) if scope else (code, line_edits(target.text, code))
    except (SyntaxError, ValueError):
        content, edits = code, line_edits(target.text, code)
    return Candidate.in_place(
        target,
        content,
        edits,
        f"oh-lsp: refactor {scope or target.module}",
        {"answer_code": code, "scope": scope, "diff": unified_diff(target.text, content, path)},
    )


def recompute(result: dict[str, Any]) -> Recompute:
    """A refactoring is only delivered against the text it was made and tested for."""
    return lambda change, current: None


async def check(candidate: Candidate, target: Target, env: CheckEnv) -> tuple[ValidationResult, Candidate]:
    path = candidate.output_file
    try:
        new_tree = parse_python(candidate.content)
    except SyntaxError as exc:
        return ValidationResult.from_findings([F.syntax_error(exc, "the refactored module", path)], 0.0), candidate
    before = public_names(ast.parse(target.text))
    after = public_names(new_tree)
    removed = [
        Finding(
            F.PUBLIC_NAME_REMOVED,
            f"public name `{name}` was removed or renamed; callers would break",
            file=path,
            line=line,
        )
        for name, line in before.items()
        if name not in after
    ]
    if removed:
        return ValidationResult.from_findings(removed, 0.0, diff=candidate.extra["diff"]), candidate
    tests = [p.as_posix() for p in tests_importing(env.root, target.module)]
    if not tests:
        return ValidationResult.from_findings(
            [
                Finding(
                    F.NOT_VERIFIED,
                    f"no existing test imports {target.module}, so the refactoring could not be verified;"
                    " generate tests first (oh-lsp generate-tests) or lower the quality threshold",
                    severity=F.WARNING,
                    file=path,
                )
            ],
            0.5,
            diff=candidate.extra["diff"],
            tests=[],
        ), candidate
    if not env.config.trusted:
        return ValidationResult.from_findings(
            [
                Finding(
                    F.NOT_RUN_UNTRUSTED,
                    "not run: workspace not trusted, so the existing tests were not run against the"
                    " refactoring (set ohLsp.trusted, or OH_LSP_TRUSTED=true)",
                    file=path,
                )
            ],
            0.0,
            diff=candidate.extra["diff"],
        ), candidate
    return await _run_existing_tests(candidate, target, env, tests), candidate


async def _run_existing_tests(
    candidate: Candidate, target: Target, env: CheckEnv, tests: list[str]
) -> ValidationResult:
    python = env.python
    timeout = env.config.test_timeout_seconds
    refused = await sandbox_refusal(env.config.sandbox)
    if refused:
        return ValidationResult.from_findings([Finding(F.NO_SANDBOX, refused, file=candidate.output_file)], 0.0)
    env.progress(progress_text.existing_tests_run(len(tests)))
    async with env.sandbox() as box:
        try:
            await ensure_pytest(box, python)
        except InterpreterError as exc:
            return ValidationResult.from_findings([Finding(F.INTERPRETER, str(exc), file=candidate.output_file)], 0.0)
        box.write(candidate.output_file, candidate.content)
        after = await run_pytest(box, python, tests, timeout=timeout)
        broken_ids = [t.nodeid for t in after.failed]
        baseline = None
        if broken_ids or after.collect_errors:
            box.write(target.path, target.text)  # the same tests on the original code tell whose fault it is
            baseline = await run_pytest(box, python, tests, timeout=timeout)
        isolated = box.sandboxed
    findings: list[Finding] = []
    already_failing = {t.nodeid for t in baseline.failed} if baseline else set()
    for test in after.failed:
        nodeid_file = test.nodeid.split("::", 1)[0]
        if test.nodeid in already_failing:
            findings.append(
                Finding(
                    F.TEST_FAILED,
                    f"{test.nodeid} fails before and after the refactoring",
                    severity=F.WARNING,
                    file=nodeid_file,
                    line=test.lineno or 1,
                    test=test.name,
                )
            )
            continue
        findings.append(
            Finding(
                F.EXISTING_TESTS_BROKEN,
                f"the refactoring breaks {test.nodeid}: {test.message}",
                file=nodeid_file,
                line=test.lineno or 1,
                test=test.name,
            )
        )
    for error in after.collect_errors:
        if baseline is None or not baseline.collect_errors:
            findings.append(
                Finding(
                    F.EXISTING_TESTS_BROKEN,
                    f"{error.get('nodeid')} no longer imports:"
                    f" {str(error.get('longrepr', '')).strip().splitlines()[-1:]}",
                    file=error.get("nodeid") or candidate.output_file,
                )
            )
    if after.timed_out:
        findings.append(Finding(F.TIMEOUT, "the existing tests did not finish in time", file=candidate.output_file))
    if not isolated:
        findings.append(Finding(F.NOT_ISOLATED, "the tests ran as a plain subprocess (not isolated)", severity=F.INFO))
    passed = len(after.passed)
    score = 1.0 if not any(f.severity == F.ERROR for f in findings) else 0.0
    return ValidationResult.from_findings(
        findings,
        score,
        diff=candidate.extra["diff"],
        tests=tests,
        isolated=isolated,
        interpreter=str(python),
        execution_result={"passed": passed, "failed": len(after.failed), "collected": after.collected},
    )


def cache_inputs(target: Target) -> list[Path]:
    """The files besides the target whose text changes what this task returns: the tests that must stay green, and the project context of the prompt."""
    return [*tests_of(target.root, target.path, target.module), *context_files(target)]
