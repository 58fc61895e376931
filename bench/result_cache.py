"""P6: asking again for an unchanged target and unchanged tests costs 0 tokens and answers in <= 100 ms, through the CLI
and through the language server.

A small project and the scripted model server (in this process, on 127.0.0.1). First one real task (the model is
asked, the tests are checked with pytest in the sandbox), then the same question again and again with nothing changed:

- CLI: `oh-lsp generate-tests pkg/calc.py --json`, each in its own process; after each, the written test file is
  deleted again (the user undid the edit). Reported: the command's own time (`elapsed_seconds`: from the command's
  start, once the program is loaded, to the file written and the engine stopped; the process's start excluded) and,
  for reference, the whole process's wall time.
- Server: `oh-lsp serve` driven by a raw JSON-RPC client that rejects every edit (so the tests' text never changes):
  the time from sending `ohLsp.generateTests` to the end of its progress.

Every repeat must be answered from the result cache: no model request, 0 tokens.

    uv run python bench/result_cache.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lsp_latency import Client, start_server
from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from oh_lsp.testing.sample_project import GOOD_TESTS as TESTS
from oh_lsp.testing.sample_project import make_project

USAGE = {"prompt_tokens": 400, "completion_tokens": 120, "total_tokens": 520, "cost": 0.0012}


def environment(tmp: Path, base_url: str) -> dict[str, str]:
    return {
        # compiled modules are kept, as in an installed oh-lsp (PYTHONDONTWRITEBYTECODE would compile them each run)
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OH_LSP_", "OPENHANDS_")) and k != "PYTHONDONTWRITEBYTECODE"
        },
        "OH_LSP_STATE_DIR": str(tmp / "state"),
        "OPENHANDS_BASE_URL": base_url,
        "OPENHANDS_MODEL": "bench-model",
        "OPENROUTER_API_KEY": "sk-bench",
        "OH_LSP_PYTHON": sys.executable,
        "OH_LSP_MUTATION": "off",
    }


def cli(tmp: Path, model: ScriptedModelServer, repeat: int) -> dict[str, Any]:
    project = make_project(tmp / "cli-proj")
    env = environment(tmp, model.base_url)
    tests = project / "tests" / "pkg" / "test_calc.py"

    def ask() -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "oh_lsp", "generate-tests", "pkg/calc.py", "--json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"generate-tests failed:\n{proc.stdout}\n{proc.stderr}")
        return json.loads(proc.stdout), wall

    first, _ = ask()
    assert first["status"] == "completed" and tests.read_text() == TESTS, first
    asked = len(model.requests)
    commands, walls, tokens = [], [], []
    for _ in range(repeat):
        tests.unlink()  # the user undid the edit: the tests' text is as before
        answer, wall = ask()
        assert answer["result"].get("from_cache"), "not served from the cache"
        assert tests.read_text() == TESTS, "the cached edit was not delivered"
        commands.append(answer["elapsed_seconds"] * 1000)
        walls.append(wall * 1000)
        tokens.append(answer["tokens"])
    assert len(model.requests) == asked, "a repeat called the model"
    return {"first_tokens": first["tokens"], "command_ms": commands, "wall_ms": walls, "tokens": tokens}


class ProgressClient(Client):
    """The raw client, recording when each progress ends and rejecting every edit."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.ended: dict[str, tuple[float, str]] = {}
        super().__init__(proc)

    async def _read(self) -> None:
        from bench.lsp_startup import read_message

        assert self.proc.stdout
        while True:
            message = await read_message(self.proc.stdout)
            method = message.get("method")
            if method == "workspace/applyEdit":
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": {"applied": False}})
            elif method and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif method == "$/progress" and message["params"]["value"].get("kind") == "end":
                self.ended[str(message["params"]["token"])] = (
                    time.perf_counter(),
                    message["params"]["value"].get("message", ""),
                )
            elif method:
                self.notifications += 1
            elif message.get("id") in self.waiting:
                self.waiting.pop(message["id"]).set_result(message)


async def server(tmp: Path, model: ScriptedModelServer, repeat: int) -> dict[str, Any]:
    project = make_project(tmp / "lsp-proj")
    workspace = {"applyEdit": True, "workspaceEdit": {"documentChanges": True, "resourceOperations": ["create"]}}
    environ = environment(tmp, model.base_url)
    client = await start_server(environ, project, {"trusted": True}, workspace, ProgressClient)
    assert isinstance(client, ProgressClient)
    uri = (project / "pkg" / "calc.py").as_uri()

    async def ask() -> tuple[float, str]:
        started = time.perf_counter()
        result = await client.request(
            "workspace/executeCommand", {"command": "ohLsp.generateTests", "arguments": [{"uri": uri}]}
        )
        token = str(result["progressToken"])
        deadline = time.monotonic() + 300
        while token not in client.ended and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        ended, message = client.ended[token]
        return (ended - started) * 1000, message

    _, message = await ask()
    asked = len(model.requests)
    assert asked >= 1 and "from cache" not in message, message
    times, messages = [], []
    for _ in range(repeat):
        elapsed, message = await ask()
        times.append(elapsed)
        messages.append(message)
    assert len(model.requests) == asked, "a repeat called the model"
    assert all("from cache" in m for m in messages), messages[:3]
    await client.request("shutdown", {})
    client.notify("exit", {})
    await asyncio.wait_for(client.proc.wait(), 20)
    client.reader.cancel()
    return {"progress_ms": times, "message": messages[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder, ScriptedModelServer() as model:
        model.default = Reply.text(f"```python\n{TESTS}```", usage=USAGE)
        tmp = Path(folder)
        by_cli = cli(tmp, model, args.repeat)
        by_server = asyncio.run(server(tmp, model, args.repeat))
    print(f"P6 asking again with nothing changed: {args.repeat} repeats each (median, max); load average {load:.2f}")
    print(f"  first task: {by_cli['first_tokens']} tokens; every repeat: {max(by_cli['tokens'])} tokens, no model call")
    command, wall, lsp = by_cli["command_ms"], by_cli["wall_ms"], by_server["progress_ms"]
    print(
        f"  CLI generate-tests, the command (process start excluded): {statistics.median(command):6.1f} ms"
        f"  (max {max(command):.1f})"
    )
    print(f"  CLI generate-tests, the whole process (reference):       {statistics.median(wall):6.1f} ms")
    print(
        f"  server, ohLsp.generateTests to its progress end:          {statistics.median(lsp):6.1f} ms"
        f"  (max {max(lsp):.1f}); it ends: {by_server['message']!r}"
    )
    met = statistics.median(command) <= 100 and statistics.median(lsp) <= 100 and max(by_cli["tokens"]) == 0
    print(f"  target: 0 tokens and <= 100 ms through the CLI and the server: {'met' if met else 'missed'}")


if __name__ == "__main__":
    main()
