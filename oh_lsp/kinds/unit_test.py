"""The unit_test task kind: ask for pytest tests of a module, place them, and run them for real.

Checks, in order (each failure is a finding at its line):
1. the test module parses;
2. it imports the target module;
3. the workspace is trusted to run generated code;
4. pytest, with the project's interpreter, in a sandbox copy of the project, collects at least one of the new
   tests, and every new test passes.

Score: 0 when the module does not parse, import the target, or collect; otherwise the share of new tests that pass.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from oh_lsp.edits import Edit, FileEdit, whole_file_edit
from oh_lsp.errors import InterpreterError
from oh_lsp.extract import extract_python
from oh_lsp.kinds.base import Candidate, CheckEnv, Target
from oh_lsp.kinds.placement import merge_tests
from oh_lsp.kinds.test_layout import locate_tests
from oh_lsp.paths import module_name, sha256_text
from oh_lsp.tasks import QueuedTask
from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.pytest_runner import PytestRun, ensure_pytest, run_pytest
from oh_lsp.validation.result import ValidationResult
from oh_lsp.validation.sandbox import Sandbox

NAME = "unit_test"

SYSTEM_PROMPT = """You write pytest unit tests for Python code.
Answer with exactly one fenced ```python block holding a complete test module, and nothing else.
Rules:
- Import the module under test by its module path, exactly as given.
- Use pytest and the standard library only, plus what the module itself imports.
- Every test is a function named test_<something>; tests are deterministic and need no network.
- Never copy or redefine the code under test; test its real behaviour, including edge cases and errors."""


def build_messages(target: Target, task: QueuedTask, existing_tests: str | None = None) -> list[dict[str, str]]:
    parts = [
        f"Module path: {target.module}",
        f"File: {target.path.as_posix()}",
        f"Source of {target.path.as_posix()}:\n```python\n{target.text}\n```",
    ]
    location = locate_tests(target.root, target.path)
    if existing_tests is None and location.exists:
        existing_tests = (target.root / location.path).read_text(encoding="utf-8")
    if existing_tests:
        parts.append(f"Existing tests in {location.path.as_posix()} (do not repeat them):\n"
                     f"```python\n{existing_tests}\n```")
    instruction = task.description.strip() or f"Write unit tests for {target.module}."
    parts.append(f"Instruction: {instruction}")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]


def _duplicate_defs(tree: ast.Module) -> bool:
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return len(names) != len(set(names))


def make_candidate(answer: str, target: Target, task: QueuedTask | None = None) -> Candidate:
    """Take the test module out of `answer` and place it where the project's tests go."""
    code = extract_python(answer, prefer="def test")
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
    extra: dict[str, Any] = {"generated_source": code, "renamed": {}, "skipped": [], "tests": []}
    try:
        tree = ast.parse(code)
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
        change = FileEdit(path=path.as_posix(), new_text=content, edits=placement.edits,
                          base_sha256=sha256_text(existing) if existing is not None else None)
    files = [whole_file_edit(init.as_posix(), None, "") for init in location.init_files]
    files.append(change)
    edit = Edit(label=f"oh-lsp: tests for {target.module}", files=files)
    return Candidate(edit=edit, output_file=path.as_posix(), content=content, extra=extra)


def _test_names(tree: ast.Module) -> list[str]:
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")
            or isinstance(n, ast.ClassDef) and n.name.startswith("Test")]


def recompute(result: dict[str, Any]):  # -> Recompute
    """Redo the placement of the generated tests against the test module's current text."""
    generated = result.get("generated_source") or ""

    def redo(change: FileEdit, current: str) -> FileEdit | None:
        if change.path != result.get("output_file"):
            return None
        try:
            placement = merge_tests(current, generated)
        except SyntaxError:
            return None
        return FileEdit(path=change.path, new_text=placement.text, edits=placement.edits,
                        base_sha256=sha256_text(current))

    return redo


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


async def check(candidate: Candidate, target: Target | None, env: CheckEnv) -> ValidationResult:
    """Run the checks on the candidate's test module (see the module docstring)."""
    new_tests = candidate.extra.get("tests") or None
    files = {f.path: f.new_text for f in candidate.edit.files}
    return await check_test_module(env, candidate.output_file, candidate.content,
                                   target_path=target.path.as_posix() if target else None, new_tests=new_tests,
                                   files=files)


async def check_test_module(env: CheckEnv, output_file: str, content: str, *, target_path: str | None,
                            new_tests: list[str] | None = None,
                            files: dict[str, str] | None = None) -> ValidationResult:
    """The checks on one test module (`content`, to be placed at `output_file`) of the target at `target_path`.

    `files` are other files of the candidate to write into the sandbox first (e.g. new `__init__.py` files)."""
    target_module = module_name(Path(target_path)) if target_path else None
    try:
        tree = ast.parse(content)
    except SyntaxError as exc:
        return ValidationResult.from_findings([Finding(
            F.SYNTAX_ERROR, f"the test module does not parse: {exc.msg}", file=output_file,
            line=exc.lineno or 1, col=max((exc.offset or 1) - 1, 0))], 0.0)
    if target_module and not imports_module(tree, target_module):
        return ValidationResult.from_findings([Finding(
            F.TARGET_NOT_IMPORTED, f"the test module never imports {target_module}, so it cannot test it",
            file=output_file)], 0.0)
    if not env.config.trusted:
        return ValidationResult.from_findings([Finding(
            F.NOT_RUN_UNTRUSTED, "not run: workspace not trusted. Generated tests run only in a trusted workspace"
            " (set ohLsp.trusted, or OH_LSP_TRUSTED=true)", file=output_file)], 0.0, run=False)
    env.progress("running the generated tests")
    python = env.python
    async with Sandbox(env.root, env.scratch, secrets=env.config.secrets(), exclude=env.exclude) as box:
        for path, text in {**(files or {}), output_file: content}.items():
            box.write(path, text)
        try:
            await ensure_pytest(box, python)
        except InterpreterError as exc:
            return ValidationResult.from_findings([Finding(F.INTERPRETER, str(exc), file=output_file)], 0.0)
        selected = [f"{output_file}::{name}" for name in new_tests] if new_tests else [output_file]
        run = await run_pytest(box, python, selected, timeout=env.config.test_timeout_seconds)
        isolated = box.isolated
    findings = _findings(run, tree, output_file, target_path)
    considered = [t for t in run.tests.values() if t.outcome != "skipped"]
    passed = [t for t in considered if t.outcome == "passed"]
    score = len(passed) / len(considered) if considered and not run.collect_errors and not run.timed_out else 0.0
    details = {
        "interpreter": str(python),
        "isolated": isolated,
        "execution_result": {
            "exit_code": run.exit_code, "collected": run.collected, "passed": len(passed),
            "failed": len(considered) - len(passed), "skipped": len(run.tests) - len(considered),
            "duration_seconds": round(run.duration, 3), "timed_out": run.timed_out,
            "output_tail": run.output[-3000:],
        },
        "tests": {t.name: t.outcome for t in run.tests.values()},
    }
    if not isolated:
        findings.append(Finding(F.NOT_ISOLATED, "the tests ran as a plain subprocess (not isolated): no sandbox"
                                " such as bubblewrap is available", severity=F.INFO, file=output_file))
    return ValidationResult.from_findings(findings, score, **details)


def _def_lines(tree: ast.Module) -> dict[str, tuple[int, int, int]]:
    lines: dict[str, tuple[int, int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines.setdefault(node.name, (node.lineno, node.col_offset, node.end_lineno or node.lineno))
    return lines


def _findings(run: PytestRun, tree: ast.Module, output_file: str, target_path: str | None) -> list[Finding]:
    found: list[Finding] = []
    if run.timed_out:
        found.append(Finding(F.TIMEOUT, f"the tests did not finish within {run.duration:.0f}s and were stopped",
                             file=output_file))
    for error in run.collect_errors:
        text = error.get("longrepr", "")
        code = F.IMPORT_ERROR if ("ImportError" in text or "ModuleNotFoundError" in text) else F.COLLECTION_ERROR
        crash = error.get("crash") or {}
        line = crash.get("lineno", 1) if str(crash.get("path", "")).endswith(output_file) else 1
        message = _error_line(text) or "the test module could not be collected"
        found.append(Finding(code, message, file=output_file, line=line))
    if not run.collect_errors and not run.timed_out and run.collected == 0:
        found.append(Finding(F.NO_TESTS, "pytest collected no tests from the generated module", file=output_file))
    defs = _def_lines(tree)
    for test in run.failed:
        name = test.name.split("[", 1)[0]
        line, col, end = defs.get(name, (test.lineno or 1, 0, test.lineno or 1))
        code = F.TEST_FAILED if test.outcome == "failed" else F.TEST_ERROR
        found.append(Finding(code, f"{test.name} failed: {test.message}".strip(), file=output_file, line=line,
                             col=col, end_line=end, test=test.name))
        bug = _possible_bug(test, target_path)
        if bug:
            found.append(bug)
    return found


def _possible_bug(test: Any, target_path: str | None) -> Finding | None:
    """A failing test whose traceback ends inside the target module may have found a real bug: anchor it there."""
    if not target_path or not test.frames:
        return None
    last = test.frames[-1]
    path = str(last.get("path", "")).replace("\\", "/")
    if not (path == target_path or path.endswith("/" + target_path)):
        return None
    return Finding(F.POSSIBLE_BUG, f"{test.name} expected otherwise: {test.message}".strip(), severity=F.WARNING,
                   file=target_path, line=int(last.get("lineno", 1)), test=test.name)


def _error_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        stripped = line.strip()
        if stripped.startswith("E ") or "Error" in stripped:
            return stripped.lstrip("E ").strip()
    return ""


__all__ = ["NAME", "build_messages", "make_candidate", "check", "check_test_module", "recompute", "module_name"]
