"""Which task kinds exist, and how one is loaded by its name (`kind`; `task_type` in the public API).

Each kind module is imported on first use, so that a process that never runs a kind (the language server at start-up)
never pays for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

from oh_lsp.errors import TargetError

if TYPE_CHECKING:
    from oh_lsp.edits import Recompute
    from oh_lsp.kinds import documentation, refactoring, unit_test
    from oh_lsp.kinds.base import TaskKind

    # each kind module satisfies TaskKind (a type checker names the member that does not)
    _unit_test: TaskKind = unit_test
    _documentation: TaskKind = documentation
    _refactoring: TaskKind = refactoring

KIND_MODULES = {
    "unit_test": "oh_lsp.kinds.unit_test",
    "documentation": "oh_lsp.kinds.documentation",
    "refactoring": "oh_lsp.kinds.refactoring",
}


def available_kinds() -> list[str]:
    """The task kinds this version can run."""
    return list(KIND_MODULES)


def get_kind(kind: str) -> TaskKind:
    """The module of the task kind `kind`. Raises `TargetError` for a kind this version does not have."""
    try:
        module = KIND_MODULES[kind]
    except KeyError:
        raise TargetError(f"oh-lsp cannot run {kind!r} tasks yet (available: {', '.join(KIND_MODULES)})") from None
    return cast("TaskKind", importlib.import_module(module))


def recompute_for(result: dict[str, Any]) -> Recompute | None:
    """How the kind that made a finished task's `result` redoes its edit against a file that changed (None: the
    result names no kind)."""
    return get_kind(result["kind"]).recompute(result) if result.get("kind") else None
