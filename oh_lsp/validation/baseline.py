"""The coverage baseline of a target: line and branch coverage of it under the project's existing tests, per test,
measured in the sandbox before any model is asked, and cached in the project's state directory.

The existing tests are the project's test modules that import the target (the caller names them:
`oh_lsp.kinds.unit_test_baseline.existing_test_files`). They run once, under
coverage.py with `branch = True` and one context per test. A test that fails does not count: the baseline is what the
passing tests cover, and the failing ones are reported (`existing-tests-failing`). A test module that does not even
collect is reported too, and the others still run (`--continue-on-collection-errors`). With no existing test at all,
the baseline is what importing the target runs.

The cache key is the content of the target, of the test modules, of the `conftest.py` files above them and of the
project's pytest configuration, with the interpreter's path: change any of them and the baseline is measured again.
A change elsewhere (a module the target imports) is not seen: the cached baseline is then stale until one of those
files changes. The mutation analysis of the existing tests ("before") is cached under the same key and the mutator's
version, when it analysed every mutant in its time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp import state_cache
from oh_lsp.validation import findings as F
from oh_lsp.validation.coverage_map import FileCoverage, Totals, totals
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.mutation import CACHE_FORMAT, MutationReport, analyse_mutants
from oh_lsp.validation.pytest_runner import PytestRun, run_pytest
from oh_lsp.validation.sandbox import Sandbox

NAMESPACE = "baseline"
MUTATION_NAMESPACE = "mutation"
FORMAT = "baseline-1"
CONFIG_FILES = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")


@dataclass
class Baseline:
    """What the project's passing tests cover of the target (`coverage` holds only them), and how they ran."""

    target: str
    coverage: FileCoverage
    passing: list[str] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)  # node id -> the failure's message
    durations: dict[str, float] = field(default_factory=dict)  # node id -> seconds (passing tests)
    test_files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0  # how long the measure took
    timed_out: bool = False
    cached: bool = False

    @property
    def totals(self) -> Totals:
        return totals(self.coverage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": self.target,
            "coverage": self.coverage.to_dict(),
            "passing": self.passing,
            "failing": self.failing,
            "durations": self.durations,
            "test_files": self.test_files,
            "findings": [f.to_dict() for f in self.findings],
            "seconds": self.seconds,
            "timed_out": self.timed_out,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, cached: bool = False) -> Baseline:
        return cls(
            target=data["target"],
            coverage=FileCoverage.from_dict(data["coverage"]),
            passing=list(data.get("passing", [])),
            failing=dict(data.get("failing", {})),
            durations={k: float(v) for k, v in data.get("durations", {}).items()},
            test_files=list(data.get("test_files", [])),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            seconds=float(data.get("seconds", 0.0)),
            timed_out=bool(data.get("timed_out", False)),
            cached=cached,
        )


def baseline_key(root: Path, target: str, test_files: list[str], python: Path) -> str:
    """The cache key: the content of everything that decides the baseline (module docstring)."""
    folders = {Path(".")} | {parent for name in test_files for parent in Path(name).parents}
    inputs = [target, *test_files, *(str(f / "conftest.py") for f in sorted(folders)), *CONFIG_FILES]
    parts = [FORMAT, str(python)]
    for name in dict.fromkeys(inputs):
        path = root / name
        if path.is_file():
            parts += [name, path.read_text(encoding="utf-8", errors="surrogateescape")]
    return state_cache.cache_key(*parts)


async def measure_baseline(
    box: Sandbox, python: Path, target: str, module: str, *, timeout: float, test_files: list[str]
) -> Baseline:
    """Run `test_files` in `box` under coverage with a context per test, and keep what the passing tests cover."""
    started = time.monotonic()
    if test_files:
        paths = test_files
    else:  # nothing imports the target: measure what importing it runs (an empty folder collects no test)
        empty = box.tools / "no-tests"
        empty.mkdir(exist_ok=True)
        paths = [str(empty)]
    run = await run_pytest(
        box,
        python,
        paths,
        timeout=timeout,
        cover_map=[target],
        env={"OH_LSP_IMPORT_TARGET": module},
        args=["--continue-on-collection-errors"],
    )
    coverage = FileCoverage.from_dump((run.coverage_map or {}).get(target))
    passing = sorted(t.nodeid for t in run.passed)
    baseline = Baseline(
        target=target,
        coverage=coverage.restricted(passing),
        passing=passing,
        failing={t.nodeid: t.message for t in run.failed},
        durations={t.nodeid: round(t.duration, 4) for t in run.passed},
        test_files=list(test_files),
        findings=_findings(run, target, test_files, coverage),
        seconds=round(time.monotonic() - started, 3),
        timed_out=run.timed_out,
    )
    return baseline


def _findings(run: PytestRun, target: str, test_files: list[str], coverage: FileCoverage) -> list[Finding]:
    found = []
    if run.timed_out:
        found.append(
            Finding(
                F.BASELINE_INCOMPLETE,
                f"the existing tests of {target} did not finish within {run.duration:.0f}s: the baseline counts only"
                " what ran before they were stopped, which is nothing",
                severity=F.WARNING,
                file=target,
            )
        )
    elif not coverage.statements:
        found.append(
            Finding(
                F.BASELINE_INCOMPLETE,
                f"coverage.py measured nothing of {target}: {run.output.strip().splitlines()[-1:] or ['no output']}",
                severity=F.WARNING,
                file=target,
            )
        )
    for error in run.collect_errors:
        found.append(
            Finding(
                F.BASELINE_INCOMPLETE,
                f"existing test module {error.get('nodeid') or '?'} could not be collected; the baseline leaves it out",
                severity=F.WARNING,
                file=error.get("nodeid") or None,
            )
        )
    if run.failed:
        names = ", ".join(f"{t.nodeid} ({t.message})" if t.message else t.nodeid for t in run.failed[:5])
        more = f" and {len(run.failed) - 5} more" if len(run.failed) > 5 else ""
        found.append(
            Finding(
                F.EXISTING_TESTS_FAILING,
                f"{len(run.failed)} of {len(run.tests)} existing tests of {target} fail, so the baseline counts only"
                f" the passing ones: {names}{more}",
                severity=F.WARNING,
                file=target,
            )
        )
    return found


async def cached_baseline(
    box: Sandbox,
    python: Path,
    target: str,
    module: str,
    *,
    timeout: float,
    test_files: list[str],
    use_cache: bool = True,
) -> Baseline:
    """The baseline of `target` from the cache of `box`'s project, else measured in `box` (and cached).

    `test_files` are the project's existing tests of the target (not a candidate already written into the copy). The
    key is computed from the copy's files, which are the project's own unless the caller wrote into them."""
    key = baseline_key(box.root, target, test_files, python)
    if use_cache:
        stored = state_cache.read_cached(box.project_root, NAMESPACE, key)
        if isinstance(stored, dict) and stored.get("format") == FORMAT:
            return Baseline.from_dict(stored, cached=True)
    baseline = await measure_baseline(box, python, target, module, timeout=timeout, test_files=test_files)
    if not baseline.timed_out:
        state_cache.write_cached(box.project_root, NAMESPACE, key, baseline.to_dict())
    return baseline


async def cached_mutation_before(
    box: Sandbox,
    python: Path,
    baseline: Baseline,
    module: str,
    source: str,
    *,
    seconds: float,
    use_cache: bool = True,
) -> MutationReport:
    """The mutation analysis of the target by the project's passing tests (the baseline's), from the cache of `box`'s
    project, else run in `box` within `seconds` (and cached when it analysed every mutant)."""
    key = state_cache.cache_key(
        CACHE_FORMAT, baseline_key(box.root, baseline.target, baseline.test_files, python), source
    )
    if use_cache:
        stored = state_cache.read_cached(box.project_root, MUTATION_NAMESPACE, key)
        if isinstance(stored, dict) and stored.get("format") == CACHE_FORMAT:
            return MutationReport.from_cache(stored)
    report = await analyse_mutants(
        box, python, baseline.target, module, source, baseline.coverage, baseline.passing, seconds=seconds
    )
    if report.complete and not report.findings:
        state_cache.write_cached(box.project_root, MUTATION_NAMESPACE, key, report.to_cache())
    return report
