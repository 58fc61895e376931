"""Storage behind the queue and the metrics. `open_store` picks the backend; SQLite is the embedded default."""

from __future__ import annotations

from pathlib import Path

from oh_lsp.store.base import Heartbeat, TaskStore

__all__ = ["Heartbeat", "TaskStore", "open_store"]


def open_store(project_root: str | Path | None = None) -> TaskStore:
    """The store of a project root (default: the current directory), in its state directory."""
    from oh_lsp.paths import project_root as resolve_root
    from oh_lsp.paths import store_path
    from oh_lsp.store.sqlite import SQLiteStore

    return SQLiteStore(store_path(resolve_root(project_root)))
