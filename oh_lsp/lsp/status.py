"""The `ohLsp/status` notification: counts, tokens, cost, success rate, the current model and the model layer's
state, sent at most about 4 times a second however many events arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from oh_lsp import events as ev
from oh_lsp.progress_text import savings_text

if TYPE_CHECKING:
    from oh_lsp.engine import ExecutionEngine

log = logging.getLogger(__name__)
MIN_INTERVAL = 0.25  # seconds between two notifications


@dataclass
class SessionCounts:
    """What this server's engines did since it started (from their events).

    Tokens and cost grow with each model call (a call's final `tokens` event), not only when an attempt ends, so
    that the editors' status moves while a task runs. `model` is the model that answered the last call (None until
    one did): the model a call was sent to may fail and be rotated away from."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    tokens: int = 0
    tokens_estimated: bool = False  # some of `tokens` were estimated (an endpoint that reports no usage)
    cost: float = 0.0
    model: str | None = None
    _chosen: dict[str, str] = field(default_factory=dict)  # task -> the model its current call went to
    _counted: dict[str, tuple[int, float]] = field(default_factory=dict)  # task -> its attempt's spend counted so far

    def on_event(self, event: ev.Event) -> bool:
        """Count `event`; True when the status changed."""
        data, task = event.data, event.task_id
        if event.kind == ev.MODEL_CHOSEN:
            if data.get("model"):
                self._chosen[task] = data["model"]
            return False
        if event.kind == ev.TOKENS:
            if not data.get("final"):
                return False
            self.model = self._chosen.get(task) or self.model
            self._spend(task, data)  # the attempt's totals so far
            self.tokens_estimated = self.tokens_estimated or bool(data.get("estimated"))
            return True
        if event.kind == ev.COMPLETED:
            self.completed += 1
        elif event.kind == ev.FAILED:
            self.failed += 1
        elif event.kind == ev.CANCELLED:
            self.cancelled += 1
            self._forget(task)
            return True
        elif event.kind not in (ev.RETRYING, ev.QUEUED, ev.STARTED):
            return False
        # attempts that ended (completed, failed, retried) carry what they spent in all: add what the calls'
        # events did not already count (a runtime that reports its spend only at the end)
        self._spend(task, data)
        self.tokens_estimated = self.tokens_estimated or bool(data.get("tokens_estimated"))
        if event.kind != ev.STARTED:
            self._forget(task)
        return True

    def _spend(self, task: str, data: dict[str, Any]) -> None:
        tokens, cost = int(data.get("tokens") or 0), float(data.get("cost") or 0.0)
        seen_tokens, seen_cost = self._counted.get(task, (0, 0.0))
        self.tokens += max(tokens - seen_tokens, 0)
        self.cost += max(cost - seen_cost, 0.0)
        self._counted[task] = (max(tokens, seen_tokens), max(cost, seen_cost))

    def _forget(self, task: str) -> None:
        self._counted.pop(task, None)
        self._chosen.pop(task, None)


def model_layer_state(metrics: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Cooldowns, breakers and the daily budget left, from each folder's metrics summary (the model layer keeps
    them in the store, so they include what other processes saw)."""
    cooldowns: dict[str, float] = {}
    breakers: dict[str, str] = {}
    budget_left: list[float] = []
    for summary in metrics:
        for model, state in (summary.get("model_state") or {}).items():
            if state.get("cooldown_seconds_left", 0) > 0:
                cooldowns[model] = max(cooldowns.get(model, 0.0), float(state["cooldown_seconds_left"]))
            if state.get("breaker"):
                breakers[model] = state["breaker"] if breakers.get(model, "closed") == "closed" else breakers[model]
        left = (summary.get("budget") or {}).get("left_today_usd")
        if left is not None:
            budget_left.append(float(left))
    return {
        "cooldowns": [{"model": m, "secondsLeft": round(s, 1)} for m, s in sorted(cooldowns.items())],
        "breakers": [{"model": m, "state": s} for m, s in sorted(breakers.items())],
        "budgetLeftToday": min(budget_left) if budget_left else None,
    }


def build_status(
    counts: SessionCounts,
    queue_stats: Iterable[dict[str, Any]],
    metrics: Iterable[dict[str, Any]],
    configured_model: str | None,
    model_state: dict[str, Any],
) -> dict[str, Any]:
    """The notification's payload. `queue_stats` and `metrics` are per workspace folder (their stores).

    `costToday` is what today's model calls cost (the stores' call ledger, which grows per call), `successRate` is
    None until an attempt has ended, `model` is the model that answered the last call of this session (None until
    one did), and `modelSelected` the model new tasks start with (`configured_model`: the model chosen explicitly, by
    the environment, the settings or `ohLsp.setModel`; None when the selector chooses per task). `savings` is what
    caching saved in the stores: ``{saved, cachedShare, fromCache, text}`` (USD saved by the providers' prompt caches
    and the result cache, the share of prompt tokens read from a prompt cache, results served from the result cache,
    and "saved $x (y % cached)")."""
    stats = list(queue_stats)
    summaries = list(metrics)
    systems = [m.get("system", {}) for m in summaries]
    executions = sum(s.get("executions", 0) for s in systems)
    successful = sum(s.get("successful", 0) for s in systems)
    prompt_tokens = sum(s.get("prompt_tokens", 0) for s in systems)
    savings = {
        "saved_cost": round(sum(s.get("saved_cost", 0.0) for s in systems), 10),
        "cached_share": sum(s.get("cached_tokens", 0) for s in systems) / prompt_tokens if prompt_tokens else 0.0,
        "cache_hits": sum(s.get("cache_hits", 0) for s in systems),
    }
    cost_today = sum(
        (m.get("budget") or {}).get("spent_today_usd", m.get("system", {}).get("cost_today", 0.0)) for m in summaries
    )
    return {
        "queued": sum(s.get("pending", 0) for s in stats),
        "running": sum(s.get("running", 0) for s in stats),
        "completed": counts.completed,
        "failed": counts.failed,
        "cancelled": counts.cancelled,
        "tokens": counts.tokens,
        "tokensEstimated": counts.tokens_estimated,
        "costSession": round(counts.cost, 10),
        "costToday": round(cost_today, 10),
        "successRate": successful / executions if executions else None,
        "model": counts.model,
        "modelSelected": configured_model,
        "cooldowns": list(model_state.get("cooldowns", [])),
        "breakers": list(model_state.get("breakers", [])),
        "budgetLeftToday": model_state.get("budgetLeftToday"),
        "savings": {
            "saved": savings["saved_cost"],
            "cachedShare": round(savings["cached_share"], 4),
            "fromCache": savings["cache_hits"],
            "text": savings_text(savings),
        },
    }


async def collect_status(counts: SessionCounts, engines: list[ExecutionEngine]) -> dict[str, Any]:
    """The notification's payload: this session's counts and every folder's store."""
    stats = [await e.queue.stats() for e in engines]
    metrics = [await asyncio.to_thread(e.get_metrics_summary) for e in engines]
    configured = engines[0].config if engines else None
    selected = configured.model if configured is not None and configured.model_was_set else None
    return build_status(counts, stats, metrics, selected, model_layer_state(metrics))


class Debouncer:
    """Runs `action` after `poke()`, at most once per `interval` seconds; pokes in between are merged."""

    def __init__(self, action: Callable[[], Awaitable[None]], interval: float = MIN_INTERVAL) -> None:
        self.action = action
        self.interval = interval
        self._dirty = False
        self._last = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._dirty:
            wait = self._last + self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty = False
            self._last = loop.time()
            try:
                await self.action()
            except Exception:  # a failed status must not stop later ones
                log.exception("sending the status failed")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
