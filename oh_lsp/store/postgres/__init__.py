"""The PostgreSQL backend (optional extra `oh-lsp[postgres]`): one queue shared by workers on many machines."""

from oh_lsp.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
