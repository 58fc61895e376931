"""`ExecutionMetrics` (one record per attempt that reached a model) and `MetricsCollector` (records and sums them).

Records live in the project's store, so `oh-lsp metrics` in one process shows what `run-engine` did in another.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oh_lsp.store.base import TaskStore


@dataclass
class ExecutionMetrics:
    """What one attempt at a task cost and achieved. `quality_score` uses the guide's 0-5 scale."""

    task_id: str
    model_id: str
    task_type: str
    success: bool = False
    tokens_used: int = 0
    tokens_estimated: bool = False  # the endpoint reported no usage: the tokens were estimated
    cost: float = 0.0
    quality_score: float = 0.0
    validation_passed: bool = False
    duration_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempt: int = 1
    error: str | None = None
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricsCollector:
    """Records `ExecutionMetrics` into a store and summarises them.

    With no arguments it uses the store of the project in the current directory (or `OH_LSP_STATE_DIR`).
    """

    def __init__(self, store: TaskStore | None = None, *, project_root: str | Path | None = None) -> None:
        if store is None:
            from oh_lsp.store import open_store

            store = open_store(project_root)
        self.store = store

    def record_execution(self, metrics: ExecutionMetrics) -> None:
        self.store.record_metrics(metrics)

    def get_summary(self) -> dict[str, Any]:
        """Numbers, not strings: ``{"system": {...}, "models": {model_id: {...}}, "task_types": {...}}``."""
        return self.store.metrics_summary()
