"""The reporting commands' answers (metrics, queue stats, tasks, models), added up over the workspace folders'
stores in a multi-root workspace."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oh_lsp.lsp.session import Session

_SUMMED = (
    "executions",
    "successful",
    "failed",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_cost",
    "validations_passed",
    "cost_today",
    "tokens_today",
    "cached_tokens",
    "saved_cost",
    "cache_hits",
)


def _merge_aggregates(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {key: sum(p.get(key, 0) for p in parts) for key in _SUMMED if any(key in p for p in parts)}
    executions = merged.get("executions", 0)
    successful = merged.get("successful", 0)
    merged["success_rate"] = successful / executions if executions else 0.0
    merged["avg_duration_seconds"] = (
        (sum(p.get("avg_duration_seconds", 0.0) * p.get("executions", 0) for p in parts) / executions)
        if executions
        else 0.0
    )
    merged["avg_quality_score"] = (
        (sum(p.get("avg_quality_score", 0.0) * p.get("successful", 0) for p in parts) / successful)
        if successful
        else 0.0
    )
    merged["tokens_estimated"] = any(p.get("tokens_estimated", False) for p in parts)
    if "total_cost" in merged:
        merged["total_cost"] = round(merged["total_cost"], 10)
    prompt_tokens = merged.get("prompt_tokens", 0)
    merged["cached_share"] = merged.get("cached_tokens", 0) / prompt_tokens if prompt_tokens else 0.0
    return merged


def merge_metrics(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One `metrics_summary()` shape (`system`, `models`, `task_types`) for several stores."""
    if len(summaries) == 1:
        return dict(summaries[0])
    merged: dict[str, Any] = {"system": _merge_aggregates([s.get("system", {}) for s in summaries])}
    for group in ("models", "task_types"):
        names = sorted({name for s in summaries for name in s.get(group, {})})
        merged[group] = {
            name: _merge_aggregates([s[group][name] for s in summaries if name in s.get(group, {})]) for name in names
        }
    return merged


def merge_counts(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """One `stats()` shape for several stores: counts added, the earliest retry, every store named."""
    if len(stats) == 1:
        return dict(stats[0])
    merged: dict[str, Any] = {}
    for part in stats:
        for key, value in part.items():
            if key == "pending_by_priority":
                bucket = merged.setdefault(key, {})
                for name, count in value.items():
                    bucket[name] = bucket.get(name, 0) + count
            elif key == "next_retry_at":
                known = [v for v in (merged.get(key), value) if v is not None]
                merged[key] = min(known) if known else None
            elif key == "store":
                merged.setdefault("stores", []).append(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
    return merged


async def metrics(session: Session) -> dict[str, Any]:
    """The numeric summary of every folder's store (`metrics_summary()`'s shape), plus this session's status."""
    summaries = {str(e.root): await asyncio.to_thread(e.get_metrics_summary) for e in session.engines()}
    merged = merge_metrics(list(summaries.values())) if summaries else {}
    merged["session"] = await session.status()
    if len(summaries) > 1:
        merged["folders"] = summaries
    return merged


async def queue_stats(session: Session) -> dict[str, Any]:
    stats = {str(e.root): await e.queue.stats() for e in session.engines()}
    merged = merge_counts(list(stats.values())) if stats else {}
    if len(stats) > 1:
        merged["folders"] = stats
    return merged


async def list_tasks(session: Session, status: str | None) -> list[dict[str, Any]]:
    """`[{taskId, kind, target, status, model, cost}]` (plus `uri`, `delivery`, `written`, `createdAt`), newest
    first."""
    from oh_lsp.tasks import TaskStatus

    rows = []
    for folder in session.folders:
        if folder.engine is None:
            continue
        for task in await folder.engine.queue.list_tasks(TaskStatus(status) if status else None):
            target = task.target_file
            rows.append(
                {
                    "taskId": task.task_id,
                    "kind": task.kind,
                    "target": target.as_posix() if target else None,
                    "uri": session.uri_of(folder, target) if target else None,
                    "status": task.status.value,
                    "model": task.model,
                    "cost": task.cost,
                    "delivery": task.delivery,
                    "written": task.written,
                    "createdAt": task.created_at,
                }
            )
    return sorted(rows, key=lambda r: r["createdAt"], reverse=True)


async def list_models(session: Session) -> list[dict[str, Any]]:
    """Every model of the catalog (for this endpoint), with its prices and its state now."""
    selector = await session.gateway().selector()
    rows = await asyncio.to_thread(selector.list_models)
    return [
        {
            "name": row["name"],
            "id": row.get("id"),
            "qualityScore": row.get("quality"),
            "pricePrompt": row.get("price_prompt"),
            "priceCompletion": row.get("price_completion"),
            "contextLength": row.get("context_length"),
            "state": row.get("state"),
            "breaker": row.get("breaker"),
        }
        for row in rows
    ]
