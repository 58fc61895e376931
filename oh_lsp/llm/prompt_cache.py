"""Provider prompt caching: which part of a prompt stays the same, and how that is said on the wire.

A prompt builder marks, on a message, how many of its first characters are its stable part (`stable`): the part that
the next prompts of the same task (its repair turns) and of similar tasks (other gaps or symbols of the same target)
repeat word for word; the rest varies. Prompts put their stable part first (system prompt, project context, the
target's source), so a provider's prompt cache can serve it.

Providers that cache on their own (OpenAI, DeepSeek) need nothing more: `wire_messages` only drops the mark. Those
that cache only where asked (Anthropic, and Gemini through OpenRouter; the catalog says which, `ModelInfo.breakpoints`)
get the marked prefixes as separate text parts carrying ``cache_control: {"type": "ephemeral"}`` breakpoints, at most
`MAX_BREAKPOINTS` (the provider's limit), the last ones kept: the stable part of the first user message, then the
model's own earlier answers in a repair conversation, so that each repair reads everything before it from the cache.
"""

from __future__ import annotations

from typing import Any

STABLE = "oh_lsp_stable_chars"  # a message's mark: its first N characters are stable (a decimal string)
MAX_BREAKPOINTS = 4
EPHEMERAL = {"type": "ephemeral"}


def mark_stable(message: dict[str, str], chars: int | None = None) -> dict[str, str]:
    """`message` with its first `chars` characters (default: all of them) marked as stable."""
    content = message.get("content", "")
    size = len(content) if chars is None else max(0, min(chars, len(content)))
    return {**message, STABLE: str(size)} if size else message


def stable_chars(message: dict[str, Any]) -> int:
    try:
        return int(message.get(STABLE) or 0)
    except (TypeError, ValueError):
        return 0


def wire_messages(messages: list[dict[str, Any]], *, breakpoints: bool) -> list[dict[str, Any]]:
    """The messages as sent: marks dropped; with `breakpoints`, each marked prefix a text part of its own carrying
    ``cache_control`` (the last `MAX_BREAKPOINTS` of them)."""
    marked = [i for i, m in enumerate(messages) if stable_chars(m) and isinstance(m.get("content"), str)]
    keep = set(marked[-MAX_BREAKPOINTS:]) if breakpoints else set()
    out = []
    for index, message in enumerate(messages):
        plain = {key: value for key, value in message.items() if key != STABLE}
        if index in keep:
            content = message["content"]
            cut = stable_chars(message)
            parts: list[dict[str, Any]] = [{"type": "text", "text": content[:cut], "cache_control": EPHEMERAL}]
            if content[cut:]:
                parts.append({"type": "text", "text": content[cut:]})
            plain["content"] = parts
        out.append(plain)
    return out
