"""P2: concurrency efficiency. Real HTTP to the loopback scripted server (in its own process), every answer taking
200 ms; N callers send their next request as soon as the last one is answered. Efficiency = achieved requests/s
divided by the ideal N / 0.2 s. Side by side, in one run:

- raw: one keep-alive asyncio connection per caller, no HTTP library (the floor of what this machine can do);
- httpx-default: httpx's own transport (httpcore's pool), as `httpx.AsyncClient()` gives it;
- oh-lsp client: `ChatClient` (httpx's API over aiohttp's pool, see oh_lsp/llm/client.py);
- oh-lsp engine: `ExecutionEngine` with N workers, each task one streamed model call (validation off).

Under the table, for the largest N: the event loop's CPU per call (our client) and per task (our engine, and its other
threads': the store's), and the medians of an engine task's stretches (start -> model call, the call, answer ->
recorded): what separates the engine from the client.

Run:  uv run python bench/concurrency.py [--seconds 4] [--workers 1,8,32,64]
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from oh_lsp.attempt import TaskContext

LATENCY = 0.2
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
BODY = {"model": "m", "messages": MESSAGES, "stream": True}


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "oh_lsp.testing.model_server", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    base: str = json.loads(proc.stdout.readline())["base_url"]
    httpx.post(base + "/__default", json={"content": "def test_ok():\n    assert True\n", "latency": LATENCY})
    return proc, base


async def drive(n: int, seconds: float, call: Callable[[int], Awaitable[object]]) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def caller(i: int) -> None:
        nonlocal done
        while time.monotonic() < stop:
            await call(i)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(n)))
    return done / (time.monotonic() - started)


async def raw(base: str, n: int, seconds: float) -> float:
    url = httpx.URL(base)
    body = json.dumps(BODY).encode()
    request = (
        b"POST %s/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (url.path.encode(), len(body), body)
    )
    streams = [await asyncio.open_connection(url.host, url.port) for _ in range(n)]

    async def call(i: int) -> None:
        reader, writer = streams[i]
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readuntil(b"0\r\n\r\n")

    rate = await drive(n, seconds, call)
    for _, writer in streams:
        writer.close()
    return rate


async def httpx_default(base: str, n: int, seconds: float) -> float:
    async with httpx.AsyncClient(timeout=30) as client:

        async def call(_i: int) -> None:
            async with client.stream("POST", base + "/chat/completions", json=BODY) as response:
                async for _ in response.aiter_lines():
                    pass

        return await drive(n, seconds, call)


# what the last run of a caller spent (the explanation printed under the table, for the largest N)
SPENT: dict[str, dict[str, float]] = {}


async def ours(base: str, n: int, seconds: float) -> float:
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.llm.client import ChatClient

    client = ChatClient(OpenHandsConfig(base_url=base, model="m"))
    calls = 0

    async def call(_i: int) -> None:
        nonlocal calls
        await client.chat("m", MESSAGES)
        calls += 1

    cpu = time.thread_time()
    try:
        return await drive(n, seconds, call)
    finally:
        SPENT["oh-lsp client"] = {"loop_cpu_ms": (time.thread_time() - cpu) * 1000 / max(calls, 1)}
        await client.aclose()


async def engine(base: str, n: int, seconds: float) -> float:
    from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
    from oh_lsp.attempt import Outcome
    from oh_lsp.events import COMPLETED, STARTED, Event
    from oh_lsp.pipeline import ask_model
    from oh_lsp.records import ExecutionMetrics

    marks: dict[str, dict[str, float]] = {}  # task id -> when it started, was answered, was recorded

    async def one_call(task: QueuedTask, ctx: TaskContext) -> Outcome:
        metrics = ExecutionMetrics(task_id=task.task_id, model_id="", task_type=task.task_type)
        asked = time.monotonic()
        await ask_model(task, ctx, MESSAGES, metrics)
        marks[task.task_id].update(asked=asked, answered=time.monotonic())
        metrics.success = True
        return Outcome("completed", result={}, model=metrics.model_id, metrics=metrics)

    def mark(event: Event) -> None:
        if event.kind in (STARTED, COMPLETED):
            marks.setdefault(event.task_id, {})[event.kind] = time.monotonic()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OH_LSP_STATE_DIR"] = str(Path(tmp, "state"))
        # as many tasks as the ideal run completes in `seconds`; the rate is measured up to the last one's end, as
        # drive() measures the clients up to their last call's end
        total = n * max(1, round(seconds / LATENCY))
        config = OpenHandsConfig(base_url=base, model="m", queue_max_size=total + 1)
        eng = ExecutionEngine(config, n, project_root=tmp, executor=one_call, poll_interval=0.01)
        for i in range(total):
            await eng.submit_task(QueuedTask(task_type="unit_test", description=f"p2 {i}"))
        eng.subscribe(mark)
        started, cpu, process_cpu = time.monotonic(), time.thread_time(), time.process_time()
        await eng.start()
        await eng.run_until_idle()
        elapsed = time.monotonic() - started
        loop_cpu = time.thread_time() - cpu
        SPENT["oh-lsp engine"] = {
            "loop_cpu_ms": loop_cpu * 1000 / total,
            "threads_cpu_ms": (time.process_time() - process_cpu - loop_cpu) * 1000 / total,
            **{
                name: 1000 * statistics.median(m[end] - m[begin] for m in marks.values())
                for name, begin, end in STRETCHES
            },
        }
        done: int = eng.get_metrics_summary()["system"]["successful"]
        await eng.stop(grace=0)
        eng.close()
        assert done == total, f"{done} of {total} tasks succeeded"
        return done / elapsed


CLIENTS = {"raw": raw, "httpx-default": httpx_default, "oh-lsp client": ours, "oh-lsp engine": engine}
# an engine task's stretches (medians): from its start to its model call, the call, from the answer to its record
STRETCHES = [
    ("to_call_ms", "started", "asked"),
    ("call_ms", "asked", "answered"),
    ("to_record_ms", "answered", "completed"),
]


def explain(n: int) -> str:
    """Where the time of the largest run went: the event loop's CPU per call (client) and per task (engine, with the
    other threads': the store's), and the medians of an engine task's stretches."""
    client, engine = SPENT.get("oh-lsp client", {}), SPENT.get("oh-lsp engine", {})
    return (
        f"at {n} workers, per call: oh-lsp client {client.get('loop_cpu_ms', 0):.2f} ms of event-loop CPU;"
        f" oh-lsp engine {engine.get('loop_cpu_ms', 0):.2f} ms (+{engine.get('threads_cpu_ms', 0):.2f} ms on other"
        f" threads: the store's), median start -> model call {engine.get('to_call_ms', 0):.1f} ms,"
        f" the call {engine.get('call_ms', 0):.1f} ms ({LATENCY * 1000:.0f} ms answer),"
        f" answer -> recorded {engine.get('to_record_ms', 0):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", default="1,8,32,64")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    proc, base = start_server()
    try:
        print(
            f"P2 concurrency efficiency: {LATENCY * 1000:.0f} ms per answer, {args.seconds:.0f} s per cell,"
            f" load average {os.getloadavg()[0]:.2f}"
        )
        print(f"{'client':<16}" + "".join(f"{n:>12}" for n in counts))
        at_most: dict[str, float] = {}
        for name, run in CLIENTS.items():
            cells = []
            for n in counts:
                efficiency = asyncio.run(run(base, n, args.seconds)) / (n / LATENCY)
                cells.append(f"{100 * efficiency:>11.0f}%")
                at_most[name] = efficiency
            print(f"{name:<16}" + "".join(cells), flush=True)
        figures = ", ".join(f"{name} {100 * at_most[name]:.0f}%" for name in ("raw", "oh-lsp client", "oh-lsp engine"))
        verdict = "met" if min(at_most["oh-lsp client"], at_most["oh-lsp engine"]) >= 0.95 else "missed"
        print(
            f"at {counts[-1]} workers: {figures}; target >= 95% at 64: {verdict}"
            f" (load average at the end {os.getloadavg()[0]:.2f})"
        )
        print(explain(counts[-1]))
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
