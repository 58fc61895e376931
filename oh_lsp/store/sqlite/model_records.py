"""The model layer's part of the SQLite store: each model's health (cooldowns, breakers, rotation counts; one JSON
document per model) and the log of model calls (costs, budgets, observed latency), shared by every process of the
project. Same semantics as the PostgreSQL store's `store/postgres/model_records.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from oh_lsp.records import ModelCall, ModelState
from oh_lsp.store import shared

T = TypeVar("T")
_RECORD_CALL = (
    f"INSERT INTO model_calls ({', '.join(shared.CALL_COLUMNS)})"
    f" VALUES ({', '.join(':' + column for column in shared.CALL_COLUMNS)})"
)


class ModelRecords:
    """Mixed into `SQLiteStore`, whose connection (`_conn`), write transaction (`_write`) and clock it uses."""

    _clock: Callable[[], float]
    _conn: Callable[[], sqlite3.Connection]
    _write: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def update_model_state(self, model: str, change: Callable[[ModelState], T]) -> T:
        with self._write() as db:
            row = db.execute("SELECT data FROM model_state WHERE model = ?", (model,)).fetchone()
            result, after = shared.change_state(row["data"] if row else None, model, change)
            if after is not None:
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
            db.execute(_RECORD_CALL, shared.call_row(call))

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
