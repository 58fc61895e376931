"""P3: what our model client costs per request, beside the openai SDK's async client and litellm, in one run.

The scripted OpenAI-compatible server runs in its own process (`python -m oh_lsp.testing.model_server`) and answers
every request at once with the same streamed completion. Each client runs in its own worker process, so one
library's imports, threads and leftover work cannot slow another's figures; the parent hands out blocks of
sequential requests round-robin, in a rotating order, so drift (CPU frequency, the page cache, a noisy neighbour)
falls on every client alike.

Clients:
  raw      one keep-alive socket, a pre-built request, reads until the end of the chunked body. No parsing: the floor,
           i.e. the server's own time plus the loopback.
  ours     `oh_lsp.llm.client.ChatClient.chat` (streaming, usage, a progress callback per chunk)
  openai   `AsyncOpenAI(max_retries=0).chat.completions.create(stream=True)`, iterating the chunks
  litellm  `litellm.acompletion(stream=True)` with `LITELLM_LOCAL_MODEL_COST_MAP=True`, iterating the chunks

overhead per request = a client's wall time - raw's wall time (medians, and p90s). CPU per request is the worker
process's CPU time (all its threads) over the measured requests. Every answer is checked (full text, usage), and an
audit hook in each worker records any connection or DNS lookup outside the loopback (the run fails if there is one).

Run (needs the bench dependency group):
  uv run --group bench python bench/llm_client_overhead.py             # full run, two answer sizes
  uv run --group bench python bench/llm_client_overhead.py --smoke     # a few seconds, checks the plumbing
  add --offline to run the whole thing in a fresh network namespace that has only the loopback (needs root).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlparse

ALL_CLIENTS = ("raw", "ours", "openai", "litellm")
MODEL = "bench-model"
API_KEY = "sk-bench-not-a-secret"
MESSAGES = [
    {"role": "system", "content": "You write pytest unit tests. Answer with one fenced Python block."},
    {"role": "user", "content": "Write tests for:\n\ndef add(a, b):\n    return a + b\n" * 4},
]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


# ---------------------------------------------------------------------------------------------------------- worker
def _is_loopback(host: Any) -> bool:
    host = str(host)
    return host in LOOPBACK_NAMES or host.startswith("127.") or host == "::ffff:127.0.0.1"


def _watch_network(outside: list[str]) -> None:
    """Record every connect or name lookup outside the loopback (installed before any client library is imported)."""

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and not _is_loopback(address[0]):
                outside.append(f"connect {address[0]}:{address[1]}")
        elif event in ("socket.getaddrinfo", "socket.gethostbyname"):
            if (
                args
                and args[0] is not None
                and not _is_loopback(args[0] if isinstance(args[0], str) else args[0].decode(errors="replace"))
            ):
                outside.append(f"lookup {args[0]!r}")

    sys.addaudithook(hook)


class Check:
    """What every answer must contain, so no client is timed on a short cut."""

    def __init__(self, content: str) -> None:
        self.content = content

    def __call__(self, name: str, text: str, completion_tokens: int | None) -> None:
        if text != self.content:
            raise AssertionError(f"{name}: got {len(text)} chars of text, expected {len(self.content)}")
        if not completion_tokens:
            raise AssertionError(f"{name}: no usage in the answer")


async def make_client(name: str, base_url: str) -> tuple[Any, Any]:
    """(one_request coroutine function, close coroutine function) for the client `name`."""
    if name == "raw":
        url = urlparse(base_url)
        body = json.dumps(
            {"model": MODEL, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
        ).encode()
        request = (
            f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        reader, writer = await asyncio.open_connection(url.hostname, url.port)

        async def one(check: Check) -> None:
            writer.write(request)
            data = bytearray()
            while not data.endswith(b"\r\n0\r\n\r\n"):
                more = await reader.read(65536)
                if not more:
                    raise AssertionError("raw: the server closed the connection")
                data += more
            if b"data: [DONE]" not in data or b'"usage"' not in data:
                raise AssertionError("raw: incomplete answer")

        async def close() -> None:
            writer.close()

        return one, close

    if name == "ours":
        from pydantic import SecretStr

        from oh_lsp.config import OpenHandsConfig
        from oh_lsp.llm.client import ChatClient

        client = ChatClient(OpenHandsConfig(model=MODEL, base_url=base_url, api_key=SecretStr(API_KEY)))

        async def one(check: Check) -> None:
            chunks = 0

            def on_delta(_text: str) -> None:
                nonlocal chunks
                chunks += 1

            result = await client.chat(MODEL, MESSAGES, on_delta=on_delta)
            check("ours", result.content, result.completion_tokens)

        return one, client.aclose

    if name == "openai":
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

        async def one(check: Check) -> None:
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            pieces, usage = [], None
            async for chunk in stream:
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
            check("openai", "".join(pieces), usage.completion_tokens if usage else None)

        return one, client.close

    if name == "litellm":
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # the price table shipped in the package, not fetched
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False

        async def one(check: Check) -> None:
            stream = await litellm.acompletion(
                model=f"openai/{MODEL}",
                api_base=base_url,
                api_key=API_KEY,
                messages=MESSAGES,
                stream=True,
                max_retries=0,
                stream_options={"include_usage": True},
            )
            pieces, usage = [], None
            async for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
            check("litellm", "".join(pieces), usage.completion_tokens if usage else None)

        async def close() -> None:
            pass

        return one, close

    raise SystemExit(f"unknown client {name!r}; choose from {', '.join(ALL_CLIENTS)}")


def _version(name: str) -> str:
    from importlib.metadata import version

    package = {"ours": "oh-lsp", "openai": "openai", "litellm": "litellm"}.get(name)
    return version(package) if package else "-"


def worker(name: str, base_url: str) -> None:
    """Serve the parent's commands on stdin/stdout: one JSON object per line each way."""
    outside: list[str] = []
    _watch_network(outside)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the protocol
    loop = asyncio.new_event_loop()
    started = time.perf_counter()
    one, close = loop.run_until_complete(make_client(name, base_url))

    def send(reply: dict[str, Any]) -> None:
        out.write(json.dumps(reply) + "\n")
        out.flush()

    send({"ready": True, "setup_s": time.perf_counter() - started, "version": _version(name)})
    check = Check("")
    cpu_start = 0.0
    measured = 0
    for line in sys.stdin:
        command = json.loads(line)
        reply: dict[str, Any]
        if command["cmd"] == "phase":  # a new answer size: warm up on it, then start counting CPU afresh
            check = Check(command["content"])
            for _ in range(command["warmup"]):
                loop.run_until_complete(one(check))
            cpu_start, measured = time.process_time(), 0
            reply = {"ok": True}
        elif command["cmd"] == "block":
            walls = []
            for _ in range(command["n"]):
                t0 = time.perf_counter_ns()
                loop.run_until_complete(one(check))
                walls.append(time.perf_counter_ns() - t0)
            measured += command["n"]
            reply = {"wall_ns": walls}
        elif command["cmd"] == "cpu":
            reply = {"cpu_s_per_request": (time.process_time() - cpu_start) / max(measured, 1)}
        elif command["cmd"] == "stop":
            loop.run_until_complete(close())
            return send({"outside_loopback": outside})
        send(reply)


# ---------------------------------------------------------------------------------------------------------- parent
class Worker:
    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--base-url", base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker died (exit {self.proc.wait()}); see its messages above")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.read()


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "oh_lsp.testing.model_server", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the scripted model server did not start")
    return proc, json.loads(line)["base_url"]


def set_answer(base_url: str, content: str, chunk_chars: int) -> None:
    body = json.dumps({"content": content, "chunk_size": chunk_chars}).encode()
    request = urllib.request.Request(
        base_url + "/__default", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["ok"]


def answer_text(chunks: int, chunk_chars: int) -> str:
    """Deterministic text of `chunks` pieces of `chunk_chars` characters (a stand-in for code tokens)."""
    alphabet = "def test_add():\n    assert add(2, 3) == 5\n"
    return "".join(alphabet[i % len(alphabet)] for i in range(chunks * chunk_chars))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_phase(
    workers: dict[str, Worker], base_url: str, chunks: int, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    content = answer_text(chunks, args.chunk_chars)
    set_answer(base_url, content, args.chunk_chars)
    for w in workers.values():
        w.ask(cmd="phase", content=content, warmup=args.warmup)
    walls: dict[str, list[float]] = {name: [] for name in workers}
    names = list(workers)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            walls[name].extend(ns / 1e6 for ns in workers[name].ask(cmd="block", n=args.block)["wall_ns"])
    stats = {}
    for name, w in workers.items():
        cpu = w.ask(cmd="cpu")["cpu_s_per_request"] * 1e3
        stats[name] = {
            "median": statistics.median(walls[name]),
            "p90": pct(walls[name], 0.9),
            "cpu": cpu,
            "n": len(walls[name]),
        }
    floor = stats.get("raw")
    for s in stats.values():
        s["over_med"] = s["median"] - floor["median"] if floor else float("nan")
        s["over_p90"] = s["p90"] - floor["p90"] if floor else float("nan")
        s["cpu_over"] = s["cpu"] - floor["cpu"] if floor else float("nan")
    return stats


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def report(
    chunks: int, args: argparse.Namespace, stats: dict[str, dict[str, Any]], versions: dict[str, str]
) -> list[str]:
    lines = [
        f"answer: {chunks} SSE chunks of {args.chunk_chars} chars; {stats['ours']['n']} measured requests per"
        f" client ({args.rounds} rounds x {args.block}), {args.warmup} warm-up",
        f"  {'client':<9}{'version':<10}{'wall med':>10}{'p90':>9}{'overhead med':>14}{'p90':>9}"
        f"{'CPU/req':>10}{'CPU over raw':>14}   (ms)",
    ]
    for name, s in stats.items():
        lines.append(
            f"  {name:<9}{versions[name]:<10}{s['median']:>10.3f}{s['p90']:>9.3f}{s['over_med']:>14.3f}"
            f"{s['over_p90']:>9.3f}{s['cpu']:>10.3f}{s['cpu_over']:>14.3f}"
        )
    ours = stats["ours"]
    for other, target in (("litellm", 0.5), ("openai", 1.0)):
        if other in stats:
            theirs = stats[other]
            met = ours["over_med"] <= target * theirs["over_med"]
            lines.append(
                f"  ours/{other:<8} overhead {ratio(ours['over_med'], theirs['over_med'])} (median), "
                f"{ratio(ours['over_p90'], theirs['over_p90'])} (p90); CPU "
                f"{ratio(ours['cpu_over'], theirs['cpu_over'])}   target <= {target}x: "
                f"{'met' if met else 'MISSED'}"
            )
    return lines


def offline_reexec(argv: list[str]) -> None:
    """Run this benchmark again inside a new network namespace whose only interface is the loopback."""
    rest = [a for a in argv if a != "--offline"]
    inner = f"ip link set lo up && exec {shlex.join([sys.executable, __file__, '--in-netns', *rest])}"
    raise SystemExit(subprocess.call(["unshare", "--net", "--", "sh", "-c", inner]))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default=",".join(ALL_CLIENTS), help="comma-separated; raw is the floor")
    parser.add_argument("--chunks", default="16,200", help="answer sizes in SSE chunks, comma-separated")
    parser.add_argument("--chunk-chars", type=int, default=4, help="characters of text per chunk (about a token)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=20, help="sequential requests per client per round")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="a quick run that checks the plumbing")
    parser.add_argument("--offline", action="store_true", help="run in a network namespace with only the loopback")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.base_url)
    if args.offline:
        return offline_reexec(argv)
    if args.smoke:
        args.chunks, args.rounds, args.block, args.warmup = "16", 2, 5, 3
    names = [n.strip() for n in args.clients.split(",") if n.strip()]
    if "ours" not in names or "raw" not in names:
        raise SystemExit("--clients must include raw (the floor) and ours")
    missing = [n for n in names if n in ("openai", "litellm") and importlib.util.find_spec(n) is None]
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} not installed: run with `uv run --group bench ...`, or leave them"
            " out with --clients raw,ours"
        )
    server, base_url = start_server()
    workers: dict[str, Worker] = {}
    failed = False
    try:
        for name in names:
            workers[name] = Worker(name, base_url)
        versions = {name: w.ready["version"] for name, w in workers.items()}
        network = "a network namespace with only the loopback" if args.in_netns else "the host's network"
        print(
            f"P3 model-client overhead per request, {sys.version.split()[0]}, {os.cpu_count()} cores, {network};"
            f" scripted server in its own process, zero latency; load average {os.getloadavg()[0]:.2f}"
        )
        for chunks in (int(c) for c in args.chunks.split(",")):
            print("\n".join(report(chunks, args, run_phase(workers, base_url, chunks, args), versions)))
        for name, w in workers.items():
            outside = w.ask(cmd="stop")["outside_loopback"]
            if outside:
                failed = True
                print(f"  {name}: network use outside 127.0.0.1: {sorted(set(outside))[:5]}")
        if not failed:
            print("  network: no client connected to or looked up anything outside the loopback")
        print(f"  load average at the end: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    finally:
        for w in workers.values():
            w.proc.kill()
            w.proc.wait()
        server.terminate()
        server.wait(timeout=10)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
