"""Budgets and the true cost of a call.

Cost is the provider's ``usage.cost`` when it reports one, else the catalog's price times the tokens. Before a call
is sent, its worst case (the prompt's estimated tokens plus ``max_tokens``, times the catalog price) is checked
against the per-task and per-day caps; a call that could pass a cap is not sent. Neither cap cools a model down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from oh_lsp.llm.catalog import ModelInfo
from oh_lsp.llm.errors import ErrorKind, ModelCallError
from oh_lsp.llm.tokens import estimate_prompt_tokens as estimate_prompt_tokens  # agent/runtime.py uses it here
from oh_lsp.records import local_day, next_local_midnight
from oh_lsp.store.thread import StoreThread

log = logging.getLogger("oh_lsp.models")
LOCAL_NO_COST = "local: no cost"  # what the cost of a call to a model on this machine says
_unpriced_warned: set[str] = set()


def call_cost(result: Any, model: ModelInfo, *, local: bool = False) -> tuple[float, str]:
    """(cost, source) of a finished call: the provider's usage.cost, else price x tokens, else 0: "local" for a
    model on this machine that no catalog prices, "unknown" for any other."""
    if result.cost is not None:
        return float(result.cost), "provider"
    computed = model.cost(
        result.prompt_tokens, result.completion_tokens, result.cached_tokens, result.cache_write_tokens
    )
    if local and not computed:
        return 0.0, "local"
    if computed is not None:
        return computed, "catalog"
    if model.name not in _unpriced_warned:
        _unpriced_warned.add(model.name)
        log.warning(
            "no price is known for %s and the provider reported no cost; its calls are counted as $0 (add"
            " price_prompt/price_completion for it in OH_LSP_MODEL_CATALOG)",
            model.name,
        )
    return 0.0, "unknown"


def cache_savings(result: Any, model: ModelInfo) -> float:
    """What the provider's prompt cache saved on a finished call, by the catalog's prices: its cached tokens at the
    full prompt price less what they cost read from the cache, less the premium of the tokens it wrote to the cache.
    Never below 0: a call that only wrote to the cache saved nothing (the premium is in its cost). The provider's own
    cost is not compared with the catalog's price: the two need not agree (fees, other rates), and a reported cost
    above the catalog's once made a negative "saved $". 0 when no price is known or nothing was read from the cache.
    """
    if not result.cached_tokens or model.price_prompt is None:
        return 0.0
    read, write = model.cache_prices()
    discount: float = result.cached_tokens * (model.price_prompt - read)
    premium: float = result.cache_write_tokens * max(write - model.price_prompt, 0.0)
    return max(discount - premium, 0.0)


class Budget:
    """The caps of `config` (``budget_per_task_usd``, ``budget_per_day_usd``), checked against the store's totals."""

    def __init__(self, config: Any, store: Any, store_thread: StoreThread | None = None) -> None:
        self.per_task = config.budget_per_task_usd
        self.per_day = config.budget_per_day_usd
        self.store = store
        self.store_thread = store_thread  # the engine's (model calls); `status()` alone needs none

    async def _spent(self, **which: Any) -> float:
        if self.store_thread is None:
            return await asyncio.to_thread(self.store.spent, **which)
        return await self.store_thread.run(self.store.spent, **which)

    async def check(self, task_id: str, model: ModelInfo, prompt_tokens: int, max_tokens: int) -> None:
        """Raise a fatal `ModelCallError(BUDGET)` when the call's worst case could pass a cap."""
        if self.per_task is None and self.per_day is None:
            return
        worst = model.cost(prompt_tokens, max_tokens)
        if worst is None:
            return  # unpriced model: nothing to estimate with (its real cost still counts toward the totals)
        call = (
            f"the next call to {model.name} could cost up to ${worst:.6f} ({prompt_tokens} prompt + {max_tokens}"
            " completion tokens at catalog prices)"
        )
        if self.per_task is not None:
            spent = await self._spent(task_id=task_id)
            if spent + worst > self.per_task:
                raise ModelCallError(
                    ErrorKind.BUDGET,
                    f"per-task budget reached: this task has spent ${spent:.6f} of"
                    f" ${self.per_task:g}, and {call}. The call was not sent. Raise"
                    " OH_LSP_BUDGET_PER_TASK_USD, or lower OH_LSP_MAX_TOKENS",
                    model=model.name,
                )
        if self.per_day is not None:
            spent = await self._spent(day=local_day())
            if spent + worst > self.per_day:
                midnight = datetime.fromtimestamp(next_local_midnight()).strftime("%Y-%m-%d %H:%M")
                raise ModelCallError(
                    ErrorKind.BUDGET,
                    f"daily budget reached: ${spent:.6f} of ${self.per_day:g}"
                    f" spent today, and {call}. The call was not sent; no task calls a model until"
                    f" local midnight ({midnight}). Raise OH_LSP_BUDGET_PER_DAY_USD to go on today",
                    model=model.name,
                )

    async def remaining(self, task_id: str) -> tuple[float, str] | None:
        """What `task_id` may still spend under the tighter cap, and which cap that is ("per-task" or "daily");
        None when no cap is set. For runtimes that are stopped once their reported cost passes a cap."""
        left: list[tuple[float, str]] = []
        if self.per_task is not None:
            spent = await self._spent(task_id=task_id)
            left.append((self.per_task - spent, "per-task"))
        if self.per_day is not None:
            spent = await self._spent(day=local_day())
            left.append((self.per_day - spent, "daily"))
        if not left:
            return None
        amount, which = min(left)
        return max(amount, 0.0), which

    def status(self, now: float | None = None) -> dict[str, Any]:
        """The daily budget's state (for `metrics` and the editors' status)."""
        spent = self.store.spent(day=local_day(time.time() if now is None else now))
        return {
            "per_task_usd": self.per_task,
            "per_day_usd": self.per_day,
            "spent_today_usd": round(spent, 10),
            "left_today_usd": None if self.per_day is None else round(max(self.per_day - spent, 0.0), 10),
        }
