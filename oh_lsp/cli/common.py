"""What every CLI command shares: exit codes, the usage error, and reading the project, its settings and its queue.

A leaf of the CLI: it imports no command module. Heavy modules (pydantic through the configuration, the queue) are
imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from oh_lsp.errors import OhLspError
from oh_lsp.paths import project_root

if TYPE_CHECKING:
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.queue import TaskQueue

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_WAITING = 3  # nothing can run now (every model cooling down past a near reset); the tasks stay queued
SUBMITTER = "cli"
T = TypeVar("T")


class UsageError(OhLspError):
    """Wrong use of a command (exit 2)."""


def root_of(args: argparse.Namespace) -> Path:
    """The project root: `--project-root`, else the current directory."""
    return project_root(args.project_root)


def config_of(root: Path, args: argparse.Namespace | None = None) -> OpenHandsConfig:
    """Settings from the environment and the project's .env; `--queue-url` wins over OPENHANDS_QUEUE_URL. What the
    .env may not set is said on stderr (a remote endpoint there is refused: `ConfigError`)."""
    from oh_lsp.config import OpenHandsConfig

    url = getattr(args, "queue_url", None)
    config = OpenHandsConfig.from_env(env_file=root / ".env", **({"queue_url": url} if url else {}))
    for note in config.project_notes:
        say(f"oh-lsp: warning: {note}", err=True)
    return config


def say(text: str, *, err: bool = False) -> None:
    """Print `text` (on stderr with `err`), every secret oh-lsp knows taken out: what the CLI prints goes through
    here or `print_json`."""
    from oh_lsp.redaction import redact

    print(redact(text), file=sys.stderr if err else sys.stdout)


def print_json(value: Any) -> None:
    say(json.dumps(value, indent=2, default=str))


def show(args: argparse.Namespace, value: Any, report: Callable[[Any], str], json_value: Any = None) -> int:
    """Print `value` as JSON with --json, else as the human `report` of it."""
    if args.json:
        print_json(value if json_value is None else json_value)
    else:
        say(report(value))
    return EXIT_OK


def warn_recovered(store: Any) -> None:
    """Tell the user what the store had to do on opening (e.g. a corrupted file moved aside)."""
    if getattr(store, "recovered", None):
        say(f"oh-lsp: warning: {store.recovered}", err=True)


def open_queue(root: Path, config: OpenHandsConfig) -> TaskQueue:
    from oh_lsp.queue import TaskQueue

    queue = TaskQueue(
        config.queue_max_size, project_root=root, lease_seconds=config.lease_seconds, queue_url=config.queue_url
    )
    warn_recovered(queue.store)
    return queue


def ask_queue(args: argparse.Namespace, call: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run one query against the project's queue, then close it."""
    root = root_of(args)
    queue = open_queue(root, config_of(root, args))
    try:
        return asyncio.run(call(queue))
    finally:
        queue.close()


def start_logging(root: Path, config: OpenHandsConfig, verbose: bool) -> Path | None:
    from oh_lsp.logs import setup_logging
    from oh_lsp.paths import state_dir

    return setup_logging(state_dir(root), config.secrets(), verbose=verbose)
