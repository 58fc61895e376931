"""Code actions: what oh-lsp offers on a Python file, at the cursor, and on its own diagnostics.

Kinds are the ones editors group by: `source.*` for the whole module (VS Code's "Source Action…"), `refactor.*`
for the function or class under the cursor, `quickfix` on a diagnostic: "Regenerate with feedback" on any of
oh-lsp's, and "Generate tests for this" on an uncovered range or a surviving mutant (a task aimed at that gap).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t
from pygls.uris import to_fs_path

from oh_lsp.lsp import ids as cmd
from oh_lsp.lsp.ids import (
    DIAGNOSTIC_SOURCE,
    MODULE_DOCS,
    MODULE_TESTS,
    QUICKFIX,
    SYMBOL_DOCS,
    SYMBOL_REFACTOR,
    SYMBOL_TESTS,
)
from oh_lsp.lsp.symbols import Symbol, symbol_at
from oh_lsp.paths import module_name

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.lsp.diagnostics import DiagnosticStore
    from oh_lsp.lsp.folders import Folders


def _action(
    title: str, kind: str, command: str, arguments: dict[str, Any], diagnostics: list[t.Diagnostic] | None = None
) -> t.CodeAction:
    return t.CodeAction(
        title=title,
        kind=kind,
        diagnostics=diagnostics,
        command=t.Command(title=title, command=command, arguments=[arguments]),
    )


def _wanted(kind: str, only: Iterable[str] | None) -> bool:
    """LSP's `only` filter: a kind matches a requested kind and its sub-kinds (`refactor` matches `refactor.x`)."""
    if not only:
        return True
    return any(kind == want or kind.startswith(want + ".") for want in only)


def code_actions(
    uri: str,
    module: str,
    symbol: Symbol | None,
    kinds: Iterable[str],
    diagnostics: Iterable[t.Diagnostic] = (),
    only: Iterable[str] | None = None,
) -> list[t.CodeAction]:
    """The actions for a Python file `uri` (module `module`), with `symbol` under the cursor (or None).

    `kinds` are the task kinds this version can run; actions for the others are not offered."""
    kinds = set(kinds)
    only = [str(k) for k in only] if only else None
    actions: list[t.CodeAction] = []
    if "unit_test" in kinds:
        actions.append(_action(f"Generate tests for {module}", MODULE_TESTS, cmd.GENERATE_TESTS, {"uri": uri}))
    if "documentation" in kinds:
        actions.append(_action(f"Document {module}", MODULE_DOCS, cmd.DOCUMENT, {"uri": uri}))
    if symbol is not None:
        target = {"uri": uri, "symbol": symbol.qualname}
        if "unit_test" in kinds:
            actions.append(_action(f"Generate tests for {symbol.qualname}", SYMBOL_TESTS, cmd.GENERATE_TESTS, target))
        if "documentation" in kinds:
            actions.append(_action(f"Document {symbol.qualname}", SYMBOL_DOCS, cmd.DOCUMENT, target))
        if "refactoring" in kinds:  # the editor asks for the instruction, then calls ohLsp.refactor
            actions.append(_action(f"Refactor {symbol.qualname}…", SYMBOL_REFACTOR, cmd.REFACTOR_PROMPT, target))
    diagnostics = list(diagnostics)
    actions.extend(gap_actions(uri, diagnostics))
    actions.extend(task_fixes(diagnostics))
    return [a for a in actions if _wanted(str(a.kind), only)]


def task_of(diagnostic: t.Diagnostic) -> str | None:
    """The task an oh-lsp diagnostic came from (its `data.taskId`)."""
    if diagnostic.source != DIAGNOSTIC_SOURCE or not isinstance(diagnostic.data, dict):
        return None
    task_id = diagnostic.data.get("taskId")
    return task_id if isinstance(task_id, str) and task_id else None


GAP_CODES = {"uncovered": "lines", "uncovered-branch": "branch", "surviving-mutant": "mutant"}  # finding code -> gap


def gap_actions(uri: str, diagnostics: Iterable[t.Diagnostic]) -> list[t.CodeAction]:
    """ "Generate tests for this" on each uncovered range or surviving mutant in the request's range."""
    actions = []
    for diagnostic in diagnostics:
        kind = GAP_CODES.get(str(diagnostic.code)) if diagnostic.source == DIAGNOSTIC_SOURCE else None
        if kind is None:
            continue
        span = diagnostic.range
        gap = {
            "kind": kind,
            "range": {
                "start": {"line": span.start.line, "character": span.start.character},
                "end": {"line": span.end.line, "character": span.end.character},
            },
            "detail": diagnostic.message,
        }
        actions.append(
            _action("Generate tests for this", QUICKFIX, cmd.GENERATE_TESTS, {"uri": uri, "gap": gap}, [diagnostic])
        )
    return actions


def task_fixes(diagnostics: Iterable[t.Diagnostic]) -> list[t.CodeAction]:
    """The quick fixes, once per task that has a diagnostic in the request's range: "Regenerate with feedback", and
    for a failed task whose rejected candidate is kept (its diagnostics' `data.attempt`), "Open the rejected
    candidate" (the client command `ohLsp.openCandidate`: the editor asks `ohLsp/candidate` and opens it read-only)."""
    by_task: dict[str, list[t.Diagnostic]] = {}
    for diagnostic in diagnostics:
        task_id = task_of(diagnostic)
        if task_id:
            by_task.setdefault(task_id, []).append(diagnostic)
    fixes: list[t.CodeAction] = []
    for task_id, found in by_task.items():
        offered = [("Regenerate with feedback", cmd.RETRY_TASK, {"taskId": task_id, "withFeedback": True})]
        attempt = next(
            (d.data.get("attempt") for d in found if isinstance(d.data, dict) and d.data.get("attempt")), None
        )
        if isinstance(attempt, int):
            offered.append(("Open the rejected candidate", cmd.OPEN_CANDIDATE, {"taskId": task_id, "attempt": attempt}))
        fixes.extend(_action(title, QUICKFIX, command, args, diagnostics=found) for title, command, args in offered)
    return fixes


def actions_at(
    ls: LanguageServer,
    folders: Folders,
    diagnostics: DiagnosticStore,
    kinds: Iterable[str],
    uri: str,
    cursor: t.Position,
    context: t.CodeActionContext,
) -> list[t.CodeAction]:
    """What oh-lsp offers at `cursor` in `uri`: nothing outside Python files of a running workspace folder."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if not path or not path.endswith(".py"):
        return []
    folder = folders.holding(Path(path))
    if folder is None or folder.engine is None:
        return []
    document = ls.workspace.get_text_document(uri)
    line = cursor.line + 1  # lines are the same in every position encoding (and this splits no text)
    module = module_name(Path(path).resolve().relative_to(folder.root))
    found = diagnostics.with_task_ids(uri, context.diagnostics)
    return code_actions(uri, module, symbol_at(document.source, line), kinds, found, context.only)
