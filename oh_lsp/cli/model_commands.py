"""The CLI's model commands: `select-model` and `models list|refresh|reset`."""

from __future__ import annotations

import argparse
import asyncio

from oh_lsp.cli import render
from oh_lsp.cli.common import EXIT_FAILED, EXIT_OK, config_of, print_json, root_of, say, show
from oh_lsp.errors import OhLspError


def select_model(args: argparse.Namespace) -> int:
    from oh_lsp.llm.selector import ModelSelector, NoModelError, TaskRequirements
    from oh_lsp.store import open_store

    root = root_of(args)
    config = config_of(root, args)
    requirements = TaskRequirements(
        category=args.kind,
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
            print_json({"model": None, "why": str(exc), "chain": [], "excluded": exc.excluded})
            return EXIT_FAILED
        raise
    finally:
        store.close()
    if args.json:
        print_json(selection.to_dict())
    else:
        say(render.selection_report(selection))
    return EXIT_OK if selection.chain else EXIT_FAILED


def models(args: argparse.Namespace) -> int:
    from oh_lsp.store import open_store

    root = root_of(args)
    config = config_of(root, args)
    if args.action == "refresh":
        from oh_lsp.llm.catalog import refresh_models
        from oh_lsp.llm.errors import ModelCallError

        try:
            path, count = asyncio.run(refresh_models(config))
        except ModelCallError as exc:
            raise OhLspError(f"could not read {config.base_url}/models: {exc}") from None
        result = {"base_url": config.base_url, "models": count, "cache": str(path)}
        print_json(result) if args.json else print(f"cached {count} models from {config.base_url}/models in {path}")
        return EXIT_OK
    store = open_store(root, config.queue_url)
    try:
        if args.action == "reset":
            import logging

            count = store.reset_model_states(args.model)
            logging.getLogger("oh_lsp.models").info("models reset: %s", args.model or "every model")
            message = f"forgot the cooldowns, breakers and rotation counts of {count} model(s)"
            print_json({"reset": count}) if args.json else print(message)
            return EXIT_OK
        from oh_lsp.llm.selector import ModelSelector

        rows = ModelSelector(store=store, config=config).list_models()
    finally:
        store.close()
    return show(args, rows, render.models_report)
