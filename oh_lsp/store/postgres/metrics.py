"""The attempts' metrics in the PostgreSQL store: one row per attempt that reached a model (`ExecutionMetrics`),
written in the statement that ends the attempt (`METRICS_INSERT` inside `store.py`'s finish and retry), and the
summary `oh-lsp metrics` shows, read in one round trip. Same semantics as the SQLite store's `store/sqlite/metrics.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from oh_lsp.records import ExecutionMetrics, local_day
from oh_lsp.store import shared
from oh_lsp.store.postgres import model_records

METRICS_INSERT = (
    f"INSERT INTO oh_lsp_metrics ({', '.join(shared.METRICS_COLUMNS)})"
    " SELECT %(m_task_id)s::text, %(m_attempt)s::integer, %(m_model_id)s::text, %(m_kind)s::text,"
    " %(m_success)s::boolean, %(m_validation_passed)s::boolean, %(m_tokens_used)s::bigint,"
    " %(m_prompt_tokens)s::bigint, %(m_completion_tokens)s::bigint, %(m_cost)s::float8, %(m_quality_score)s::float8,"
    " %(m_duration_seconds)s::float8, %(m_error)s::text, to_timestamp(%(m_created_at)s::float8), %(m_day)s::text,"
    " %(m_tokens_estimated)s::boolean,"
    " %(m_cached_tokens)s::bigint, %(m_saved)s::float8, %(m_from_cache)s::boolean"
)
# one group of attempts (all, one model, one task kind), as `shared.aggregate` reads it; a `saved` below 0 (written
# before savings were clamped, llm/budget.py `cache_savings`) counts as 0
_AGGREGATE = (
    "count(*) AS executions, count(*) FILTER (WHERE success) AS successful,"
    " coalesce(sum(tokens_used), 0)::bigint AS tokens, coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,"
    " coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens, coalesce(sum(cost), 0.0) AS cost,"
    " coalesce(avg(duration_seconds), 0.0) AS avg_duration_seconds,"
    " coalesce(avg(quality_score) FILTER (WHERE success), 0.0) AS avg_quality_score,"
    " count(*) FILTER (WHERE validation_passed) AS validations_passed,"
    " coalesce(bool_or(tokens_estimated), false) AS tokens_estimated,"
    " coalesce(sum(cached_tokens), 0)::bigint AS cached_tokens, coalesce(sum(greatest(saved, 0)), 0.0) AS saved,"
    " count(*) FILTER (WHERE from_cache) AS cache_hits"
)


class MetricsRecords:
    """Mixed into `PostgresStore`, whose `_run` (one round trip) and clock it uses."""

    _clock: Callable[[], float] | None
    _run: Callable[..., list[list[dict[str, Any]]]]

    def record_metrics(self, metrics: ExecutionMetrics) -> None:
        self._run((METRICS_INSERT, metrics_params(metrics)))

    def metrics_summary(self) -> dict[str, Any]:
        now = self._clock() if self._clock is not None else time.time()
        (system,), (day,), models, kinds, states, *costs = self._run(
            (f"SELECT {_AGGREGATE} FROM oh_lsp_metrics", {}),
            (
                "SELECT coalesce(sum(cost), 0.0) AS cost, coalesce(sum(tokens_used), 0)::bigint AS tokens"
                " FROM oh_lsp_metrics WHERE day = %(day)s",
                {"day": local_day(now)},
            ),
            (f"SELECT model_id, {_AGGREGATE} FROM oh_lsp_metrics GROUP BY model_id ORDER BY model_id", {}),
            (f"SELECT kind, {_AGGREGATE} FROM oh_lsp_metrics GROUP BY kind ORDER BY kind", {}),
            (model_records.STATES, {}),
            *((sql, {}) for _, sql in model_records.COSTS),
        )
        return shared.summary_view(
            system,
            (day["cost"], day["tokens"]),
            models,
            kinds,
            {key: rows for (key, _), rows in zip(model_records.COSTS, costs, strict=True)},
            model_records.states_from_rows(states),
            now,
        )


def metrics_params(m: ExecutionMetrics | None) -> dict[str, Any]:
    """The `%(m_...)s` parameters of `METRICS_INSERT` (all None, and `has_metrics` false, without metrics)."""
    row = shared.metrics_row(m) if m is not None else dict.fromkeys(shared.METRICS_COLUMNS)
    return {f"m_{name}": value for name, value in row.items()} | {"has_metrics": m is not None}
