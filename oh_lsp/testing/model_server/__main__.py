"""``python -m oh_lsp.testing.model_server``: serve until SIGTERM/SIGINT, announcing the base URL as one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from oh_lsp.testing.model_server.control import load_spec
from oh_lsp.testing.model_server.script import Reply
from oh_lsp.testing.model_server.server import ScriptedModelServer


async def main(argv: list[str] | None = None) -> None:
    """Command line: serve until SIGTERM/SIGINT, announcing the base URL as one JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m oh_lsp.testing.model_server",
        description="A scriptable OpenAI-compatible chat-completions server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--script",
        help='JSON file: a list of Reply dicts, or {"replies": [...], "model": ..., "default": {...}, "models": [...]}',
    )
    parser.add_argument("--default-text", help="answer with this text when nothing is scripted")
    args = parser.parse_args(argv)
    srv = ScriptedModelServer(args.host, args.port)
    if args.default_text is not None:
        srv.default = Reply.text(args.default_text)
    if args.script:
        load_spec(srv, json.loads(Path(args.script).read_text(encoding="utf-8")))
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, done.set)
    await srv.astart()
    print(json.dumps({"base_url": srv.base_url}), flush=True)
    await done.wait()
    await srv.astop()


if __name__ == "__main__":
    asyncio.run(main())
