"""The error an editor command raises for the person who called it, and how a value it was given is echoed in one."""

from __future__ import annotations

ECHO_LIMIT = 80  # characters of a value given to a command that an error message repeats


class CommandError(ValueError):
    """Bad arguments, or a target oh-lsp cannot work on. Sent to the editor as InvalidParams with this message."""


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` for an error message, cut to `limit` characters (a request may carry megabytes)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
