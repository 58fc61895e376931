"""What every store backend shares: reading a task row, the per-model aggregate view, the model-state and cost views,
and the messages a store writes into tasks (so that SQLite and PostgreSQL say the same words).

The message templates use `%s` placeholders so that Python (`template % values`) and PostgreSQL (`format(template,
...)`, when the values live in the row) fill them alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from oh_lsp.records import ModelState
from oh_lsp.tasks import QueuedTask, TaskPriority, TaskStatus

LEASE_LOST = "its worker (%s) stopped renewing the lease (process ended or hung)"  # % lease owner
REQUEUED = "re-queued: %s"  # % reason
FAILED_AFTER_LEASE_LOST = "failed after %s attempts: %s"  # % (attempts, reason)
FAILED_AFTER_RETRIES = "failed after %s attempts; last error: %s"  # % (attempts, reason)
RETRYING = "retrying in %.1fs: %s"  # % (delay, reason)
RELEASED = "re-queued: the engine stopped before it finished"
CANCELLED_BEFORE_START = "cancelled before it started"
MODEL_FAILURE_OUTCOMES = ("transient",)  # failures of the model itself (rate limits and refusals are not)
# `metrics_summary()["costs"]`: each key groups the model calls by one expression (the same SQL in both backends)
COST_GROUPS = (("by_model", "model"), ("by_kind", "coalesce(task_kind, '-')"), ("by_day", "day"))


def queue_full_message(unfinished: int, max_size: int) -> str:
    return (
        f"the queue is full: {unfinished} tasks are pending or running (max_size={max_size}). Nothing was"
        " added; run the engine (oh-lsp run-engine) or cancel tasks, then submit again."
    )


def task_from_row(row: Mapping[str, Any]) -> QueuedTask:
    """A `QueuedTask` from a row holding the task columns (times as epoch seconds, JSON as text)."""
    return QueuedTask(
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
    }


def max_retries_of(task: QueuedTask) -> int:
    """The retries a task allows (2 when neither the task nor the engine said)."""
    return 2 if task.max_retries is None else task.max_retries


def to_json(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, default=str) if value is not None else None


def path_text(path: Path | None) -> str | None:
    return path.as_posix() if path is not None else None


def model_state_from_json(data: str | None, model: str) -> ModelState:
    """A model's stored state (JSON text), or a fresh one when there is none yet."""
    return ModelState.from_dict(json.loads(data)) if data else ModelState(model=model)


def model_state_json(state: ModelState) -> str:
    return json.dumps(state.to_dict())


def model_states_from_json(documents: Iterable[str]) -> dict[str, ModelState]:
    """`model_states()`, from the stored JSON documents."""
    states = (model_state_from_json(document, "") for document in documents)
    return {state.model: state for state in states}


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


def model_state_summary(states: dict[str, ModelState], now: float) -> dict[str, Any]:
    """The ``model_state`` (cooldowns and breakers as of `now`) and ``rotations`` parts of `metrics_summary`."""
    return {
        "model_state": {name: state.view(now) for name, state in sorted(states.items())},
        "rotations": sum(state.rotations_away for state in states.values()),
    }
