"""`MetricsCollector`: records `ExecutionMetrics` (one per attempt that reached a model) and sums them.

Records live in the project's store, so `oh-lsp metrics` in one process shows what `run-engine` did in another.
`ExecutionMetrics` itself is in `oh_lsp.records` (importable from here too, and as `oh_lsp.ExecutionMetrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.records import ExecutionMetrics

if TYPE_CHECKING:
    from oh_lsp.store.base import TaskStore

__all__ = ["ExecutionMetrics", "MetricsCollector"]


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
