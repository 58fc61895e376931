"""`ModelGateway`: the one way the engine reaches a model. It decides which model answers, makes the call, and
accounts for it (tokens and cost in the returned `ChatResult`).

Today it uses the task's pinned model or the configured one. Model selection, rotation, retries, the circuit
breaker and budgets belong here too, so that no other part of oh-lsp talks to a model directly.
"""

from __future__ import annotations

from typing import Any, Callable

from oh_lsp import events as ev
from oh_lsp.config import OpenHandsConfig
from oh_lsp.llm.client import ChatClient, ChatResult, DeltaCallback
from oh_lsp.tasks import QueuedTask


def choose_model(task: QueuedTask, config: OpenHandsConfig) -> tuple[str, str]:
    """(model, why). A pin in the task's metadata wins; otherwise the configured model."""
    pinned = task.metadata.get("model")
    if pinned:
        return str(pinned), "pinned by the task's metadata"
    return config.model, "the configured model" if config.model_was_set else "the default model"


class ModelGateway:
    def __init__(self, config: OpenHandsConfig, *, store: Any = None, client: ChatClient | None = None) -> None:
        self.config = config
        self.store = store
        self.client = client or ChatClient(config)

    async def complete(self, task: QueuedTask, messages: list[dict[str, Any]], *, emit: Callable[..., None],
                       on_delta: DeltaCallback | None = None) -> ChatResult:
        """One answer for `task`. Raises `ModelCallError` (with `.model` set) when no model could give one."""
        model, why = choose_model(task, self.config)
        emit(ev.MODEL_CHOSEN, model=model, why=why)
        result = await self.client.chat(model, messages, on_delta=on_delta)
        if result.cost is None:
            result.cost = 0.0
        return result

    async def aclose(self) -> None:
        await self.client.aclose()
