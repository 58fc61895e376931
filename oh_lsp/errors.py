"""Errors a user can act on. Each message says what went wrong and what to do about it."""

from __future__ import annotations


class OhLspError(Exception):
    """Base class for errors that are shown to the user as they are (no traceback)."""


class ConfigError(OhLspError, ValueError):
    """A configuration value is invalid. The message names the variable or setting."""


class MissingApiKeyError(ConfigError):
    """The endpoint needs a key and none is set."""


class QueueFullError(OhLspError):
    """The queue holds `max_size` unfinished tasks; nothing was added."""


class TargetError(OhLspError, ValueError):
    """A target file is missing, not Python, or outside the project root."""


class TaskIdError(OhLspError, ValueError):
    """A task id (or the start of one) names no task, or several."""


class StoreError(OhLspError):
    """The state directory or its database cannot be used."""


class StoreLostError(StoreError):
    """The store was deleted or replaced while this process used it: what this process writes now would be lost."""


class StoreUnavailableError(StoreError):
    """The queue's database server cannot be reached right now (down, restarting, network); worth retrying."""


class InterpreterError(OhLspError):
    """The project's interpreter cannot run the checks (missing, or lacks pytest)."""
