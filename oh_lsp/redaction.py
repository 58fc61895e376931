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
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

MARK = "[redacted]"
MIN_LENGTH = 6  # shorter values would turn up by chance in ordinary text
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
_remembered: set[str] = set()
_env_scan: tuple[dict[Any, Any], frozenset[str]] | None = (
    None  # os.environ's raw mapping as last scanned, and its secrets
)
_lock = threading.Lock()


def remember(*secrets: str | None) -> None:
    """Add configured secrets (an engine's key, a key given at run time) to what every later `redact` takes out."""
    with _lock:
        _remembered.update(s for s in secrets if s and len(s) >= MIN_LENGTH)


def known_secrets(configured: Iterable[str | None] = (), environ: dict[str, str] | None = None) -> list[str]:
    """`configured` secrets, the `remember`ed ones, and the secret-looking values of `environ` (default: this
    process's environment), longest first (so that a secret containing another is taken out whole)."""
    found = {s for s in configured if s and len(s) >= MIN_LENGTH}
    with _lock:
        found |= _remembered
    found |= _environment_secrets(os.environ if environ is None else environ)
    return sorted(found, key=len, reverse=True)


def _environment_secrets(env: Mapping[str, str]) -> frozenset[str]:
    """The secret-looking values of `env`. This process's environment is scanned again only when it changed since
    the last scan: every model request and log line asks, and the scan (decoding each variable, a pattern on each
    name) cost 0.3 ms, where comparing the environment's raw mapping with a copy costs a few microseconds."""
    global _env_scan
    raw = getattr(env, "_data", None) if env is os.environ else None  # os.environ's own (encoded) mapping
    if not isinstance(raw, dict):
        return _scan(env)
    last = _env_scan
    if last is not None and last[0] == raw:
        return last[1]
    copy = dict(raw)  # before the scan: a change made meanwhile makes the next call scan again
    found = _scan(env)
    _env_scan = (copy, found)
    return found


def _scan(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8 and not os.path.isabs(v))


def redact(text: str, secrets: Iterable[str] | None = None, mark: str = MARK) -> str:
    """`text` with every occurrence of each secret (as it is, and as JSON or `repr` would escape it) replaced by
    `mark`. `secrets`: default every secret oh-lsp knows (`known_secrets()`)."""
    for form in _all_forms(secrets):
        if form in text:
            text = text.replace(form, mark)
    return text


def holds_secret(text: str, secrets: Iterable[str] | None = None) -> bool:
    """Whether `redact` would take anything out of `text`."""
    return any(form in text for form in _all_forms(secrets))


def _all_forms(secrets: Iterable[str] | None) -> Iterator[str]:
    """Every form `redact` looks for of each of `secrets` long enough to be one (default: `known_secrets()`), in
    their order."""
    for secret in known_secrets() if secrets is None else secrets:
        if secret and len(secret) >= MIN_LENGTH:
            yield from _forms(secret)


@functools.lru_cache(maxsize=256)
def _forms(secret: str) -> frozenset[str]:
    """`secret` as it is, and as JSON or `repr` would escape it."""
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
