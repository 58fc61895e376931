"""Running pytest on generated tests in a sandbox, with the project's interpreter, and reading what happened to
each test (outcome, message, the line where it failed, and the frames of its traceback)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp.errors import InterpreterError
from oh_lsp.validation.sandbox import RunResult, Sandbox

_PLUGIN = Path(__file__).with_name("pytest_report_plugin.py")
_pytest_ok: dict[str, bool] = {}


@dataclass
class CaseResult:
    nodeid: str
    name: str
    outcome: str = "passed"  # passed | failed | error | skipped
    lineno: int | None = None  # 1-based line of the test function, when pytest knows it
    message: str = ""
    longrepr: str = ""
    crash: dict[str, Any] | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0


@dataclass
class PytestRun:
    exit_code: int | None
    collected: int = 0
    tests: dict[str, CaseResult] = field(default_factory=dict)
    collect_errors: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False
    duration: float = 0.0
    output: str = ""

    @property
    def passed(self) -> list[CaseResult]:
        return [t for t in self.tests.values() if t.outcome == "passed"]

    @property
    def failed(self) -> list[CaseResult]:
        return [t for t in self.tests.values() if t.outcome in ("failed", "error")]


def project_python(root: Path, configured: Path | None = None) -> Path:
    """The interpreter that runs the project's tests: the setting, else the root's `.venv`, else oh-lsp's own."""
    if configured is not None:
        path = configured if configured.is_absolute() else root / configured
        if not path.exists():
            found = shutil.which(str(configured))
            if not found:
                raise InterpreterError(f"the configured Python interpreter {configured} does not exist")
            path = Path(found)
        return path
    for candidate in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe"):
        if candidate.exists():
            return candidate
    return Path(sys.executable)


async def ensure_pytest(box: Sandbox, python: Path) -> None:
    """Raise `InterpreterError` if `python` cannot import pytest. Never switches to another interpreter."""
    key = str(python)
    if _pytest_ok.get(key):
        return
    result = await box.run([str(python), "-c", "import pytest"], timeout=60)
    if result.returncode != 0:
        raise InterpreterError(
            f"the project's interpreter {python} cannot import pytest, so the generated tests cannot be run. Install"
            f" it there ({python} -m pip install pytest), or choose another interpreter with"
            f" OH_LSP_PYTHON. ({result.output.strip().splitlines()[-1] if result.output.strip() else 'no output'})"
        )
    _pytest_ok[key] = True


async def run_pytest(box: Sandbox, python: Path, targets: list[str], *, timeout: float,
                     env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> PytestRun:
    """Run pytest on `targets` (paths or node ids inside the sandbox copy) and read the report plugin's lines."""
    shutil.copyfile(_PLUGIN, box.tools / "oh_lsp_report.py")
    report = box.base / f"report-{os.urandom(4).hex()}.jsonl"
    args = [str(python), "-m", "pytest", "-p", "oh_lsp_report", "-p", "no:cacheprovider", "-q", "--color=no",
            "--rootdir", str(box.root), *(extra_args or []), *targets]
    result = await box.run(args, timeout=timeout, env={"OH_LSP_REPORT": str(report), **(env or {})})
    run = _read_report(report, result)
    report.unlink(missing_ok=True)
    return run


def _read_report(report: Path, result: RunResult) -> PytestRun:
    run = PytestRun(exit_code=result.returncode, timed_out=result.timed_out, duration=result.duration,
                    output=result.output)
    lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        event = record.get("event")
        if event == "collected":
            run.collected = record["count"]
            for item in record.get("items", []):
                lineno = item.get("lineno")
                run.tests[item["nodeid"]] = CaseResult(item["nodeid"], item["name"],
                                                       lineno=lineno + 1 if lineno is not None else None)
        elif event == "collect_error":
            run.collect_errors.append(record)
        elif event == "test":
            test = run.tests.setdefault(record["nodeid"], CaseResult(record["nodeid"], record["nodeid"]))
            test.duration += record.get("duration") or 0.0
            outcome = record["outcome"]
            if outcome == "failed":
                test.outcome = "failed" if record["when"] == "call" else "error"
                test.longrepr = record.get("longrepr", "")
                test.crash = record.get("crash")
                test.frames = record.get("frames", [])
                test.message = (test.crash or {}).get("message") or _last_line(test.longrepr)
            elif outcome == "skipped" and test.outcome == "passed":
                test.outcome = "skipped"
                test.message = record.get("reason", "")
    return run


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
