"""oh-lsp: an LLM coding agent for unit tests, documentation and refactoring, whose work is checked for real.

The public names of the usage guide are importable from here (docs/guide-compat.md#python-api). They load on first
use, so that importing the package (as the language server does at start-up) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "OpenHandsConfig": "oh_lsp.config",
    "ExecutionEngine": "oh_lsp.engine",
    "QueuedTask": "oh_lsp.tasks",
    "TaskPriority": "oh_lsp.tasks",
    "TaskStatus": "oh_lsp.tasks",
    "TaskCategory": "oh_lsp.tasks",
    "TaskQueue": "oh_lsp.queue",
    "ResultValidator": "oh_lsp.result_validator",
    "ValidationResult": "oh_lsp.validation.result",
    "MetricsCollector": "oh_lsp.metrics",
    "ExecutionMetrics": "oh_lsp.records",
    "Event": "oh_lsp.events",
    "ModelSelector": "oh_lsp.llm.selector",
    "TaskRequirements": "oh_lsp.llm.selector",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # `X as X` marks a re-export, for a type checker that does not infer them (mypy --strict)
    from oh_lsp.config import OpenHandsConfig as OpenHandsConfig
    from oh_lsp.engine import ExecutionEngine as ExecutionEngine
    from oh_lsp.events import Event as Event
    from oh_lsp.llm.selector import ModelSelector as ModelSelector
    from oh_lsp.llm.selector import TaskRequirements as TaskRequirements
    from oh_lsp.metrics import MetricsCollector as MetricsCollector
    from oh_lsp.queue import TaskQueue as TaskQueue
    from oh_lsp.records import ExecutionMetrics as ExecutionMetrics
    from oh_lsp.result_validator import ResultValidator as ResultValidator
    from oh_lsp.tasks import QueuedTask as QueuedTask
    from oh_lsp.tasks import TaskCategory as TaskCategory
    from oh_lsp.tasks import TaskPriority as TaskPriority
    from oh_lsp.tasks import TaskStatus as TaskStatus
    from oh_lsp.validation.result import ValidationResult as ValidationResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'oh_lsp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
