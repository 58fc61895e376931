"""The CLI's `openhands` command: `setup` makes the agent environment (Python >= 3.12 with the pinned OpenHands
SDK), `status` says whether it is there and which runtime is configured."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from oh_lsp.cli.common import EXIT_FAILED, EXIT_OK, config_of, print_json, root_of


def openhands(args: argparse.Namespace) -> int:
    from oh_lsp.agent.environment import AgentEnvironmentError, agent_python, default_env_dir, setup_environment

    config = config_of(root_of(args))
    env = Path(args.env) if args.env else config.openhands_env
    if args.action == "setup":
        python = Path(args.python) if args.python else config.openhands_python
        log = (lambda line: print(line, file=sys.stderr)) if args.json else print
        ready = setup_environment(env, python, docker=args.docker, force=args.force, log=log)
        if args.json:
            print_json({"env": str(ready.env), "python": str(ready.python), "openhands_version": ready.version})
        elif config.runtime != "openhands":
            print("to use it: OH_LSP_RUNTIME=openhands" + (f" OH_LSP_OPENHANDS_ENV={ready.env}" if env else ""))
        return EXIT_OK
    status: dict[str, Any] = {
        "runtime": config.runtime,
        "env": str(env or default_env_dir()),
        "ready": False,
        "problem": None,
    }
    try:
        ready = agent_python(env)
        status.update(ready=True, env=str(ready.env), python=str(ready.python), openhands_version=ready.version)
    except AgentEnvironmentError as exc:
        status["problem"] = str(exc)
    if args.json:
        print_json(status)
    else:
        print(f"runtime: {status['runtime']} (OH_LSP_RUNTIME)")
        print(
            f"agent environment: {status['env']}: "
            + ("ready, openhands-sdk " + status["openhands_version"] if status["ready"] else str(status["problem"]))
        )
    return EXIT_OK if status["ready"] else EXIT_FAILED
