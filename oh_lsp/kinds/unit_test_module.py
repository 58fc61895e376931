"""The generated test module of a unit_test task: where it goes in the project and how its tests are placed there
(`place`), what a static look at it finds (`static_findings`), and the findings about its runs: what stops the module
as a whole (`run_findings`) and a failing test that may have found a real bug in the target (`possible_bug`).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from oh_lsp.edits import Edit, FileEdit, whole_file_edit
from oh_lsp.extract import parse_python
from oh_lsp.kinds.base import Candidate, Target
from oh_lsp.kinds.placement import merge_tests
from oh_lsp.kinds.test_layout import locate_tests
from oh_lsp.paths import module_name, sha256_text
from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.pytest_runner import CaseResult, PytestRun


# --- placing -------------------------------------------------------------------------------------------------------
def place(code: str, target: Target) -> Candidate:
    """The generated test module `code` placed where the project's tests of `target` go: a new file, or added to the
    existing test module through its AST (`extra["renamed"]` maps a generated test's name to its placed name)."""
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
        extra["tests"] = top_level_tests(tree)
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


def top_level_tests(tree: ast.Module) -> list[str]:
    """The module's top-level tests: `test*` functions, `Test*` classes, and `unittest.TestCase` classes whatever
    their name (pytest collects those too)."""
    return [
        n.name
        for n in tree.body
        if (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test"))
        or (isinstance(n, ast.ClassDef) and (n.name.startswith("Test") or any(_test_case(b) for b in n.bases)))
    ]


def _test_case(base: ast.expr) -> bool:
    name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
    return name.endswith("TestCase")


def case_key(nodeid: str) -> str:
    """`tests/x.py::TestA::test_b[1]` -> `TestA::test_b`; `tests/x.py::test_c` -> `test_c`."""
    parts = nodeid.split("::")[1:] if "::" in nodeid else [nodeid]
    return "::".join(p.split("[", 1)[0] for p in parts)


# --- static checks -------------------------------------------------------------------------------------------------
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
        return tree, [untrusted_finding(output_file)]
    return tree, []


def untrusted_finding(file: str | None) -> Finding:
    return Finding(
        F.NOT_RUN_UNTRUSTED,
        "not run: workspace not trusted. Generated tests run only in a"
        " trusted workspace (set ohLsp.trusted, or OH_LSP_TRUSTED=true)",
        file=file,
    )


# --- findings about runs -------------------------------------------------------------------------------------------
def def_lines(tree: ast.Module) -> dict[str, tuple[int, int, int]]:
    """name -> (first line, column, last line) of every function and class of a module."""
    lines: dict[str, tuple[int, int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines.setdefault(node.name, (node.lineno, node.col_offset, node.end_lineno or node.lineno))
    return lines


def run_findings(run: PytestRun, output_file: str) -> list[Finding]:
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
            Finding(code, error_line(text) or "the test module could not be collected", file=output_file, line=line)
        )
    if not run.collect_errors and not run.timed_out and run.collected == 0:
        found.append(Finding(F.NO_TESTS, "pytest collected no tests from the generated module", file=output_file))
    return found


def possible_bug(test: CaseResult, target_path: str | None) -> Finding | None:
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


def error_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        stripped = line.strip()
        if stripped.startswith("E ") or "Error" in stripped:
            return stripped.lstrip("E ").strip()
    return ""


def run_details(run: PytestRun, isolated: bool, python: Path, seeds: list[int]) -> dict[str, Any]:
    """What a verdict's details say about a run (`ResultValidator`'s `execution_result`, each test's outcome, failures)."""
    considered = [t for t in run.tests.values() if t.outcome != "skipped"]
    passed = [t for t in considered if t.outcome == "passed"]
    return {
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
    }


def not_isolated_finding() -> Finding:
    return Finding(
        F.NOT_ISOLATED,
        "the tests ran without a sandbox (not isolated), as OH_LSP_SANDBOX=none asked",
        severity=F.INFO,
    )


def test_finding(
    code: str, key: str, words: str, defs: dict[str, tuple[int, int, int]], output_file: str, severity: str
) -> Finding:
    """A finding about one test (`key`: `test_x` or `TestA::test_b`), at its function in the test module."""
    line, col, end = defs.get(key.rsplit("::", 1)[-1], (1, 0, 1))
    return Finding(
        code, f"{key} {words}", severity=severity, file=output_file, line=line, col=col, end_line=end, test=key
    )
