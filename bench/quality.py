"""Issue 12's quality benchmark: oh-lsp and CoverUp side by side on the real modules vendored under bench/quality/,
against the same OpenAI-compatible endpoint and model, every figure measured by one neutral procedure.

Per module, a throwaway project is made: the module at its top level and one test that imports it (CoverUp needs one,
see bench/coverup_env.py; for oh-lsp it adds what importing the module runs, which its own baseline counts anyway).
With --with-tests the module's upstream tests are there too, where they were vendored. Then, each tool in a copy of
its own:

- oh-lsp: its public CLI, `oh-lsp generate-tests MODULE.py --json`, one unit_test task, which writes its kept tests
  into the copy; the settings a user would export (OPENHANDS_BASE_URL, OPENHANDS_MODEL, OPENROUTER_API_KEY), the
  per-module time limit as the task's timeout (OPENHANDS_TIMEOUT, no queue retry), oh-lsp's defaults otherwise;
- CoverUp 0.6.3 in its own environment (bench/coverup_env.py: `.cache/coverup`), `--branch-coverage`, on the module.

Both talk to the endpoint through a usage meter of their own (bench/usage_meter.py), which counts tokens the same way
for both. Before and after, the project's tests (all of tests/test_*.py) are measured by oh-lsp's own machinery, the
same for both tools and never a tool's report of itself, in oh-lsp's sandbox with a light interpreter (pytest and
coverage.py only):

- line+branch coverage: coverage.py with `branch = True`, (statements run + arcs taken) / (statements + arcs), over
  the tests that pass (oh_lsp.validation.baseline);
- mutation score: detected / analysed mutants of the module's AST mutator (oh_lsp.validation.mutation), each mutant
  run against the passing tests that cover its line, under a cap (--mutation-seconds);
- tests proposed: `def test…` functions in the model's answers (from the meter); tests kept: passing tests after that
  were not there before;
- tokens: the meter's; cost: tokens × the model's price (--price-prompt/--price-completion in USD per million tokens,
  else the endpoint's /models listing, else 0 for a loopback endpoint); wall time: the tool's run alone.

    uv run python bench/quality.py --base-url URL --model NAME [--modules isoweek,roman] [--no-coverup]
        [--timeout 600] [--json out.json] [--markdown out.md] [--resume] [--with-tests]
    uv run python bench/quality.py --smoke       # the scripted model server, one module: checks the plumbing

The same command works against any OpenAI-compatible endpoint: a local llama.cpp / Ollama server, or OpenRouter with
the key in OPENROUTER_API_KEY (read from the environment only, never a command-line argument). Nothing here needs
the internet at run time except a remote endpoint itself; installing CoverUp's environment and the light interpreter
(once, by uv) does.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.coverup_env import COVERUP_SPECS, COVERUP_VENV, coverup_python, run_coverup
from bench.usage_meter import LOOPBACK, UsageMeter
from bench.vendored import REPO, Vendored, light_python, make_project, vendored
from oh_lsp.validation.baseline import measure_baseline
from oh_lsp.validation.mutation import analyse_mutants
from oh_lsp.validation.sandbox import Sandbox

TOOLS = ("oh-lsp", "CoverUp")
SMOKE_MODULE = "typeutils"
TEST_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+test\w*[ \t]*\(", re.MULTILINE)
KEY_VARIABLE = "OPENROUTER_API_KEY"


@dataclass
class Endpoint:
    base_url: str
    model: str
    kind: str  # the kind of run each row says it comes from: scripted, local model, real provider
    api_key: str | None
    price_prompt: float | None  # USD per token
    price_completion: float | None

    @property
    def provider(self) -> str:
        host = urlparse(self.base_url).hostname or ""
        return "openrouter" if host == "openrouter.ai" or host.endswith(".openrouter.ai") else "openai-compatible"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_prompt is None or self.price_completion is None:
            return None
        return prompt_tokens * self.price_prompt + completion_tokens * self.price_completion


# --- the neutral measure ---------------------------------------------------------------------------------------------
def test_files(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in (project / "tests").rglob("test_*.py"))


async def _measure(project: Path, module: Vendored, python: Path, seconds: float, secrets: list[str]) -> dict[str, Any]:
    target = module.module_file.name
    source = (project / target).read_text(encoding="utf-8")
    tests = test_files(project)
    with tempfile.TemporaryDirectory(prefix="quality-measure-") as scratch:
        async with Sandbox(project, Path(scratch), secrets=secrets) as box:
            baseline = await measure_baseline(box, python, target, module.module, timeout=600, test_files=tests)
            report = await analyse_mutants(
                box, python, target, module.module, source, baseline.coverage, baseline.passing, seconds=seconds
            )
    totals = baseline.totals
    return {
        "coverage": totals.percent,
        "coverage_detail": totals.to_dict(),
        "test_files": tests,
        "passing": baseline.passing,
        "failing": sorted(baseline.failing),
        "timed_out": baseline.timed_out,
        "mutation_score": None if report.score is None else round(report.score, 4),
        "mutants": report.counts(),
        "mutation_complete": report.complete,
        "mutation_seconds": round(report.seconds, 1),
    }


def measure(project: Path, module: Vendored, python: Path, seconds: float, secrets: list[str]) -> dict[str, Any]:
    """Coverage and mutation score of the tests in `project` (module docstring), in a sandbox."""
    return asyncio.run(_measure(project, module, python, seconds, secrets))


# --- the tools -------------------------------------------------------------------------------------------------------
def tool_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the user's oh-lsp settings and key (the benchmark sets its own)."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENHANDS_", "OH_LSP_")) and k not in (KEY_VARIABLE, "OPENAI_API_KEY", "OPENAI_API_BASE")
    }
    return {**kept, **extra}


def run_oh_lsp(
    project: Path, module: Vendored, endpoint: Endpoint, meter_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One unit_test task through oh-lsp's CLI, in `project`; its kept tests land in project/tests."""
    work = project.parent
    settings = {
        "OPENHANDS_BASE_URL": meter_url,
        "OPENHANDS_MODEL": endpoint.model,
        # the meter is on the loopback; the endpoint behind it says which catalog rules apply
        "OH_LSP_PROVIDER": endpoint.provider,
        "OH_LSP_STATE_DIR": str(work / "oh-lsp-state"),
        "OPENHANDS_WORKSPACE_ROOT": str(work / "oh-lsp-scratch"),
        "OH_LSP_PYTHON": str(args.python),
        "OPENHANDS_TIMEOUT": str(int(args.timeout)),
        "OH_LSP_MAX_RETRIES": "0",  # the time limit is the whole budget: a timed-out attempt is not queued again
    }
    if args.context_tokens:
        settings["OH_LSP_CONTEXT_TOKENS"] = str(args.context_tokens)
    if endpoint.api_key:
        settings[KEY_VARIABLE] = endpoint.api_key
    command = [sys.executable, "-m", "oh_lsp", "generate-tests", module.module_file.name]
    command += ["--project-root", str(project), "--json"]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=project,
            env=tool_environment(settings),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=args.timeout + 120,
        )
    except subprocess.TimeoutExpired:
        return {"ran": True, "seconds": round(time.monotonic() - started, 1), "status": "stopped at the time limit"}
    seconds = round(time.monotonic() - started, 1)
    summary = _last_json(done.stdout)
    if summary is None:
        last = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()][-1:]
        return {"ran": False, "seconds": seconds, "reason": f"exit {done.returncode}: {' '.join(last)}"[:300]}
    result = summary.get("result") or {}
    validation = result.get("validation") or {}
    return {
        "ran": True,
        "seconds": seconds,
        "exit": done.returncode,
        "status": summary.get("status"),
        "error": (summary.get("error") or "")[:300],
        "self_report": {
            "tokens": summary.get("tokens"),
            "tokens_estimated": bool(result.get("tokens_estimated")),
            "cost": summary.get("cost"),
            "score": validation.get("score"),
            "delivery": summary.get("delivery"),
        },
    }


def _last_json(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start != -1:
        try:
            value = json.loads(text[start:])
        except ValueError:
            start = text.find("\n{", start + 1)
            start = start + 1 if start != -1 else -1
            continue
        return value if isinstance(value, dict) else None
    return None


def run_coverup_tool(
    project: Path, module: Vendored, endpoint: Endpoint, meter_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    """CoverUp on the module in `project`, in its own environment; its tests land in project/tests."""
    if not (COVERUP_VENV / "bin" / "coverup").exists():
        if args.no_install:
            return {"ran": False, "seconds": 0.0, "reason": f"CoverUp's environment {COVERUP_VENV} is not installed"}
        coverup_python()
    found = run_coverup(
        module,
        project,
        base_url=meter_url,
        model=f"openai/{endpoint.model}",
        api_key=endpoint.api_key or "sk-local",
        prompt=None,
        timeout=args.timeout,
        extra=args.coverup_args.split() if args.coverup_args else None,
    )
    ran = found["coverage_before"] is not None
    out: dict[str, Any] = {
        "ran": ran,
        "seconds": found["seconds"],
        "exit": found["exit"],
        "status": "stopped at the time limit" if found["exit"] is None else f"exit {found['exit']}",
        "self_report": {
            "coverage_before": found["coverage_before"],
            "coverage_after": found["coverage_after"],
            "good_failed_useless_retries": found["good_failed_useless_retries"],
            "cost": found["cost_reported"],
        },
        "last_lines": found["last_lines"],
    }
    if not ran:
        out["reason"] = " ".join(found["last_lines"])[-300:] or f"exit {found['exit']} with no output"
    return out


# --- one module ------------------------------------------------------------------------------------------------------
def run_module(
    module: Vendored, endpoint: Endpoint, args: argparse.Namespace, tools: list[str]
) -> list[dict[str, Any]]:
    secrets = [endpoint.api_key] if endpoint.api_key else []
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"quality-{module.name}-") as tmp:
        template = make_project(module, Path(tmp, "template"), with_tests=args.with_tests)
        tests = template / "tests"
        tests.mkdir(exist_ok=True)
        (tests / f"test_{module.module}_imports.py").write_text(
            f"import {module.module}\n\n\ndef test_imports():\n    assert {module.module}.__name__\n", encoding="utf-8"
        )
        before = measure(template, module, args.python, args.mutation_seconds, secrets)
        for tool in tools:
            project = Path(tmp, tool, "project")
            shutil.copytree(template, project)
            with UsageMeter(endpoint.base_url, timeout=args.timeout) as meter:
                runner = run_oh_lsp if tool == "oh-lsp" else run_coverup_tool
                run = runner(project, module, endpoint, meter.base_url, args)
            meter.settle(endpoint.api_key)
            after = measure(project, module, args.python, args.mutation_seconds, secrets) if run["ran"] else None
            rows.append(make_row(module, tool, endpoint, before, after, run, meter))
            print_row(rows[-1])
    return rows


def make_row(
    module: Vendored,
    tool: str,
    endpoint: Endpoint,
    before: dict[str, Any],
    after: dict[str, Any] | None,
    run: dict[str, Any],
    meter: UsageMeter,
) -> dict[str, Any]:
    usage = meter.totals()
    proposed = sum(len(TEST_DEF.findall(call.answer)) for call in meter.calls)
    row: dict[str, Any] = {
        "module": module.name,
        "lines": module.lines,
        "tool": tool,
        "run": endpoint.kind,
        "model": endpoint.model,
        "ran": run["ran"],
        "reason": run.get("reason", ""),
        "status": run.get("status", ""),
        "seconds": run["seconds"],
        "coverage_before": before["coverage"],
        "mutation_before": before["mutation_score"],
        "coverage_after": None,
        "mutation_after": None,
        "gain": None,
        "tests_proposed": proposed,
        "tests_kept": None,
        **usage,
        "cost": endpoint.cost(usage["prompt_tokens"], usage["completion_tokens"]),
        "tokens_per_point": None,
        "before": before,
        "after": after,
        "tool_run": run,
        "model_calls": [call.summary() for call in meter.calls],
    }
    if after is not None:
        row["coverage_after"] = after["coverage"]
        row["mutation_after"] = after["mutation_score"]
        row["gain"] = round(after["coverage"] - before["coverage"], 2)
        row["tests_kept"] = len(set(after["passing"]) - set(before["passing"]))
        if row["gain"] > 0:
            row["tokens_per_point"] = round(usage["tokens"] / row["gain"], 1)
    return row


# --- the report ------------------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def print_row(row: dict[str, Any]) -> None:
    if not row["ran"]:
        print(f"{row['module']:<12} {row['tool']:<8} could not run: {row['reason']}", flush=True)
        return
    print(
        f"{row['module']:<12} {row['tool']:<8} cov {_pct(row['coverage_before'])} -> {_pct(row['coverage_after'])}"
        f"  mutation {_score(row['mutation_before'])} -> {_score(row['mutation_after'])}"
        f"  tests {row['tests_proposed']}/{row['tests_kept']}  tokens {row['tokens']} ({row['calls']} calls)"
        f"  {row['seconds']:.0f} s  [{row['status']}]",
        flush=True,
    )


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tool, over the modules where it ran: medians, total tokens, and tokens per point of coverage gained."""
    out = {}
    for tool in TOOLS:
        ran = [r for r in rows if r["tool"] == tool and r["ran"]]
        if not ran:
            continue

        def median(key: str, ran: list[dict[str, Any]] = ran) -> float | None:
            values = [r[key] for r in ran if r[key] is not None]
            return round(statistics.median(values), 2) if values else None

        gained = sum(r["gain"] or 0.0 for r in ran)
        tokens = sum(r["tokens"] for r in ran)
        costs = [r["cost"] for r in ran]
        out[tool] = {
            "modules": len(ran),
            "coverage_before": median("coverage_before"),
            "coverage_after": median("coverage_after"),
            "mutation_before": median("mutation_before"),
            "mutation_after": median("mutation_after"),
            "tests_proposed": sum(r["tests_proposed"] for r in ran),
            "tests_kept": sum(r["tests_kept"] or 0 for r in ran),
            "tokens": tokens,
            "cost": None if any(c is None for c in costs) else round(sum(costs), 4),
            "seconds": round(sum(r["seconds"] for r in ran), 1),
            "points_gained": round(gained, 2),
            "tokens_per_point": round(tokens / gained, 1) if gained > 0 else None,
        }
    return out


def goals(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 12's goal, judged on these figures (only meaningful when both ran on the same real model)."""
    ours, theirs = summary.get("oh-lsp"), summary.get("CoverUp")
    if not ours or not theirs:
        return ["goals: not judged (both tools must have run)"]
    if not ours["points_gained"] and not theirs["points_gained"]:
        return ["goals: not judged: neither tool gained any coverage (no generated test passed and added a line)"]

    def compare(name: str, a: float | None, b: float | None, better: str) -> str:
        if a is None or b is None:
            return f"{name}: not judged (oh-lsp {a}, CoverUp {b})"
        met = a >= b if better == ">=" else (a > b if better == ">" else a < b)
        return f"{name}: oh-lsp {a} vs CoverUp {b}: {'met' if met else 'not met'}"

    # a tool that spent tokens and gained nothing spent infinitely many per point
    infinite = float("inf")
    return [
        compare("median coverage after ≥ CoverUp's", ours["coverage_after"], theirs["coverage_after"], ">="),
        compare("median mutation score after > CoverUp's", ours["mutation_after"], theirs["mutation_after"], ">"),
        compare(
            "tokens per point gained < CoverUp's",
            ours["tokens_per_point"] or infinite,
            theirs["tokens_per_point"] or infinite,
            "<",
        ),
    ]


def markdown(report: dict[str, Any]) -> str:
    meta, rows, summary = report["meta"], report["rows"], report["summary"]
    lines = [
        f"Run: {meta['date']}, {meta['machine']}; endpoint {meta['endpoint']}, model `{meta['model']}` ({meta['kind']});"
        f" per-tool limit {meta['timeout']:g} s per module; mutation cap {meta['mutation_seconds']:g} s;"
        f" start: {meta['start']}.",
        "",
        f"    {meta['command']}",
        "",
        "| module | tool | run | line+branch coverage before → after | mutation score before → after"
        " | tests proposed / kept | tokens (calls) | cost | wall time | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["ran"]:
            lines.append(
                f"| {r['module']} | {r['tool']} | {r['run']} | — | — | — | {r['tokens']} ({r['calls']}) | — |"
                f" {r['seconds']:.0f} s | could not run: {r['reason']} |"
            )
            continue
        note = r["status"] + (f": {r['tool_run']['error']}" if r["tool_run"].get("error") else "")
        counts = (r["tool_run"].get("self_report") or {}).get("good_failed_useless_retries")
        if counts:  # CoverUp's own tally of its answers: good, failed, useless, retried
            note += ", CoverUp's tally G={} F={} U={} R={}".format(*counts)
        if r["estimated_calls"]:
            note += f"; tokens of {r['estimated_calls']} of {r['calls']} calls estimated"
        if r["after"] and not r["after"]["mutation_complete"]:
            note += "; mutation analysis hit its cap"
        lines.append(
            f"| {r['module']} | {r['tool']} | {r['run']} | {_pct(r['coverage_before'])} → {_pct(r['coverage_after'])}"
            f" | {_score(r['mutation_before'])} → {_score(r['mutation_after'])}"
            f" | {r['tests_proposed']} / {r['tests_kept']} | {r['tokens']:,} ({r['calls']}) | {_money(r['cost'])}"
            f" | {r['seconds']:.0f} s | {note} |"
        )
    lines += [
        "",
        "| tool | modules run | median coverage before → after | median mutation score before → after"
        " | tests proposed / kept | tokens | cost | points gained (sum) | tokens per point gained | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tool, s in summary.items():
        per_point = "— (no gain)" if s["tokens_per_point"] is None else f"{s['tokens_per_point']:,.0f}"
        lines.append(
            f"| {tool} | {s['modules']} | {_pct(s['coverage_before'])} → {_pct(s['coverage_after'])}"
            f" | {_score(s['mutation_before'])} → {_score(s['mutation_after'])}"
            f" | {s['tests_proposed']} / {s['tests_kept']} | {s['tokens']:,} | {_money(s['cost'])}"
            f" | {s['points_gained']:.1f} | {per_point} | {s['seconds']:.0f} s |"
        )
    lines += ["", *(f"- {line}" for line in report["goals"])]
    return "\n".join(lines) + "\n"


# --- the endpoint ----------------------------------------------------------------------------------------------------
def run_kind(base_url: str, model: str, smoke: bool) -> str:
    if smoke:
        return "scripted"
    host = urlparse(base_url).hostname or ""
    return f"local model {model}" if host in LOOPBACK else f"real provider {host}"


def listed_prices(base_url: str, model: str, api_key: str | None) -> tuple[float, float] | None:
    """The model's USD per token from the endpoint's /models (OpenRouter lists `pricing`), or None."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        listing = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=30).json()
        for entry in listing.get("data") or []:
            if entry.get("id") == model and isinstance(entry.get("pricing"), dict):
                return float(entry["pricing"]["prompt"]), float(entry["pricing"]["completion"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


def endpoint_of(args: argparse.Namespace, base_url: str, model: str) -> Endpoint:
    api_key = os.environ.get(KEY_VARIABLE) or None
    local = (urlparse(base_url).hostname or "") in LOOPBACK
    prices: tuple[float, float] | None = None
    if args.price_prompt is not None and args.price_completion is not None:
        prices = (args.price_prompt / 1e6, args.price_completion / 1e6)
    elif local:
        prices = (0.0, 0.0)
    else:
        prices = listed_prices(base_url, model, api_key)
    return Endpoint(
        base_url=base_url.rstrip("/"),
        model=model,
        kind=args.run_kind or run_kind(base_url, model, args.smoke),
        api_key=api_key,
        price_prompt=prices[0] if prices else None,
        price_completion=prices[1] if prices else None,
    )


def scripted_answer(module: Vendored) -> str:
    """The scripted model's one answer for --smoke: the module's upstream tests, as a model would fence them."""
    return "```python\n" + "\n\n".join(t.read_text(encoding="utf-8") for t in module.upstream_tests) + "```\n"


# --- main ------------------------------------------------------------------------------------------------------------
def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", help="the endpoint's model name (CoverUp gets it as openai/<name>)")
    parser.add_argument("--modules", default="", help="comma-separated names under bench/quality (default: all)")
    parser.add_argument("--coverup", action=argparse.BooleanOptionalAction, default=True, help="run CoverUp too")
    parser.add_argument("--oh-lsp", action=argparse.BooleanOptionalAction, default=True, help="run oh-lsp")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the scripted model server, which answers with each module's upstream tests; short limits",
    )
    parser.add_argument("--timeout", type=float, help="seconds per tool per module (default 600; 180 with --smoke)")
    parser.add_argument("--mutation-seconds", type=float, help="the measure's mutation cap (120; 30 with --smoke)")
    parser.add_argument("--with-tests", action="store_true", help="start from the module's upstream tests")
    parser.add_argument("--context-tokens", type=int, default=None, help="OH_LSP_CONTEXT_TOKENS for oh-lsp")
    parser.add_argument("--coverup-args", default="", help="more CoverUp options, e.g. '--max-attempts 1'")
    parser.add_argument("--price-prompt", type=float, default=None, help="USD per million prompt tokens")
    parser.add_argument("--price-completion", type=float, default=None, help="USD per million completion tokens")
    parser.add_argument("--run-kind", default=None, help="how the rows name this run (default: from the endpoint)")
    parser.add_argument("--python", type=Path, default=None, help="the interpreter that runs the tests")
    parser.add_argument("--no-install", action="store_true", help="never install CoverUp's environment here")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here (after each module)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --json, run the rest")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.smoke:
        args.modules = args.modules or SMOKE_MODULE
    elif not args.base_url or not args.model:
        parser.error("--base-url and --model are required (or --smoke)")
    if args.timeout is None:
        args.timeout = 180.0 if args.smoke else 600.0
    if args.mutation_seconds is None:
        args.mutation_seconds = 30.0 if args.smoke else 120.0
    wanted = [name for name in args.modules.split(",") if name]
    known = {m.name: m for m in vendored()}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        parser.error(f"no module {', '.join(unknown)} under bench/quality (there are: {', '.join(sorted(known))})")
    modules = [known[name] for name in wanted] if wanted else list(known.values())
    if args.smoke and any(not m.upstream_tests for m in modules):
        parser.error("--smoke answers with a module's upstream tests: choose modules that have them")
    tools = [t for t, on in (("oh-lsp", args.oh_lsp), ("CoverUp", args.coverup)) if on]
    args.python = (args.python or light_python()).absolute()
    if args.smoke:
        from oh_lsp.testing.model_server import Reply, ScriptedModelServer

        with ScriptedModelServer() as server:

            def answer_for(module: Vendored) -> None:
                server.default = Reply.text(scripted_answer(module))

            return run(args, endpoint_of(args, server.base_url, "scripted-model"), modules, tools, answer_for)
    return run(args, endpoint_of(args, args.base_url, args.model), modules, tools)


def run(
    args: argparse.Namespace,
    endpoint: Endpoint,
    modules: list[Vendored],
    tools: list[str],
    before_module: Callable[[Vendored], None] | None = None,
) -> int:
    load = os.getloadavg()[0]
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python"
        f" {platform.python_version()}, load average {load:.1f} at the start",
        "endpoint": endpoint.base_url if endpoint.kind != "scripted" else "the scripted model server",
        "model": endpoint.model,
        "kind": endpoint.kind,
        "timeout": args.timeout,
        "mutation_seconds": args.mutation_seconds,
        "start": "the module and its upstream tests" if args.with_tests else "the module and a test that imports it",
        "command": "python bench/quality.py " + " ".join(sys.argv[1:]),
        "coverup": COVERUP_SPECS[0],
        "oh_lsp_commit": _commit(),
        "interpreter": str(args.python),
    }
    rows: list[dict[str, Any]] = []
    if args.resume and args.json and args.json.exists():
        rows = json.loads(args.json.read_text(encoding="utf-8"))["rows"]
    done = {(r["module"], r["tool"]) for r in rows}
    print(f"{meta['kind']}: {endpoint.model} at {meta['endpoint']}; {meta['machine']}", flush=True)
    for module in modules:
        todo = [t for t in tools if (module.name, t) not in done]
        if todo:
            if before_module is not None:
                before_module(module)
            rows += run_module(module, endpoint, args, todo)
            write(args, meta, rows, final=False)
    report = write(args, meta, rows, final=True)
    print()
    print(markdown(report))
    return 0


def write(args: argparse.Namespace, meta: dict[str, Any], rows: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
    order = {name: i for i, name in enumerate(m.name for m in vendored())}
    rows.sort(key=lambda r: (order.get(r["module"], 0), TOOLS.index(r["tool"])))
    summary = summarise(rows)
    report = {"meta": meta, "rows": rows, "summary": summary, "goals": goals(summary)}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if final and args.markdown:
        args.markdown.write_text(markdown(report), encoding="utf-8")
    return report


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
