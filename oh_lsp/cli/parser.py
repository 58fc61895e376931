"""The `oh-lsp` command line's arguments: every command, its options, and the checks of their values.

Imported on every run, `oh-lsp serve` included: it stays light (argparse only).
"""

from __future__ import annotations

import argparse

KINDS = ("unit_test", "documentation", "refactoring")
PRIORITIES = ("low", "normal", "high", "critical")
NO_CACHE_HELP = (
    "ask the model afresh: even if an earlier task already answered the same inputs (the result cache), and about"
    " every function of a changed module, not only the changed ones (incremental work)"
)


def _common(top: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command. Sub-commands don't set defaults, so that
    `oh-lsp --json metrics` and `oh-lsp metrics --json` mean the same."""
    common = argparse.ArgumentParser(add_help=False, argument_default=None if top else argparse.SUPPRESS)
    common.add_argument("--project-root", metavar="DIR", help="the project (default: the current directory)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    common.add_argument(
        "--queue-url",
        metavar="URL",
        help="a queue shared by many machines (postgresql://...;"
        " default: $OPENHANDS_QUEUE_URL, else the project's SQLite store)",
    )
    if top:
        common.set_defaults(json=False, verbose=False)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    parser = argparse.ArgumentParser(
        prog="oh-lsp",
        parents=[_common(top=True)],
        description="Generate tests, docs and refactorings with an LLM, checked for real.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("submit-task", parents=[common], help="queue a task (files as arguments: one task each)")
    p.add_argument("--task-type", dest="kind", required=True, choices=KINDS)
    p.add_argument("--description", default="")
    p.add_argument("--target-file", metavar="PATH")
    p.add_argument("--priority", default="normal", choices=PRIORITIES, type=str.lower)
    p.add_argument("--complexity", choices=("simple", "moderate", "complex"))
    p.add_argument("--quality-threshold", type=_quality_threshold, metavar="0..1")
    p.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    p.add_argument("files", nargs="*", metavar="FILE", help="target files (e.g. from a pre-commit hook)")

    p = sub.add_parser("get-status", parents=[common], help="show a task")
    p.add_argument("--task-id", required=True)

    p = sub.add_parser("cancel-task", parents=[common], help="cancel a pending or running task")
    p.add_argument("--task-id", required=True)

    sub.add_parser("queue-stats", parents=[common], help="counts of tasks by status and priority")
    sub.add_parser("metrics", parents=[common], help="tokens, cost and success rates, per model")

    p = sub.add_parser("list-tasks", parents=[common], help="the latest tasks")
    p.add_argument("--status", choices=("pending", "running", "completed", "failed", "cancelled"))
    p.add_argument("--limit", type=int, default=20)

    p = sub.add_parser("run-engine", parents=[common], help="run queued tasks")
    p.add_argument("--workers", type=_workers, default=5, help="tasks run at once: 1 to 64 (default 5)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--until-idle", action="store_true", help="stop when no task is pending or running")
    p.add_argument("--overwrite", action="store_true", help="replace existing files instead of adding to them")

    p = sub.add_parser("queue", parents=[common], help="manage the queue's database: `queue migrate`")
    queue_sub = p.add_subparsers(dest="queue_command", metavar="ACTION")
    queue_sub.required = True
    queue_sub.add_parser("migrate", parents=[common], help="create or upgrade the queue's tables (idempotent)")

    p = sub.add_parser("select-model", parents=[common], help="the model a task would use, and why")
    p.add_argument("--task-type", dest="kind", required=True, choices=KINDS)
    p.add_argument("--complexity", default="moderate", choices=("simple", "moderate", "complex"))
    p.add_argument("--quality-threshold", type=_quality_threshold, default=0.0, metavar="0..1")
    p.add_argument("--max-latency-ms", type=float, metavar="MS")
    p.add_argument("--max-cost", type=float, metavar="USD", help="most a typical call may cost")

    p = sub.add_parser(
        "models",
        parents=[common],
        help="the model catalog: list, refresh (from the endpoint), reset (forget cooldowns and breakers)",
    )
    p.add_argument("action", nargs="?", default="list", choices=("list", "refresh", "reset"))
    p.add_argument("--model", help="reset only this model")

    p = sub.add_parser("logs", parents=[common], help="the log file's path; -n/--follow to show its lines")
    p.add_argument("-n", "--lines", type=int, metavar="N", help="print the last N lines")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C to stop)")

    p = sub.add_parser(
        "openhands",
        parents=[common],
        help="the OpenHands agent runtime: `setup` makes its Python >= 3.12 environment, `status` shows it",
    )
    p.add_argument("action", nargs="?", default="status", choices=("setup", "status"))
    p.add_argument("--python", metavar="PATH", help="the Python >= 3.12 to build it with (OH_LSP_OPENHANDS_PYTHON)")
    p.add_argument("--env", metavar="DIR", help="where it goes (OH_LSP_OPENHANDS_ENV; default: oh-lsp's cache dir)")
    p.add_argument("--docker", action="store_true", help="also install openhands-workspace (the Docker workspace)")
    p.add_argument("--force", action="store_true", help="make it again from scratch")

    p = sub.add_parser("generate-tests", parents=[common], help="generate tests for FILE now and wait for them")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--description", default="")
    p.add_argument("--priority", default="high", choices=PRIORITIES, type=str.lower)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)

    p = sub.add_parser("serve", help="run the language server (stdio by default)")
    p.add_argument("--tcp", metavar="HOST:PORT", type=_host_port, help="listen on a TCP port instead of stdio")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log debug details (to the log file and stderr)",
    )
    return parser


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("give HOST:PORT, e.g. 127.0.0.1:2087")
    return host.strip("[]"), int(port)


def _quality_threshold(text: str) -> float:
    """A task's quality threshold, by the rule of the setting (read when the option is given: it imports pydantic)."""
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.field_rules import rule_of

    rule = rule_of(OpenHandsConfig.model_fields["quality_threshold"])
    value = float(text)
    if not rule.accepts(value):
        raise argparse.ArgumentTypeError(f"must be {rule.range_words()}")
    return value


def _workers(text: str) -> int:
    """`--workers`, by the rule of the editors' `workers` setting (config.WORKERS; read when the option is given)."""
    from oh_lsp.config import check_workers
    from oh_lsp.errors import ConfigError

    try:
        return check_workers(int(text) if text.strip().isdigit() else text, "it")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
