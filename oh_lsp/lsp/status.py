"""The `ohLsp/status` notification: counts, tokens, cost, success rate, the current model and the model layer's
state, sent at most about 4 times a second however many events arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oh_lsp import events as ev

if TYPE_CHECKING:
    from oh_lsp.engine import ExecutionEngine

log = logging.getLogger(__name__)
MIN_INTERVAL = 0.25  # seconds between two notifications


@dataclass
class SessionCounts:
    """What this server's engines did since it started (from their events)."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    tokens: int = 0
    tokens_estimated: bool = False  # some of `tokens` were estimated (an endpoint that reports no usage)
    cost: float = 0.0
    model: str | None = None

    def on_event(self, event: ev.Event) -> bool:
        """Count `event`; True when the status changed."""
        data = event.data
        if event.kind == ev.MODEL_CHOSEN:
            changed = data.get("model") != self.model
            self.model = data.get("model") or self.model
            return changed
        if event.kind == ev.COMPLETED:
            self.completed += 1
        elif event.kind == ev.FAILED:
            self.failed += 1
        elif event.kind == ev.CANCELLED:
            self.cancelled += 1
            return True
        elif event.kind not in (ev.RETRYING, ev.QUEUED, ev.STARTED):
            return False
        # attempts that ended (completed, failed, retried) carry what they spent
        self.tokens += int(data.get("tokens") or 0)
        self.tokens_estimated = self.tokens_estimated or bool(data.get("tokens_estimated"))
        self.cost += float(data.get("cost") or 0.0)
        return True


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
    """The notification's payload. `queue_stats` and `metrics` are per workspace folder (their stores)."""
    stats = list(queue_stats)
    systems = [m.get("system", {}) for m in metrics]
    executions = sum(s.get("executions", 0) for s in systems)
    successful = sum(s.get("successful", 0) for s in systems)
    return {
        "queued": sum(s.get("pending", 0) for s in stats),
        "running": sum(s.get("running", 0) for s in stats),
        "completed": counts.completed,
        "failed": counts.failed,
        "cancelled": counts.cancelled,
        "tokens": counts.tokens,
        "tokensEstimated": counts.tokens_estimated,
        "costSession": round(counts.cost, 10),
        "costToday": round(sum(s.get("cost_today", 0.0) for s in systems), 10),
        "successRate": successful / executions if executions else 0.0,
        "model": counts.model or configured_model,
        "cooldowns": list(model_state.get("cooldowns", [])),
        "breakers": list(model_state.get("breakers", [])),
        "budgetLeftToday": model_state.get("budgetLeftToday"),
    }


async def collect_status(counts: SessionCounts, engines: list[ExecutionEngine]) -> dict[str, Any]:
    """The notification's payload: this session's counts and every folder's store."""
    stats = [await e.queue.get_stats() for e in engines]
    metrics = [await asyncio.to_thread(e.get_metrics_summary) for e in engines]
    configured = engines[0].config.model if engines else None
    return build_status(counts, stats, metrics, configured, model_layer_state(metrics))


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
