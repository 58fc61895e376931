"""Issue 12's speed goal (b): "the whole unit_test pipeline, excluding model time, adds <= 2x today's validation time
for the same module".

For each vendored module that has upstream tests (bench/quality/), in a throwaway project WITHOUT those tests, their
text plays the model's answer. The same answer goes through, with no model involved:

- before: the unit_test check as it was before issue 12 (`unit_test.check` of commit PREVIOUS, read with `git show`
  and run against today's sandbox and pytest runner): runs 1-3 with seeds, the line-coverage baseline, the coverage
  run of the narrowed module;
- now:    what a unit_test task runs today besides the model call: the session's `prepare` (the branch-coverage
  baseline and the mutation analysis of the existing tests), the first prompt, the value gate on the answer (3 seeded
  runs with per-test coverage, the mutants still alive against the candidates), and `finish` (the kept tests run
  together). "cold": the first task on the module (nothing cached); "cached": the next one (the baseline and the
  mutation report before come from the state cache, as they do for every later task on an unchanged module).

    uv run python bench/unit_test_overhead.py [--modules isoweek] [--seconds 20] [--repeat 3] [--python PATH]
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vendored import REPO, Vendored, chosen_modules, light_python, make_project, module_arguments
from oh_lsp import OpenHandsConfig, QueuedTask
from oh_lsp.kinds import unit_test
from oh_lsp.kinds.base import CheckEnv, Target
from oh_lsp.paths import sha256_text

SEEDS = [11, 22, 33]
PREVIOUS = "c0472dd"  # main before issue 12's phase 2: the unit_test check that phase 1 measured as "today"


def previous_check() -> ModuleType:
    """`oh_lsp/kinds/unit_test.py` as it was at PREVIOUS, loaded as a module of its own."""
    try:
        text = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{PREVIOUS}:oh_lsp/kinds/unit_test.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot read the previous unit_test check from git ({PREVIOUS}): {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="oh-lsp-previous-"))
    path = folder / "previous_unit_test.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("previous_unit_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer_of(module: Vendored) -> str:
    return "```python\n" + "\n\n".join(t.read_text(encoding="utf-8") for t in module.upstream_tests) + "```"


def target_of(project: Path, module: Vendored) -> Target:
    text = (project / module.module_file.name).read_text(encoding="utf-8")
    return Target(project, Path(module.module_file.name), text, module.module, sha256_text(text))


def config(python: Path, scratch: Path, seconds: float) -> OpenHandsConfig:
    return OpenHandsConfig(
        python=python, workspace_path=scratch, test_seeds=SEEDS, mutation_seconds=seconds, quality_threshold=0.0
    )


async def before(previous: ModuleType, module: Vendored, python: Path, tmp: Path) -> tuple[float, dict[str, Any]]:
    project = make_project(module, tmp / "before", with_tests=False)
    target = target_of(project, module)
    candidate = previous.make_candidate(answer_of(module), target)
    env = CheckEnv(root=project, config=config(python, tmp / "scratch-before", 20))
    started = time.perf_counter()
    verdict, _ = await previous.check(candidate, target, env)
    return time.perf_counter() - started, {"kept": len(verdict.details.get("kept", []))}


async def now(module: Vendored, python: Path, tmp: Path, seconds: float, name: str) -> tuple[float, dict[str, Any]]:
    """One unit_test task on the module without its model call (the answer is given)."""
    project = tmp / "now"
    if not project.exists():
        make_project(module, project, with_tests=False)
    target = target_of(project, module)
    env = CheckEnv(root=project, config=config(python, tmp / f"scratch-{name}", seconds))
    task = QueuedTask(task_type="unit_test", target_file=target.path)
    started = time.perf_counter()
    session = unit_test.open_session(target, task, env, 0.0)
    refused = await session.prepare()
    if refused is not None:
        raise SystemExit(f"{module.name}: the task ended before the model call: {refused.summary()}")
    conversation = session.conversations(None)[0]
    conversation.messages(None)
    await session.judge(conversation, answer_of(module), 1, "bench")
    ending = await session.finish()
    seconds_taken = time.perf_counter() - started
    result = ending.result
    return seconds_taken, {
        "kept": len(result["kept_tests"]),
        "tests": result["generated_tests"],
        "cached": result["baseline"]["cached"],
        "coverage": f"{result['coverage']['before']:.0f}→{result['coverage']['after']:.0f}",
        "mutation": result["mutation"],
    }


async def one(previous: ModuleType, module: Vendored, python: Path, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OH_LSP_STATE_DIR"] = str(Path(tmp, "state"))
        before_s, before_info = await before(previous, module, python, Path(tmp))
        cold_s, cold = await now(module, python, Path(tmp), seconds, "cold")
        warm_s, warm = await now(module, python, Path(tmp), seconds, "warm")
    assert not cold["cached"] and warm["cached"], "the second task reads the baseline from the cache"
    mutation = cold["mutation"] or {}
    return {
        "before_s": before_s,
        "before_kept": before_info["kept"],
        "cold_s": cold_s,
        "warm_s": warm_s,
        "kept": cold["kept"],
        "tests": cold["tests"],
        "coverage": cold["coverage"],
        "mutation": f"{mutation.get('before', 0) or 0:.2f}→{mutation.get('after', 0) or 0:.2f}",
    }


def main() -> None:
    args = module_arguments(__doc__).parse_args()
    python = args.python or light_python()
    modules = chosen_modules(args)
    previous = previous_check()
    print(f"python {python}; cap {args.seconds:g} s; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    header = (
        f"{'module':<12} {'lines':>5} {'before s':>8} {'kept':>5} {'cold s':>7} {'cached s':>8} {'kept':>5}"
        f" {'of':>4} {'coverage':>9} {'mutation':>10} {'cold/before':>11} {'cached/before':>13}"
    )
    print(header)
    cold_ratios, warm_ratios = [], []
    for module in modules:
        runs = [asyncio.run(one(previous, module, python, args.seconds)) for _ in range(args.repeat)]
        before_s = statistics.median(r["before_s"] for r in runs)
        cold_s = statistics.median(r["cold_s"] for r in runs)
        warm_s = statistics.median(r["warm_s"] for r in runs)
        cold_ratios.append(cold_s / before_s)
        warm_ratios.append(warm_s / before_s)
        r = runs[0]
        print(
            f"{module.name:<12} {module.lines:>5} {before_s:>8.2f} {r['before_kept']:>5} {cold_s:>7.2f}"
            f" {warm_s:>8.2f} {r['kept']:>5} {r['tests']:>4} {r['coverage']:>9} {r['mutation']:>10}"
            f" {cold_s / before_s:>11.2f} {warm_s / before_s:>13.2f}",
            flush=True,
        )
    if cold_ratios:
        print(
            f"median now/before: cold {statistics.median(cold_ratios):.2f}, cached {statistics.median(warm_ratios):.2f}"
            f" over {len(cold_ratios)} modules; load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
