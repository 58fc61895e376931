"""The SQLite schema: its tables as numbered migrations, its version (`PRAGMA user_version`), and how a store file
is migrated and checked.

A store file is brought to `LATEST` by running, in the caller's write transaction, each migration newer than its
`user_version`; a file written by a newer oh-lsp is refused. A new migration is appended to `MIGRATIONS`, never edited
in place once released. The PostgreSQL store keeps the same tables and versions (`store/postgres/schema.py`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from oh_lsp.errors import StoreError

_V1 = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    target_file TEXT,
    target_sha256 TEXT,
    priority INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    submitter TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_id TEXT,
    lease_expires REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    error TEXT,
    note TEXT,
    model TEXT,
    tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    delivery TEXT
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (status, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_lease ON tasks (status, lease_expires);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_dedupe ON tasks (dedupe_key) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS tasks_delivery ON tasks (submitter, delivery);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    task_type TEXT NOT NULL,
    success INTEGER NOT NULL,
    validation_passed INTEGER NOT NULL,
    tokens_used INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    quality_score REAL NOT NULL,
    duration_seconds REAL NOT NULL,
    error TEXT,
    created_at REAL NOT NULL,
    day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_day ON metrics (day);
"""

_V2 = """
CREATE TABLE IF NOT EXISTS model_state (
    model TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS model_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    day TEXT NOT NULL,
    task_id TEXT,
    task_kind TEXT,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    latency_ms REAL NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    cost_source TEXT NOT NULL DEFAULT 'none'
);
CREATE INDEX IF NOT EXISTS model_calls_task ON model_calls (task_id);
CREATE INDEX IF NOT EXISTS model_calls_day ON model_calls (day);
CREATE INDEX IF NOT EXISTS model_calls_model ON model_calls (model, created_at);
"""

# One name for the task kind (`kind`, as in `tasks`), and whether an attempt's tokens were estimated (the endpoint
# reported no usage).
_V3 = """
ALTER TABLE metrics RENAME COLUMN task_type TO kind;
ALTER TABLE metrics ADD COLUMN tokens_estimated INTEGER NOT NULL DEFAULT 0;
"""

# Issue 14: the result cache; cached prompt tokens and the money they (and the result cache) saved, per call and per
# attempt; the count of tasks by status and priority, kept by triggers, so that a submit checks the queue's size and a
# new task's position without counting the table (it was O(queue) per submit); and fewer indexes to write per task:
# expired leases are found among the running tasks through `tasks_ready` (there are as many as workers), and only
# completed tasks awaiting delivery are indexed for it (each index is a page more in every commit that touches it).
_V4 = """
DROP INDEX IF EXISTS tasks_lease;
DROP INDEX IF EXISTS tasks_delivery;
CREATE INDEX IF NOT EXISTS tasks_undelivered ON tasks (submitter) WHERE status = 'completed' AND delivery IS NULL;
CREATE TABLE IF NOT EXISTS result_cache (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target_file TEXT,
    task_id TEXT NOT NULL,
    result TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS result_cache_age ON result_cache (created_at);
ALTER TABLE metrics ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN saved REAL NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN from_cache INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls ADD COLUMN saved REAL NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS queue_counts (
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (status, priority)
) WITHOUT ROWID;
INSERT INTO queue_counts (status, priority, n) SELECT status, priority, count(*) FROM tasks GROUP BY status, priority;
CREATE TRIGGER IF NOT EXISTS tasks_counted_in AFTER INSERT ON tasks BEGIN
    INSERT INTO queue_counts (status, priority, n) VALUES (new.status, new.priority, 1)
        ON CONFLICT (status, priority) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS tasks_counted_moved AFTER UPDATE OF status, priority ON tasks
    WHEN old.status <> new.status OR old.priority <> new.priority BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE status = old.status AND priority = old.priority;
    INSERT INTO queue_counts (status, priority, n) VALUES (new.status, new.priority, 1)
        ON CONFLICT (status, priority) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS tasks_counted_out AFTER DELETE ON tasks BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE status = old.status AND priority = old.priority;
END;
"""

# (version, what it adds, DDL: statements separated by ";" -- a trigger's body is kept whole). Append only.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "tasks and metrics", _V1),
    (2, "model state and model calls", _V2),
    (3, "metrics: task_type is kind; tokens_estimated", _V3),
    (4, "result cache, cached tokens and savings, task counts", _V4),
]
LATEST = MIGRATIONS[-1][0]

TASK_COLUMNS = (
    "id, kind, description, target_file, target_sha256, priority, metadata, status, submitter, attempts, max_retries,"
    " not_before, lease_id, created_at, started_at, finished_at, result, error, note, model, tokens, cost, delivery"
)


def migrate(db: sqlite3.Connection, location: Path) -> None:
    """Create or upgrade the tables, inside the caller's write transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST:
        raise StoreError(f"the store at {location} was written by a newer oh-lsp (schema {version})")
    for number, _, ddl in MIGRATIONS:
        if number > version:
            for statement in statements(ddl):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


def statements(ddl: str) -> list[str]:
    """The statements of a migration, in order (a trigger's body, with its own ";", stays one statement)."""
    out: list[str] = []
    current = ""
    for piece in ddl.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                out.append(current.strip())
            current = ""
    return out


def file_version(path: Path) -> int:
    """The schema version of the store file at `path` (0: no file, or no tables yet)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def check_integrity(db: sqlite3.Connection) -> None:
    """Raise `sqlite3.DatabaseError` when SQLite's quick check finds the file damaged."""
    row = db.execute("PRAGMA quick_check(1)").fetchone()
    if row is None or row[0] != "ok":
        raise sqlite3.DatabaseError(f"database disk image is malformed ({row[0] if row else 'no answer'})")


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return any(words in text for words in ("not a database", "malformed", "corrupt"))
