"""Storage behind the queue and the metrics. `open_store` picks the backend; SQLite is the embedded default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.store.base import Heartbeat, TaskStore
from oh_lsp.store.urls import QUEUE_URL_ENV

if TYPE_CHECKING:
    from oh_lsp.store.postgres import PostgresStore

__all__ = ["Heartbeat", "TaskStore", "migrate_store", "open_store"]


def open_store(project_root: str | Path | None = None, url: str | None = None) -> TaskStore:
    """The store behind the queue: the PostgreSQL queue at `url` (or `$OPENHANDS_QUEUE_URL`) when one is given,
    else the SQLite store of a project root (default: the current directory) in its state directory."""
    url = _queue_url(url)
    if url:
        return _postgres_backend(url)(url)
    from oh_lsp.store.sqlite import SQLiteStore

    return SQLiteStore(_sqlite_path(project_root))


def migrate_store(project_root: str | Path | None = None, url: str | None = None) -> dict[str, Any]:
    """Create or upgrade the store's tables now (opening a store does it too; this is `oh-lsp queue migrate`).
    Returns ``{"backend", "location", "before", "after"}`` (schema versions; 0 = no tables yet)."""
    url = _queue_url(url)
    if url:
        from oh_lsp.store.urls import redact_url

        before, after = _postgres_backend(url).migrate(url)
        return {"backend": "postgresql", "location": redact_url(url), "before": before, "after": after}
    from oh_lsp.store.sqlite import SQLiteStore
    from oh_lsp.store.sqlite.schema import file_version

    path = _sqlite_path(project_root)
    before = file_version(path)
    SQLiteStore(path).close()
    return {"backend": "sqlite", "location": str(path), "before": before, "after": file_version(path)}


def _queue_url(url: str | None) -> str | None:
    return url or os.environ.get(QUEUE_URL_ENV, "").strip() or None


def _sqlite_path(project_root: str | Path | None) -> Path:
    from oh_lsp.paths import project_root as resolve_root
    from oh_lsp.paths import store_path

    return store_path(resolve_root(project_root))


def _postgres_backend(url: str) -> type[PostgresStore]:
    from oh_lsp.errors import ConfigError, StoreError
    from oh_lsp.store.urls import check_queue_url

    try:
        check_queue_url(url)
    except ValueError as exc:
        raise ConfigError(f"{QUEUE_URL_ENV} / --queue-url: {exc}") from None
    try:
        from oh_lsp.store.postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"a PostgreSQL queue needs the optional dependencies ({exc.name} is missing): install"
            " oh-lsp[postgres], e.g. `pip install 'oh-lsp[postgres]'`"
        ) from None
    return PostgresStore
