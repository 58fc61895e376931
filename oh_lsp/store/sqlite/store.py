"""`SQLiteStore`: the queue and the results on one SQLite file (WAL) per project root, shared safely by several
processes.

Every write takes the database's write lock up front (`BEGIN IMMEDIATE`), so a claim, a completion or a submit is one
atomic step across processes. Each thread gets its own connection. Leases carry a random id that fences a worker that
lost its lease: its late completion changes nothing. A corrupted file is moved aside and a fresh store started. A
file deleted or replaced under a running process is noticed before its next write (`StoreLostError`): the write
would go to a file nobody will read again. The queue's short calls can be made on the caller's own thread (`inline`,
for `StoreThread.now`): through a connection that never waits for a lock and never checkpoints.

The attempts' metrics are in `metrics.py`, the model layer's state and call log in `model_records.py`, the tables in
`schema.py`.
"""

from __future__ import annotations

import builtins
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from oh_lsp.errors import QueueFullError, StoreError, StoreLostError
from oh_lsp.records import CachedResult, ExecutionMetrics
from oh_lsp.store import shared
from oh_lsp.store.base import Heartbeat, Submitted
from oh_lsp.store.sqlite import schema
from oh_lsp.store.sqlite.metrics import MetricsRecords
from oh_lsp.store.sqlite.model_records import ModelRecords
from oh_lsp.store.thread import WouldWait
from oh_lsp.tasks import QueuedTask, TaskStatus

log = logging.getLogger(__name__)
T = TypeVar("T")
# Inline calls (`inline`) leave the WAL's checkpoints to the store's thread: one is due after this many of their
# commits (a commit of the queue writes about 5 pages; SQLite's own checkpoint comes after 1,000).
CHECKPOINT_EVERY = 200


_FREE_LEASE = "lease_id = NULL, lease_owner = NULL, lease_expires = NULL"
_INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(shared.TASK_COLUMNS)}, status, created_at)"
    f" VALUES ({', '.join(':' + column for column in shared.TASK_COLUMNS)}, :status, :created_at)"
)
# the first ready task (priority, then FIFO) becomes running under a new lease, and is read back, in one statement
_CLAIM = (
    "UPDATE tasks SET status = 'running', lease_owner = ?, lease_id = ?, lease_expires = ?, attempts = attempts + 1,"
    " started_at = coalesce(started_at, ?), note = NULL WHERE seq = (SELECT seq FROM tasks WHERE status = 'pending'"
    f" AND not_before <= ? ORDER BY priority DESC, seq LIMIT 1) RETURNING {schema.TASK_COLUMNS}"
)
_CACHE_PUT = (
    f"INSERT INTO result_cache ({', '.join(shared.CACHE_COLUMNS)}, created_at)"
    f" VALUES ({', '.join(':' + column for column in shared.CACHE_COLUMNS)}, :created_at)"
    " ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, target_file = excluded.target_file,"
    " task_id = excluded.task_id, result = excluded.result, tokens = excluded.tokens, cost = excluded.cost,"
    " created_at = excluded.created_at"
)


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite said "busy": another connection holds a lock this one would have had to wait for."""
    return getattr(exc, "sqlite_errorcode", None) is not None and exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None when there is none."""
    try:
        info = os.stat(path)
    except OSError:  # gone, or its folder is
        return None
    return info.st_dev, info.st_ino


class SQLiteStore(MetricsRecords, ModelRecords):
    """`TaskStore` on a SQLite file. Safe to share between threads of one process and between processes."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.recovered: str | None = None  # set when a corrupted file was moved aside; front ends tell the user
        self._identity: tuple[int, int] | None = None  # the file's (device, inode) once it is open
        self._inline_commits = 0  # commits of inline calls since a checkpoint was last due
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._migrate()
                schema.check_integrity(self._conn())
            except sqlite3.DatabaseError as exc:
                if not schema.is_corruption(exc):
                    raise
                self._move_aside(exc)
                self._migrate()
            self._identity = _identity(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot use the oh-lsp store at {self.path}: {exc}. Check that the directory is writable and has"
                " free space, or set OH_LSP_STATE_DIR to another directory."
            ) from exc

    # --- connections -------------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if getattr(self._local, "inline", False):
            return self._inline_conn()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(busy_ms=30000)
            self._local.conn = conn
        return conn

    def _inline_conn(self) -> sqlite3.Connection:
        """This thread's connection for inline calls: it never waits for a lock (`WouldWait` instead) and never
        checkpoints (that waits on the disk; the store's thread does it, `checkpoint`)."""
        conn = getattr(self._local, "inline_conn", None)
        if conn is None:
            conn = self._connect(busy_ms=0)
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._local.inline_conn = conn
        return conn

    def _connect(self, busy_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # in WAL mode: a commit survives the process being killed
        with self._lock:
            self._connections.append(conn)
        return conn

    def inline(self, call: Callable[[], T]) -> T:
        """`call()` on this thread (`StoreThread.soon`), through a connection that never waits: when another
        process holds the write lock, `WouldWait`, with nothing done. `call` is one transaction, or reads."""
        self._local.inline = True
        try:
            return call()
        except sqlite3.OperationalError as exc:  # a read that found the database busy (recovering its WAL)
            if _busy(exc):
                raise WouldWait(str(exc)) from exc
            raise
        finally:
            self._local.inline = False

    def checkpoint_due(self) -> bool:
        with self._lock:
            if self._inline_commits < CHECKPOINT_EVERY:
                return False
            self._inline_commits = 0
            return True

    def checkpoint(self) -> None:
        """Copy the WAL's pages into the database file, without waiting for readers or writers (PASSIVE)."""
        self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from the start; inside a group commit
        (`transaction`), a savepoint of it. A full disk, a read-only file or a lock held too long becomes a
        `StoreError` that says so; nothing is half written. Inside another write that is not a group commit's
        transaction, no savepoint: a failure here goes up through that write, which is rolled back whole."""
        db = self._conn()
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth and not (depth == 1 and getattr(local, "group", False)):
            local.depth = depth + 1
            try:
                yield db
            finally:
                local.depth = depth
            return
        nested = db.in_transaction
        if not nested:  # inside a transaction, the file was checked as it began
            self._check_identity()
        try:
            db.execute("SAVEPOINT one" if nested else "BEGIN IMMEDIATE")
            local.depth = depth + 1
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK TO one" if nested else "ROLLBACK")
                    if nested:
                        db.execute("RELEASE one")
                raise
            finally:
                local.depth = depth
            db.execute("RELEASE one" if nested else "COMMIT")
            if not nested and getattr(self._local, "inline", False):
                with self._lock:
                    self._inline_commits += 1
        except sqlite3.OperationalError as exc:
            if db.in_transaction and not nested:
                db.execute("ROLLBACK")
            if not nested and _busy(exc) and getattr(self._local, "inline", False):
                raise WouldWait(str(exc)) from exc  # nothing was written: the store's thread makes the call
            raise StoreError(
                f"the oh-lsp store at {self.path} cannot be written: {exc}. Check the free space and"
                " permissions of its directory, or set OH_LSP_STATE_DIR to another one."
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group commit (`StoreThread`): the writes made inside, each in its own savepoint, commit together."""
        local = self._local
        with self._write():
            group, local.group = getattr(local, "group", False), True
            try:
                yield
            finally:
                local.group = group

    def _check_identity(self) -> None:
        """Raise `StoreLostError` when the file this store opened is no longer at its path (deleted, or replaced by
        another file): a write now would go to a file that nobody will read again."""
        if self._identity is None:
            return
        now = _identity(self.path)
        if now != self._identity:
            what = "deleted" if now is None else "replaced by another file"
            raise StoreLostError(
                f"the oh-lsp store at {self.path} was {what} while oh-lsp was using it: the tasks, results and metrics"
                " it held are gone from it, and what this process would write now would be lost. oh-lsp stopped;"
                " start it again to use a new store."
            )

    def _migrate(self) -> None:
        with self._write() as db:
            schema.migrate(db, self.path)

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
    def add(self, task: QueuedTask, *, dedupe_key: str, max_size: int) -> Submitted:
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM tasks WHERE dedupe_key = ? AND status IN ('pending', 'running')", (dedupe_key,)
            ).fetchone()
            if row:
                return Submitted(row["id"], False, self._position(db, row["id"]))
            unfinished = db.execute(
                "SELECT coalesce(sum(n), 0) FROM queue_counts WHERE status IN ('pending', 'running')"
            ).fetchone()[0]
            if unfinished >= max_size:
                raise QueueFullError(shared.queue_full_message(unfinished, max_size))
            row = shared.task_row(task, dedupe_key) | {"status": TaskStatus.PENDING.value, "created_at": now}
            db.execute(_INSERT_TASK, row)
            # the newest task of its priority: behind every pending task of its priority or a higher one
            ahead = db.execute(
                "SELECT coalesce(sum(n), 0) FROM queue_counts WHERE status = 'pending' AND priority >= ?",
                (row["priority"],),
            ).fetchone()[0]
            return Submitted(task.task_id, True, int(ahead))

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
                    (shared.FAILED_AFTER_LEASE_LOST % (shared.attempts_text(row["attempts"]), reason), now, row["id"]),
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
            row = db.execute(_CLAIM, (owner, os.urandom(16).hex(), now + lease_seconds, now, now)).fetchone()
            return shared.task_from_row(row) if row else None

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
                "UPDATE tasks SET status = :status, result = :result, error = :error, model = coalesce(:model, model),"
                f" finished_at = :now, {_FREE_LEASE}, tokens = tokens + :tokens, cost = cost + :cost"
                " WHERE id = :id AND status = 'running' AND lease_id = :lease_id",
                {
                    "status": TaskStatus(status).value,
                    "result": shared.to_json(result),
                    "error": shared.clean(error),
                    "model": model,
                    "now": now,
                    "id": task_id,
                    "lease_id": lease_id,
                    **shared.spent_on(metrics),
                },
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
        reason = shared.clean(reason) or ""
        with self._write() as db:
            row = db.execute(
                "SELECT attempts, max_retries FROM tasks WHERE id = ? AND status = 'running' AND lease_id = ?",
                (task_id, lease_id),
            ).fetchone()
            if row is None:
                return None
            values = {"id": task_id, "model": model, "now": now, **shared.spent_on(metrics)}
            spent = f"model = coalesce(:model, model), {_FREE_LEASE}, tokens = tokens + :tokens, cost = cost + :cost"
            if row["attempts"] > row["max_retries"]:
                status = TaskStatus.FAILED
                db.execute(
                    "UPDATE tasks SET status = 'failed', error = :error, result = coalesce(:result, result),"
                    f" finished_at = :now, {spent} WHERE id = :id",
                    values
                    | {
                        "error": shared.FAILED_AFTER_RETRIES % (shared.attempts_text(row["attempts"]), reason),
                        "result": shared.to_json(result),
                    },
                )
            else:
                status = TaskStatus.PENDING
                db.execute(
                    "UPDATE tasks SET status = 'pending', not_before = :now + :delay, note = :note, error = :error,"
                    f" {spent} WHERE id = :id",
                    values | {"delay": delay, "note": shared.RETRYING % (delay, reason), "error": reason},
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

    def ids_starting_with(self, prefix: str, limit: int) -> builtins.list[str]:
        rows = self._conn().execute(
            "SELECT id FROM tasks WHERE substr(id, 1, ?) = ? ORDER BY seq LIMIT ?", (len(prefix), prefix, limit)
        )
        return [row["id"] for row in rows.fetchall()]

    def list(self, status: TaskStatus | None = None, limit: int = 100) -> list[QueuedTask]:
        sql = f"SELECT {schema.TASK_COLUMNS} FROM tasks"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (TaskStatus(status).value,)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [shared.task_from_row(r) for r in self._conn().execute(sql, (*args, limit)).fetchall()]

    def position(self, task_id: str) -> int | None:
        return self._position(self._conn(), task_id)

    def _position(self, db: sqlite3.Connection, task_id: str) -> int | None:
        row = db.execute("SELECT seq, priority, status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None or row["status"] != "pending":
            return None
        ahead = db.execute(
            "SELECT count(*) FROM tasks WHERE status = 'pending' AND (priority > ? OR (priority = ? AND seq < ?))",
            (row["priority"], row["priority"], row["seq"]),
        ).fetchone()[0]
        return int(ahead) + 1

    def stats(self) -> dict[str, Any]:
        db = self._conn()
        waiting = db.execute(
            "SELECT count(*), min(not_before) FROM tasks WHERE status = 'pending' AND not_before > ?", (self._clock(),)
        ).fetchone()
        return shared.stats_view(
            db.execute("SELECT status, sum(n) AS n FROM queue_counts GROUP BY status"),
            db.execute("SELECT priority, n FROM queue_counts WHERE status = 'pending'"),
            waiting[0],
            waiting[1],
            self.location,
        )

    def outstanding(self, horizon: float) -> int:
        return int(
            self._conn()
            .execute(
                "SELECT count(*) FROM tasks WHERE status = 'running' OR (status = 'pending' AND not_before <= ?)",
                (self._clock() + horizon,),
            )
            .fetchone()[0]
        )

    # --- results -----------------------------------------------------------------------------------------------
    def undelivered(self, submitter: str) -> builtins.list[QueuedTask]:  # `list` here is the method above
        rows = (
            self._conn()
            .execute(
                f"SELECT {schema.TASK_COLUMNS} FROM tasks WHERE submitter = ? AND delivery IS NULL AND status = 'completed'"
                " ORDER BY seq",
                (submitter,),
            )
            .fetchall()
        )
        return [shared.task_from_row(r) for r in rows]

    def set_delivery(self, task_id: str, delivery: str) -> None:
        with self._write() as db:
            db.execute("UPDATE tasks SET delivery = ? WHERE id = ?", (delivery, task_id))

    # --- the result cache ------------------------------------------------------------------------------------------
    def cache_get(self, key: str) -> CachedResult | None:
        row = (
            self._conn()
            .execute(f"SELECT {', '.join(shared.CACHE_COLUMNS)}, created_at FROM result_cache WHERE key = ?", (key,))
            .fetchone()
        )
        return shared.cached_from_row(row, row["created_at"]) if row else None

    def cache_put(self, entry: CachedResult, limit: int) -> None:
        with self._write() as db:
            db.execute(_CACHE_PUT, shared.cache_row(entry) | {"created_at": self._clock()})
            db.execute(
                "DELETE FROM result_cache WHERE key IN"
                " (SELECT key FROM result_cache ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
                (max(limit, 1),),
            )

    # --- rows --------------------------------------------------------------------------------------------------
    def _task(self, db: sqlite3.Connection, task_id: str) -> QueuedTask | None:
        row = db.execute(f"SELECT {schema.TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return shared.task_from_row(row) if row else None
