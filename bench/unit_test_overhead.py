"""Issue 12's speed goal (b), prepared: "the whole unit_test pipeline, excluding model time, adds <= 2x today's
validation time for the same module".

For each vendored module that has upstream tests (bench/quality/), in a throwaway project WITHOUT those tests, their
text plays the model's answer. Two ways to check it, no model involved:

- today: the unit_test kind's checks as they are (`unit_test.check`: runs 1-3 with seeds, the existing-tests
  baseline and the coverage run);
- new:   the machinery of issue 12 phase 1 on the same answer: the branch-coverage baseline (measured, not cached),
  mutation analysis before, the candidates' 3 seeded runs with per-test coverage, their mutation analysis against
  the mutants still alive, and the per-test choice. Phase 2 wires it into unit_test.check; compare again then.

    uv run python bench/unit_test_overhead.py [--modules isoweek] [--seconds 20] [--python PATH]
"""

from __future__ import annotations

import ast
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vendored import Vendored, chosen_modules, light_python, make_project, module_arguments
from oh_lsp import OpenHandsConfig
from oh_lsp.kinds import unit_test
from oh_lsp.kinds.base import CheckEnv, Target
from oh_lsp.paths import sha256_text
from oh_lsp.validation.baseline import measure_baseline
from oh_lsp.validation.candidates import measure_candidates
from oh_lsp.validation.mutation import analyse_mutants
from oh_lsp.validation.sandbox import Sandbox
from oh_lsp.validation.value_gate import choose_tests

SEEDS = [11, 22, 33]


def answer_of(module: Vendored) -> str:
    return "\n\n".join(t.read_text(encoding="utf-8") for t in module.upstream_tests)


async def today(module: Vendored, python: Path, tmp: Path) -> tuple[float, dict[str, Any]]:
    project = make_project(module, tmp / "today", with_tests=False)
    text = (project / module.module_file.name).read_text(encoding="utf-8")
    target = Target(project, Path(module.module_file.name), text, module.module, sha256_text(text))
    config = OpenHandsConfig(python=python, workspace_path=tmp / "scratch-today", test_seeds=SEEDS)
    candidate = unit_test.make_candidate(f"```python\n{answer_of(module)}```", target)
    started = time.perf_counter()
    verdict, _ = await unit_test.check(candidate, target, CheckEnv(root=project, config=config))
    seconds = time.perf_counter() - started
    return seconds, {"score": verdict.score, "kept": len(verdict.details.get("kept", []))}


async def new(module: Vendored, python: Path, tmp: Path, mutation_seconds: float) -> tuple[float, dict[str, Any]]:
    project = make_project(module, tmp / "new", with_tests=False)
    text = (project / module.module_file.name).read_text(encoding="utf-8")
    target_path = module.module_file.name
    answer = answer_of(module)
    target = Target(project, Path(target_path), text, module.module, sha256_text(text))
    candidate = unit_test.make_candidate(f"```python\n{answer}```", target)
    test_file = candidate.output_file
    started = time.perf_counter()
    async with Sandbox(project, tmp / "scratch-new", secrets=[]) as box:
        baseline = await measure_baseline(box, python, target_path, module.module, timeout=120, test_files=[])
        before = await analyse_mutants(
            box, python, target_path, module.module, text, baseline.coverage, baseline.passing, seconds=mutation_seconds
        )
        for edit in candidate.edit.files:
            box.write(edit.path, edit.new_text)
        left = mutation_seconds - before.seconds
        measured = await measure_candidates(
            box,
            python,
            target=target_path,
            module=module.module,
            source=text,
            test_file=test_file,
            test_tree=ast.parse(candidate.content),
            # placement names `test*` functions and `Test*` classes; with none (a unittest.TestCase named otherwise),
            # the whole module, as unit_test.check does
            nodeids=[f"{test_file}::{name}" for name in candidate.extra["tests"]] or [test_file],
            seeds=SEEDS,
            timeout=120,
            alive=before,
            mutation_seconds=left,
        )
    cov = baseline.coverage
    verdicts = choose_tests(measured.tests, cov.lines_of(), cov.branches_of(), before.detected_ids())
    seconds = time.perf_counter() - started
    return seconds, {"kept": sum(v.kept for v in verdicts), "tests": len(verdicts)}


async def one(module: Vendored, python: Path, mutation_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OH_LSP_STATE_DIR"] = str(Path(tmp, "state"))
        today_s, today_info = await today(module, python, Path(tmp))
        new_s, new_info = await new(module, python, Path(tmp), mutation_seconds)
    return {"today_s": today_s, "new_s": new_s, **{f"today_{k}": v for k, v in today_info.items()}, **new_info}


def main() -> None:
    args = module_arguments(__doc__).parse_args()
    python = args.python or light_python()
    modules = chosen_modules(args)
    print(f"python {python}; cap {args.seconds:g} s; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    print(f"{'module':<12} {'lines':>5} {'today s':>8} {'kept':>5} {'new s':>7} {'kept':>5} {'of':>4} {'new/today':>9}")
    ratios = []
    for module in modules:
        runs = [asyncio.run(one(module, python, args.seconds)) for _ in range(args.repeat)]
        today_s = statistics.median(r["today_s"] for r in runs)
        new_s = statistics.median(r["new_s"] for r in runs)
        ratios.append(new_s / today_s)
        r = runs[0]
        print(
            f"{module.name:<12} {module.lines:>5} {today_s:>8.2f} {r['today_kept']:>5} {new_s:>7.2f} {r['kept']:>5}"
            f" {r['tests']:>4} {new_s / today_s:>9.2f}",
            flush=True,
        )
    if ratios:
        print(f"median new/today: {statistics.median(ratios):.2f} over {len(ratios)} modules")


if __name__ == "__main__":
    main()
