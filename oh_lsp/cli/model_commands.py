"""The CLI's model commands: `select-model`, `models list|refresh|reset`, and `logs`."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from oh_lsp.cli import EXIT_FAILED, EXIT_OK
from oh_lsp.cli.commands import _config, _print_json, _root, show
from oh_lsp.errors import OhLspError
from oh_lsp.paths import state_dir


def select_model(args: argparse.Namespace) -> int:
    from oh_lsp.cli.render import selection_report
    from oh_lsp.llm.selector import ModelSelector, NoModelError, TaskRequirements
    from oh_lsp.store import open_store

    root = _root(args)
    config = _config(root, args)
    requirements = TaskRequirements(
        category=args.task_type,
        complexity=args.complexity,
        quality_threshold=args.quality_threshold,
        max_latency_ms=args.max_latency_ms,
        max_cost_per_call=args.max_cost,
    )
    store = open_store(root, config.queue_url)
    try:
        selection = ModelSelector(store=store, config=config).explain(requirements)
    except NoModelError as exc:
        if args.json:
            _print_json({"model": None, "why": str(exc), "chain": [], "excluded": exc.excluded})
            return EXIT_FAILED
        raise
    finally:
        store.close()
    if args.json:
        _print_json(selection.to_dict())
    else:
        print(selection_report(selection))
    return EXIT_OK if selection.chain else EXIT_FAILED


def models(args: argparse.Namespace) -> int:
    from oh_lsp.store import open_store

    root = _root(args)
    config = _config(root, args)
    if args.action == "refresh":
        from oh_lsp.llm.catalog import refresh_models
        from oh_lsp.llm.errors import ModelCallError

        try:
            path, count = asyncio.run(refresh_models(config))
        except ModelCallError as exc:
            raise OhLspError(f"could not read {config.base_url}/models: {exc}") from None
        result = {"base_url": config.base_url, "models": count, "cache": str(path)}
        _print_json(result) if args.json else print(f"cached {count} models from {config.base_url}/models in {path}")
        return EXIT_OK
    store = open_store(root, config.queue_url)
    try:
        if args.action == "reset":
            import logging

            count = store.reset_model_states(args.model)
            logging.getLogger("oh_lsp.models").info("models reset: %s", args.model or "every model")
            message = f"forgot the cooldowns, breakers and rotation counts of {count} model(s)"
            _print_json({"reset": count}) if args.json else print(message)
            return EXIT_OK
        from oh_lsp.llm.selector import ModelSelector

        rows = ModelSelector(store=store, config=config).list_models()
    finally:
        store.close()
    return show(args, rows, "models_report")


def logs(args: argparse.Namespace) -> int:
    from oh_lsp.logs import LOG_FILENAME

    path = state_dir(_root(args)) / LOG_FILENAME
    if args.lines is None and not args.follow:
        _print_json({"log_file": str(path)}) if args.json else print(path)
        return EXIT_OK
    if not path.exists() and not args.follow:
        print(f"no log yet at {path}")
        return EXIT_OK
    for line in _last_lines(path, args.lines if args.lines is not None else 10):
        print(line)
    if args.follow:
        try:
            _follow(path)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _last_lines(path: Path, count: int) -> list[str]:
    if count <= 0 or not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        block = min(size, 64 * 1024 * max(1, count // 200 + 1))
        fh.seek(size - block)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    return lines[-count:]


def _follow(path: Path) -> None:
    """Print lines as they are appended (and carry on when the file is rotated)."""
    position = path.stat().st_size if path.exists() else 0
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size < position:  # rotated
            position = 0
        if size > position:
            with path.open("rb") as fh:
                fh.seek(position)
                chunk = fh.read()
            complete = chunk.rfind(b"\n") + 1
            if complete:
                print(chunk[:complete].decode("utf-8", "replace"), end="", flush=True)
                position += complete
        time.sleep(0.2)
