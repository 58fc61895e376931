"""The function a failing generated test was testing, in the target module: where the diagnostic of a failed
module-wide task belongs (a task about one symbol is anchored at that symbol instead).

Read from what the task kind recorded, in this order:
1. the test's traceback (`validation.details.failures`): its first frame in the target, the function the test entered;
2. a `possible-bug` finding of the test (where its traceback ended in the target);
3. the test's own code (the rejected candidate): the first call, in source order, that names a function or class
   the target defines (`divide(1, 0)`, `calc.divide(1, 0)`, `Stack().push(1)`; imports' aliases followed).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from oh_lsp.lsp.symbols import Symbol, symbol_at, symbols
from oh_lsp.validation.findings import POSSIBLE_BUG

_FRAME = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+):", re.MULTILINE)


def _in_target(path: str, target: str) -> bool:
    path = path.replace("\\", "/")
    return path == target or path.endswith("/" + target)


def _from_frames(traceback: str, target: str, source: str) -> Symbol | None:
    for frame in _FRAME.finditer(traceback or ""):
        if _in_target(frame["path"], target):
            found = symbol_at(source, int(frame["line"]))
            if found is not None:
                return found
    return None


def _test_def(tree: ast.Module, test: str) -> ast.AST | None:
    """The function of `test` (`test_x` or `TestA::test_x`, parameters dropped) in the test module."""
    *classes, name = test.split("[", 1)[0].split("::")
    body: list[ast.stmt] = tree.body
    for class_name in classes:
        found = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
        if found is None:
            return None
        body = found.body
    return next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> imported name, for `from m import f as g`."""
    return {
        alias.asname: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname
    }


def _from_calls(test_source: str, test: str, source: str) -> Symbol | None:
    try:
        tree = ast.parse(test_source)
    except (SyntaxError, ValueError):
        return None
    function = _test_def(tree, test)
    if function is None:
        return None
    aliases = _aliases(tree)
    defined = symbols(source)
    calls = sorted((n for n in ast.walk(function) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        if isinstance(call.func, ast.Name):
            name, top_level_only = aliases.get(call.func.id, call.func.id), True
        elif isinstance(call.func, ast.Attribute):
            name, top_level_only = call.func.attr, False
        else:
            continue
        for symbol in defined:  # outer ones first: a module's function before a method of the same name
            if symbol.qualname.rsplit(".", 1)[-1] == name and (not top_level_only or "." not in symbol.qualname):
                return symbol
    return None


def function_under_test(
    test: str, target: str, source: str, result: dict[str, Any], test_source: str | None
) -> Symbol | None:
    """The function or class of the target (path `target`, text `source`) that the failing `test` tests, or None.
    `result` is the task's result; `test_source` the test module that ran (the rejected candidate)."""
    validation = result.get("validation") or {}
    traceback = ((validation.get("details") or {}).get("failures") or {}).get(test)
    found = _from_frames(traceback or "", target, source)
    if found is None:
        for finding in [*validation.get("errors", []), *validation.get("warnings", [])]:
            if finding.get("code") == POSSIBLE_BUG and finding.get("test") == test and finding.get("file") == target:
                found = symbol_at(source, int(finding.get("line") or 0))
                if found is not None:
                    break
    if found is None and test_source:
        found = _from_calls(test_source, test, source)
    return found
