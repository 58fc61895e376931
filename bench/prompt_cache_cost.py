"""P7: what 20 similar tasks cost with the provider's prompt cache and batching, against the same 20 without.

Twenty unit_test tasks on one module of twenty functions, one function each (as "Generate tests for <function>" or
one gap at a time asks): their prompts share the module's source and the project context, and differ in the
instruction. The real engine and pipeline (the answers are checked with pytest in the sandbox) against the scripted
model server (in this process), which keeps a prompt cache the way Anthropic's models behind OpenRouter do (only
prefixes that end at a `cache_control` breakpoint; reads at 0.1x the prompt price, writes at 1.25x; readable once
the provider has read the prompt) and reports `usage.prompt_tokens_details.cached_tokens` and `usage.cost` as
OpenRouter does. Each answer takes `--latency` seconds; 5 workers.

Three runs, each on a fresh store: no prompt caching and no batching; prompt caching alone; prompt caching and
batching (the defaults). Cost is what the store's metrics add up from the provider's `usage.cost`.

    uv run python bench/prompt_cache_cost.py [--tasks 20] [--latency 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
from oh_lsp.testing.model_server import RecordedRequest, Reply, ScriptedModelServer
from oh_lsp.testing.model_server.wire import PRICE_PROMPT, PromptCache

FUNCTION = '''

def f{n}(values, limit={n}):
    """Sum the values that are not above the limit, after scaling each by its position.

    The scaling makes later values weigh more; values above the limit are skipped, negative ones count as zero.
    Returns the sum, and 0 for no values at all.
    """
    total = 0
    for position, value in enumerate(values, start=1):
        if value > limit:
            continue
        total += max(value, 0) * position
    return total
'''
CONFIGS = (
    ("no prompt caching, no batching", {"prompt_cache": False, "batch_window_seconds": 0.0}),
    ("prompt caching, no batching", {"prompt_cache": True, "batch_window_seconds": 0.0}),
    ("prompt caching and batching", {"prompt_cache": True, "batch_window_seconds": 0.5}),
)


def answer(request: RecordedRequest) -> Reply:
    """Tests for the function the instruction names (the last `fN` of the prompt)."""
    messages = (request.body or {}).get("messages") or []
    last = messages[-1].get("content") if messages else ""
    text = last if isinstance(last, str) else "".join(part.get("text", "") for part in last)
    n = re.findall(r"\bf(\d+)\b", text)[-1]
    tests = (
        f"from pkg.big import f{n}\n\n\ndef test_f{n}_sums_the_scaled_values():\n"
        f"    assert f{n}([1, 2, {int(n) + 5}, -1]) == 1 + 4\n\n\ndef test_f{n}_of_nothing():\n    assert f{n}([]) == 0\n"
    )
    return Reply.text(f"```python\n{tests}```")


async def one_run(
    folder: Path, server: ScriptedModelServer, tasks: int, latency: float, **settings: Any
) -> dict[str, Any]:
    project = folder / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "big.py").write_text(
        '"""Twenty ways to sum."""\n' + "".join(FUNCTION.format(n=n) for n in range(20))
    )
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0"\n')
    catalog = folder / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "models": {
                    "bench-model": {
                        "price_prompt": PRICE_PROMPT,
                        "price_completion": 2 * PRICE_PROMPT,
                        "price_cache_read": 0.1 * PRICE_PROMPT,
                        "price_cache_write": 1.25 * PRICE_PROMPT,
                        "cache_control": True,
                    }
                }
            }
        )
    )
    os.environ["OH_LSP_STATE_DIR"] = str(folder / "state")
    server.clear()
    server.prompt_cache = PromptCache(mode="breakpoints")
    server.responder = lambda request: dataclasses.replace(answer(request), latency=latency)
    config = OpenHandsConfig(
        model="bench-model",
        base_url=server.base_url,
        api_key=None,
        python=Path(sys.executable),
        model_catalog=catalog,
        max_repair_iterations=0,
        quality_threshold=0.0,
        mutation=False,
        result_cache=False,
        **settings,
    )
    engine = ExecutionEngine(config, 5, project_root=project, poll_interval=0.05)
    ids = [
        await engine.submit_task(
            QueuedTask(
                task_type="unit_test",
                target_file=Path("pkg/big.py"),
                description=f"Write unit tests for f{n} only.",
                metadata={"symbol": f"f{n}"},
            )
        )
        for n in range(tasks)
    ]
    await engine.start()
    try:
        done = [await engine.wait_for(task_id, timeout=600) for task_id in ids]
    finally:
        await engine.stop()
        summary = engine.get_metrics_summary()["system"]
        engine.close()
    completed = sum(1 for task in done if task.status.value == "completed")
    return {
        "completed": completed,
        "cost": summary["total_cost"],
        "prompt_tokens": summary["prompt_tokens"],
        "cached_share": summary["cached_share"],
        "saved": summary["saved_cost"],
        "requests": len(server.requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = []
    with ScriptedModelServer() as server:
        for name, settings in CONFIGS:
            with tempfile.TemporaryDirectory() as folder:
                results.append((name, asyncio.run(one_run(Path(folder), server, args.tasks, args.latency, **settings))))
    print(
        f"P7 {args.tasks} similar tasks (one module, one function each), 5 workers, answers after {args.latency} s;"
        f" load average {load:.2f}"
    )
    print(f"  {'':<34}{'completed':>10}{'requests':>10}{'prompt tokens':>15}{'cached':>8}{'cost':>12}{'saved':>12}")
    for name, r in results:
        print(
            f"  {name:<34}{r['completed']:>10}{r['requests']:>10}{r['prompt_tokens']:>15}"
            f"{100 * r['cached_share']:>7.0f}%{r['cost']:>12.6f}{r['saved']:>12.6f}"
        )
    base, cached, batched = (r["cost"] for _, r in results)
    ratio = batched / base if base else float("nan")
    print(
        f"  cost with prompt caching and batching / without: {ratio:.2f}"
        f" (prompt caching alone: {cached / base:.2f}); target <= 0.50: {'met' if ratio <= 0.5 else 'missed'}"
    )


if __name__ == "__main__":
    main()
