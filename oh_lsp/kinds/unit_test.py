"""The unit_test task kind: ask for pytest tests of a module, place them, and keep only the ones that earn it.

Checks (see docs/validation.md):
1. static: the test module parses and imports the target; the workspace is trusted to run generated code;
2. run 1 (seed 1): pytest collects the new tests; failing ones are dropped, one at a time, not the whole file;
3. runs 2 and 3 (seeds 2 and 3) on the survivors: a test that fails now is flaky and dropped;
4. the kept tests, placed in the delivered module, run once more under coverage.py: together with the module's
   existing tests they must add line coverage of the target over the baseline of the existing tests alone.
"""

from __future__ import annotations

import ast
import asyncio
import random
from pathlib import Path
from typing import Any

from oh_lsp import progress_text
from oh_lsp.edits import Edit, FileEdit, Recompute, whole_file_edit
from oh_lsp.errors import InterpreterError
from oh_lsp.extract import extract_python, parse_python
from oh_lsp.kinds.base import Candidate, CheckEnv, Target
from oh_lsp.kinds.context import prompt_sections
from oh_lsp.kinds.placement import filter_generated, merge_tests
from oh_lsp.kinds.test_layout import locate_tests, tests_importing
from oh_lsp.paths import module_name, sha256_text
from oh_lsp.tasks import QueuedTask
from oh_lsp.validation import findings as F
from oh_lsp.validation.behaviour import attempted, behaviour_findings, module_findings
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.pytest_runner import CaseResult, Coverage, PytestRun, ensure_pytest, run_pytest
from oh_lsp.validation.result import ValidationResult
from oh_lsp.validation.sandbox import Sandbox, sandbox_refusal

NAME = "unit_test"
RUNS = 3

SYSTEM_PROMPT = """You write pytest unit tests for Python code.
Answer with exactly one fenced ```python block holding a complete test module, and nothing else.
Rules:
- Import the module under test by its module path, exactly as given.
- Use pytest and the standard library only, plus what the module itself imports.
- Every test is a function named test_<something>; tests are deterministic and need no network.
- Use the project's fixtures from conftest.py where they fit; don't redefine them.
- Never copy or redefine the code under test; test its real behaviour, including edge cases and errors."""


# --- prompt --------------------------------------------------------------------------------------------------------
def build_messages(target: Target, task: QueuedTask, context_tokens: int | None = None) -> list[dict[str, str]]:
    location = locate_tests(target.root, target.path)
    existing = (target.root / location.path).read_text(encoding="utf-8") if location.exists else ""
    instruction = task.description.strip() or f"Write unit tests for {target.module}."
    user = prompt_sections(
        target,
        task,
        context_tokens=context_tokens,
        instruction=instruction,
        extra=[
            (2, f"Existing tests in {location.path.as_posix()} (do not repeat them)", existing),
        ],
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --- candidate -----------------------------------------------------------------------------------------------------
def make_candidate(answer: str, target: Target, task: QueuedTask | None = None) -> Candidate:
    """Take the test module out of `answer` and place it where the project's tests go."""
    return place(extract_python(answer, prefer="def test"), target)


def place(code: str, target: Target) -> Candidate:
    location = locate_tests(target.root, target.path)
    path = location.path
    existing: str | None = None
    if location.exists:
        existing = (target.root / path).read_text(encoding="utf-8")
        try:
            ast.parse(existing)
        except SyntaxError:  # the user's module does not parse: leave it alone, write a new file beside it
            path, existing = path.with_name(f"{path.stem}_generated.py"), None
            if (target.root / path).exists():
                existing = (target.root / path).read_text(encoding="utf-8")
    extra: dict[str, Any] = {
        "generated_source": code,
        "renamed": {},
        "skipped": [],
        "tests": [],
        "existing_source": existing,
    }
    try:
        tree = parse_python(code)
    except (SyntaxError, ValueError):
        tree = None
    if tree is None:
        content = code  # the checks report the syntax error at its line in the model's code
        change = whole_file_edit(path.as_posix(), existing, content)
    elif existing is None and not _duplicate_defs(tree):
        content = code
        extra["tests"] = _test_names(tree)
        change = whole_file_edit(path.as_posix(), None, content)
    else:
        placement = merge_tests(existing or "", code)
        content = placement.text
        extra.update(tests=placement.tests, renamed=placement.renamed, skipped=placement.skipped)
        change = FileEdit(
            path=path.as_posix(),
            new_text=content,
            edits=placement.edits,
            base_sha256=sha256_text(existing) if existing is not None else None,
        )
    files = [whole_file_edit(init.as_posix(), None, "") for init in location.init_files]
    files.append(change)
    edit = Edit(label=f"oh-lsp: tests for {target.module}", files=files)
    return Candidate(edit=edit, output_file=path.as_posix(), content=content, extra=extra)


def _duplicate_defs(tree: ast.Module) -> bool:
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return len(names) != len(set(names))


def _test_names(tree: ast.Module) -> list[str]:
    return [
        n.name
        for n in tree.body
        if (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test"))
        or (isinstance(n, ast.ClassDef) and n.name.startswith("Test"))
    ]


def narrow(candidate: Candidate, target: Target, drop: set[str]) -> Candidate:
    """The candidate with the `drop`ped tests (and the imports only they used) taken out, placed again."""
    renamed_back = {new: old for old, new in candidate.extra.get("renamed", {}).items()}

    def as_generated(key: str) -> str:  # the name the model gave the test (placement may have renamed it)
        head, _, rest = key.partition("::")
        head = renamed_back.get(head, head)
        return f"{head}::{rest}" if rest else head

    code = filter_generated(candidate.extra["generated_source"], {as_generated(key) for key in drop})
    narrowed = place(code, target)
    narrowed.extra["dropped"] = sorted(drop)
    return narrowed


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


# --- checks --------------------------------------------------------------------------------------------------------
def imports_module(tree: ast.Module, module: str) -> bool:
    """Whether the test module imports `module` (absolutely, or relatively by its last name)."""
    last = module.rsplit(".", 1)[-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name == module or a.name.startswith(module + ".") for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level == 0:
                if source == module or source.startswith(module + "."):
                    return True
                if any(f"{source}.{a.name}" == module for a in node.names):
                    return True
            elif source.rsplit(".", 1)[-1] == last or any(a.name == last for a in node.names):
                return True
    return False


def static_findings(
    output_file: str, content: str, target_path: str | None, trusted: bool
) -> tuple[ast.Module | None, list[Finding]]:
    try:
        tree = parse_python(content)
    except SyntaxError as exc:
        return None, [F.syntax_error(exc, "the test module", output_file)]
    module = module_name(Path(target_path)) if target_path else None
    if module and not imports_module(tree, module):
        return tree, [
            Finding(
                F.TARGET_NOT_IMPORTED, f"the test module never imports {module}, so it cannot test it", file=output_file
            )
        ]
    if not trusted:
        return tree, [
            Finding(
                F.NOT_RUN_UNTRUSTED,
                "not run: workspace not trusted. Generated tests run only in a"
                " trusted workspace (set ohLsp.trusted, or OH_LSP_TRUSTED=true)",
                file=output_file,
            )
        ]
    return tree, []


async def check(candidate: Candidate, target: Target | None, env: CheckEnv) -> tuple[ValidationResult, Candidate]:
    """Run the checks (module docstring). Returns the verdict and the candidate narrowed to the kept tests."""
    return await check_tests(env, candidate, target)


async def check_test_module(
    env: CheckEnv, output_file: str, content: str, *, target_path: str | None
) -> ValidationResult:
    """The checks on a test module given as text (`ResultValidator`'s way in): every test must pass, 3 times."""
    candidate = Candidate(
        edit=Edit("", [FileEdit(output_file, content)]), output_file=output_file, content=content, extra={"tests": None}
    )
    target = None
    if target_path:
        text = (env.root / target_path).read_text(encoding="utf-8")
        target = Target(env.root, Path(target_path), text, module_name(Path(target_path)), sha256_text(text))
    verdict, _ = await check_tests(env, candidate, target, narrowing=False)
    return verdict


async def check_tests(
    env: CheckEnv, candidate: Candidate, target: Target | None, *, narrowing: bool = True
) -> tuple[ValidationResult, Candidate]:
    output_file = candidate.output_file
    target_path = target.path.as_posix() if target else None
    tree, found = static_findings(output_file, candidate.content, target_path, env.config.trusted)
    if found:
        return ValidationResult.from_findings(found, 0.0, run=False), candidate
    assert tree is not None
    seeds = list(env.config.test_seeds or [random.randrange(1, 2**31) for _ in range(RUNS)])
    python = env.python
    new_tests = candidate.extra.get("tests")
    selected = [f"{output_file}::{name}" for name in new_tests] if new_tests else [output_file]
    timeout = env.config.test_timeout_seconds
    refused = await sandbox_refusal(env.config.sandbox)
    if refused:
        return ValidationResult.from_findings(
            [Finding(F.NO_SANDBOX, refused, file=output_file)], 0.0, run=False
        ), candidate
    async with env.sandbox() as box:
        try:
            await ensure_pytest(box, python)
        except InterpreterError as exc:
            return ValidationResult.from_findings([Finding(F.INTERPRETER, str(exc), file=output_file)], 0.0), candidate
        for edit in candidate.edit.files:
            box.write(edit.path, edit.new_text)
        env.progress(progress_text.tests_run(1, RUNS))  # the seeds are recorded with the findings
        first, baseline = await asyncio.gather(
            run_pytest(box, python, selected, timeout=timeout, seed=seeds[0]),
            _baseline(box, python, target, selected, timeout) if target else _no_coverage(),
        )
        broken = _run_findings(first, tree, output_file) + module_findings(first, output_file)
        unsafe = attempted(first)  # tried what a test must not: dropped like a failure (validation/behaviour.py)
        names = {t.nodeid: t.name for t in first.tests.values()}
        if broken or not [t for t in first.passed if t.nodeid not in unsafe]:
            findings = broken + _dropped_findings(first.failed, [], tree, output_file, target_path, final=True)
            findings += behaviour_findings(unsafe, names, output_file, severity=F.ERROR)
            return _verdict(findings, 0.0, first, box.sandboxed, python, seeds), candidate
        passing = [t.nodeid for t in first.passed if t.nodeid not in unsafe]
        if any(a["kind"] == "project" for tried in unsafe.values() for a in tried):  # the copy was changed
            await box.reset()
            for edit in candidate.edit.files:
                box.write(edit.path, edit.new_text)
        env.progress(progress_text.tests_rerun(len(passing), RUNS))
        second, third = await asyncio.gather(
            run_pytest(box, python, passing, timeout=timeout, seed=seeds[1], cover=target_path),
            run_pytest(box, python, passing, timeout=timeout, seed=seeds[2]),
        )
        flaky = {
            t.nodeid: (run.seed, t)
            for run in (second, third)
            for t in run.tests.values()
            if t.nodeid in passing and t.outcome != "passed"
        }
        failed = first.failed
        unsafe = attempted(first, second, third)
        kept = [nodeid for nodeid in passing if nodeid not in flaky and nodeid not in unsafe]
        drop = {_test_key(t.nodeid) for t in failed} | {_test_key(n) for n in flaky} | {_test_key(n) for n in unsafe}
        dropped = _dropped_findings(
            failed, list(flaky.values()), tree, output_file, target_path, final=not kept or not narrowing
        )
        dropped += behaviour_findings(
            unsafe, names, output_file, severity=F.ERROR if not kept or not narrowing else F.WARNING
        )
        if not kept:
            return _verdict(dropped, 0.0, first, box.sandboxed, python, seeds), candidate
        findings = dropped
        final, final_candidate = second, candidate
        if drop and narrowing and target:  # run what will be delivered: the module without the dropped tests
            env.progress(progress_text.kept_tests_run())
            final_candidate = narrow(candidate, target, drop)
            for edit in final_candidate.edit.files:
                box.write(edit.path, edit.new_text)
            final = await run_pytest(box, python, kept, timeout=timeout, seed=seeds[0], cover=target_path)
            findings = dropped + _run_findings(final, ast.parse(final_candidate.content), output_file)
            findings += [
                f for t in final.failed for f in _dropped_findings([t], [], tree, output_file, target_path, final=True)
            ]
    coverage = _coverage_report(baseline, final.coverage)
    if target is not None and coverage["gained_lines"] <= 0 and not any(f.severity == F.ERROR for f in findings):
        findings.append(
            Finding(
                F.NO_COVERAGE_GAIN,
                f"the kept tests add no line coverage of {target_path}"
                f" (before {coverage['before']:.1f}%, after {coverage['after']:.1f}%)",
                file=output_file,
            )
        )
    total = len(first.tests)
    pass_rate = len(kept) / total if total else 0.0
    score = pass_rate * (0.5 + 0.5 * coverage["after"] / 100.0) if target else pass_rate
    verdict = _verdict(
        findings,
        round(score, 4),
        first,
        box.sandboxed,
        python,
        seeds,
        coverage=coverage,
        kept=[_test_key(n) for n in kept],
        dropped=sorted(drop),
    )
    return verdict, final_candidate


async def _baseline(box: Sandbox, python: Path, target: Target, new_tests: list[str], timeout: float) -> Coverage:
    """Coverage of the target by its existing tests alone (the new ones deselected). With no existing tests this is
    what merely importing the module runs: collecting the new test module imports it."""
    files = {p.as_posix() for p in tests_importing(box.root, target.module)}
    files |= {nodeid.split("::", 1)[0] for nodeid in new_tests}
    # new tests are named by node id; a whole module under test (the validator's case) by its path
    run = await run_pytest(
        box, python, sorted(files), timeout=timeout, cover=target.path.as_posix(), deselect=new_tests
    )
    return run.coverage or Coverage()


async def _no_coverage() -> None:
    return None


def _coverage_report(baseline: Coverage | None, final: Coverage | None) -> dict[str, Any]:
    before = baseline or Coverage()
    after = before.union(final or Coverage())
    return {
        "before": round(before.percent, 2),
        "after": round(after.percent, 2),
        "gained_lines": len(after.executed - before.executed),
        "statements": len(after.statements),
    }


def _test_key(nodeid: str) -> str:
    """`tests/x.py::TestA::test_b[1]` -> `TestA::test_b`; `tests/x.py::test_c` -> `test_c`."""
    parts = nodeid.split("::")[1:] if "::" in nodeid else [nodeid]
    return "::".join(p.split("[", 1)[0] for p in parts)


def _def_lines(tree: ast.Module) -> dict[str, tuple[int, int, int]]:
    lines: dict[str, tuple[int, int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines.setdefault(node.name, (node.lineno, node.col_offset, node.end_lineno or node.lineno))
    return lines


def _run_findings(run: PytestRun, tree: ast.Module, output_file: str) -> list[Finding]:
    """What stops the module as a whole: a timeout, a collection error, nothing collected."""
    found: list[Finding] = []
    if run.timed_out:
        found.append(
            Finding(
                F.TIMEOUT, f"the tests did not finish within {run.duration:.0f}s and were stopped", file=output_file
            )
        )
    for error in run.collect_errors:
        text = error.get("longrepr", "")
        code = F.IMPORT_ERROR if ("ImportError" in text or "ModuleNotFoundError" in text) else F.COLLECTION_ERROR
        crash = error.get("crash") or {}
        line = crash.get("lineno", 1) if str(crash.get("path", "")).endswith(output_file) else 1
        found.append(
            Finding(code, _error_line(text) or "the test module could not be collected", file=output_file, line=line)
        )
    if not run.collect_errors and not run.timed_out and run.collected == 0:
        found.append(Finding(F.NO_TESTS, "pytest collected no tests from the generated module", file=output_file))
    return found


def _dropped_findings(
    failed: list[CaseResult],
    flaky: list[tuple[int | None, CaseResult]],
    tree: ast.Module,
    output_file: str,
    target_path: str | None,
    *,
    final: bool,
) -> list[Finding]:
    """One finding per dropped test, at its function; a warning when other tests were kept, else an error."""
    severity = F.ERROR if final else F.WARNING
    defs = _def_lines(tree)
    found = []
    for test, code, why in [(t, F.TEST_FAILED if t.outcome == "failed" else F.TEST_ERROR, "failed") for t in failed] + [
        (t, F.FLAKY_TEST, f"is flaky: it passed, then failed with seed {seed}") for seed, t in flaky
    ]:
        name = test.name.split("[", 1)[0]
        line, col, end = defs.get(name, (test.lineno or 1, 0, test.lineno or 1))
        found.append(
            Finding(
                code,
                f"{test.name} {why}: {test.message}".strip(),
                severity=severity,
                file=output_file,
                line=line,
                col=col,
                end_line=end,
                test=test.name,
            )
        )
        bug = _possible_bug(test, target_path)
        if bug:
            found.append(bug)
    return found


def _possible_bug(test: CaseResult, target_path: str | None) -> Finding | None:
    """A failing test whose traceback ends inside the target module may have found a real bug: anchor it there."""
    if not target_path or not test.frames:
        return None
    last = test.frames[-1]
    path = str(last.get("path", "")).replace("\\", "/")
    if not (path == target_path or path.endswith("/" + target_path)):
        return None
    return Finding(
        F.POSSIBLE_BUG,
        f"{test.name} expected otherwise: {test.message}".strip(),
        severity=F.WARNING,
        file=target_path,
        line=int(last.get("lineno", 1)),
        test=test.name,
    )


def _verdict(
    findings: list[Finding], score: float, run: PytestRun, isolated: bool, python: Path, seeds: list[int], **extra: Any
) -> ValidationResult:
    considered = [t for t in run.tests.values() if t.outcome != "skipped"]
    passed = [t for t in considered if t.outcome == "passed"]
    if not isolated:
        findings = [
            *findings,
            Finding(
                F.NOT_ISOLATED,
                "the tests ran without a sandbox (not isolated), as OH_LSP_SANDBOX=none asked",
                severity=F.INFO,
            ),
        ]
    details = {
        "interpreter": str(python),
        "isolated": isolated,
        "seeds": seeds,
        "execution_result": {
            "exit_code": run.exit_code,
            "collected": run.collected,
            "passed": len(passed),
            "failed": len(considered) - len(passed),
            "skipped": len(run.tests) - len(considered),
            "duration_seconds": round(run.duration, 3),
            "timed_out": run.timed_out,
            "output_tail": run.output[-3000:],
        },
        "tests": {t.name: t.outcome for t in run.tests.values()},
        "failures": {t.name: t.longrepr[-4000:] for t in run.failed},
        **extra,
    }
    return ValidationResult.from_findings(findings, score, **details)


def _error_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        stripped = line.strip()
        if stripped.startswith("E ") or "Error" in stripped:
            return stripped.lstrip("E ").strip()
    return ""
