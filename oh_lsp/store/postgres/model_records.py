"""The model layer's part of `PostgresStore`: each model's health (cooldowns, breakers, rotation counts) and the log of
model calls (costs, budgets, observed latency), shared by every machine of the fleet. Same semantics as the SQLite
store (`oh_lsp/store/sqlite/model_records.py`); the tables are schema version 2 (`schema.py`).

`update_model_state` is a read-modify-write: one transaction that makes sure the model's row exists, locks it
(`SELECT … FOR UPDATE`), lets Python change the state, and writes it back. Two round trips: the lock (with BEGIN and
the insert of a first state, pipelined), then the write with the COMMIT. Workers on other machines that change the
same model wait on the row lock, so no change is lost; changes to different models never wait on each other.

Times inside a state and of a call are the workers' epoch seconds, as the model layer computes them (keep the
machines' clocks in sync, as NTP does); only `updated_at` is the database's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import pq

from oh_lsp.records import ModelCall, ModelState
from oh_lsp.store import shared
from oh_lsp.store.postgres.schema import NOW, one_row

T = TypeVar("T")

_ENSURE_STATE = (
    "INSERT INTO oh_lsp_model_state (model, data, updated_at)"
    f" VALUES (%(model)s, %(data)s::json, {NOW}) ON CONFLICT (model) DO NOTHING"
)
_LOCK_STATE = "SELECT data::text AS data FROM oh_lsp_model_state WHERE model = %(model)s FOR UPDATE"
_WRITE_STATE = f"UPDATE oh_lsp_model_state SET data = %(data)s::json, updated_at = {NOW} WHERE model = %(model)s"
_RECORD_CALL = (
    f"INSERT INTO oh_lsp_model_calls ({', '.join(shared.CALL_COLUMNS)}) VALUES (to_timestamp(%(created_at)s::float8), %(day)s, %(task_id)s,"
    " %(task_kind)s, %(model)s, %(outcome)s, %(latency_ms)s::float8, %(prompt_tokens)s::bigint,"
    " %(completion_tokens)s::bigint, %(cost)s::float8, %(cost_source)s, %(cached_tokens)s::bigint, %(saved)s::float8)"
)
_CALL_STATS = (
    "SELECT model, count(*) AS calls, count(*) FILTER (WHERE outcome = 'ok') AS ok,"
    " avg(latency_ms) FILTER (WHERE outcome = 'ok') AS avg_latency_ms FROM oh_lsp_model_calls"
    " WHERE created_at >= to_timestamp(%(since)s::float8) AND (outcome = 'ok' OR outcome = ANY(%(failures)s))"
    " GROUP BY model"
)
STATES = "SELECT data::text AS data FROM oh_lsp_model_state"
# `metrics_summary()["costs"]`, one statement per group (sent in the summary's pipeline); keys ordered as SQLite does
COSTS = [
    (
        key,
        f"SELECT {column} AS key, count(*) AS calls, coalesce(sum(cost), 0.0)::float8 AS cost,"
        " coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens"
        f' FROM oh_lsp_model_calls GROUP BY 1 ORDER BY {column} COLLATE "C"',
    )
    for key, column in shared.COST_GROUPS
]


def _roll_back(conn: psycopg.Connection[Any]) -> None:
    """End a transaction that failed half way (a bug in `change`, a lost connection), so the pool gets the
    connection back clean."""
    if conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
        with contextlib.suppress(psycopg.Error):
            conn.rollback()


def states_from_rows(rows: list[dict[str, Any]]) -> dict[str, ModelState]:
    return shared.model_states_from_json(row["data"] for row in rows)


class ModelRecords:
    """Mixed into `PostgresStore`, whose `_run` (one round trip), `_attempt` (a unit of work on one pooled
    connection, with the store's error handling and retry) and `_params` (adds the clock) it uses."""

    round_trips: int
    _run: Callable[..., list[list[dict[str, Any]]]]
    _params: Callable[..., dict[str, Any]]

    if TYPE_CHECKING:

        def _attempt(self, work: Callable[[psycopg.Connection[Any]], T], *, retry_for: float = 0.0) -> T: ...

    def update_model_state(self, model: str, change: Callable[[ModelState], T]) -> T:
        first = shared.model_state_json(ModelState(model=model))

        def read_modify_write(conn: psycopg.Connection[Any]) -> T:
            # An explicit BEGIN inside the pipeline: psycopg's `transaction()` would add a round trip for each end
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(_ENSURE_STATE, self._params(model=model, data=first))
                    before = one_row(conn.execute(_LOCK_STATE, {"model": model}))["data"]  # round trip 1
                    result, after = shared.change_state(before, model, change)
                    if after is not None:
                        conn.execute(_WRITE_STATE, self._params(model=model, data=after))
                    conn.execute("COMMIT")
                # round trip 2: the write and the COMMIT, at the pipeline's end
            except BaseException:
                _roll_back(conn)
                raise
            self.round_trips += 2
            return result

        return self._attempt(read_modify_write)

    def model_states(self) -> dict[str, ModelState]:
        (rows,) = self._run((STATES, {}))
        return states_from_rows(rows)

    def reset_model_states(self, model: str | None = None) -> int:
        where = "" if model is None else "WHERE model = %(model)s"
        ((row,),) = self._run(
            (
                f"WITH gone AS (DELETE FROM oh_lsp_model_state {where} RETURNING 1) SELECT count(*) AS n FROM gone",
                {"model": model},
            )
        )
        return int(row["n"])

    def record_model_call(self, call: ModelCall) -> None:
        self._run((_RECORD_CALL, shared.call_row(call)))

    def model_call_stats(self, since: float) -> dict[str, dict[str, Any]]:
        (rows,) = self._run((_CALL_STATS, {"since": since, "failures": list(shared.MODEL_FAILURE_OUTCOMES)}))
        return shared.call_stats_view(rows)

    def spent(self, *, task_id: str | None = None, day: str | None = None) -> float:
        column, value = shared.spent_filter(task_id, day)
        ((row,),) = self._run(
            (
                f"SELECT coalesce(sum(cost), 0.0)::float8 AS cost FROM oh_lsp_model_calls WHERE {column} = %(value)s",
                {"value": value},
            )
        )
        return float(row["cost"])
