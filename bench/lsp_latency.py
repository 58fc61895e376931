"""`textDocument/codeAction` latency of `oh-lsp serve` while its engine streams many model answers, and on a 5 MB
open module.

The scripted model server (in this process, on 127.0.0.1) answers every task with a stream that sends a chunk every
50 ms. The server runs with one worker per task, so all tasks stream at once; their progress reports and status
notifications flow to this client meanwhile. A raw JSON-RPC client (no pygls on this side) then sends code-action
requests one after another on an open ~300-line module and times each answer. The same is measured with no task
running, for comparison. The answers carry no code, so each task fails right after its stream (no pytest run).
Then a 5 MB module is opened and code actions are asked for in its middle (`--big-mb`; the symbol lookup looks at
a bounded window around the cursor, `oh_lsp/lsp/symbols.py`). `--tasks 0` measures without the streaming load.

    uv run python bench/lsp_latency.py --tasks 50
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lsp_startup import frame, read_message
from oh_lsp.testing.model_server import Reply, ScriptedModelServer

FUNCTION = '''
def function_{n}(values, threshold=0.5):
    """Keep the values above the threshold, scaled."""
    kept = []
    for value in values:
        if value > threshold:
            kept.append(value * {n})
    return kept

'''


class Client:
    """Enough of an LSP client: requests with ids, answers to the server's requests, notifications ignored."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.notifications = 0
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout
        while True:
            message = await read_message(self.proc.stdout)
            if "method" in message and "id" in message:  # a request from the server: accept it
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message:
                self.notifications += 1
            elif message.get("id") in self.waiting:
                self.waiting.pop(message["id"]).set_result(message)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(frame(message))

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        answer = await future
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})


async def start_server(
    env: dict[str, str],
    project: Path,
    options: dict[str, Any],
    workspace: dict[str, Any] | None = None,
    client_type: type[Client] = Client,
    *,
    initialized: bool = True,
) -> Client:
    """`oh-lsp serve` in its own process, initialized on `project` (one workspace folder) with the settings
    `options`; `workspace`: the client's workspace capabilities (default: applyEdit with document changes).
    `initialized=False`: the `initialized` notification is left to the caller."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oh_lsp", "serve", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    client = client_type(proc)
    await client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": project.as_uri(),
            "workspaceFolders": [{"uri": project.as_uri(), "name": "proj"}],
            "capabilities": {
                "window": {"workDoneProgress": True},
                "workspace": workspace or {"applyEdit": True, "workspaceEdit": {"documentChanges": True}},
            },
            "initializationOptions": {"ohLsp": options},
        },
    )
    if initialized:
        client.notify("initialized", {})
    return client


async def measure(
    client: Client, uri: str, seconds: float, active: Callable[[], int] = lambda: 0, line: int = 150
) -> tuple[list[float], list[int]]:
    params = {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": line, "character": 8}, "end": {"line": line, "character": 8}},
        "context": {"diagnostics": []},
    }
    latencies, streams = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        result = await client.request("textDocument/codeAction", params)
        latencies.append((time.perf_counter() - started) * 1000)
        streams.append(active())
        assert result, "code actions expected"
        await asyncio.sleep(0.01)
    return latencies, streams


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to measure under load")
    parser.add_argument("--big-mb", type=float, default=5.0, help="size of the big module (0: skip it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ScriptedModelServer() as model:
        # ~25 s of streaming per task: 500 chunks of 8 characters, one every 50 ms
        model.default = Reply.text("word " * 800, chunk_size=8, chunk_delay=0.05)
        project = Path(tmp) / "proj"
        (project / "pkg").mkdir(parents=True)
        source = "".join(FUNCTION.format(n=n) for n in range(30))
        (project / "pkg" / "big.py").write_text(source)
        env = {
            **os.environ,
            "OH_LSP_STATE_DIR": str(Path(tmp) / "state"),
            "OPENHANDS_BASE_URL": model.base_url,
            "OPENHANDS_MODEL": "bench-model",
            "OPENROUTER_API_KEY": "sk-bench",
        }
        client = await start_server(env, project, {"workers": args.tasks, "trusted": False})
        uri = (project / "pkg" / "big.py").as_uri()
        client.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": source}}
        )
        await measure(client, uri, 1.0)  # the first answer waits for the engine to start: not counted
        idle, _ = await measure(client, uri, 3.0)

        loaded: list[float] = []
        streams: list[int] = [0]
        notifications = 0
        if args.tasks:
            for n in range(args.tasks):
                await client.request(
                    "workspace/executeCommand",
                    {"command": "ohLsp.generateTests", "arguments": [{"uri": uri, "description": f"task {n}"}]},
                )

            def active() -> int:
                return sum(1 for r in model.requests if r.chunks_sent and not r.completed and not r.disconnected)

            deadline = time.monotonic() + 30
            while active() < args.tasks and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            before = client.notifications
            loaded, streams = await measure(client, uri, args.seconds, active)
            notifications = client.notifications - before

        big: list[float] = []
        if args.big_mb:
            text = big_module(args.big_mb)
            big_uri = (project / "pkg" / "huge.py").as_uri()
            client.notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": big_uri, "languageId": "python", "version": 1, "text": text}},
            )
            middle = text.count("\n") // 2
            middle += text.splitlines()[middle:].index("    def method(self, a, b):")
            big, _ = await measure(client, big_uri, 3.0, line=middle)

        await client.request("shutdown", {})
        client.notify("exit", {})
        await asyncio.wait_for(client.proc.wait(), 20)
        client.reader.cancel()

    print(f"textDocument/codeAction latency, {len(source.splitlines())}-line module, sequential requests")
    runs = [("idle", idle)] + ([(f"{args.tasks} tasks streaming", loaded)] if loaded else [])
    for name, values in runs:
        print(
            f"  {name:<20} n={len(values):4d}  p50 {statistics.median(values):6.2f} ms  "
            f"p99 {percentile(values, 0.99):6.2f} ms  max {max(values):6.2f} ms"
        )
    if loaded:
        print(
            f"  streams open at the model server during the loaded run: min {min(streams)}, median "
            f"{statistics.median(streams):.0f}, max {max(streams)} (of {args.tasks});"
            f" {notifications / args.seconds:.0f} notifications/s reached the client"
        )
        print("  target: p99 <= 10 ms under load")
    if big:
        print(
            f"  on a {args.big_mb:g} MB module (idle) n={len(big):4d}  p50 {statistics.median(big):6.2f} ms  "
            f"p99 {percentile(big, 0.99):6.2f} ms  max {max(big):6.2f} ms  (target: <= 50 ms)"
        )


BIG_UNIT = '''
class Thing{n}:
    """A class."""

    def method(self, a, b):
        if a > b:
            return a - b
        return b - a


def function_{n}(x):
    return [i * x for i in range(10)]
'''


def big_module(megabytes: float) -> str:
    """A module of about `megabytes` MB of classes and functions."""
    one = len(BIG_UNIT.format(n=10000))
    return "".join(BIG_UNIT.format(n=n) for n in range(10000, 10000 + int(megabytes * 1e6 / one) + 1))


if __name__ == "__main__":
    asyncio.run(main())
