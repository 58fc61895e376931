"""Issue 12's speed goal (a): mutation analysis of a ~200-line module with its tests takes <= 10 s on these 2 cores.

For each vendored module that has upstream tests (bench/quality/), in a throwaway project in oh-lsp's sandbox: the
coverage baseline (line + branch, per test) of its tests, then the analysis of every mutant of the module in one pytest
process, each with only the tests covering its line, under the usual cap (20 s; --seconds). Prints one row per module
and the median. The mutation time counts pytest's start and the clean run of the tests, not the baseline.

    uv run python bench/mutation.py [--modules isoweek,hashids] [--seconds 20] [--repeat 3] [--python PATH]
"""

from __future__ import annotations

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
from oh_lsp.validation.baseline import measure_baseline
from oh_lsp.validation.mutation import analyse_mutants
from oh_lsp.validation.sandbox import Sandbox


async def one(module: Vendored, python: Path, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OH_LSP_STATE_DIR"] = str(Path(tmp, "state"))
        project = make_project(module, Path(tmp, "project"), with_tests=True)
        target = module.module_file.name
        source = (project / target).read_text(encoding="utf-8")
        tests = [f"tests/{t.name}" for t in module.upstream_tests]
        async with Sandbox(project, Path(tmp, "scratch"), secrets=[]) as box:
            started = time.perf_counter()
            baseline = await measure_baseline(box, python, target, module.module, timeout=120, test_files=tests)
            baseline_s = time.perf_counter() - started
            started = time.perf_counter()
            report = await analyse_mutants(
                box, python, target, module.module, source, baseline.coverage, baseline.passing, seconds=seconds
            )
            mutation_s = time.perf_counter() - started
            isolated = box.isolated
    counts = report.counts()
    return {
        "module": module.name,
        "lines": module.lines,
        "tests": len(baseline.passing),
        "coverage": baseline.totals.percent,
        "mutants": len(report.results),
        **counts,
        "score": report.score,
        "baseline_s": baseline_s,
        "mutation_s": mutation_s,
        "processes": report.processes,
        "isolated": isolated,
    }


def main() -> None:
    args = module_arguments(__doc__).parse_args()
    python = args.python or light_python()
    modules = chosen_modules(args)
    print(f"python {python}; cap {args.seconds:g} s; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    header = (
        f"{'module':<12} {'lines':>5} {'tests':>5} {'cov%':>6} {'mutants':>7} {'killed':>6} {'t/o':>4} {'surv':>5}"
        f" {'nocov':>5} {'n/a':>4} {'score':>6} {'baseline s':>10} {'mutation s':>10}"
    )
    print(header)
    rows = []
    for module in modules:
        runs = [asyncio.run(one(module, python, args.seconds)) for _ in range(args.repeat)]
        row = dict(runs[0], baseline_s=statistics.median(r["baseline_s"] for r in runs))
        row["mutation_s"] = statistics.median(r["mutation_s"] for r in runs)
        rows.append(row)
        score = "-" if row["score"] is None else f"{row['score']:.2f}"
        print(
            f"{row['module']:<12} {row['lines']:>5} {row['tests']:>5} {row['coverage']:>6.1f} {row['mutants']:>7}"
            f" {row['killed']:>6} {row['timeout']:>4} {row['survived']:>5} {row['no-coverage']:>5}"
            f" {row['not-analysed']:>4} {score:>6} {row['baseline_s']:>10.2f} {row['mutation_s']:>10.2f}",
            flush=True,
        )
    if rows:
        print(
            f"median mutation time: {statistics.median(r['mutation_s'] for r in rows):.2f} s over {len(rows)} modules;"
            f" sandbox isolated: {rows[0]['isolated']}"
        )


if __name__ == "__main__":
    main()
