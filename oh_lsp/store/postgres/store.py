"""`PostgresStore`: the queue, results and metrics on one PostgreSQL server shared by workers on many machines.

It implements the same synchronous `TaskStore` interface as the SQLite store, on psycopg 3 with a `ConnectionPool`:
`TaskQueue` already runs store calls on its own thread, so an async driver would add a second event loop and gain
nothing. What the server gives on top:

- **One round trip per operation.** Each method is one statement, or a few statements sent as one pipeline, which the
  server runs as one implicit transaction committed at its Sync (`_run`). `round_trips` counts them.
- **The database's clock.** Every time (lease expiry, backoff, created/started/finished) is `now()` on the server:
  machines with skewed clocks agree. `now()` is the transaction's start, and each transaction here is a single round
  trip of a few milliseconds; unlike `clock_timestamp()` it is stable, so it can bound an index scan.
- **Claim:** reclaim expired leases (`FOR UPDATE SKIP LOCKED`), then take the first ready task in (priority DESC,
  seq) order with `FOR UPDATE SKIP LOCKED`: workers on many machines never wait on, nor take, the same row.
- **Submit:** a transaction-scoped advisory lock orders the submits of one queue, so `max_size` holds across machines;
  the dedupe key is unique among pending and running tasks (partial unique index).
- **Wakeups:** triggers `NOTIFY` when a task becomes ready; `watch_for_work` wakes idle workers (`listener.py`).
- **Outages:** a lost connection is retried once at once (a pooled connection from before a server restart), and
  the writes that end an attempt (finish, retry, release) keep retrying for `write_retry_seconds`, so finished work
  is not thrown away by a short outage. Past that, `StoreUnavailableError` says what is unreachable; the engine logs it
  and tries again, and a task whose worker gave up is reclaimed when its lease expires.

The attempts' metrics are in `metrics.py`; the model layer's state and call log (cooldowns, breakers, rotations,
costs) in `model_records.py`.

Adding a method: write its SQL, call `self._run(...)` for one round trip, or `self._attempt(work)` with a `work(conn)`
that runs one transaction (`with conn.transaction():`) for a read-modify-write that needs Python in between; add its
tables as a new entry of `schema.MIGRATIONS`.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from oh_lsp.errors import QueueFullError, StoreError, StoreUnavailableError
from oh_lsp.records import CachedResult, ExecutionMetrics
from oh_lsp.store import shared
from oh_lsp.store.base import Heartbeat, Submitted
from oh_lsp.store.postgres import schema
from oh_lsp.store.postgres.listener import WorkListener
from oh_lsp.store.postgres.metrics import METRICS_INSERT, MetricsRecords, metrics_params
from oh_lsp.store.postgres.model_records import ModelRecords
from oh_lsp.store.postgres.schema import NOW
from oh_lsp.store.urls import check_queue_url, redact_url, url_password
from oh_lsp.tasks import QueuedTask, TaskStatus

log = logging.getLogger(__name__)
Statement = tuple[str, dict[str, Any]]
Rows = list[dict[str, Any]]
R = TypeVar("R")

_EPOCH = "extract(epoch FROM t.{0})::float8 AS {0}"
TASK_COLUMNS = ", ".join(
    [
        "t.id",
        "t.kind",
        "t.description",
        "t.target_file",
        "t.target_sha256",
        "t.priority",
        "t.metadata::text AS metadata",
        "t.status",
        "t.submitter",
        "t.attempts",
        "t.max_retries",
        _EPOCH.format("not_before"),
        "t.lease_id",
        _EPOCH.format("created_at"),
        _EPOCH.format("started_at"),
        _EPOCH.format("finished_at"),
        "t.result::text AS result",
        "t.error",
        "t.note",
        "t.model",
        "t.tokens",
        "t.cost",
        "t.delivery",
    ]
)
_FREE_LEASE = "lease_id = NULL, lease_owner = NULL, lease_expires = NULL"
_ATTEMPTS = "t.attempts || CASE WHEN t.attempts = 1 THEN ' attempt' ELSE ' attempts' END"  # shared.attempts_text
_RECLAIM = f"""
UPDATE oh_lsp_tasks t SET
    status = CASE WHEN t.attempts > t.max_retries THEN 'failed' ELSE 'pending' END,
    error = CASE WHEN t.attempts > t.max_retries
                 THEN format(%(failed_after)s::text, {_ATTEMPTS}, format(%(lease_lost)s::text, t.lease_owner))
                 ELSE t.error END,
    note = CASE WHEN t.attempts > t.max_retries THEN t.note
                ELSE format(%(requeued)s::text, format(%(lease_lost)s::text, t.lease_owner)) END,
    finished_at = CASE WHEN t.attempts > t.max_retries THEN {NOW} ELSE t.finished_at END,
    not_before = CASE WHEN t.attempts > t.max_retries THEN t.not_before ELSE {NOW} END,
    {_FREE_LEASE}
FROM (SELECT seq FROM oh_lsp_tasks WHERE status = 'running' AND lease_expires < {NOW} FOR UPDATE SKIP LOCKED) expired
WHERE t.seq = expired.seq
"""
# A young queue table has no statistics yet; the planner then guesses a handful of ready rows, and sorts all of them
# (a bitmap scan) on every claim: O(backlog) per claim. Without sorting it walks the ready index in order and stops
# at the first row it can lock, which is what a queue wants at any size. `SET LOCAL` lasts for the claim only.
_NO_SORT = "SET LOCAL enable_sort = off"
_CLAIM = f"""
UPDATE oh_lsp_tasks t SET status = 'running', lease_owner = %(owner)s::text, lease_id = %(lease_id)s::text,
    lease_expires = {NOW} + %(lease_seconds)s::float8 * interval '1 second', attempts = t.attempts + 1,
    started_at = coalesce(t.started_at, {NOW}), note = NULL
FROM (SELECT seq FROM oh_lsp_tasks WHERE status = 'pending' AND not_before <= {NOW}
      ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED) ready
WHERE t.seq = ready.seq
RETURNING {TASK_COLUMNS}
"""
_SUBMIT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('oh_lsp_submit'), hashtext(current_schema()))"
_SUBMIT = f"""
WITH existing AS (
    SELECT id FROM oh_lsp_tasks WHERE dedupe_key = %(dedupe_key)s AND status IN ('pending', 'running')
), unfinished AS (
    SELECT count(*) AS n FROM oh_lsp_tasks WHERE status IN ('pending', 'running')
), inserted AS (
    INSERT INTO oh_lsp_tasks (id, kind, description, target_file, target_sha256, priority, metadata, status,
                              submitter, dedupe_key, max_retries, created_at)
    SELECT %(id)s, %(kind)s, %(description)s, %(target_file)s, %(target_sha256)s, %(priority)s, %(metadata)s::json,
           'pending', %(submitter)s, %(dedupe_key)s, %(max_retries)s, {NOW}
    WHERE NOT EXISTS (SELECT 1 FROM existing) AND (SELECT n FROM unfinished) < %(max_size)s
    RETURNING id
)
SELECT (SELECT id FROM inserted) AS inserted, (SELECT id FROM existing) AS existing,
       (SELECT n FROM unfinished) AS unfinished,
       1 + (SELECT count(*) FROM oh_lsp_tasks WHERE status = 'pending' AND priority >= %(priority)s) AS position
"""
_CACHE_PUT = f"""
WITH put AS (
    INSERT INTO oh_lsp_result_cache ({", ".join(shared.CACHE_COLUMNS)}, created_at)
    VALUES (%(key)s, %(kind)s, %(target_file)s, %(task_id)s, %(result)s, %(tokens)s, %(cost)s, {NOW})
    ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, target_file = excluded.target_file,
        task_id = excluded.task_id, result = excluded.result, tokens = excluded.tokens, cost = excluded.cost,
        created_at = excluded.created_at
    RETURNING key
)
DELETE FROM oh_lsp_result_cache WHERE key IN
    (SELECT key FROM oh_lsp_result_cache WHERE key NOT IN (SELECT key FROM put)
     ORDER BY created_at DESC OFFSET %(keep)s)
"""
_FINISH = f"""
WITH done AS (
    UPDATE oh_lsp_tasks SET status = %(status)s, result = %(result)s::json, error = %(error)s,
        model = coalesce(%(model)s, model), finished_at = {NOW}, {_FREE_LEASE},
        tokens = tokens + %(tokens)s, cost = cost + %(cost)s
    WHERE id = %(id)s AND status = 'running' AND lease_id = %(lease_id)s::text
    RETURNING id
), recorded AS (
    {METRICS_INSERT} FROM done WHERE %(has_metrics)s
)
SELECT count(*) AS done FROM done
"""
_RETRY = f"""
WITH done AS (
    UPDATE oh_lsp_tasks t SET
        status = CASE WHEN t.attempts > t.max_retries THEN 'failed' ELSE 'pending' END,
        error = CASE WHEN t.attempts > t.max_retries THEN format(%(failed_after)s::text, {_ATTEMPTS}, %(reason)s::text)
                     ELSE %(reason)s::text END,
        result = CASE WHEN t.attempts > t.max_retries THEN coalesce(%(result)s::json, t.result) ELSE t.result END,
        finished_at = CASE WHEN t.attempts > t.max_retries THEN {NOW} ELSE t.finished_at END,
        not_before = CASE WHEN t.attempts > t.max_retries THEN t.not_before
                          ELSE {NOW} + %(delay)s::float8 * interval '1 second' END,
        note = CASE WHEN t.attempts > t.max_retries THEN t.note ELSE %(note)s::text END,
        model = coalesce(%(model)s, t.model), {_FREE_LEASE},
        tokens = t.tokens + %(tokens)s, cost = t.cost + %(cost)s
    WHERE t.id = %(id)s AND t.status = 'running' AND t.lease_id = %(lease_id)s::text
    RETURNING t.status
), recorded AS (
    {METRICS_INSERT} FROM done WHERE %(has_metrics)s
)
SELECT status FROM done
"""
_LOST_CONNECTION_STATES = ("57P01", "57P02", "57P03")  # admin shutdown, crash shutdown, cannot connect now
# What to do about the errors a misconfigured or full server gives (by SQLSTATE), added to the store's message
_ADVICE = {
    "42501": "the URL's user may not use oh-lsp's tables: grant it SELECT, INSERT, UPDATE and DELETE on the"
    " oh_lsp_ tables (and USAGE on their schema), or connect as their owner",
    "25006": "the server accepts no writes (a read-only standby, or default_transaction_read_only): point the"
    " queue URL at the primary",
    "53100": "the database server's disk is full: free space there; nothing was written",
    "42P01": "oh-lsp's tables are missing from this database or schema: run `oh-lsp queue migrate` with this URL",
}


class PostgresStore(MetricsRecords, ModelRecords):
    """`TaskStore` on PostgreSQL. ``PostgresStore("postgresql://user:pw@host/db")``; safe to share between threads.

    `clock` (epoch seconds) replaces the server's clock; only tests that step time use it.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] | None = None,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        pool_timeout: float = 2.0,
        write_retry_seconds: float = 30.0,
    ) -> None:
        self.url = check_queue_url(url)
        self.location = redact_url(self.url)
        self._password = url_password(self.url)
        self._clock = clock
        self.pool_timeout = pool_timeout
        self.write_retry_seconds = write_retry_seconds
        self.round_trips = 0  # network round trips made by the queue's operations (benchmarks report it per task)
        self._down_since: float | None = None  # when the server stopped answering (None: it answers)
        self._down_lock = threading.Lock()
        try:
            with psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, round(connect_timeout))
            ) as conn:
                version = schema.current_version(conn)
                if version < schema.LATEST:
                    schema.migrate(conn, self.location)
                schema.check_not_newer(version, self.location)
                self.schema = schema.one_row(conn.execute("SELECT current_schema() AS name"))["name"]
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot use the PostgreSQL queue at {self.location} ({self._explain(exc)}). Check the URL"
                " (OPENHANDS_QUEUE_URL or --queue-url), that the server runs and this machine may connect, and that"
                " the user may create tables (or run `oh-lsp queue migrate` once as one who may)."
            ) from None
        self._pool: ConnectionPool[Any] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=pool_size,
            open=True,
            name="oh-lsp",
            timeout=pool_timeout,
            reconnect_timeout=10.0,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": max(1, round(connect_timeout))},
        )
        self.listener = WorkListener(self.url, self.schema, self.location, max(1, round(connect_timeout)))

    @classmethod
    def migrate(cls, url: str, *, connect_timeout: float = 10.0) -> tuple[int, int]:
        """Create or upgrade the schema at `url` without opening a store. Returns (version before, after)."""
        url = check_queue_url(url)
        location = redact_url(url)
        try:
            with psycopg.connect(
                url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, round(connect_timeout))
            ) as conn:
                return schema.migrate(conn, location)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot migrate the PostgreSQL queue at {location} ({explain(exc, url_password(url))})"
            ) from None

    # --- connections -------------------------------------------------------------------------------------------
    def _explain(self, exc: BaseException) -> str:
        return explain(exc, self._password)

    def _params(self, **values: Any) -> dict[str, Any]:
        values["now"] = self._clock() if self._clock is not None else None
        return values

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit, dict rows), with errors turned into `StoreError`s."""
        try:
            with self._pool.connection(timeout=self.pool_timeout) as conn:
                yield conn
        except PoolClosed:
            raise StoreError(f"the queue at {self.location} was used after it was closed") from None
        except PoolTimeout as exc:
            raise StoreUnavailableError(self._unreachable(exc)) from exc
        except psycopg.OperationalError as exc:
            if _lost_connection(exc):
                raise StoreUnavailableError(self._unreachable(exc)) from exc
            raise StoreError(
                f"the PostgreSQL queue at {self.location} failed: {self._explain(exc)}{_advice(exc)}"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(
                f"the PostgreSQL queue at {self.location} refused a request: {self._explain(exc)}{_advice(exc)}"
            ) from exc

    def _unreachable(self, exc: BaseException) -> str:
        return (
            f"the PostgreSQL queue at {self.location} cannot be reached ({self._explain(exc)}); is the server"
            " running? oh-lsp keeps retrying"
        )

    def _run(self, *statements: Statement, retry_for: float = 0.0) -> list[Rows]:
        """Send `statements` in one round trip and return each one's rows. Several statements go as one pipeline,
        which the server runs as one transaction."""

        def send(conn: psycopg.Connection[Any]) -> list[Rows]:
            results = _send(conn, statements)
            self.round_trips += 1
            return results

        return self._attempt(send, retry_for=retry_for)

    def _attempt(self, work: Callable[[psycopg.Connection[Any]], R], *, retry_for: float = 0.0) -> R:
        """Do `work` on a pooled connection. A lost connection is tried again at once (a pooled connection may
        predate a server restart), then for `retry_for` seconds; `work` must be one transaction, safe to repeat."""
        deadline = time.monotonic() + retry_for
        tries = 0
        while True:
            tries += 1
            try:
                with self._connection() as conn:
                    result = work(conn)
                if self._down_since is not None:
                    self._mark_reachable()
                return result
            except StoreUnavailableError as exc:
                self._mark_unreachable(exc)
                self._pool.check()  # drop dead connections now, and let the pool grow again if it gave up
                if tries > 1 and time.monotonic() >= deadline:
                    raise
                if tries > 1:
                    time.sleep(min(1.0, 0.1 * 2**tries, max(0.0, deadline - time.monotonic())))

    def _mark_unreachable(self, exc: StoreUnavailableError) -> None:
        with self._down_lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("oh-lsp: %s", exc)

    def _mark_reachable(self) -> None:
        with self._down_lock:
            if self._down_since is not None:
                log.warning(
                    "oh-lsp: the PostgreSQL queue at %s answers again (after %.1fs)",
                    self.location,
                    time.monotonic() - self._down_since,
                )
                self._down_since = None

    def close(self) -> None:
        self.listener.close()
        self._pool.close()

    # --- wakeups -----------------------------------------------------------------------------------------------
    def watch_for_work(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        return self.listener.watch(callback)

    # --- queue -------------------------------------------------------------------------------------------------
    def add(self, task: QueuedTask, *, dedupe_key: str, max_size: int) -> Submitted:
        params = self._params(**shared.task_row(task, dedupe_key), max_size=max_size)
        _, (row,) = self._run((_SUBMIT_LOCK, {}), (_SUBMIT, params))
        if row["inserted"]:
            return Submitted(row["inserted"], True, int(row["position"]))
        if row["existing"]:
            return Submitted(row["existing"], False, self.position(row["existing"]))
        raise QueueFullError(shared.queue_full_message(row["unfinished"], max_size))

    def claim(self, owner: str, lease_seconds: float) -> QueuedTask | None:
        reclaim = self._params(
            failed_after=shared.FAILED_AFTER_LEASE_LOST, lease_lost=shared.LEASE_LOST, requeued=shared.REQUEUED
        )
        claim = self._params(owner=owner, lease_id=uuid.uuid4().hex, lease_seconds=lease_seconds)
        _, _, rows = self._run((_NO_SORT, {}), (_RECLAIM, reclaim), (_CLAIM, claim))
        return shared.task_from_row(rows[0]) if rows else None

    def heartbeat(self, task_id: str, lease_id: str, lease_seconds: float) -> Heartbeat:
        (rows,) = self._run(
            (
                f"UPDATE oh_lsp_tasks SET lease_expires = {NOW} + %(lease_seconds)s::float8 * interval '1 second'"
                " WHERE id = %(id)s AND lease_id = %(lease_id)s::text AND status = 'running' RETURNING cancel_requested",
                self._params(id=task_id, lease_id=lease_id, lease_seconds=lease_seconds),
            )
        )
        if not rows:
            return Heartbeat.LOST
        return Heartbeat.CANCEL if rows[0]["cancel_requested"] else Heartbeat.OK

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
        params = self._params(
            id=task_id,
            lease_id=lease_id,
            status=TaskStatus(status).value,
            result=shared.to_json(result),
            error=shared.clean(error),
            model=model,
            **shared.spent_on(metrics),
            **metrics_params(metrics),
        )
        ((row,),) = self._run((_FINISH, params), retry_for=self.write_retry_seconds)
        return bool(row["done"] == 1)

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
        reason = shared.clean(reason) or ""
        params = self._params(
            id=task_id,
            lease_id=lease_id,
            reason=reason,
            delay=delay,
            note=shared.RETRYING % (delay, reason),
            failed_after=shared.FAILED_AFTER_RETRIES,
            result=shared.to_json(result),
            model=model,
            **shared.spent_on(metrics),
            **metrics_params(metrics),
        )
        (rows,) = self._run((_RETRY, params), retry_for=self.write_retry_seconds)
        return TaskStatus(rows[0]["status"]) if rows else None

    def release(self, task_id: str, lease_id: str) -> bool:
        (rows,) = self._run(
            (
                "UPDATE oh_lsp_tasks SET status = 'pending', attempts = greatest(attempts - 1, 0), not_before = 'epoch',"
                f" note = %(note)s::text, {_FREE_LEASE}"
                " WHERE id = %(id)s AND status = 'running' AND lease_id = %(lease_id)s::text RETURNING id",
                {"id": task_id, "lease_id": lease_id, "note": shared.RELEASED},
            ),
            retry_for=self.write_retry_seconds,
        )
        return bool(rows)

    def request_cancel(self, task_id: str) -> TaskStatus | None:
        # Lock the row first, so that the status we report is the one the update acted on.
        before, _ = self._run(
            ("SELECT status FROM oh_lsp_tasks WHERE id = %(id)s FOR UPDATE", {"id": task_id}),
            (
                "UPDATE oh_lsp_tasks SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,"
                f" finished_at = CASE WHEN status = 'pending' THEN {NOW} ELSE finished_at END,"
                " error = CASE WHEN status = 'pending' THEN %(cancelled)s::text ELSE error END,"
                " cancel_requested = cancel_requested OR status = 'running'"
                " WHERE id = %(id)s AND status IN ('pending', 'running')",
                self._params(id=task_id, cancelled=shared.CANCELLED_BEFORE_START),
            ),
        )
        return TaskStatus(before[0]["status"]) if before else None

    def cancel_requested(self, task_id: str) -> bool:
        (rows,) = self._run(("SELECT cancel_requested FROM oh_lsp_tasks WHERE id = %(id)s", {"id": task_id}))
        return bool(rows and rows[0]["cancel_requested"])

    def get(self, task_id: str) -> QueuedTask | None:
        (rows,) = self._run((f"SELECT {TASK_COLUMNS} FROM oh_lsp_tasks t WHERE t.id = %(id)s", {"id": task_id}))
        return shared.task_from_row(rows[0]) if rows else None

    def ids_starting_with(self, prefix: str, limit: int) -> builtins.list[str]:
        (rows,) = self._run(
            (
                "SELECT id FROM oh_lsp_tasks WHERE left(id, %(n)s) = %(prefix)s ORDER BY seq LIMIT %(limit)s",
                {"n": len(prefix), "prefix": prefix, "limit": limit},
            )
        )
        return [row["id"] for row in rows]

    def list(self, status: TaskStatus | None = None, limit: int = 100) -> list[QueuedTask]:
        where = "" if status is None else "WHERE t.status = %(status)s"
        (rows,) = self._run(
            (
                f"SELECT {TASK_COLUMNS} FROM oh_lsp_tasks t {where} ORDER BY t.seq DESC LIMIT %(limit)s",
                {"status": None if status is None else TaskStatus(status).value, "limit": limit},
            )
        )
        return [shared.task_from_row(row) for row in rows]

    def position(self, task_id: str) -> int | None:
        (rows,) = self._run(
            (
                "SELECT 1 + (SELECT count(*) FROM oh_lsp_tasks o WHERE o.status = 'pending'"
                " AND (o.priority > me.priority OR (o.priority = me.priority AND o.seq < me.seq))) AS position"
                " FROM oh_lsp_tasks me WHERE me.id = %(id)s AND me.status = 'pending'",
                {"id": task_id},
            )
        )
        return rows[0]["position"] if rows else None

    def stats(self) -> dict[str, Any]:
        by_status, by_priority, (waiting,) = self._run(
            ("SELECT status, count(*) AS n FROM oh_lsp_tasks GROUP BY status", {}),
            ("SELECT priority, count(*) AS n FROM oh_lsp_tasks WHERE status = 'pending' GROUP BY priority", {}),
            (
                "SELECT count(*) AS n, extract(epoch FROM min(not_before))::float8 AS next FROM oh_lsp_tasks"
                f" WHERE status = 'pending' AND not_before > {NOW}",
                self._params(),
            ),
        )
        return shared.stats_view(by_status, by_priority, waiting["n"], waiting["next"], self.location)

    def outstanding(self, horizon: float) -> int:
        ((row,),) = self._run(
            (
                "SELECT count(*) AS n FROM oh_lsp_tasks WHERE status = 'running'"
                f" OR (status = 'pending' AND not_before <= {NOW} + %(horizon)s::float8 * interval '1 second')",
                self._params(horizon=horizon),
            )
        )
        return int(row["n"])

    # --- the result cache ------------------------------------------------------------------------------------------
    def cache_get(self, key: str) -> CachedResult | None:
        (rows,) = self._run(
            (
                f"SELECT {', '.join(shared.CACHE_COLUMNS)}, extract(epoch FROM created_at)::float8 AS created_at"
                " FROM oh_lsp_result_cache WHERE key = %(key)s",
                {"key": key},
            )
        )
        return shared.cached_from_row(rows[0], rows[0]["created_at"]) if rows else None

    def cache_put(self, entry: CachedResult, limit: int) -> None:
        # the new entry is kept, and `limit` - 1 others, newest first
        self._run((_CACHE_PUT, self._params(**shared.cache_row(entry), keep=max(limit, 1) - 1)))

    # --- results -----------------------------------------------------------------------------------------------
    def undelivered(self, submitter: str) -> builtins.list[QueuedTask]:  # `list` here is the method above
        (rows,) = self._run(
            (
                f"SELECT {TASK_COLUMNS} FROM oh_lsp_tasks t WHERE t.submitter = %(submitter)s AND t.delivery IS NULL"
                " AND t.status = 'completed' ORDER BY t.seq",
                {"submitter": submitter},
            )
        )
        return [shared.task_from_row(row) for row in rows]

    def set_delivery(self, task_id: str, delivery: str) -> None:
        self._run(
            ("UPDATE oh_lsp_tasks SET delivery = %(delivery)s WHERE id = %(id)s", {"id": task_id, "delivery": delivery})
        )


def _send(conn: psycopg.Connection[Any], statements: tuple[Statement, ...]) -> list[Rows]:
    if len(statements) == 1:
        sql, params = statements[0]
        cur = conn.execute(sql, params)
        return [cur.fetchall() if cur.description else []]
    with conn.pipeline():  # one Sync at the end: one round trip, one implicit transaction
        cursors = [conn.execute(sql, params) for sql, params in statements]
    return [cur.fetchall() if cur.description else [] for cur in cursors]


def explain(exc: BaseException, password: str | None) -> str:
    """An error's text on one line, without the password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(password, "***") if password else text


def _advice(exc: psycopg.Error) -> str:
    advice = _ADVICE.get(exc.sqlstate or "")
    return f". {advice[0].upper()}{advice[1:]}." if advice else ""


def _lost_connection(exc: psycopg.OperationalError) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _LOST_CONNECTION_STATES
