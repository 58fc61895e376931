"""The error an editor command raises for the person who called it."""

from __future__ import annotations


class CommandError(ValueError):
    """Bad arguments, or a target oh-lsp cannot work on. Sent to the editor as InvalidParams with this message."""
