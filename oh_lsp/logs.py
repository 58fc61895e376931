"""Logging: a log file in the project's state directory, with every secret redacted before it is written."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path

LOG_FILENAME = "oh-lsp.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# A key passed as a parameter (`{"apiKey": "..."}` in a logged request) is hidden even when its value is unknown.
_KEY_PARAM = re.compile(r"""(['"]?(?:apiKey|api_key)['"]?\s*[:=]\s*)(?:'[^']*'|"[^"]*"|SecretStr\([^)]*\))""")


class RedactSecrets(logging.Filter):
    """Replaces each secret in a record's final message (and its arguments) with `***`, and the value of every
    `apiKey` parameter too."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def add(self, secret: str) -> None:
        if secret and secret not in self.secrets:
            self.secrets.append(secret)

    def _clean(self, text: str) -> str:
        from oh_lsp.redaction import redact

        return _KEY_PARAM.sub(r"\1'***'", redact(text, self.secrets, "***"))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        record.msg, record.args = self._clean(message), None
        return True


class CurrentStderr:
    """`sys.stderr` as it is when a line is written: a live display (the CLI's progress) replaces it for a while, to
    print log lines above itself."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def is_ours(handler: logging.Handler) -> bool:
    """Whether oh-lsp set `handler` up: every handler oh-lsp adds redacts secrets, and no other one does."""
    return any(isinstance(log_filter, RedactSecrets) for log_filter in handler.filters)


def redact_also(secret: str) -> None:
    """Hide `secret` from every log handler set up by `setup_logging` (a key given at run time)."""
    for handler in logging.getLogger().handlers:
        for log_filter in handler.filters:
            if isinstance(log_filter, RedactSecrets):
                log_filter.add(secret)


def setup_logging(log_dir: Path, secrets: list[str], *, verbose: bool = False, stderr: bool = True) -> Path | None:
    """Log INFO and above to `<log_dir>/oh-lsp.log` (rotated) and warnings to stderr. Returns the file's path.

    When the file cannot be written (a read-only, missing or full state directory), the log goes to stderr instead,
    after one line saying why, and None is returned: logging never stops a command."""
    file = log_dir / LOG_FILENAME
    path: Path | None = file
    redact = RedactSecrets(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if is_ours(handler):
            root.removeHandler(handler)
    level = logging.DEBUG if verbose else logging.INFO
    handlers: list[logging.Handler] = []
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"))
        handlers[0].setLevel(level)
    except OSError as exc:
        print(
            f"oh-lsp: warning: cannot write the log file {file} ({exc.strerror or exc}): logging to stderr."
            " Set OH_LSP_STATE_DIR to a writable directory to keep a log.",
            file=sys.stderr,
        )
        path, stderr = None, True
    if stderr:
        console = logging.StreamHandler(CurrentStderr())
        console.setLevel(level if path is None else logging.DEBUG if verbose else logging.WARNING)
        handlers.append(console)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(redact)
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return path
