"""Redaction: the one function that takes every secret oh-lsp knows out of a text before it is stored, shown, logged,
put in a diagnostic or sent to a model.

"Every secret oh-lsp knows" is the configured ones (`OpenHandsConfig.secrets()`: the API key, a queue URL's password)
plus the values of oh-lsp's own environment variables whose names say they hold a secret (`*_API_KEY`, `*_TOKEN`,
`*SECRET*`, `*PASSWORD*`, ...): a generated test that read another process's environment could otherwise print them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

MARK = "[redacted]"
MIN_LENGTH = 6  # shorter values would turn up by chance in ordinary text
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)


def known_secrets(configured: Iterable[str | None] = (), environ: dict[str, str] | None = None) -> list[str]:
    """`configured` secrets plus the secret-looking values of `environ` (default: this process's environment),
    longest first (so that a secret containing another is taken out whole)."""
    env = os.environ if environ is None else environ
    found = {s for s in configured if s and len(s) >= MIN_LENGTH}
    found |= {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8 and not os.path.isabs(v)}
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str], mark: str = MARK) -> str:
    """`text` with every occurrence of each secret (as it is, and as JSON or `repr` would escape it) replaced by
    `mark`."""
    for secret in secrets:
        if not secret or len(secret) < MIN_LENGTH:
            continue
        for form in {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}:
            if form in text:
                text = text.replace(form, mark)
    return text


def redact_data(value: Any, secrets: list[str]) -> Any:
    """`redact` applied to every string inside nested dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_data(k, secrets): redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v, secrets) for v in value)
    return value
