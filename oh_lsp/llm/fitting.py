"""`PromptFit`: one request's prompt and `max_tokens`, fitted to each model's context length.

The context length of a model is, first to last: what a context-length error from the endpoint said (learned, and
kept in the models cache), the catalog or the endpoint's ``/models``, the ``OH_LSP_CONTEXT_TOKENS`` setting.

The prompt itself is built by the task kind's prompt builder (`oh_lsp.kinds.context`), which takes a token budget:
the caller passes `refit`, which builds the messages again for a smaller budget. After a context-length error the
next request to that model is smaller -- a refitted prompt, a smaller `max_tokens`, or both -- and is never sent as
it was; when nothing smaller fits, `shrink` says so and the request moves on to a model with a larger context.
Estimates are characters / 4, corrected by the ratio of the endpoint's own count to ours when an error gave it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from oh_lsp.llm.catalog import ModelInfo
from oh_lsp.llm.errors import ContextFigures
from oh_lsp.llm.tokens import estimate_prompt_tokens

Messages = list[dict[str, Any]]
Refit = Callable[[int], Messages]  # messages whose prompt is about this many (estimated) tokens at most
MIN_COMPLETION_TOKENS = 256
CONTEXT_MARGIN_TOKENS = 64


class PromptFit:
    def __init__(
        self,
        messages: Messages,
        *,
        refit: Refit | None,
        default_max_tokens: int,
        limits: Callable[[ModelInfo], int | None],
    ) -> None:
        self.original = messages
        self.refit = refit
        self.default_max_tokens = default_max_tokens
        self.limits = limits  # the context length of a model as known before this request (learned, catalog, setting)
        self.learned: dict[str, int] = {}  # context lengths that an error of this request gave
        self.messages: dict[str, Messages] = {}  # per model, once it differs from the original
        self.ratio: dict[str, float] = {}  # the endpoint's token count / our estimate, per model
        self.max_tokens_cap: dict[str, int] = {}  # per model, after an error that gave no context length
        self.refused: set[tuple[str, str, int | None]] = set()  # requests that got a context-length error

    # --- what to send ---------------------------------------------------------------------------------------------
    def prompt_tokens(self, model: ModelInfo, messages: Messages | None = None) -> int:
        """The prompt's size in the model's tokens, as well as we can tell."""
        estimate = estimate_prompt_tokens(
            self.messages.get(model.name, self.original) if messages is None else messages
        )
        return int(estimate * self.ratio.get(model.name, 1.0)) + 1

    def limit(self, model: ModelInfo) -> int | None:
        return self.learned.get(model.name) or self.limits(model)

    def request(self, model: ModelInfo) -> tuple[Messages, int | None]:
        """The messages and `max_tokens` to send to `model`: the prompt is refitted first when it would leave less
        than a minimal answer's room in a known context."""
        limit = self.limit(model)
        messages = self.messages.get(model.name, self.original)
        if limit and self.refit and self.prompt_tokens(model, messages) + MIN_COMPLETION_TOKENS > limit:
            smaller = self._refitted(model, limit // 2)
            if smaller is not None:
                messages = self.messages[model.name] = smaller
        return messages, self._max_tokens(model, messages, limit)

    def _max_tokens(self, model: ModelInfo, messages: Messages, limit: int | None) -> int | None:
        """The default, within the context; None (not sent) when the context is unknown and no error said otherwise,
        as some local servers reject a value larger than theirs."""
        cap = self.max_tokens_cap.get(model.name)
        if limit:
            prompt = self.prompt_tokens(model, messages)
            # until the endpoint's own count is known, leave a quarter of the estimate spare (code often takes more
            # tokens than characters / 4)
            margin = CONTEXT_MARGIN_TOKENS if model.name in self.ratio else max(CONTEXT_MARGIN_TOKENS, prompt // 4)
            room = limit - prompt - margin
            tokens = max(min(self.default_max_tokens, room), MIN_COMPLETION_TOKENS)
            return min(tokens, cap) if cap else tokens
        return cap

    def _refitted(self, model: ModelInfo, prompt_tokens: int) -> Messages | None:
        """The messages built again for at most `prompt_tokens` of the model's tokens; None when that is not
        smaller than what would be sent now."""
        if self.refit is None:
            return None
        budget = max(int(prompt_tokens / self.ratio.get(model.name, 1.0)), 1)
        smaller = self.refit(budget)
        return smaller if self.prompt_tokens(model, smaller) < self.prompt_tokens(model) else None

    def calibrate(self, model: ModelInfo, messages: Messages, tokens: int) -> None:
        """The endpoint counted `messages` as `tokens`: estimates for this model are corrected by that ratio."""
        self.ratio[model.name] = max(tokens / max(estimate_prompt_tokens(messages), 1), 0.5)

    # --- after a context-length error -----------------------------------------------------------------------------
    def sent(self, model: ModelInfo, messages: Messages, max_tokens: int | None) -> tuple[str, str, int | None]:
        return (model.id, _digest(messages), max_tokens)

    def shrink(self, model: ModelInfo, figures: ContextFigures | None, sent: tuple[str, str, int | None]) -> bool:
        """Learn from a context-length error on `model` and make its next request smaller. False when no smaller
        request could fit (the request then moves to a model with a larger context)."""
        self.refused.add(sent)
        figures = figures or ContextFigures()
        messages = self.messages.get(model.name, self.original)
        if figures.prompt:
            self.calibrate(model, messages, figures.prompt)
        if figures.limit:
            self.learned[model.name] = figures.limit
        limit = self.limit(model)
        prompt = self.prompt_tokens(model, messages)
        if limit and prompt + MIN_COMPLETION_TOKENS + CONTEXT_MARGIN_TOKENS > limit:  # the prompt itself is too long
            smaller = self._refitted(model, limit // 2)
        elif limit and figures.prompt:  # the prompt fits; the answer's room did not (max_tokens is refitted)
            smaller = None
        else:  # the sizes do not show which part is too long: halve both
            smaller = self._refitted(model, prompt // 2)
            self.max_tokens_cap[model.name] = max((sent[2] or self.default_max_tokens) // 2, MIN_COMPLETION_TOKENS)
        if smaller is not None:
            self.messages[model.name] = smaller
        next_messages, next_max = self.request(model)
        if self.sent(model, next_messages, next_max) in self.refused:
            return False  # never resent as it was
        if limit is not None:
            return self.prompt_tokens(model, next_messages) + (next_max or 0) <= limit
        return True


def _digest(messages: Messages) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
