"""Language server start-up and idle memory, side by side in one run.

Start-up: wall time from spawning the process to the `initialize` reply, for `oh-lsp serve`, a bare pygls 2 server
that only answers `initialize`, and jedi-language-server (another pygls 2 server; install the bench group:
`uv sync --group bench`). Runs are interleaved (one of each, repeated) so that machine noise hits all alike.
Memory: RSS of the `oh-lsp serve` process after `initialize`, idle, and once its engine has started (after
`initialized`, with a workspace folder).

    uv run --group bench python bench/lsp_startup.py --runs 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


async def read_message(stream: asyncio.StreamReader) -> dict[str, Any]:
    length = 0
    while True:
        line = await stream.readline()
        if not line:
            raise EOFError("the server closed its output")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif line in (b"\r\n", b"\n") and length:
            message: dict[str, Any] = json.loads(await stream.readexactly(length))
            return message


async def read_response(stream: asyncio.StreamReader, request_id: int) -> dict[str, Any]:
    while True:
        message = await read_message(stream)
        if message.get("id") == request_id and "method" not in message:
            return message


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def start_once(command: list[str], workspace: Path, env: dict[str, str], *, idle: float = 0.0) -> dict[str, Any]:
    """Spawn, initialize, measure; then shut the server down. Returns the timings and memory."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin and proc.stdout
    params = {
        "processId": os.getpid(),
        "rootUri": workspace.as_uri(),
        "capabilities": {},
        "workspaceFolders": [{"uri": workspace.as_uri(), "name": "ws"}],
        "initializationOptions": {"ohLsp": {"trusted": False}},
    }
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}))
    await proc.stdin.drain()
    await read_response(proc.stdout, 1)
    elapsed = time.perf_counter() - started
    measured = {"ms": elapsed * 1000, "rss_after_initialize_kib": rss_kib(proc.pid)}
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    await proc.stdin.drain()
    if idle:
        await asyncio.sleep(idle)
        measured["rss_idle_kib"] = rss_kib(proc.pid)
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
    await proc.stdin.drain()
    try:
        await asyncio.wait_for(read_response(proc.stdout, 2), 10)
        proc.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        await proc.stdin.drain()
        await asyncio.wait_for(proc.wait(), 10)
    except (TimeoutError, EOFError, ConnectionError):
        proc.kill()
        await proc.wait()
    return measured


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    return f"median {statistics.median(values):7.1f} ms   min {ordered[0]:7.1f}   p90 {p90:7.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    servers = {
        "oh-lsp serve": [sys.executable, "-m", "oh_lsp", "serve"],
        "bare pygls 2": [sys.executable, str(BENCH / "bare_pygls_server.py")],
    }
    jedi = shutil.which("jedi-language-server", path=str(Path(sys.executable).parent))
    if jedi:
        servers["jedi-language-server"] = [jedi]
    else:
        print("jedi-language-server is not installed (uv sync --group bench); comparing with the bare server only")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        (workspace / "pkg").mkdir(parents=True)
        (workspace / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
        env = {**os.environ, "OH_LSP_STATE_DIR": str(Path(tmp) / "state")}
        times: dict[str, list[float]] = {name: [] for name in servers}
        for command in servers.values():  # warm the file cache once
            await start_once(command, workspace, env)
        for _ in range(args.runs):
            for name, command in servers.items():
                times[name].append((await start_once(command, workspace, env))["ms"])
        memory = [await start_once(servers["oh-lsp serve"], workspace, env, idle=3.0) for _ in range(3)]
    print(f"start-up: process start -> initialize reply, {args.runs} interleaved runs each")
    for name, values in times.items():
        print(f"  {name:<22} {summary(values)}")
    ours = statistics.median(times["oh-lsp serve"])
    bare = statistics.median(times["bare pygls 2"])
    print(f"  oh-lsp / bare pygls 2   = {ours / bare:.3f}x   (target <= 1.10x)")
    if "jedi-language-server" in times:
        jedi_ms = statistics.median(times["jedi-language-server"])
        print(f"  oh-lsp / jedi-language-server = {ours / jedi_ms:.3f}x   (target <= 1.00x)")
    after_init = statistics.median(m["rss_after_initialize_kib"] for m in memory) / 1024
    idle = statistics.median(m["rss_idle_kib"] for m in memory) / 1024
    print(
        f"memory (RSS of oh-lsp serve, median of 3): after initialize {after_init:.1f} MiB;"
        f" idle with its engine started {idle:.1f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
