"""P6b: what a unit_test task costs after one function of a 10-function module changed, against the full-module task.

The real engine and pipeline (every answer checked with pytest in the sandbox) against the scripted model server (in
this process), which counts tokens as a provider would bill them (prompt and answer, 4 characters a token) and
answers what it is asked: for each function whose lines the prompt's gaps name, the tests of that function. Each
scenario runs on a fresh project and store:

1. the full-module task (nothing remembered): tokens T1;
2. one function (`f3`) changes: a new branch;
3. the next task on the module: tokens T2, and the ratio T2 / T1 (target: at most 0.25).

Two scenarios: the first task's tests were written into the project (the CLI's and the editor's way: they are the
existing tests of the next task), or were not (the Python API returns the edit without applying it: the tests kept
earlier are checked again and reused). For comparison, the same second task with the incremental work bypassed
(`--no-cache`): what "Tests worth having" alone asks for.

    uv run python bench/incremental_cost.py [--mutation]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.prompt_cache_cost import FUNCTION
from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
from oh_lsp.testing.model_server import RecordedRequest, Reply, ScriptedModelServer

FUNCTIONS = 10
CHANGED = 3
NEW_BRANCH = '    total = 0\n    if limit < 0:\n        raise ValueError("the limit must not be negative")\n'


def module(changed: bool = False) -> str:
    parts = []
    for n in range(FUNCTIONS):
        text = FUNCTION.format(n=n)
        if changed and n == CHANGED:
            text = text.replace("    total = 0\n", NEW_BRANCH, 1)
        parts.append(text)
    return '"""Ten ways to sum."""\n' + "".join(parts)


def tests_of(n: int, source: str, prompt: str) -> list[str]:
    """The tests of `fN` a model writes, but those the prompt shows as existing tests already (it says not to repeat
    them)."""
    tests = [
        f"def test_f{n}_sums_the_scaled_values():\n    assert f{n}([0, {n}, {n + 1000}, -1]) == 2 * {n}\n",
        f"def test_f{n}_of_nothing():\n    assert f{n}([]) == 0\n",
    ]
    if "ValueError" in source:
        tests.append(
            f"def test_f{n}_refuses_a_negative_limit():\n    with pytest.raises(ValueError):\n        f{n}([1], limit=-1)\n"
        )
    return [test for test in tests if test.split("(", 1)[0] not in prompt]


def answer(request: RecordedRequest, source: str) -> Reply:
    """The tests of each function the prompt's gaps name (by their lines in the file)."""
    content = request.body["messages"][-1]["content"]
    prompt = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
    gaps = prompt.split("What no test checks yet", 1)[-1]
    lines = {int(n) for n in re.findall(r"\blines? (\d+)", gaps)}
    spans = {
        int(node.name[1:]): (node.lineno, node.end_lineno or node.lineno)
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef)
    }
    asked = sorted(n for n, (first, last) in spans.items() if any(first <= line <= last for line in lines))
    names = ", ".join(f"f{n}" for n in asked)
    body = "\n\n".join(test for n in asked for test in tests_of(n, source, prompt))
    return Reply.text(f"```python\nimport pytest\n\nfrom pkg.sums import {names}\n\n\n{body}```")


async def run_task(project: Path, server: ScriptedModelServer, *, apply: bool, mutation: bool, **metadata: Any) -> Any:
    config = OpenHandsConfig(
        model="bench-model",
        base_url=server.base_url,
        api_key=None,
        python=Path(sys.executable),
        max_repair_iterations=0,
        quality_threshold=0.0,
        mutation=mutation,
    )
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05, apply_edits=apply)
    await engine.start()
    try:
        task_id = await engine.submit_task(
            QueuedTask(task_type="unit_test", target_file=Path("pkg/sums.py"), metadata=dict(metadata))
        )
        return await engine.wait_for(task_id, timeout=600)
    finally:
        await engine.stop()
        engine.close()


async def scenario(folder: Path, server: ScriptedModelServer, *, apply: bool, mutation: bool) -> dict[str, Any]:
    project = folder / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0"\n')
    os.environ["OH_LSP_STATE_DIR"] = str(folder / "state")
    source = module()
    (project / "pkg" / "sums.py").write_text(source)
    server.clear()
    server.responder = lambda request: answer(request, (project / "pkg" / "sums.py").read_text())
    full = await run_task(project, server, apply=apply, mutation=mutation)
    (project / "pkg" / "sums.py").write_text(module(changed=True))
    after = await run_task(project, server, apply=False, mutation=mutation)
    bypassed = await run_task(project, server, apply=False, mutation=mutation, no_cache=True)
    for task in (full, after, bypassed):
        if task.status.value != "completed":
            raise SystemExit(f"task {task.task_id} ended {task.status.value}: {task.error}")
    return {
        "full": full.tokens,
        "after": after.tokens,
        "bypassed": bypassed.tokens,
        "kept": (len(full.result["kept_tests"]), len(after.result["kept_tests"])),
        "incremental": after.result.get("incremental") or {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutation", action="store_true", help="with mutation analysis (slower; off by default)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with ScriptedModelServer() as server:
        for name, apply in (("tests written into the project", True), ("tests returned, not applied", False)):
            with tempfile.TemporaryDirectory() as folder:
                rows.append((name, asyncio.run(scenario(Path(folder), server, apply=apply, mutation=args.mutation))))
    print(
        f"P6b one function of {FUNCTIONS} changed; mutation analysis {'on' if args.mutation else 'off'};"
        f" load average {load:.2f}"
    )
    print(
        f"  {'':<32}{'T1: full task':>14}{'T2: after':>10}{'T2/T1':>7}"
        f"{'T3: --no-cache':>16}{'T2/T3':>7}   what the second task reused"
    )
    worst = 0.0
    for name, r in rows:
        ratio, plain = r["after"] / r["full"], r["after"] / r["bypassed"]
        worst = max(worst, ratio)
        reused = r["incremental"]
        print(
            f"  {name:<32}{r['full']:>14}{r['after']:>10}{ratio:>7.2f}{r['bypassed']:>16}{plain:>7.2f}"
            f"   {len(reused.get('changed') or [])} changed, asked about {', '.join(reused.get('asked') or [])},"
            f" {len(reused.get('carried') or [])} tests kept earlier reused"
        )
    print(
        "  T1: the first, full-module task; T2: the next task after one function changed; T3: the same task with"
        " incremental work bypassed"
    )
    print(f"  T2/T1 at most {worst:.2f}; target <= 0.25: {'met' if worst <= 0.25 else 'missed'}")


if __name__ == "__main__":
    main()
