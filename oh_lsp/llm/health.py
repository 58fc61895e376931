"""`ModelHealth`: cooldowns, circuit breakers, rotation counts and the call log of models, kept in the store.

This is the gateway's async face on the store: every read and write runs on the store's thread (`StoreThread`, the
engine's queue shares it), so the event loop never waits on the database. Every rotation, cooldown and breaker change is written as an INFO line to the log
(`oh-lsp logs`): docs/models.md#state-and-logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from oh_lsp.llm import breaker
from oh_lsp.llm.breaker import BreakerPolicy
from oh_lsp.llm.errors import ErrorKind, ModelCallError
from oh_lsp.records import CLOSED, HALF_OPEN, ModelCall, ModelState, StatesSnapshot, provider_key
from oh_lsp.store.thread import StoreThread

if TYPE_CHECKING:
    from oh_lsp.store.base import TaskStore

log = logging.getLogger("oh_lsp.models")
T = TypeVar("T")
FRESH_SECONDS = 1.0  # how long states read from the store (or with a claim) stand for the store's


class ModelHealth:
    """`snapshot`: the models' states as last read (the engine's queue reads them with each claim); while they are
    fresh, reading the states and admitting a call to a model whose breaker is closed need no trip to the store.
    Anything that changes a state goes to the store, atomically, and makes the snapshot stale."""

    def __init__(
        self,
        store: TaskStore,
        policy: BreakerPolicy,
        base_url: str,
        store_thread: StoreThread,
        snapshot: StatesSnapshot | None = None,
    ) -> None:
        self.store = store
        self.store_thread = store_thread
        self.policy = policy
        self.provider = provider_key(base_url)
        self.snapshot = snapshot or StatesSnapshot()
        self.snapshot.wanted = True
        self._pending: set[asyncio.Future[None]] = set()  # call records not waited for

    def _recorded(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("a model call could not be recorded: %s", future.exception())

    async def _update(self, model: str, change: Callable[[ModelState], T]) -> T:
        try:
            return await self.store_thread.run(self.store.update_model_state, model, change)
        finally:
            self.snapshot.changed()

    async def states(self) -> dict[str, ModelState]:
        if not self.snapshot.fresh(FRESH_SECONDS):
            self.snapshot.put(await self.store_thread.run(self.store.model_states))
        return self.snapshot.states

    def _closed(self, model: str, now: float) -> bool:
        """Whether the fresh snapshot shows `model` free: its breaker closed, not cooling down (admitting it then
        changes nothing in the store)."""
        if not self.snapshot.fresh(FRESH_SECONDS):
            return False
        state = self.snapshot.states.get(model)
        return state is None or (state.breaker == CLOSED and not state.cooling(now))

    async def admit(self, model: str, now: float | None = None) -> tuple[bool, ModelState]:
        """Whether `model` may take a call now (not cooling down, breaker closed or a half-open probe slot free),
        and its state. Claiming a half-open probe slot happens here, atomically across processes."""
        now = time.time() if now is None else now
        if self._closed(model, now):
            return True, self.snapshot.states.get(model) or ModelState(model=model)

        def change(state: ModelState) -> tuple[bool, str | None, ModelState]:
            if state.cooling(now):
                return False, None, state
            allowed, transition = breaker.admit(state, now, self.policy)
            return allowed, transition, state

        allowed, transition, state = await self._update(model, change)
        if transition:
            log.info(transition)
        return allowed, state

    async def cool_down(self, model: str, until: float, reason: str) -> None:
        def change(state: ModelState) -> bool:
            if until <= state.cooldown_until:
                return False
            state.cooldown_until, state.cooldown_reason = until, reason
            return True

        if await self._update(model, change):
            log.info(
                "cooldown: %s for %.1fs, until %s: %s",
                model,
                until - time.time(),
                datetime.fromtimestamp(until).strftime("%H:%M:%S"),
                reason,
            )

    async def failed(self, model: str, error: ModelCallError, now: float | None = None) -> None:
        """Note a failed call. Failures of the model itself (transient ones) count toward its breaker; any other
        failure of a half-open probe frees the probe slot."""
        now = time.time() if now is None else now

        def change(state: ModelState) -> str | None:
            state.last_error = str(error)[:300]
            if error.kind is ErrorKind.TRANSIENT:
                return breaker.on_failure(state, now, self.policy)
            if state.breaker == HALF_OPEN:
                state.probe_until = 0.0
            return None

        transition = await self._update(model, change)
        if transition:
            log.info(transition)

    async def succeeded(self, model: str, now: float | None = None, call: ModelCall | None = None) -> None:
        """Note a successful call (and record `call`, in the same trip to the store's thread). A success changes
        nothing of a closed breaker: then only the call is recorded."""
        now = time.time() if now is None else now
        if self._closed(model, now):
            if call is not None:  # not waited for: it commits with the next write (the attempt's end, usually)
                recorded = self.store_thread.later(self.store.record_model_call, call)
                self._pending.add(recorded)
                recorded.add_done_callback(self._recorded)
            return

        def record() -> str | None:
            if call is not None:
                self.store.record_model_call(call)
            return self.store.update_model_state(model, lambda state: breaker.on_success(state, now, self.policy))

        transition = await self.store_thread.run(record)
        if transition:
            self.snapshot.changed()
            log.info(transition)

    async def is_open(self, model: str) -> bool:
        """True when `model`'s breaker would refuse a call now (it just opened, or a probe failed)."""
        state = (await self.states()).get(model)
        return bool(state and self.policy.enabled and state.breaker != CLOSED and state.ready_at(time.time()))

    async def rotated(self, source: str, target: str, reason: str) -> None:
        def away(state: ModelState) -> None:
            state.rotations_away += 1

        def to(state: ModelState) -> None:
            state.rotations_to += 1

        await self._update(source, away)
        await self._update(target, to)
        log.info("rotation: %s -> %s (%s)", source, target, reason)

    async def record_call(self, call: ModelCall) -> None:
        await self.store_thread.run(self.store.record_model_call, call)
