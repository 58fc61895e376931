"""P5: resident memory of `oh-lsp serve`: right after `initialize`, idle with its engine started, and with 1,000
queued tasks submitted through `ohLsp.generateTests` (each tracked with its own progress by the server).

The scripted model server holds every answer, so two tasks stay running and the rest stay queued while RSS is
read from /proc. Target: the 1,000 queued tasks add at most 10 MB.

    uv run python bench/lsp_memory.py [--tasks 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lsp_latency import Client, start_server
from oh_lsp.testing.model_server import Reply, ScriptedModelServer


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def settle(client: Client, uri: str, seconds: float = 2.0) -> None:
    """Let the server finish what it is doing (progress, status), then one more request round trip."""
    await asyncio.sleep(seconds)
    await client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": []},
        },
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ScriptedModelServer() as model:
        model.default = Reply.text("```python\nx = 1\n```", latency=3600)  # never answers while we measure
        project = Path(tmp) / "proj"
        (project / "pkg").mkdir(parents=True)
        modules = []
        for n in range(args.tasks):
            path = project / "pkg" / f"mod_{n:04d}.py"
            path.write_text(f"def value():\n    return {n}\n")
            modules.append(path.as_uri())
        env = {
            **os.environ,
            "OH_LSP_STATE_DIR": str(Path(tmp) / "state"),
            "OPENHANDS_BASE_URL": model.base_url,
            "OPENHANDS_MODEL": "bench-model",
            "OPENROUTER_API_KEY": "sk-bench",
            "OH_LSP_QUEUE_MAX_SIZE": str(args.tasks + 100),
        }
        client = await start_server(env, project, {"workers": 2, "trusted": False}, initialized=False)
        proc = client.proc
        after_initialize = rss_mib(proc.pid)
        client.notify("initialized", {})
        await settle(client, modules[0], 3.0)
        idle = rss_mib(proc.pid)
        # one task first: what the first task imports (task kinds, the model layer, aiohttp) is loaded once per
        # process, not per task
        warm = project / "pkg" / "warm_up.py"
        warm.write_text("def value():\n    return -1\n")
        await client.request(
            "workspace/executeCommand", {"command": "ohLsp.generateTests", "arguments": [{"uri": warm.as_uri()}]}
        )
        await settle(client, modules[0], 3.0)
        warmed = rss_mib(proc.pid)
        for uri in modules:
            await client.request(
                "workspace/executeCommand", {"command": "ohLsp.generateTests", "arguments": [{"uri": uri}]}
            )
        await settle(client, modules[0], 5.0)
        loaded = rss_mib(proc.pid)
        stats = await client.request("workspace/executeCommand", {"command": "ohLsp.queueStats", "arguments": [{}]})
        await client.request("shutdown", {})
        client.notify("exit", {})
        await asyncio.wait_for(proc.wait(), 30)
        client.reader.cancel()
    delta = loaded - warmed
    print(
        f"P5 RSS of oh-lsp serve (MiB): after initialize {after_initialize:.1f}, idle with the engine {idle:.1f},"
        f" after its first task {warmed:.1f}, with {stats['pending']} queued + {stats['running']} running tasks"
        f" {loaded:.1f}"
    )
    print(
        f"  {args.tasks} queued tasks add {delta:.1f} MiB ({1024 * delta / args.tasks:.1f} KiB each);"
        f" target +<= 10 MB: {'met' if delta <= 10 * 1e6 / 2**20 else 'MISSED'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
