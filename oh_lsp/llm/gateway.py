"""`ModelGateway`: the one way the engine reaches a model.

For each request it asks the selector for a ranked chain (a task's ``metadata["model"]`` pins one model), then runs
the request layer's single retry loop (tenacity): each attempt takes the next model from `Rotation`, checks the
budget, streams the call, and accounts for it (tokens, true cost, latency) in the store. The loop's wait is
recomputed from the latest error, and it never runs past the task's timeout. A `ModelCallError` that escapes means
no model could answer now; its `fatal` and `retry_after` tell the task layer (the queue) what to do.

Each request's prompt and `max_tokens` are fitted to the model's context (`PromptFit`). A call whose endpoint sent
no ``usage`` has its tokens estimated (`tokens.estimate_usage`) and marked so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from oh_lsp import events as ev
from oh_lsp.config import OpenHandsConfig
from oh_lsp.llm.breaker import BreakerPolicy
from oh_lsp.llm.budget import Budget, cache_savings, call_cost
from oh_lsp.llm.catalog import (
    ModelInfo,
    entry_context_length,
    learned_context_lengths,
    remember_context_length,
    save_cache,
    server_context_length,
)
from oh_lsp.llm.client import ChatClient, ChatResult, DeltaCallback
from oh_lsp.llm.errors import ContextFigures, EmptyStream, ErrorKind, ModelCallError
from oh_lsp.llm.fitting import PromptFit, Refit
from oh_lsp.llm.health import ModelHealth
from oh_lsp.llm.rotation import Rotation
from oh_lsp.llm.selector import ModelSelector, Selection, TaskRequirements
from oh_lsp.llm.tokens import estimate_usage
from oh_lsp.records import ModelCall, ModelState, StatesSnapshot
from oh_lsp.store.thread import StoreThread
from oh_lsp.tasks import QueuedTask

log = logging.getLogger("oh_lsp.models")
DEADLINE_SHARE = 0.8  # of the task timeout, for the request layer (the rest is for validation)
RANK_SECONDS = 30.0  # a ranked chain is made again at least this often (the observed calls move it)
LIST_MODELS_TIMEOUT = 5.0


class ModelGateway:
    def __init__(
        self,
        config: OpenHandsConfig,
        *,
        store: Any = None,
        client: ChatClient | None = None,
        selector: ModelSelector | None = None,
        store_thread: StoreThread | None = None,
        states: StatesSnapshot | None = None,
    ) -> None:
        if store is None:
            from oh_lsp.store import open_store

            store = open_store()
        self.config = config
        self.store = store
        self._own_store_thread = store_thread is None
        self.store_thread = store_thread or StoreThread()  # an engine passes its queue's: one thread per store
        self.client = client or ChatClient(config)
        # `states`: the engine's queue reads them with each claim (StatesSnapshot)
        self.health = ModelHealth(store, BreakerPolicy.from_config(config), config.base_url, self.store_thread, states)
        self.budget = Budget(config, store, self.store_thread)
        self._selector = selector
        self._selector_ready = asyncio.Lock()  # many workers ask at once; the first one builds it
        self._learned: dict[str, int] | None = None  # context lengths the endpoint's errors gave, by model id
        # ranked chains by (requirements, pinned model): (the states' version they were made at, when, the ranking)
        self._ranked: dict[tuple[Any, ...], tuple[int, float, Selection]] = {}

    async def selector(self) -> ModelSelector:
        """The selector for this endpoint. For an endpoint other than OpenRouter, its ``/models`` list is read once
        (and cached) so that its own model names make up the catalog."""
        async with self._selector_ready:
            if self._selector is None:
                if self.config.resolved_provider != "openrouter":
                    await self._list_endpoint_models()
                self._selector = await self.store_thread.run(ModelSelector, None, self.store, config=self.config)
        return self._selector

    async def _list_endpoint_models(self) -> None:
        try:
            entries = await asyncio.wait_for(self.client.list_models(), LIST_MODELS_TIMEOUT)
        except (TimeoutError, ModelCallError) as exc:
            log.info(
                "could not list the models of %s (%s); using the configured model and the catalog file",
                self.config.base_url,
                exc or "timed out",
            )
            return
        if entries and not any(entry_context_length(entry) for entry in entries):
            # llama.cpp's server says its context length in /props, not in /models (one model per server)
            n_ctx = server_context_length(await self.client.server_props())
            if n_ctx:
                entries = [{**entry, "context_length": n_ctx} for entry in entries]
        await asyncio.to_thread(save_cache, self.config.base_url, entries)

    def context_limit(self, model: ModelInfo) -> int | None:
        """`model`'s context length as known now: what the endpoint's own errors said, else the catalog's (or the
        endpoint's list), else the ``OH_LSP_CONTEXT_TOKENS`` setting."""
        if self._learned is None:
            self._learned = learned_context_lengths(self.config.base_url)
        return self._learned.get(model.id) or model.context_length or self.config.context_tokens

    async def _learn(self, model: ModelInfo, tokens: int) -> None:
        if self.context_limit(model) != tokens:
            assert self._learned is not None
            self._learned[model.id] = tokens
            log.info("context length of %s: %d tokens (from its context-length error)", model.name, tokens)
            await asyncio.to_thread(remember_context_length, self.config.base_url, model.id, tokens)

    async def record_kept_tests(self, model: str, generated: int, kept: int) -> None:
        """What `model`'s unit tests were worth in one task: of the `generated` tests it wrote, `kept` passed the value
        gate. Kept in the store (oh-lsp metrics shows it; the selector learns the model's quality from it)."""
        if not model or generated <= 0:
            return

        def add(state: ModelState) -> None:
            state.tests_generated += generated
            state.tests_kept += min(kept, generated)

        await self.store_thread.run(self.store.update_model_state, model, add)
        self.health.snapshot.changed()  # the learned quality ranks it: rankings made before are stale

    async def select(self, task: QueuedTask) -> Selection:
        """The ranked chain for `task` (also for other runtimes that need the same fallbacks).

        Ranking reads the catalog and the models' observed calls (a few milliseconds on the store's thread): the
        ranked chain of the same requirements is reused until a model's state changes, or for `RANK_SECONDS`.
        Which of its models can take a call now is judged from the states each time."""
        selector = await self.selector()
        pinned = task.metadata.get("model")
        try:
            requirements = None if pinned else TaskRequirements.for_task(task, self.config)
            key = (str(pinned) if pinned else None, requirements.key() if requirements else None)
            version = self.health.snapshot.version
            cached = self._ranked.get(key)
            if cached is None or cached[0] != version or time.monotonic() - cached[1] > RANK_SECONDS:
                ranked = await self.store_thread.run(selector.explain, requirements, pinned=key[0], states={})
                self._ranked[key] = cached = (version, time.monotonic(), ranked)
            return selector.available(cached[2], await self.health.states(), time.time())
        except ValueError as exc:  # NoModelError, or metadata that makes no sense
            raise ModelCallError(ErrorKind.NO_MODEL, str(exc)) from None

    async def context_tokens(self, task: QueuedTask) -> int | None:
        """The context length of the model that would answer `task` now (None when unknown), to fit prompts."""
        try:
            selection = await self.select(task)
        except ModelCallError:
            return None  # complete() will report why no model can answer
        head = selection.chain[0] if selection.chain else (selection.ranked[0] if selection.ranked else None)
        return self.context_limit(head) if head else None

    async def complete(
        self,
        task: QueuedTask,
        messages: list[dict[str, Any]],
        *,
        emit: Callable[..., None],
        on_delta: DeltaCallback | None = None,
        refit: Refit | None = None,
        prefer: str | None = None,
    ) -> ChatResult:
        """One answer for `task`. Raises `ModelCallError` (with `.model` set) when no model could give one.
        `refit(tokens)` builds the messages again for a smaller prompt, after a context-length error or for a model
        with a small context. `prefer` heads the chain when it is in it (the model whose prompt cache a batch of
        similar tasks warmed); a model the task pins wins over it."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        selection = await self.select(task)
        ranked = preferred_first(selection.ranked, prefer)
        why = selection.why
        if ranked and selection.ranked and ranked[0] is not selection.ranked[0]:
            why = f"{ranked[0].name}: its batch's first task was answered by it (its prompt cache is warm)"
        rotation = Rotation(
            ranked,
            self.health,
            why=why,
            deadline=time.monotonic() + self.config.timeout_seconds * DEADLINE_SHARE,
        )
        fit = PromptFit(messages, refit=refit, default_max_tokens=self.config.max_tokens, limits=self.context_limit)
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, ModelCallError) and rotation.wait is not None),
            wait=lambda _state: rotation.wait or 0.0,
            stop=stop_after_attempt(rotation.max_attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                pick = await rotation.next_model()
                model = pick.model
                if pick.rotated_from:
                    emit(
                        ev.PROGRESS,
                        message=f"switching model: {pick.rotated_from} -> {model.name} ({rotation.reason})",
                        rotation={"from": pick.rotated_from, "to": model.name, "reason": rotation.reason},
                    )
                emit(ev.MODEL_CHOSEN, model=model.name, id=model.id, why=pick.why)
                request, max_tokens = await self._fitted(model, fit)
                prompt_tokens = fit.prompt_tokens(model, request)
                await self.budget.check(task.task_id, model, prompt_tokens, max_tokens or self.config.max_tokens)
                return await self._call(task, model, request, max_tokens, on_delta, rotation, fit, emit)
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _call(
        self,
        task: QueuedTask,
        model: ModelInfo,
        messages: list[dict[str, Any]],
        max_tokens: int | None,
        on_delta: DeltaCallback | None,
        rotation: Rotation,
        fit: PromptFit,
        emit: Callable[..., None],
    ) -> ChatResult:
        started = time.monotonic()
        call = ModelCall(model=model.name, outcome="ok", task_id=task.task_id, task_kind=task.kind)
        try:
            result = await self.client.chat(
                model.id,
                messages,
                max_tokens=max_tokens,
                on_delta=on_delta,
                cache_breakpoints=self.config.prompt_cache and model.breakpoints,
            )
        except ModelCallError as error:
            error.model = model.name
            if isinstance(error, EmptyStream):
                error = await self._diagnose_empty_stream(model, messages, error, fit)
            call.outcome, call.latency_ms = error.kind.value, (time.monotonic() - started) * 1000
            await self.health.record_call(call)
            smaller = False
            if error.kind is ErrorKind.CONTEXT_LENGTH:
                smaller = fit.shrink(model, error.figures, fit.sent(model, messages, max_tokens))
                if model.name in fit.learned:
                    await self._learn(model, fit.learned[model.name])
                log.info("%s; %s", error, "retrying with a smaller prompt" if smaller else "no smaller prompt fits")
                emit(ev.PROGRESS, message=f"prompt too long for {model.name}", context=_figures(error))
            raise await rotation.failed(model, error, smaller=smaller) from None
        result.model = model.name
        if not result.usage:
            result.prompt_tokens, result.completion_tokens, result.tokens_estimated = await estimate_usage(
                self.client.tokenizer(), messages, result.content
            )
        result.cost, result.cost_source = call_cost(result, model, local=self.config.endpoint_is_local)
        result.saved_cost = cache_savings(result, model)
        call.latency_ms = result.latency_seconds * 1000
        call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
        call.cost, call.cost_source = result.cost, result.cost_source
        call.cached_tokens, call.saved_cost = result.cached_tokens, result.saved_cost
        await self.health.succeeded(model.name, call=call)
        return result

    async def _fitted(self, model: ModelInfo, fit: PromptFit) -> tuple[list[dict[str, Any]], int | None]:
        """The request for `model`, fitted to its context. On a local server whose context is known, the prompt is
        counted by the server's own tokenizer first (a local call, a few milliseconds), so that it fits exactly."""
        request, max_tokens = fit.request(model)
        if self.config.endpoint_is_local and fit.limit(model) and model.name not in fit.ratio:
            tokens = await self.client.tokenizer().count_messages(request)
            if tokens is not None:
                fit.calibrate(model, request, tokens)
                request, max_tokens = fit.request(model)
        return request, max_tokens

    async def _diagnose_empty_stream(
        self, model: ModelInfo, messages: list[dict[str, Any]], error: ModelCallError, fit: PromptFit
    ) -> ModelCallError:
        """HTTP 200 and then not a single event: llama-cpp-python's server does that when the prompt exceeds its
        context. The endpoint's own tokenizer tells: a prompt at least as long as the model's context (or of any
        length, when the context is not known) makes it a context-length error with that figure."""
        prompt = await self.client.tokenizer().count_messages(messages)
        limit = fit.limit(model)
        if prompt is None or (limit and prompt < limit):
            return error  # no tokenizer to ask, or the prompt fits: something else went wrong
        hint = "" if limit else "; its context length is not known: set OH_LSP_CONTEXT_TOKENS to the server's --n_ctx"
        figures = ContextFigures(prompt=prompt, limit=limit)
        return ModelCallError(
            ErrorKind.CONTEXT_LENGTH,
            f"the prompt does not fit the model's context, it seems ({figures}, by the server's own tokenizer):"
            f" {error.message}{hint}",
            model=model.name,
            figures=figures,
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._own_store_thread:
            self.store_thread.close(wait=False)


def preferred_first(ranked: list[ModelInfo], prefer: str | None) -> list[ModelInfo]:
    """`ranked` with the model named `prefer` first, when it is there."""
    chosen = [m for m in ranked if m.name == prefer]
    return chosen + [m for m in ranked if m.name != prefer] if chosen else ranked


def _figures(error: ModelCallError) -> dict[str, Any]:
    figures = error.figures
    return {"prompt": figures.prompt, "requested": figures.requested, "limit": figures.limit} if figures else {}
