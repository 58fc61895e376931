"""The PostgreSQL schema, as numbered migrations recorded in `oh_lsp_schema_version`.

Tables live in the connection's current schema (normally `public`; choose another one with
`?options=-csearch_path%3DNAME` in the URL) and carry an `oh_lsp_` prefix so that they sit safely beside an
application's own tables. Migrating takes a transaction-scoped advisory lock, so that many machines starting at once
migrate exactly once; each migration runs in that one transaction with its version row, so it applies whole or not
at all. A new migration is appended to `MIGRATIONS`, never edited in place once released.

Times are `timestamptz` from the database's clock (see `store.py`), JSON columns are `json` (kept as written).
"""

from __future__ import annotations

from typing import Any

import psycopg

from oh_lsp.errors import StoreError

VERSION_TABLE = "oh_lsp_schema_version"
WORK_CHANNEL = "oh_lsp_work"  # NOTIFY channel; the payload is the schema whose queue got ready work
NOW = "coalesce(to_timestamp(%(now)s::float8), now())"  # the server's clock, or a test's clock when one is given

_V1 = """
CREATE TABLE oh_lsp_tasks (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    kind text NOT NULL,
    description text NOT NULL DEFAULT '',
    target_file text,
    target_sha256 text,
    priority integer NOT NULL,
    metadata json NOT NULL DEFAULT '{}',
    status text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    submitter text NOT NULL,
    dedupe_key text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL,
    not_before timestamptz NOT NULL DEFAULT 'epoch',
    lease_owner text,
    lease_id text,
    lease_expires timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    result json,
    error text,
    note text,
    model text,
    tokens bigint NOT NULL DEFAULT 0,
    cost double precision NOT NULL DEFAULT 0,
    delivery text
);
CREATE INDEX oh_lsp_tasks_ready ON oh_lsp_tasks (priority DESC, seq) WHERE status = 'pending';
CREATE INDEX oh_lsp_tasks_leases ON oh_lsp_tasks (lease_expires) WHERE status = 'running';
CREATE UNIQUE INDEX oh_lsp_tasks_dedupe ON oh_lsp_tasks (dedupe_key) WHERE status IN ('pending', 'running');
CREATE INDEX oh_lsp_tasks_status ON oh_lsp_tasks (status, seq);
CREATE INDEX oh_lsp_tasks_undelivered ON oh_lsp_tasks (submitter, seq) WHERE status = 'completed' AND delivery IS NULL;

CREATE TABLE oh_lsp_metrics (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    attempt integer NOT NULL,
    model_id text NOT NULL,
    task_type text NOT NULL,
    success boolean NOT NULL,
    validation_passed boolean NOT NULL,
    tokens_used bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost double precision NOT NULL,
    quality_score double precision NOT NULL,
    duration_seconds double precision NOT NULL,
    error text,
    created_at timestamptz NOT NULL,
    day text NOT NULL
);
CREATE INDEX oh_lsp_metrics_day ON oh_lsp_metrics (day);

-- Wake idle workers on every machine when a task becomes ready now: submitted, released, or re-queued by a reclaim.
-- (A retry with a delay becomes ready later; workers find it by their slow fallback poll.)
CREATE FUNCTION oh_lsp_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'pending' AND NEW.not_before <= now() THEN
        PERFORM pg_notify('oh_lsp_work', TG_TABLE_SCHEMA);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER oh_lsp_tasks_submitted AFTER INSERT ON oh_lsp_tasks
    FOR EACH ROW EXECUTE FUNCTION oh_lsp_notify_work();
CREATE TRIGGER oh_lsp_tasks_requeued AFTER UPDATE OF status ON oh_lsp_tasks
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending') EXECUTE FUNCTION oh_lsp_notify_work();
"""

# The model layer's shared state (SQLite's schema 2): each model's cooldown, breaker and rotation counts as one JSON
# document (`ModelState`, read-modified-written under a row lock), and one row per model call (costs, budgets,
# observed latency and success). Their times are the workers' epoch seconds, as the model layer computes them.
_V2 = """
CREATE TABLE oh_lsp_model_state (
    model text PRIMARY KEY,
    data json NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE oh_lsp_model_calls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL,
    day text NOT NULL,
    task_id text,
    task_kind text,
    model text NOT NULL,
    outcome text NOT NULL,
    latency_ms double precision NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost double precision NOT NULL DEFAULT 0,
    cost_source text NOT NULL DEFAULT 'none'
);
CREATE INDEX oh_lsp_model_calls_task ON oh_lsp_model_calls (task_id);
CREATE INDEX oh_lsp_model_calls_day ON oh_lsp_model_calls (day);
CREATE INDEX oh_lsp_model_calls_recent ON oh_lsp_model_calls (created_at);
"""

# One name for the task kind (`kind`, as in `oh_lsp_tasks`), and whether an attempt's tokens were estimated (the
# endpoint reported no usage). SQLite's schema 3.
_V3 = """
ALTER TABLE oh_lsp_metrics RENAME COLUMN task_type TO kind;
ALTER TABLE oh_lsp_metrics ADD COLUMN tokens_estimated boolean NOT NULL DEFAULT false;
"""

# Issue 14 (SQLite's schema 4): the result cache shared by every worker of the fleet, bounded and pruned oldest
# first; cached prompt tokens and the money they (and the result cache) saved, per call and per attempt.
_V4 = """
CREATE TABLE oh_lsp_result_cache (
    key text PRIMARY KEY,
    kind text NOT NULL,
    target_file text,
    task_id text NOT NULL,
    result text NOT NULL,
    tokens bigint NOT NULL DEFAULT 0,
    cost double precision NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oh_lsp_result_cache_age ON oh_lsp_result_cache (created_at);
ALTER TABLE oh_lsp_metrics ADD COLUMN cached_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE oh_lsp_metrics ADD COLUMN saved double precision NOT NULL DEFAULT 0;
ALTER TABLE oh_lsp_metrics ADD COLUMN from_cache boolean NOT NULL DEFAULT false;
ALTER TABLE oh_lsp_model_calls ADD COLUMN cached_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE oh_lsp_model_calls ADD COLUMN saved double precision NOT NULL DEFAULT 0;
"""

# (version, what it adds, DDL). Append only.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "tasks, metrics, ready-work notifications", _V1),
    (2, "model state and model calls", _V2),
    (3, "metrics: task_type is kind; tokens_estimated", _V3),
    (4, "result cache, cached tokens and savings", _V4),
]
LATEST = MIGRATIONS[-1][0]


def one_row(cursor: psycopg.Cursor[Any]) -> dict[str, Any]:
    """The row of a statement that always answers exactly one (an aggregate, `current_schema()`, a locked row)."""
    row: dict[str, Any] | None = cursor.fetchone()  # a dict: the connections use psycopg's dict_row
    if row is None:
        raise StoreError("the queue's database answered no row where one was expected")
    return row


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of the database `conn` points at (0: none yet)."""
    if not one_row(conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (VERSION_TABLE,)))["present"]:
        return 0
    return int(one_row(conn.execute(f"SELECT coalesce(max(version), 0) AS version FROM {VERSION_TABLE}"))["version"])


def migrate(conn: psycopg.Connection[Any], location: str) -> tuple[int, int]:
    """Bring the schema to `LATEST`, once even when many processes try at the same moment. Returns (before, after).

    `conn` must be in autocommit mode, with dict rows; each call is one transaction."""
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('oh_lsp_migrate'), hashtext(coalesce(current_schema(), '')))"
        )
        if one_row(conn.execute("SELECT current_schema() AS name"))["name"] is None:
            raise StoreError(
                f"no schema to create oh-lsp's tables in at {location}: the schema named by search_path"
                " does not exist (create it, or remove options=-csearch_path from the URL)"
            )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY,"
            " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        before = current_version(conn)
        check_not_newer(before, location)
        for version, description, ddl in MIGRATIONS:
            if version > before:
                conn.execute(ddl)
                conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (%s, %s)", (version, description)
                )
    return before, max(before, LATEST)


def check_not_newer(version: int, location: str) -> None:
    if version > LATEST:
        raise StoreError(
            f"the queue at {location} has schema version {version}, newer than this oh-lsp knows"
            f" ({LATEST}): upgrade oh-lsp on this machine"
        )
