"""Every CLI command and the function that runs it (`oh-lsp serve` is not here: `main` starts the server itself).

Each handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from oh_lsp.cli import agent_commands, engine_commands, log_commands, model_commands, store_commands, task_commands

Handler = Callable[[argparse.Namespace], int]

COMMANDS: dict[str, Handler] = {
    "submit-task": task_commands.submit_task,
    "get-status": task_commands.get_status,
    "cancel-task": task_commands.cancel_task,
    "list-tasks": task_commands.list_tasks,
    "queue-stats": store_commands.queue_stats,
    "metrics": store_commands.metrics,
    "queue": store_commands.queue,
    "run-engine": engine_commands.run_engine,
    "generate-tests": engine_commands.generate_tests,
    "select-model": model_commands.select_model,
    "models": model_commands.models,
    "logs": log_commands.logs,
    "openhands": agent_commands.openhands,
}
