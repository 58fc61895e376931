"""The CLI's commands on the whole store: `queue-stats`, `metrics` and `queue migrate`."""

from __future__ import annotations

import argparse

from oh_lsp.cli import render
from oh_lsp.cli.common import EXIT_OK, ask_queue, config_of, print_json, root_of, show, warn_recovered


def queue_stats(args: argparse.Namespace) -> int:
    stats = ask_queue(args, lambda queue: queue.stats())
    return show(args, stats, render.stats_report)


def metrics(args: argparse.Namespace) -> int:
    from oh_lsp.llm.budget import Budget
    from oh_lsp.metrics import MetricsCollector
    from oh_lsp.store import open_store

    root = root_of(args)
    config = config_of(root, args)
    store = open_store(root, config.queue_url)
    warn_recovered(store)
    try:
        summary = MetricsCollector(store).get_summary()
        summary["budget"] = Budget(config, store).status()
    finally:
        store.close()
    return show(args, summary, render.metrics_report)


def queue(args: argparse.Namespace) -> int:
    """`queue migrate`: create or upgrade the queue's tables (SQLite stores also migrate whenever they are opened)."""
    from oh_lsp.store import migrate_store

    root = root_of(args)
    done = migrate_store(root, config_of(root, args).queue_url)
    if done["before"] == done["after"]:
        message = f"{done['location']}: schema version {done['after']}, up to date"
    else:
        message = f"{done['location']}: migrated from schema version {done['before']} to {done['after']}"
    print_json({**done, "message": message}) if args.json else print(message)
    return EXIT_OK
