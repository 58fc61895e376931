"""What every task kind shares: the target it works on, the candidate it makes, and where its checks run.

A kind is one module (`oh_lsp.kinds.unit_test`, ...) that provides:

- ``build_messages(target, task) -> list[dict]``: the chat prompt;
- ``make_candidate(answer, target, task) -> Candidate``: the code taken out of the answer, placed as an `Edit`;
- ``async check(candidate, target, env) -> ValidationResult``: its checks, run for real;
- ``recompute(result) -> Recompute | None``: how to redo its edit against a file that changed meanwhile.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from oh_lsp.config import OpenHandsConfig
from oh_lsp.edits import Edit
from oh_lsp.errors import TargetError
from oh_lsp.paths import module_name, python_target, sha256_text
from oh_lsp.tasks import QueuedTask

_KINDS = {
    "unit_test": "oh_lsp.kinds.unit_test",
    "documentation": "oh_lsp.kinds.documentation",
    "refactoring": "oh_lsp.kinds.refactoring",
}


def available_kinds() -> list[str]:
    """The task kinds this version can run."""
    return list(_KINDS)


def get_kind(task_type: str) -> ModuleType:
    try:
        return importlib.import_module(_KINDS[task_type])
    except KeyError:
        raise TargetError(f"oh-lsp cannot run {task_type!r} tasks yet (available: {', '.join(_KINDS)})") from None


@dataclass
class Target:
    root: Path
    path: Path  # relative to root
    text: str
    module: str
    sha256: str


def load_target(root: Path, task: QueuedTask) -> Target:
    if task.target_file is None:
        raise TargetError(f"a {task.task_type} task needs a target file (--target-file or a file argument)")
    relative = python_target(root, task.target_file)
    try:
        text = (root / relative).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TargetError(f"target {relative} is not UTF-8 text") from None
    return Target(root=root, path=relative, text=text, module=module_name(relative), sha256=sha256_text(text))


@dataclass
class Candidate:
    """A proposed result: the edit to deliver, and the text of the file the checks judge."""

    edit: Edit
    output_file: str
    content: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckEnv:
    """Where and how checks run: the project, the settings, and a sink for progress text."""

    root: Path
    config: OpenHandsConfig
    exclude: list[Path] = field(default_factory=list)  # directories kept out of sandbox copies (the state dir)
    progress: Callable[[str], None] = lambda _text: None
    warn: Callable[[str], None] = lambda _text: None  # a warning the user must see before what follows it

    @property
    def scratch(self) -> Path:
        from oh_lsp.paths import workspace_dir

        return workspace_dir(self.root, self.config.workspace_path)

    @property
    def python(self) -> Path:
        from oh_lsp.validation.pytest_runner import project_python

        return project_python(self.root, self.config.python)
