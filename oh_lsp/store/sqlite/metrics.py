"""The attempts' metrics in the SQLite store: one row per attempt that reached a model (`ExecutionMetrics`), written
in the same transaction that ends the attempt, and the summary `oh-lsp metrics` shows (`metrics_summary`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from oh_lsp.records import ExecutionMetrics, ModelState, local_day
from oh_lsp.store import shared

_INSERT = (
    f"INSERT INTO metrics ({', '.join(shared.METRICS_COLUMNS)})"
    f" VALUES ({', '.join(':' + column for column in shared.METRICS_COLUMNS)})"
)
# one group of attempts (all, one model, one task kind), as `shared.aggregate` reads it; a `saved` below 0 (written
# before savings were clamped, llm/budget.py `cache_savings`) counts as 0
_AGGREGATE = (
    "count(*) AS executions, coalesce(sum(success), 0) AS successful, coalesce(sum(tokens_used), 0) AS tokens,"
    " coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
    " coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(cost), 0.0) AS cost,"
    " coalesce(avg(duration_seconds), 0.0) AS avg_duration_seconds,"
    " coalesce(avg(CASE WHEN success THEN quality_score END), 0.0) AS avg_quality_score,"
    " coalesce(sum(validation_passed), 0) AS validations_passed,"
    " coalesce(max(tokens_estimated), 0) AS tokens_estimated,"
    " coalesce(sum(cached_tokens), 0) AS cached_tokens, coalesce(sum(max(saved, 0)), 0.0) AS saved,"
    " coalesce(sum(from_cache), 0) AS cache_hits"
)
_COST_SUMS = (
    "count(*) AS calls, coalesce(sum(cost), 0.0) AS cost, coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens"
)


class MetricsRecords:
    """Mixed into `SQLiteStore`, whose connection (`_conn`), write transaction (`_write`), clock and model states it
    uses."""

    _clock: Callable[[], float]
    _conn: Callable[[], sqlite3.Connection]
    _write: Callable[[], AbstractContextManager[sqlite3.Connection]]
    model_states: Callable[[], dict[str, ModelState]]

    def record_metrics(self, metrics: ExecutionMetrics) -> None:
        with self._write() as db:
            self._insert_metrics(db, metrics)

    def _insert_metrics(self, db: sqlite3.Connection, metrics: ExecutionMetrics) -> None:
        db.execute(_INSERT, shared.metrics_row(metrics))

    def metrics_summary(self) -> dict[str, Any]:
        db = self._conn()
        now = self._clock()
        today = db.execute(
            "SELECT coalesce(sum(cost), 0.0), coalesce(sum(tokens_used), 0) FROM metrics WHERE day = ?",
            (local_day(now),),
        ).fetchone()
        return shared.summary_view(
            db.execute(f"SELECT {_AGGREGATE} FROM metrics").fetchone(),
            (today[0], today[1]),
            db.execute(f"SELECT model_id, {_AGGREGATE} FROM metrics GROUP BY model_id ORDER BY model_id"),
            db.execute(f"SELECT kind, {_AGGREGATE} FROM metrics GROUP BY kind ORDER BY kind"),
            {key: _cost_rows(db, column) for key, column in shared.COST_GROUPS},
            self.model_states(),
            now,
        )


def _cost_rows(db: sqlite3.Connection, column: str) -> list[Any]:
    """The model calls grouped by `column` (one of `shared.COST_GROUPS`): rows of ``key, calls, cost, tokens``."""
    return db.execute(f"SELECT {column} AS key, {_COST_SUMS} FROM model_calls GROUP BY 1 ORDER BY 1").fetchall()
