"""Mutation analysis of a target in the sandbox: which of its mutants (mutants.py) the tests notice.

All mutants run in ONE pytest process (mutation_plugin.py switches the active mutant by swapping a function's code
object), and each mutant runs only the tests that cover its line, taken from the per-test coverage of the baseline
(coverage_map.py). A mutant no allowed test covers is `no-coverage` without running anything. The whole analysis has a
hard cap (`mutation_seconds`): what is not analysed by then is reported as `not-analysed`. Should the test process die
under a mutant (a mutant that exits or crashes the interpreter), that mutant counts as killed and a new process goes
on with the rest, within the same cap.

Statuses: `killed` (a test failed), `timeout` (a test ran far longer than on the real code: detected too),
`survived` (every covering test passed), `no-coverage`, `not-analysed`. Equivalent mutants exist (a change no test
could notice), so a survivor is a report, never a failure.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp.validation import findings as F
from oh_lsp.validation.coverage_map import FileCoverage
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.mutants import MUTATOR_VERSION, Mutant, mutants_of
from oh_lsp.validation.pytest_runner import run_pytest
from oh_lsp.validation.sandbox import Sandbox

_PLUGIN = Path(__file__).with_name("mutation_plugin.py")
DETECTED = ("killed", "timeout")
ANALYSED = ("killed", "timeout", "survived", "no-coverage")
CRASHED = "(the test process died under this mutant)"
TIMEOUT_FACTOR = 10.0  # a test under a mutant may run this many times its time on the real code...
TIMEOUT_FLOOR = 1.0  # ...plus this many seconds
MAX_PROCESSES = 5  # test processes one analysis may start (a new one after each crash)
GRACE_SECONDS = 3.0  # for pytest to start and stop, beyond the cap
CACHE_FORMAT = f"mutation-1/{MUTATOR_VERSION}"


@dataclass
class MutantResult:
    mutant: Mutant
    status: str  # killed | timeout | survived | no-coverage | not-analysed
    killers: list[str] = field(default_factory=list)  # the tests that noticed it (the first only, unless all_killers)
    reason: str = ""
    seconds: float = 0.0

    @property
    def killed_by(self) -> str | None:
        return self.killers[0] if self.killers else None

    def to_dict(self) -> dict[str, Any]:
        m = self.mutant
        out: dict[str, Any] = {
            "id": m.id,
            "line": m.line,
            "col": m.col,
            "end_line": m.end_line,
            "end_col": m.end_col,
            "operator": m.operator,
            "description": m.description,
            "function": m.function,
            "status": self.status,
            "killed_by": self.killed_by,
        }
        if len(self.killers) > 1:
            out["killers"] = self.killers
        if self.reason:
            out["reason"] = self.reason
        return out

    def to_cache(self) -> dict[str, Any]:
        """Everything, the mutant's whole change included (for the state cache)."""
        return {
            "mutant": self.mutant.to_dict(),
            "status": self.status,
            "killers": self.killers,
            "reason": self.reason,
            "seconds": self.seconds,
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> MutantResult:
        return cls(
            Mutant.from_dict(data["mutant"]),
            str(data["status"]),
            killers=list(data.get("killers", [])),
            reason=str(data.get("reason", "")),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass
class MutationReport:
    results: list[MutantResult]
    seconds: float = 0.0
    processes: int = 0
    failing_tests: dict[str, str] = field(default_factory=dict)  # tests that failed on the real code: not used
    findings: list[Finding] = field(default_factory=list)
    cached: bool = False  # read from the state cache, not run now

    def counts(self) -> dict[str, int]:
        counted = Counter(r.status for r in self.results)
        return {status: counted.get(status, 0) for status in (*ANALYSED, "not-analysed")}

    @property
    def analysed(self) -> int:
        return sum(1 for r in self.results if r.status in ANALYSED)

    @property
    def detected(self) -> int:
        return sum(1 for r in self.results if r.status in DETECTED)

    @property
    def score(self) -> float | None:
        """Detected / analysed (killed and timed-out, over all but the not-analysed); None when nothing was."""
        return self.detected / self.analysed if self.analysed else None

    @property
    def complete(self) -> bool:
        return all(r.status != "not-analysed" for r in self.results)

    def alive(self) -> list[MutantResult]:
        return [r for r in self.results if r.status in ("survived", "no-coverage")]

    def detected_ids(self) -> set[str]:
        return {r.mutant.id for r in self.results if r.status in DETECTED}

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": None if self.score is None else round(self.score, 4),
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "mutants": [r.to_dict() for r in self.results],
        }

    def to_cache(self) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "results": [r.to_cache() for r in self.results],
            "seconds": self.seconds,
            "processes": self.processes,
            "failing_tests": self.failing_tests,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> MutationReport:
        return cls(
            results=[MutantResult.from_cache(r) for r in data["results"]],
            seconds=float(data.get("seconds", 0.0)),
            processes=int(data.get("processes", 0)),
            failing_tests=dict(data.get("failing_tests", {})),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            cached=True,
        )


def _covering(mutant: Mutant, coverage: FileCoverage, tests: set[str]) -> list[str]:
    return sorted(coverage.tests_covering(range(mutant.line, mutant.end_line + 1)) & tests)


async def analyse_mutants(
    box: Sandbox,
    python: Path,
    target: str,
    module: str,
    source: str,
    coverage: FileCoverage,
    tests: list[str],
    *,
    seconds: float,
    mutants: list[Mutant] | None = None,
    all_killers: bool = False,
    order: list[str] | None = None,
) -> MutationReport:
    """Analyse `mutants` (default: every mutant of `source`, the target's text as it is in `box`) against `tests`
    (node ids that pass on the real code), each mutant with the tests of `tests` that `coverage` says run its lines.
    `all_killers` runs every covering test of a mutant and names each one that notices it; otherwise a mutant stops at
    its first killer, trying its tests in `order` when given (the caller's preference: the tests it would keep
    first), else fastest first."""
    started = time.monotonic()
    deadline = time.time() + seconds
    chosen = mutants_of(source) if mutants is None else mutants
    allowed = set(tests)
    results: dict[str, MutantResult] = {}
    plans: dict[str, list[str]] = {}
    for mutant in chosen:
        covering = _covering(mutant, coverage, allowed)
        if covering:
            plans[mutant.id] = covering
        else:
            results[mutant.id] = MutantResult(mutant, "no-coverage", reason="no test runs this line")
    by_id = {m.id: m for m in chosen}
    report = MutationReport(results=[])
    pending = [m for m in chosen if m.id in plans]
    while pending and time.time() < deadline and report.processes < MAX_PROCESSES:
        report.processes += 1
        outcome = await _one_process(
            box, python, target, module, source, pending, plans, deadline, all_killers, order or []
        )
        for nodeid, message in outcome.failing.items():
            report.failing_tests.setdefault(nodeid, message)
        results.update(outcome.results)
        pending = [m for m in pending if m.id not in results]
        if outcome.failing:  # a test that fails on the real code may not judge any mutant
            for m in pending:
                plans[m.id] = [t for t in plans[m.id] if t not in outcome.failing]
                if not plans[m.id]:
                    results[m.id] = MutantResult(m, "no-coverage", reason="only tests that fail anyway run this line")
            pending = [m for m in pending if m.id not in results]
        if outcome.fatal:
            report.findings.append(Finding(F.MUTATION_INCOMPLETE, outcome.fatal, severity=F.WARNING, file=target))
            break
    for mutant in pending:
        reason = f"the time for mutation analysis ({seconds:g} s) ran out"
        results[mutant.id] = MutantResult(mutant, "not-analysed", reason=reason)
    report.results = [results[m.id] for m in chosen if m.id in results]
    missing = [by_id[i] for i in by_id if i not in results]
    report.results += [MutantResult(m, "not-analysed", reason="not run") for m in missing]
    report.seconds = time.monotonic() - started
    left = report.counts()["not-analysed"]
    if left and not report.findings:
        report.findings.append(
            Finding(
                F.MUTATION_INCOMPLETE,
                f"{left} of {len(report.results)} mutants of {target} were not analysed within the"
                f" {seconds:g} s cap (mutationSeconds / OH_LSP_MUTATION_SECONDS)",
                severity=F.INFO,
                file=target,
            )
        )
    return report


@dataclass
class _Outcome:
    results: dict[str, MutantResult]
    failing: dict[str, str]
    fatal: str = ""


async def _one_process(
    box: Sandbox,
    python: Path,
    target: str,
    module: str,
    source: str,
    mutants: list[Mutant],
    plans: dict[str, list[str]],
    deadline: float,
    all_killers: bool,
    order: list[str],
) -> _Outcome:
    tag = os.urandom(4).hex()
    plan_file, results_file = box.base / f"mutation-plan-{tag}.json", box.base / f"mutation-results-{tag}.jsonl"
    tests = sorted({t for m in mutants for t in plans[m.id]})
    plan = {
        "module": module,
        "file": str(box.inside_root / target),
        "source": source,
        "deadline": deadline,
        "timeout_factor": TIMEOUT_FACTOR,
        "timeout_floor": TIMEOUT_FLOOR,
        "all_killers": all_killers,
        "order": {nodeid: rank for rank, nodeid in enumerate(order)},
        "results": str(results_file),
        "tests": tests,
        "mutants": [{**m.to_dict(), "tests": plans[m.id]} for m in mutants],
    }
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    run = await run_pytest(
        box,
        python,
        tests,
        timeout=max(deadline - time.time(), 0.1) + GRACE_SECONDS,
        plugins={"oh_lsp_mutation": _PLUGIN},
        env={"OH_LSP_MUTATION_PLAN": str(plan_file)},
    )
    plan_file.unlink(missing_ok=True)
    records = []
    if results_file.exists():
        for line in results_file.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the last line of a process killed mid-write
        results_file.unlink()
    by_id = {m.id: m for m in mutants}
    outcome = _Outcome(results={}, failing={})
    in_flight = None
    for record in records:
        event = record.get("event")
        if event == "clean" and record.get("outcome") != "passed":
            outcome.failing[record["nodeid"]] = record.get("outcome", "failed")
        elif event == "import-error":
            outcome.fatal = f"{module} could not be imported for mutation analysis: {record.get('message', '')}"
        elif event == "start":
            in_flight = record["id"]
        elif event == "mutant" and record["id"] in by_id:
            in_flight = None
            outcome.results[record["id"]] = MutantResult(
                by_id[record["id"]],
                record["status"],
                killers=list(record.get("killers", [])),
                reason=record.get("reason", ""),
                seconds=float(record.get("seconds", 0.0)),
            )
    if in_flight is not None and not run.timed_out and time.time() < deadline:
        outcome.results[in_flight] = MutantResult(by_id[in_flight], "killed", killers=[CRASHED])
    if not records and not run.timed_out:
        outcome.fatal = "the mutation run ended before any test ran: " + (run.output.strip()[-500:] or "no output")
    return outcome
