"""The embedded store (the default): one SQLite file per project root, shared safely by several processes.

Split as the PostgreSQL store is (`store/postgres/`): `store.py` (`SQLiteStore`: connections, the task state
machine, results), `schema.py` (tables and migration), `metrics.py` (the attempts' metrics and their summary) and
`model_records.py` (the model layer's state and call log).
"""

from oh_lsp.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
