"""What every store backend shares, so that SQLite and PostgreSQL keep one logic and say the same words: the
columns and values of the rows they write (a task, an attempt's metrics, a model call), a task from a row, the views
they return (queue stats, the metrics summary, costs, model state), the read-modify-write of a model's state, and the
messages a store writes into tasks.

Every text a task row keeps (its result, error and note), an attempt's error and a model's state are redacted here
for every secret oh-lsp knows (`to_json`, `clean`), in both backends, before they are written.

The message templates use `%s` placeholders so that Python (`template % values`) and PostgreSQL (`format(template,
...)`, when the values live in the row) fill them alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from oh_lsp.records import CachedResult, ExecutionMetrics, ModelCall, ModelState, local_day
from oh_lsp.redaction import holds_secret, redact, redact_data
from oh_lsp.tasks import QueuedTask, TaskPriority, TaskStatus

LEASE_LOST = "its worker (%s) stopped renewing the lease (process ended or hung)"  # % lease owner
REQUEUED = "re-queued: %s"  # % reason
FAILED_AFTER_LEASE_LOST = "failed after %s: %s"  # % (attempts_text(attempts), reason)
FAILED_AFTER_RETRIES = "failed after %s; last error: %s"  # % (attempts_text(attempts), reason)
RETRYING = "retrying in %.1fs: %s"  # % (delay, reason)
RELEASED = "re-queued: the engine stopped before it finished"
CANCELLED_BEFORE_START = "cancelled before it started"
MODEL_FAILURE_OUTCOMES = ("transient",)  # failures of the model itself (rate limits and refusals are not)
# `metrics_summary()["costs"]`: each key groups the model calls by one expression (the same SQL in both backends)
COST_GROUPS = (("by_model", "model"), ("by_kind", "coalesce(task_kind, '-')"), ("by_day", "day"))
# the columns of the rows written from Python (each backend names them in its INSERT and fills them from these dicts)
TASK_COLUMNS = (
    "id",
    "kind",
    "description",
    "target_file",
    "target_sha256",
    "priority",
    "metadata",
    "submitter",
    "dedupe_key",
    "max_retries",
)
METRICS_COLUMNS = (
    "task_id",
    "attempt",
    "model_id",
    "kind",
    "success",
    "validation_passed",
    "tokens_used",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "quality_score",
    "duration_seconds",
    "error",
    "created_at",
    "day",
    "tokens_estimated",
    "cached_tokens",
    "saved",
    "from_cache",
)
CALL_COLUMNS = (
    "created_at",
    "day",
    "task_id",
    "task_kind",
    "model",
    "outcome",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "cost_source",
    "cached_tokens",
    "saved",
)
# the result cache's columns, in the order both backends select them
CACHE_COLUMNS = ("key", "kind", "target_file", "task_id", "result", "tokens", "cost")
T = TypeVar("T")
log = logging.getLogger(__name__)


def attempts_text(attempts: int) -> str:
    """ "1 attempt", "3 attempts" (PostgreSQL says the same in SQL: its store's `_ATTEMPTS`)."""
    return f"{attempts} attempt{'' if attempts == 1 else 's'}"


def queue_full_message(unfinished: int, max_size: int) -> str:
    return (
        f"the queue is full: {unfinished} tasks are pending or running (max_size={max_size}). Nothing was"
        " added; run the engine (oh-lsp run-engine) or cancel tasks, then submit again."
    )


def task_from_row(row: Mapping[str, Any]) -> QueuedTask:
    """A `QueuedTask` from a row holding the task columns (times as epoch seconds, JSON as text). Its result says
    whether its edit was `written`, as the delivery recorded since."""
    task = QueuedTask(
        task_type=row["kind"],
        description=row["description"],
        target_file=Path(row["target_file"]) if row["target_file"] else None,
        priority=TaskPriority(row["priority"]),
        metadata=json.loads(row["metadata"] or "{}"),
        task_id=row["id"],
        status=TaskStatus(row["status"]),
        submitter=row["submitter"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        max_retries=row["max_retries"],
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        model=row["model"],
        tokens=row["tokens"],
        cost=row["cost"],
        target_sha256=row["target_sha256"],
        not_before=row["not_before"],
        note=row["note"],
        delivery=row["delivery"],
        lease_id=row["lease_id"],
    )
    if task.result is not None:
        task.result["written"] = task.written
    return task


def aggregate(row: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics view of one group of attempts (all, one model, or one task kind)."""
    executions = row["executions"]
    return {
        "executions": executions,
        "successful": row["successful"],
        "failed": executions - row["successful"],
        "success_rate": (row["successful"] / executions) if executions else 0.0,
        "total_tokens": row["tokens"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_cost": round(row["cost"], 10),
        "avg_duration_seconds": row["avg_duration_seconds"],
        "avg_quality_score": row["avg_quality_score"],
        "validations_passed": row["validations_passed"],
        "tokens_estimated": bool(row["tokens_estimated"]),  # some of the tokens were estimated (no usage reported)
        "cached_tokens": row["cached_tokens"],
        "cached_share": (row["cached_tokens"] / row["prompt_tokens"]) if row["prompt_tokens"] else 0.0,
        "saved_cost": round(row["saved"], 10),
        "cache_hits": row["cache_hits"],
    }


def task_row(task: QueuedTask, dedupe_key: str) -> dict[str, Any]:
    """The `TASK_COLUMNS` of a task to add (a retry limit of 2 when neither the task nor the engine set one)."""
    return {
        "id": task.task_id,
        "kind": task.kind,
        "description": clean(task.description),
        "target_file": task.target_file.as_posix() if task.target_file is not None else None,
        "target_sha256": task.target_sha256,
        "priority": int(task.priority),
        "metadata": to_json(task.metadata),
        "submitter": task.submitter,
        "dedupe_key": dedupe_key,
        "max_retries": 2 if task.max_retries is None else task.max_retries,
    }


def metrics_row(m: ExecutionMetrics) -> dict[str, Any]:
    """The `METRICS_COLUMNS` of one attempt's metrics (``day`` is its local calendar day)."""
    return {
        "task_id": m.task_id,
        "attempt": m.attempt,
        "model_id": m.model_id,
        "kind": m.kind,
        "success": bool(m.success),
        "validation_passed": bool(m.validation_passed),
        "tokens_used": int(m.tokens_used),
        "prompt_tokens": int(m.prompt_tokens),
        "completion_tokens": int(m.completion_tokens),
        "cost": float(m.cost),
        "quality_score": float(m.quality_score),
        "duration_seconds": float(m.duration_seconds),
        "error": clean(m.error),
        "created_at": m.created_at,
        "day": local_day(m.created_at),
        "tokens_estimated": bool(m.tokens_estimated),
        "cached_tokens": int(m.cached_tokens),
        "saved": float(m.saved_cost),
        "from_cache": bool(m.from_cache),
    }


def call_row(call: ModelCall) -> dict[str, Any]:
    """The `CALL_COLUMNS` of one model call."""
    return {
        "created_at": call.created_at,
        "day": call.day,
        "task_id": call.task_id,
        "task_kind": call.task_kind,
        "model": call.model,
        "outcome": call.outcome,
        "latency_ms": float(call.latency_ms),
        "prompt_tokens": int(call.prompt_tokens),
        "completion_tokens": int(call.completion_tokens),
        "cost": float(call.cost),
        "cost_source": call.cost_source,
        "cached_tokens": int(call.cached_tokens),
        "saved": float(call.saved_cost),
    }


def spent_on(metrics: ExecutionMetrics | None) -> dict[str, Any]:
    """What an ending attempt adds to its task's totals: ``tokens`` and ``cost`` (nothing without metrics)."""
    return {"tokens": int(metrics.tokens_used) if metrics else 0, "cost": float(metrics.cost) if metrics else 0.0}


def to_json(value: dict[str, Any] | None, secrets: list[str] | None = None) -> str | None:
    """`value` as the JSON a row keeps, every string in it redacted. A secret inside any of its strings shows in the
    JSON text as its JSON-escaped form, one of the forms `redact` looks for: when the text has none, nothing needs
    taking out (the common case, one search of the text instead of a walk through every string). `secrets`:
    default every secret oh-lsp knows."""
    if value is None:
        return None
    text = json.dumps(value, default=str)
    if not holds_secret(text, secrets):
        return text
    return json.dumps(redact_data(value, secrets), default=str)


def clean(text: str | None) -> str | None:
    """A text a row keeps (an error, a note, a reason), redacted."""
    return redact(text) if text else text


def model_state_from_json(data: str | None, model: str) -> ModelState:
    """A model's stored state (JSON text), or a fresh one when there is none yet."""
    return ModelState.from_dict(json.loads(data)) if data else ModelState(model=model)


def model_state_json(state: ModelState) -> str:
    """A model's state as stored (its cooldown and breaker reasons quote the endpoint's errors: redacted)."""
    return json.dumps(redact_data(state.to_dict()))


def model_states_from_json(documents: Iterable[str]) -> dict[str, ModelState]:
    """`model_states()`, from the stored JSON documents."""
    states = (model_state_from_json(document, "") for document in documents)
    return {state.model: state for state in states}


def change_state(before: str | None, model: str, change: Callable[[ModelState], T]) -> tuple[T, str | None]:
    """`update_model_state`'s middle step: let `change` modify `model`'s stored state (JSON `before`; None: none yet).
    Returns what `change` returns, and the JSON to write back (None when nothing changed)."""
    state = model_state_from_json(before, model)
    result = change(state)
    after = model_state_json(state)
    return result, (after if after != before else None)


def stats_view(
    by_status: Iterable[Mapping[str, Any]],
    by_priority: Iterable[Mapping[str, Any]],
    waiting: int,
    next_retry_at: float | None,
    location: str,
) -> dict[str, Any]:
    """`stats()`, from rows of ``status, n`` (all tasks) and ``priority, n`` (pending ones), and the pending tasks
    waiting for a retry: how many, and when the first is due."""
    counts = {s.value: 0 for s in TaskStatus} | {row["status"]: row["n"] for row in by_status}
    pending = {p.name.lower(): 0 for p in TaskPriority}
    pending |= {TaskPriority(row["priority"]).name.lower(): row["n"] for row in by_priority}
    return {
        "total": sum(counts.values()),
        **counts,
        "pending_by_priority": pending,
        "waiting_for_retry": waiting,
        "next_retry_at": next_retry_at,
        "store": location,
    }


def summary_view(
    system: Mapping[str, Any],
    today: tuple[float, int],
    models: Iterable[Mapping[str, Any]],
    kinds: Iterable[Mapping[str, Any]],
    costs: Mapping[str, Iterable[Mapping[str, Any]]],
    states: dict[str, ModelState],
    now: float,
) -> dict[str, Any]:
    """`metrics_summary()`, from the aggregate rows of all attempts, of each model and of each task kind, today's
    (cost, tokens), the cost rows of each of `COST_GROUPS`, and the model states (cooldowns and breakers as of `now`)."""
    totals = aggregate(system)
    totals["cost_today"], totals["tokens_today"] = today
    return {
        "system": totals,
        "models": {row["model_id"]: aggregate(row) for row in models},
        "task_types": {row["kind"]: aggregate(row) for row in kinds},  # the usage guide's key (docs/guide-compat.md)
        "costs": {key: cost_view(rows) for key, rows in costs.items()},
        "model_state": {name: state.view(now) for name, state in sorted(states.items())},
        "rotations": sum(state.rotations_away for state in states.values()),
    }


def cost_view(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One group of `costs`, from rows of ``key, calls, cost, tokens``."""
    return {
        row["key"]: {"calls": row["calls"], "cost": round(row["cost"], 10), "tokens": row["tokens"]} for row in rows
    }


def spent_filter(task_id: str | None, day: str | None) -> tuple[str, str]:
    """`spent()`'s one filter: the model calls' column and the value it must have."""
    if task_id is not None:
        return "task_id", task_id
    if day is not None:
        return "day", day
    raise ValueError("spent() needs a task_id or a day")


def call_stats_view(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`model_call_stats()`, from rows of ``model, calls, ok, avg_latency_ms``."""
    return {
        row["model"]: {"calls": row["calls"], "ok": row["ok"], "avg_latency_ms": row["avg_latency_ms"]} for row in rows
    }


def cache_row(entry: CachedResult) -> dict[str, Any]:
    """The `CACHE_COLUMNS` of a result cache entry (its time is the store's own clock)."""
    return {
        "key": entry.key,
        "kind": entry.kind,
        "target_file": entry.target_file,
        "task_id": entry.task_id,
        "result": to_json(entry.result),  # redacted, as every row
        "tokens": int(entry.tokens),
        "cost": float(entry.cost),
    }


def cached_from_row(row: Mapping[str, Any], created_at: float) -> CachedResult | None:
    """A result cache entry from its row; None (and a warning) when the row does not hold a usable result."""
    try:
        result = json.loads(row["result"])
        if not isinstance(result, dict) or result.get("kind") != row["kind"]:
            raise ValueError("not the result of a task of its kind")
        return CachedResult(
            key=row["key"],
            kind=row["kind"],
            task_id=row["task_id"],
            result=result,
            target_file=row["target_file"],
            tokens=int(row["tokens"]),
            cost=float(row["cost"]),
            created_at=float(created_at),
        )
    except (ValueError, TypeError, KeyError) as exc:
        log.warning(
            "result cache: the entry %s cannot be read (%s); it is ignored and will be replaced", row["key"], exc
        )
        return None
