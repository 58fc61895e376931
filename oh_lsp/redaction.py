"""Redaction: the one function that takes every secret oh-lsp knows out of a text before it is stored, shown, logged,
put in a diagnostic or sent to a model.

"Every secret oh-lsp knows" is the configured ones (`OpenHandsConfig.secrets()`: the API key, a queue URL's password;
each engine `remember`s those of its configuration, and so does a key given at run time) plus the values of this
process's environment variables whose names say they hold a secret (`*_API_KEY`, `*_TOKEN`, `*SECRET*`,
`*PASSWORD*`, ...): a generated test that read another process's environment could otherwise print them.

Every boundary calls `redact` / `redact_data` without naming the secrets (then they are all of them): the store's
rows (`oh_lsp/store/shared.py`), the editor's messages, diagnostics and progress (`oh_lsp/lsp/editor.py`,
`diagnostics.py`, `progress.py`), the repair prompt (`oh_lsp/repair.py`), the CLI's output (`oh_lsp/cli/`), the
log handlers (`oh_lsp/logs.py`), the agent runtime's texts (`oh_lsp/agent/process.py`) and every text a sandboxed run
gives back (`oh_lsp/validation/sandbox.py`, `pytest_runner.py`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MARK = "[redacted]"
MIN_LENGTH = 6  # shorter values would turn up by chance in ordinary text
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
_remembered: set[str] = set()
_lock = threading.Lock()
# The environment as it was when its secrets were last looked for, and what was found: every store write and every
# event is redacted, and reading the environment through `os.environ` each time cost more than the write itself.
_scanned: tuple[dict[Any, Any] | None, frozenset[str]] = (None, frozenset())


def remember(*secrets: str | None) -> None:
    """Add configured secrets (an engine's key, a key given at run time) to what every later `redact` takes out."""
    with _lock:
        _remembered.update(s for s in secrets if s and len(s) >= MIN_LENGTH)


def known_secrets(configured: Iterable[str | None] = (), environ: dict[str, str] | None = None) -> list[str]:
    """`configured` secrets, the `remember`ed ones, and the secret-looking values of `environ` (default: this
    process's environment), longest first (so that a secret containing another is taken out whole)."""
    env = os.environ if environ is None else environ
    found = {s for s in configured if s and len(s) >= MIN_LENGTH}
    with _lock:
        found |= _remembered
    found |= _environment_secrets(env)
    return sorted(found, key=len, reverse=True)


def _environment_secrets(env: Mapping[str, str]) -> frozenset[str]:
    """The secret-looking values of `env`; for this process's environment, looked for again only when it changed
    (compared with the copy taken when it was last looked at: any change, even of one value, is seen)."""
    global _scanned
    raw = getattr(env, "_data", None) if env is os.environ else None  # CPython's dict behind os.environ
    if not isinstance(raw, dict):
        return _secret_values(env)
    seen, found = _scanned
    if raw == seen:
        return found
    copy = dict(raw)  # before the look: a change made meanwhile differs from it, and is looked at next time
    found = _secret_values(env)
    _scanned = (copy, found)
    return found


def _secret_values(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8 and not os.path.isabs(v))


def redact(text: str, secrets: Iterable[str] | None = None, mark: str = MARK) -> str:
    """`text` with every occurrence of each secret (as it is, and as JSON or `repr` would escape it) replaced by
    `mark`. `secrets`: default every secret oh-lsp knows (`known_secrets()`)."""
    for secret in known_secrets() if secrets is None else secrets:
        if not secret or len(secret) < MIN_LENGTH:
            continue
        for form in _forms(secret):
            if form in text:
                text = text.replace(form, mark)
    return text


@functools.lru_cache(maxsize=256)
def _forms(secret: str) -> frozenset[str]:
    """A secret as it is, and as JSON or `repr` would escape it."""
    return frozenset({secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]})


def redact_data(value: Any, secrets: list[str] | None = None) -> Any:
    """`redact` applied to every string inside nested dicts, lists and tuples (keys included)."""
    if secrets is None:
        secrets = known_secrets()
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_data(k, secrets): redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v, secrets) for v in value)
    return value
