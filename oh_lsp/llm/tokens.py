"""Token counts: the rough character count used to fit prompts and check budgets, and, for a call whose endpoint
reported no ``usage``, an estimate marked as such.

An estimate uses the endpoint's own tokenizer where it has one -- llama.cpp's ``POST /tokenize`` (``{"content"}`` ->
``{"tokens"}``) or llama-cpp-python's ``POST /extras/tokenize/count`` (``{"input"}`` -> ``{"count"}``) -- and else
the character heuristic. Nothing is downloaded: no tokenizer files, no tiktoken encodings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # httpx is imported by the client that makes the calls; budgets and estimates need none of it
    import httpx

log = logging.getLogger("oh_lsp.models")
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # the chat template's tokens around each message
TOKENIZE_TIMEOUT = 10.0
ESTIMATED_BY_TOKENIZER, ESTIMATED_BY_CHARACTERS = "endpoint tokenizer", "characters / 4"


def estimate_text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def message_texts(messages: list[dict[str, Any]]) -> list[str]:
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
        texts.append(content if isinstance(content, str) else "")
    return texts


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A deliberately generous count (about 4 characters a token) for budget checks and `max_tokens`."""
    return estimate_text_tokens("".join(message_texts(messages))) + TOKENS_PER_MESSAGE * len(messages)


def endpoint_root(base_url: str) -> str:
    """The server's root: a tokenizer lives beside ``/v1``, not under it."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


# (path, the field of the request body that holds the text, how to read the count from the answer)
TOKENIZERS: tuple[tuple[str, str, Callable[[Any], int]], ...] = (
    ("/tokenize", "content", lambda body: len(body["tokens"])),  # llama.cpp's server
    ("/extras/tokenize/count", "input", lambda body: int(body["count"])),  # llama-cpp-python's
)


class EndpointTokenizer:
    """The endpoint's tokenizer, found on first use: the first path that answers is kept; when none does, the
    endpoint has none and it is not asked again."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.root = endpoint_root(base_url)
        self.headers = headers
        self._found: int | None = None  # index into TOKENIZERS
        self._absent = False

    async def count(self, text: str) -> int | None:
        """Tokens in `text` by the endpoint's tokenizer; None when it has none (or it failed)."""
        if self._absent:
            return None
        candidates = [self._found] if self._found is not None else range(len(TOKENIZERS))
        refused = 0
        for index in candidates:
            count, answered = await self._ask(index, text)
            if count is not None:
                self._found = index
                return count
            refused += answered
        if self._found is None and refused == len(TOKENIZERS):
            self._absent = True  # every path answered, none with a count: the endpoint has no tokenizer
            log.info(
                "%s has no tokenizer endpoint; token counts without usage are estimated from characters", self.root
            )
        return None

    async def _ask(self, index: int, text: str) -> tuple[int | None, bool]:
        """(the count, whether the server answered at all). A pooled connection that the server closed (as after a
        stream it broke off) is retried once on a new one."""
        import httpx

        path, field, read = TOKENIZERS[index]
        for _ in range(2):
            try:
                response = await self.http.post(
                    self.root + path, json={field: text}, headers=self.headers, timeout=TOKENIZE_TIMEOUT
                )
            except httpx.TransportError:
                continue
            try:
                return (read(response.json()) if response.status_code == 200 else None), True
            except (ValueError, KeyError, TypeError):
                return None, True
        return None, False

    async def count_messages(self, messages: list[dict[str, Any]]) -> int | None:
        """A chat prompt's tokens by the endpoint's tokenizer (the template's few tokens per message estimated)."""
        count = await self.count("\n".join(message_texts(messages)))
        return None if count is None else count + TOKENS_PER_MESSAGE * len(messages)


async def estimate_usage(
    tokenizer: EndpointTokenizer | None, messages: list[dict[str, Any]], answer: str
) -> tuple[int, int, str]:
    """(prompt tokens, completion tokens, how they were estimated) for a call that reported no usage."""
    if tokenizer is not None:
        prompt = await tokenizer.count_messages(messages)
        completion = await tokenizer.count(answer) if prompt is not None and answer else 0
        if prompt is not None and completion is not None:
            return prompt, completion, ESTIMATED_BY_TOKENIZER
    return estimate_prompt_tokens(messages), estimate_text_tokens(answer), ESTIMATED_BY_CHARACTERS
