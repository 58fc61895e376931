"""The embedded store: one SQLite file (WAL) per project root, shared safely by several processes.

Every write takes the database's write lock up front (`BEGIN IMMEDIATE`), so a claim, a completion or a submit is one
atomic step across processes. Each thread gets its own connection. Leases carry a random id that fences a worker that
lost its lease: its late completion changes nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from oh_lsp.errors import QueueFullError, StoreError
from oh_lsp.records import ExecutionMetrics, ModelCall, ModelState, local_day
from oh_lsp.store import shared
from oh_lsp.store.base import Heartbeat
from oh_lsp.tasks import QueuedTask, TaskPriority, TaskStatus

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: model_state and model_calls (every statement is IF NOT EXISTS, so migrating is re-running)
UNFINISHED = ("pending", "running")
T = TypeVar("T")

_SCHEMA = """
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

_TASK_COLUMNS = (
    "id, kind, description, target_file, target_sha256, priority, metadata, status, submitter, attempts, max_retries,"
    " not_before, lease_id, created_at, started_at, finished_at, result, error, note, model, tokens, cost, delivery"
)


class SQLiteStore:
    """`TaskStore` on a SQLite file. Safe to share between threads of one process and between processes."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.recovered: str | None = None  # set when a corrupted file was moved aside; front ends tell the user
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._migrate()
                self._check_integrity()
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._move_aside(exc)
                self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot use the oh-lsp store at {self.path}: {exc}. Check that the directory is writable and has"
                " free space, or set OH_LSP_STATE_DIR to another directory."
            ) from exc

    # --- connections -------------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from the start. A full disk, a read-only file
        or a lock held too long becomes a `StoreError` that says so; nothing is half written."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(
                f"the oh-lsp store at {self.path} cannot be written: {exc}. Check the free space and"
                " permissions of its directory, or set OH_LSP_STATE_DIR to another one."
            ) from exc

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"the store at {self.path} was written by a newer oh-lsp (schema {version})")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_integrity(self) -> None:
        row = self._conn().execute("PRAGMA quick_check(1)").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({row[0] if row else 'no answer'})")

    def _move_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Keep a corrupted store for inspection under another name, and start a fresh one."""
        self.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.rename(Path(str(moved) + suffix))
        self.recovered = (
            f"the oh-lsp store at {self.path} was corrupted ({exc}); it was moved aside to {moved}"
            " and a fresh store was created. Tasks and metrics recorded before are in the old file."
        )
        log.warning(self.recovered)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()
        self._local = threading.local()

    def watch_for_work(self, callback: Any) -> None:
        """SQLite has no notifications between processes: idle workers poll (cheaply, it is a local file)."""
        return

    # --- queue -------------------------------------------------------------------------------------------------
    def add(self, task: QueuedTask, *, dedupe_key: str, max_size: int) -> tuple[str, bool]:
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM tasks WHERE dedupe_key = ? AND status IN ('pending', 'running')", (dedupe_key,)
            ).fetchone()
            if row:
                return row["id"], False
            unfinished = db.execute("SELECT count(*) FROM tasks WHERE status IN ('pending', 'running')").fetchone()[0]
            if unfinished >= max_size:
                raise QueueFullError(shared.queue_full_message(unfinished, max_size))
            db.execute(
                "INSERT INTO tasks (id, kind, description, target_file, target_sha256, priority, metadata, status,"
                " submitter, dedupe_key, max_retries, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    task.task_id,
                    task.task_type,
                    task.description,
                    shared.path_text(task.target_file),
                    task.target_sha256,
                    int(task.priority),
                    json.dumps(task.metadata, default=str),
                    TaskStatus.PENDING.value,
                    task.submitter,
                    dedupe_key,
                    shared.max_retries_of(task),
                    now,
                ),
            )
            return task.task_id, True

    def _reclaim_expired(self, db: sqlite3.Connection, now: float) -> None:
        expired = db.execute(
            "SELECT id, attempts, max_retries, lease_owner FROM tasks WHERE status = 'running' AND lease_expires < ?",
            (now,),
        ).fetchall()
        for row in expired:
            reason = shared.LEASE_LOST % row["lease_owner"]
            if row["attempts"] > row["max_retries"]:
                db.execute(
                    "UPDATE tasks SET status = 'failed', error = ?, finished_at = ?, lease_id = NULL,"
                    " lease_owner = NULL, lease_expires = NULL WHERE id = ?",
                    (shared.FAILED_AFTER_LEASE_LOST % (row["attempts"], reason), now, row["id"]),
                )
            else:
                db.execute(
                    "UPDATE tasks SET status = 'pending', not_before = ?, note = ?, lease_id = NULL,"
                    " lease_owner = NULL, lease_expires = NULL WHERE id = ?",
                    (now, shared.REQUEUED % reason, row["id"]),
                )

    def claim(self, owner: str, lease_seconds: float) -> QueuedTask | None:
        now = self._clock()
        with self._write() as db:
            self._reclaim_expired(db, now)
            row = db.execute(
                "SELECT id FROM tasks WHERE status = 'pending' AND not_before <= ? ORDER BY priority DESC, seq LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            lease_id = uuid.uuid4().hex
            db.execute(
                "UPDATE tasks SET status = 'running', lease_owner = ?, lease_id = ?, lease_expires = ?,"
                " attempts = attempts + 1, started_at = coalesce(started_at, ?), note = NULL WHERE id = ?",
                (owner, lease_id, now + lease_seconds, now, row["id"]),
            )
            return self._task(db, row["id"])

    def heartbeat(self, task_id: str, lease_id: str, lease_seconds: float) -> Heartbeat:
        now = self._clock()
        with self._write() as db:
            cur = db.execute(
                "UPDATE tasks SET lease_expires = ? WHERE id = ? AND lease_id = ? AND status = 'running'"
                " RETURNING cancel_requested",
                (now + lease_seconds, task_id, lease_id),
            ).fetchone()
        if cur is None:
            return Heartbeat.LOST
        return Heartbeat.CANCEL if cur[0] else Heartbeat.OK

    def finish(
        self,
        task_id: str,
        lease_id: str,
        status: TaskStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        model: str | None = None,
        metrics: ExecutionMetrics | None = None,
    ) -> bool:
        now = self._clock()
        with self._write() as db:
            cur = db.execute(
                "UPDATE tasks SET status = ?, result = ?, error = ?, model = coalesce(?, model), finished_at = ?,"
                " lease_id = NULL, lease_owner = NULL, lease_expires = NULL,"
                " tokens = tokens + ?, cost = cost + ?"
                " WHERE id = ? AND status = 'running' AND lease_id = ?",
                (
                    TaskStatus(status).value,
                    shared.to_json(result),
                    error,
                    model,
                    now,
                    metrics.tokens_used if metrics else 0,
                    metrics.cost if metrics else 0.0,
                    task_id,
                    lease_id,
                ),
            )
            if cur.rowcount != 1:
                return False
            if metrics is not None:
                self._insert_metrics(db, metrics)
            return True

    def retry(
        self,
        task_id: str,
        lease_id: str,
        *,
        reason: str,
        delay: float,
        model: str | None = None,
        metrics: ExecutionMetrics | None = None,
        result: dict[str, Any] | None = None,
    ) -> TaskStatus | None:
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "SELECT attempts, max_retries FROM tasks WHERE id = ? AND status = 'running' AND lease_id = ?",
                (task_id, lease_id),
            ).fetchone()
            if row is None:
                return None
            spent = (metrics.tokens_used if metrics else 0, metrics.cost if metrics else 0.0)
            if row["attempts"] > row["max_retries"]:
                status = TaskStatus.FAILED
                db.execute(
                    "UPDATE tasks SET status = 'failed', error = ?, result = coalesce(?, result),"
                    " model = coalesce(?, model), finished_at = ?, lease_id = NULL, lease_owner = NULL,"
                    " lease_expires = NULL, tokens = tokens + ?, cost = cost + ? WHERE id = ?",
                    (
                        shared.FAILED_AFTER_RETRIES % (row["attempts"], reason),
                        shared.to_json(result),
                        model,
                        now,
                        *spent,
                        task_id,
                    ),
                )
            else:
                status = TaskStatus.PENDING
                db.execute(
                    "UPDATE tasks SET status = 'pending', not_before = ?, note = ?, error = ?,"
                    " model = coalesce(?, model), lease_id = NULL, lease_owner = NULL, lease_expires = NULL,"
                    " tokens = tokens + ?, cost = cost + ? WHERE id = ?",
                    (now + delay, shared.RETRYING % (delay, reason), reason, model, *spent, task_id),
                )
            if metrics is not None:
                self._insert_metrics(db, metrics)
            return status

    def release(self, task_id: str, lease_id: str) -> bool:
        with self._write() as db:
            cur = db.execute(
                "UPDATE tasks SET status = 'pending', attempts = max(attempts - 1, 0), not_before = 0,"
                " note = ?, lease_id = NULL, lease_owner = NULL,"
                " lease_expires = NULL WHERE id = ? AND status = 'running' AND lease_id = ?",
                (shared.RELEASED, task_id, lease_id),
            )
            return cur.rowcount == 1

    def request_cancel(self, task_id: str) -> TaskStatus | None:
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            status = TaskStatus(row["status"])
            if status is TaskStatus.PENDING:
                db.execute(
                    "UPDATE tasks SET status = 'cancelled', finished_at = ?, error = ? WHERE id = ?",
                    (now, shared.CANCELLED_BEFORE_START, task_id),
                )
            elif status is TaskStatus.RUNNING:
                db.execute("UPDATE tasks SET cancel_requested = 1 WHERE id = ?", (task_id,))
            return status

    def cancel_requested(self, task_id: str) -> bool:
        row = self._conn().execute("SELECT cancel_requested FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return bool(row and row[0])

    def get(self, task_id: str) -> QueuedTask | None:
        return self._task(self._conn(), task_id)

    def list(self, status: TaskStatus | None = None, limit: int = 100) -> list[QueuedTask]:
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (TaskStatus(status).value,)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [shared.task_from_row(r) for r in self._conn().execute(sql, (*args, limit)).fetchall()]

    def position(self, task_id: str) -> int | None:
        db = self._conn()
        row = db.execute("SELECT seq, priority, status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None or row["status"] != "pending":
            return None
        ahead = db.execute(
            "SELECT count(*) FROM tasks WHERE status = 'pending' AND (priority > ? OR (priority = ? AND seq < ?))",
            (row["priority"], row["priority"], row["seq"]),
        ).fetchone()[0]
        return ahead + 1

    def stats(self) -> dict[str, Any]:
        db = self._conn()
        counts = {s.value: 0 for s in TaskStatus}
        for row in db.execute("SELECT status, count(*) AS n FROM tasks GROUP BY status"):
            counts[row["status"]] = row["n"]
        by_priority = {p.name.lower(): 0 for p in TaskPriority}
        for row in db.execute("SELECT priority, count(*) AS n FROM tasks WHERE status = 'pending' GROUP BY priority"):
            by_priority[TaskPriority(row["priority"]).name.lower()] = row["n"]
        waiting = db.execute(
            "SELECT count(*), min(not_before) FROM tasks WHERE status = 'pending' AND not_before > ?", (self._clock(),)
        ).fetchone()
        return {
            "total": sum(counts.values()),
            **counts,
            "pending_by_priority": by_priority,
            "waiting_for_retry": waiting[0],
            "next_retry_at": waiting[1],
            "store": self.location,
        }

    def outstanding(self, horizon: float) -> int:
        return (
            self._conn()
            .execute(
                "SELECT count(*) FROM tasks WHERE status = 'running' OR (status = 'pending' AND not_before <= ?)",
                (self._clock() + horizon,),
            )
            .fetchone()[0]
        )

    # --- results -----------------------------------------------------------------------------------------------
    def undelivered(self, submitter: str) -> list[QueuedTask]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE submitter = ? AND delivery IS NULL AND status = 'completed'"
                " ORDER BY seq",
                (submitter,),
            )
            .fetchall()
        )
        return [shared.task_from_row(r) for r in rows]

    def set_delivery(self, task_id: str, delivery: str) -> None:
        with self._write() as db:
            db.execute("UPDATE tasks SET delivery = ? WHERE id = ?", (delivery, task_id))

    # --- metrics -----------------------------------------------------------------------------------------------
    def record_metrics(self, metrics: ExecutionMetrics) -> None:
        with self._write() as db:
            self._insert_metrics(db, metrics)

    def _insert_metrics(self, db: sqlite3.Connection, m: ExecutionMetrics) -> None:
        day = local_day(m.created_at)
        db.execute(
            "INSERT INTO metrics (task_id, attempt, model_id, task_type, success, validation_passed, tokens_used,"
            " prompt_tokens, completion_tokens, cost, quality_score, duration_seconds, error, created_at, day)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                m.task_id,
                m.attempt,
                m.model_id,
                m.task_type,
                int(m.success),
                int(m.validation_passed),
                int(m.tokens_used),
                int(m.prompt_tokens),
                int(m.completion_tokens),
                float(m.cost),
                float(m.quality_score),
                float(m.duration_seconds),
                m.error,
                m.created_at,
                day,
            ),
        )

    def metrics_summary(self) -> dict[str, Any]:
        db = self._conn()
        today = local_day(self._clock())
        aggregate = (
            "count(*) AS executions, coalesce(sum(success), 0) AS successful, coalesce(sum(tokens_used), 0) AS tokens,"
            " coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
            " coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(cost), 0.0) AS cost,"
            " coalesce(avg(duration_seconds), 0.0) AS avg_duration_seconds,"
            " coalesce(avg(CASE WHEN success THEN quality_score END), 0.0) AS avg_quality_score,"
            " coalesce(sum(validation_passed), 0) AS validations_passed"
        )
        system = shared.aggregate(db.execute(f"SELECT {aggregate} FROM metrics").fetchone())
        today_row = db.execute(
            "SELECT coalesce(sum(cost), 0.0), coalesce(sum(tokens_used), 0) FROM metrics WHERE day = ?", (today,)
        ).fetchone()
        system["cost_today"] = today_row[0]
        system["tokens_today"] = today_row[1]
        models = {
            row["model_id"]: shared.aggregate(row)
            for row in db.execute(f"SELECT model_id, {aggregate} FROM metrics GROUP BY model_id ORDER BY model_id")
        }
        kinds = {
            row["task_type"]: shared.aggregate(row)
            for row in db.execute(f"SELECT task_type, {aggregate} FROM metrics GROUP BY task_type ORDER BY task_type")
        }
        return {
            "system": system,
            "models": models,
            "task_types": kinds,
            "costs": self._costs(db),
            **shared.model_state_summary(self.model_states(), self._clock()),
        }

    def _costs(self, db: sqlite3.Connection) -> dict[str, Any]:
        sums = (
            "count(*) AS calls, coalesce(sum(cost), 0.0) AS cost,"
            " coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens"
        )
        return {
            key: shared.cost_view(db.execute(f"SELECT {column} AS key, {sums} FROM model_calls GROUP BY 1 ORDER BY 1"))
            for key, column in shared.COST_GROUPS
        }

    # --- model health and spending -----------------------------------------------------------------------------
    def update_model_state(self, model: str, change: Callable[[ModelState], T]) -> T:
        with self._write() as db:
            row = db.execute("SELECT data FROM model_state WHERE model = ?", (model,)).fetchone()
            before = row["data"] if row else None
            state = shared.model_state_from_json(before, model)
            result = change(state)
            after = shared.model_state_json(state)
            if after != before:
                db.execute(
                    "INSERT INTO model_state (model, data, updated_at) VALUES (?, ?, ?) ON CONFLICT (model)"
                    " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                    (model, after, self._clock()),
                )
            return result

    def model_states(self) -> dict[str, ModelState]:
        rows = self._conn().execute("SELECT data FROM model_state").fetchall()
        return shared.model_states_from_json(row["data"] for row in rows)

    def reset_model_states(self, model: str | None = None) -> int:
        with self._write() as db:
            if model is None:
                return db.execute("DELETE FROM model_state").rowcount
            return db.execute("DELETE FROM model_state WHERE model = ?", (model,)).rowcount

    def record_model_call(self, call: ModelCall) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO model_calls (created_at, day, task_id, task_kind, model, outcome, latency_ms,"
                " prompt_tokens, completion_tokens, cost, cost_source) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    call.created_at,
                    call.day,
                    call.task_id,
                    call.task_kind,
                    call.model,
                    call.outcome,
                    float(call.latency_ms),
                    int(call.prompt_tokens),
                    int(call.completion_tokens),
                    float(call.cost),
                    call.cost_source,
                ),
            )

    def model_call_stats(self, since: float) -> dict[str, dict[str, Any]]:
        marks = ",".join("?" * len(shared.MODEL_FAILURE_OUTCOMES))
        rows = (
            self._conn()
            .execute(
                "SELECT model, count(*) AS calls, coalesce(sum(outcome = 'ok'), 0) AS ok,"
                " avg(CASE WHEN outcome = 'ok' THEN latency_ms END) AS avg_latency_ms FROM model_calls"
                f" WHERE created_at >= ? AND (outcome = 'ok' OR outcome IN ({marks})) GROUP BY model",
                (since, *shared.MODEL_FAILURE_OUTCOMES),
            )
            .fetchall()
        )
        return shared.call_stats_view(rows)

    def spent(self, *, task_id: str | None = None, day: str | None = None) -> float:
        column, value = shared.spent_filter(task_id, day)
        row = (
            self._conn()
            .execute(f"SELECT coalesce(sum(cost), 0.0) FROM model_calls WHERE {column} = ?", (value,))
            .fetchone()
        )
        return float(row[0])

    # --- rows --------------------------------------------------------------------------------------------------
    def _task(self, db: sqlite3.Connection, task_id: str) -> QueuedTask | None:
        row = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return shared.task_from_row(row) if row else None


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return any(words in text for words in ("not a database", "malformed", "corrupt"))
