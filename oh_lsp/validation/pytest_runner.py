"""Running pytest on generated tests in a sandbox, with the project's interpreter, and reading what happened to
each test (outcome, message, the line where it failed, and the frames of its traceback), optionally under
coverage.py and with a given random seed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp.errors import InterpreterError
from oh_lsp.redaction import redact_data
from oh_lsp.validation.sandbox import AUDIT_PLUGIN, RunResult, Sandbox

_PLUGIN = Path(__file__).with_name("pytest_report_plugin.py")
_CONTEXTS_PLUGIN = Path(__file__).with_name("coverage_context_plugin.py")
_COVERAGE_DUMP = Path(__file__).with_name("coverage_dump.py")
log = logging.getLogger(__name__)
_imports_ok: dict[tuple[str, str], bool] = {}
_sys_paths: dict[str, list[Path]] = {}


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
    attempts: list[dict[str, Any]] = field(default_factory=list)  # what it tried that a test must not (audit plugin)


@dataclass
class Coverage:
    """Line coverage of one file: its executable lines, and those that ran."""

    statements: set[int] = field(default_factory=set)
    executed: set[int] = field(default_factory=set)

    @property
    def percent(self) -> float:
        return 100.0 * len(self.executed) / len(self.statements) if self.statements else 0.0

    def union(self, other: Coverage) -> Coverage:
        return Coverage(self.statements | other.statements, self.executed | other.executed)


@dataclass
class PytestRun:
    exit_code: int | None
    collected: int = 0
    tests: dict[str, CaseResult] = field(default_factory=dict)
    collect_errors: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False
    duration: float = 0.0
    output: str = ""
    seed: int | None = None
    coverage: Coverage | None = None
    module_attempts: list[dict[str, Any]] = field(default_factory=list)  # tried outside any test (at import)
    coverage_map: dict[str, Any] | None = None  # `cover_map`'s measure: see oh_lsp.validation.coverage_map
    finished: bool = False  # pytest ended its session (the report plugin's last line)
    never_started: list[str] = field(default_factory=list)  # collected tests the run ended before (see `broken`)
    resumed: bool = False  # it broke, and the tests it never started were run again: its coverage is not whole

    @property
    def changed_the_copy(self) -> bool:
        """A test (or the module, at import) tried to change the project copy: the next run needs it fresh."""
        tried = [*self.module_attempts, *(a for t in self.tests.values() for a in t.attempts)]
        return any(a.get("kind") == "project" for a in tried)

    @property
    def broken(self) -> bool:
        """pytest ended without finishing its session and was not stopped for time: the interpreter or the sandbox
        failed under it (a crash, a signal), so what it did not report says nothing about the tests."""
        return not self.finished and not self.timed_out

    @property
    def passed(self) -> list[CaseResult]:
        return [t for t in self.tests.values() if t.outcome == "passed"]

    @property
    def failed(self) -> list[CaseResult]:
        return [t for t in self.tests.values() if t.outcome in ("failed", "error")]


def project_python(root: Path, configured: Path | None = None) -> Path:
    """The interpreter that runs the project's tests: the setting, else the root's `.venv`, else oh-lsp's own.

    Its folder is resolved (a virtual environment's `bin/python` link itself is kept), so that a sandbox can show
    exactly that folder."""
    path = _find_python(root, configured)
    return path.parent.resolve() / path.name


def _find_python(root: Path, configured: Path | None) -> Path:
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


async def interpreter_paths(python: Path, project_root: Path | None = None) -> list[Path]:
    """Folders an interpreter needs to run: its virtual environment, the installation it points to, and the folders
    its `.pth` files add to sys.path (an environment may borrow packages from anywhere, /tmp included). Folders inside
    the project are left out: there the sandbox's copy of the project, with the candidate in it, stands for them."""
    paths = []
    venv = python.parent.parent
    if (venv / "pyvenv.cfg").exists():
        paths.append(venv)
    paths.append(Path(os.path.realpath(python)).parent.parent)
    for entry in await _sys_path(python):
        if project_root is not None and (entry == project_root or project_root in entry.parents):
            continue
        if not any(entry == p or p in entry.parents for p in paths):
            paths.append(entry)
    return paths


async def _sys_path(python: Path) -> list[Path]:
    """The interpreter's sys.path as real paths (asked once per interpreter; [] if it cannot say)."""
    key = str(python)
    if key not in _sys_paths:
        _sys_paths[key] = await _ask_sys_path(key)
    return _sys_paths[key]


async def _ask_sys_path(python: str) -> list[Path]:
    try:  # -E and no variable but PATH: nothing secret reaches it
        proc = await asyncio.create_subprocess_exec(
            python,
            "-E",
            "-c",
            "import json, sys; print(json.dumps(sys.path))",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", os.defpath)},
        )
    except OSError:
        return []
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return [Path(os.path.realpath(e)) for e in json.loads(out) if e and os.path.exists(e)]
    except (TimeoutError, ValueError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        return []


async def _can_import(box: Sandbox, python: Path, module: str) -> bool:
    key = (str(python), module)
    if key not in _imports_ok:
        result = await box.run(
            [str(python), "-c", f"import {module}"],
            timeout=60,
            readable=await interpreter_paths(python, box.project_root),
        )
        _imports_ok[key] = result.returncode == 0
    return _imports_ok[key]


async def ensure_pytest(box: Sandbox, python: Path) -> None:
    """Raise `InterpreterError` if `python` cannot import pytest. Never switches to another interpreter."""
    if not await _can_import(box, python, "pytest"):
        _imports_ok.pop((str(python), "pytest"), None)  # ask again next time: the user may install it
        _sys_paths.pop(str(python), None)
        raise InterpreterError(
            f"the project's interpreter {python} cannot import pytest, so the generated tests cannot be run. Install"
            f" it there ({python} -m pip install pytest), or choose another interpreter with OH_LSP_PYTHON."
        )


async def run_pytest(
    box: Sandbox,
    python: Path,
    targets: list[str],
    *,
    timeout: float,
    seed: int | None = None,
    cover: str | None = None,
    deselect: list[str] | None = None,
    env: dict[str, str] | None = None,
    cover_map: Sequence[str] | None = None,
    plugins: Mapping[str, Path] | None = None,
    args: Sequence[str] = (),
    resume: bool = True,
) -> PytestRun:
    """Run pytest on `targets` (paths or node ids relative to the project) and read the report plugin's lines.

    `seed` seeds `random` before each test, `PYTHONHASHSEED`, and pytest-randomly when the project has it.
    `cover` (a project-relative file) measures that file's line coverage with coverage.py; when the project's
    interpreter lacks coverage.py, oh-lsp's own copy is made importable for the run. `cover_map` (project-relative
    files) measures lines and branches per test instead (`run.coverage_map`). `plugins` are more pytest plugins (module
    name: file, copied beside the report plugin and loaded with -p), `args` more pytest arguments.

    When a test takes the process down (`PytestRun.broken`), the tests the run never started are run again
    (`run_the_rest`), unless `resume` is False or a test changed the project copy (the caller restores it)."""
    plain = not plugins and not args
    plugins = dict(plugins or {})
    if cover_map is not None:
        plugins["oh_lsp_contexts"] = _CONTEXTS_PLUGIN
    _install(_PLUGIN.read_bytes(), box.tools / "oh_lsp_report.py")
    _install(AUDIT_PLUGIN.read_bytes(), box.tools / "oh_lsp_audit.py")
    for name, source in plugins.items():
        _install(source.read_bytes(), box.tools / f"{name}.py")
    tag = os.urandom(4).hex()
    report = box.base / f"report-{tag}.jsonl"
    run_env = {"OH_LSP_REPORT": str(report), "OH_LSP_SANDBOX_DIR": str(box.base), **(env or {})}
    run_env["OH_LSP_PROJECT"] = str(box.project_root)  # the real one: writing there is changing the project
    pytest_args = [
        "-p",
        "oh_lsp_report",
        "-p",
        "oh_lsp_audit",
        "-p",
        "no:cacheprovider",
        "-q",
        "--color=no",
        "--rootdir",
        str(box.inside_root),
        "-c",
        str(_inifile(box)),
        *(f"--deselect={nodeid}" for nodeid in deselect or []),
        *(arg for name in plugins for arg in ("-p", name)),
        *args,
    ]
    if seed is not None:
        run_env.update(OH_LSP_SEED=str(seed), PYTHONHASHSEED=str(seed % 4294967296))
        if await _can_import(box, python, "pytest_randomly"):
            pytest_args.append(f"--randomly-seed={seed}")
    command = [str(python), "-m", "pytest", *pytest_args, *targets]
    readable = await interpreter_paths(python, box.project_root)
    out = box.base / f"coverage-{tag}.json"
    if cover is not None or cover_map is not None:
        command = await _under_coverage(box, python, command, cover, tag, out, readable, cover_map)
    result = await box.run(command, timeout=timeout, env=run_env, readable=readable)
    run = _read_report(report, result, box.secrets)
    run.seed = seed
    report.unlink(missing_ok=True)
    if cover_map is not None and not result.timed_out:
        run.coverage_map = _read_coverage_map(out, box.inside_root, cover_map)
    elif cover is not None and not result.timed_out:
        run.coverage = _read_coverage(out, box.inside_root, cover)
    # a run of tests (not a plugin's own loop, such as the mutation analysis') that left the copy as it was
    if plain and resume and not run.changed_the_copy:

        def again(nodeids: list[str]) -> Awaitable[PytestRun]:  # coverage of a broken run is lost: not measured
            return run_pytest(box, python, nodeids, timeout=timeout, seed=seed, deselect=deselect, env=env)

        run = await run_the_rest(run, again)
    return run


_INI_SECTIONS = {
    "pytest.ini": "",
    ".pytest.ini": "",
    "pyproject.toml": "[tool.pytest.ini_options]",
    "tox.ini": "[pytest]",
    "setup.cfg": "[tool:pytest]",
}


def _inifile(box: Sandbox) -> Path:
    """The project's pytest configuration file, as pytest would pick it, else an empty one of oh-lsp's. Given
    explicitly, so that pytest never looks for one above the copy (there, Landlock denies reading)."""
    for name, section in _INI_SECTIONS.items():
        path = box.root / name
        if path.is_file() and section in path.read_text(encoding="utf-8", errors="replace"):
            return box.inside_root / name
    empty = box.tools / "pytest.ini"
    _install(b"[pytest]\n", empty)
    return empty


def _install(data: bytes, path: Path) -> None:
    """`path` holding `data`, never seen half written: another run of the same sandbox (runs 2 and 3 and the mutation
    analysis run side by side) may be reading it. Left alone when it already holds `data`; else replaced by a rename."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    staged = path.with_name(f".{path.name}.{os.urandom(4).hex()}")
    staged.write_bytes(data)
    os.replace(staged, path)


def _fast_scratch(box: Sandbox) -> Path:
    """Where coverage.py's data file goes: its SQLite file syncs to disk on every write, so keep it in memory
    (the sandbox's own /tmp, or /dev/shm) when possible."""
    if box.isolated:
        return Path("/tmp")
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else box.base


async def _under_coverage(
    box: Sandbox,
    python: Path,
    command: list[str],
    cover: str | None,
    tag: str,
    out: Path,
    readable: list[Path],
    cover_map: Sequence[str] | None = None,
) -> list[str]:
    """`command` (a pytest run) wrapped to run under coverage.py and write the JSON report to `out`, in one
    process of the sandbox. When the project's interpreter lacks coverage.py, oh-lsp's own copy is lent to it (and
    added to the `readable` folders of the run). With `cover_map`, branches are measured too, and `out` gets
    coverage_dump.py's per-test document of those files instead."""
    if not await _can_import(box, python, "coverage"):
        import coverage  # a dependency of oh-lsp; its C tracer may not load there, the Python one will

        lent = Path(coverage.__file__).parent.resolve()
        link = box.tools / "coverage"
        if not link.exists():
            link.symlink_to(lent, target_is_directory=True)
        readable.append(lent)  # oh-lsp's own environment may be under /tmp, which the sandbox replaces
    data = _fast_scratch(box) / f"oh-lsp-coverage-{tag}"
    rcfile = box.base / f"coveragerc-{tag}"
    if cover_map is not None:
        files = [str(box.inside_root / name) for name in cover_map]
        rcfile.write_text(f"[run]\ndata_file = {data}\nbranch = True\ninclude =\n    " + "\n    ".join(files) + "\n")
        _install(_COVERAGE_DUMP.read_bytes(), box.tools / "oh_lsp_coverage_dump.py")
        report = shlex.join([str(python), str(box.tools / "oh_lsp_coverage_dump.py"), str(rcfile), str(out), *files])
    else:
        assert cover is not None  # one of the two is given
        rcfile.write_text(f"[run]\ndata_file = {data}\ninclude = {box.inside_root / cover}\n")
        report = shlex.join([str(python), "-m", "coverage", "json", "-q", f"--rcfile={rcfile}", "-o", str(out)])
    run = shlex.join([str(python), "-m", "coverage", "run", f"--rcfile={rcfile}", *command[1:]])
    return ["/bin/sh", "-c", f"{run}; status=$?; {report}; rm -f {shlex.quote(str(data))}; exit $status"]


def _read_coverage(out: Path, inside_root: Path, cover: str) -> Coverage:
    if not out.exists():
        return Coverage()
    files = json.loads(out.read_text(encoding="utf-8")).get("files", {})
    out.unlink()
    wanted = str(inside_root / cover)
    for name, info in files.items():
        if name in (wanted, cover) or name.endswith("/" + cover):
            return Coverage(
                set(info.get("executed_lines", [])) | set(info.get("missing_lines", [])),
                set(info.get("executed_lines", [])),
            )
    return Coverage()


def _read_coverage_map(out: Path, inside_root: Path, files: Sequence[str]) -> dict[str, Any]:
    """coverage_dump.py's document, keyed by the project-relative names asked for (None: not measured)."""
    if not out.exists():
        return {}
    measured = json.loads(out.read_text(encoding="utf-8")).get("files", {})
    out.unlink()
    return {name: measured.get(str(inside_root / name)) for name in files}


def _read_report(report: Path, result: RunResult, secrets: list[str]) -> PytestRun:
    """What the plugins wrote, redacted: a test's failure message may hold whatever it could read."""
    run = PytestRun(
        exit_code=result.returncode, timed_out=result.timed_out, duration=result.duration, output=result.output
    )
    lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    reported: set[str] = set()  # a collected test counts as run only once a report of it was written
    started: set[str] = set()
    for line in lines:
        try:
            record = redact_data(json.loads(line), secrets)
        except json.JSONDecodeError:
            continue
        event = record.get("event")
        if event == "collected":
            run.collected = record["count"]
            for item in record.get("items", []):
                lineno = item.get("lineno")
                run.tests[item["nodeid"]] = CaseResult(
                    item["nodeid"], item["name"], lineno=lineno + 1 if lineno is not None else None
                )
        elif event == "collect_error":
            run.collect_errors.append(record)
        elif event == "test":
            test = run.tests.setdefault(record["nodeid"], CaseResult(record["nodeid"], record["nodeid"]))
            test.duration += record.get("duration") or 0.0
            outcome = record["outcome"]
            reported.add(test.nodeid)
            if outcome == "failed":
                test.outcome = "failed" if record["when"] == "call" else "error"
                test.longrepr = record.get("longrepr", "")
                test.crash = record.get("crash")
                test.frames = record.get("frames", [])
                test.message = (test.crash or {}).get("message") or _last_line(test.longrepr)
            elif outcome == "skipped" and test.outcome == "passed":
                test.outcome = "skipped"
                test.message = record.get("reason", "")
        elif event == "attempt":
            case = run.tests.get(record.get("nodeid") or "")
            (case.attempts if case else run.module_attempts).append(record)
        elif event == "start":
            started.add(record["nodeid"])
        elif event == "finished":
            run.finished = True
    for test in run.tests.values():
        if test.nodeid not in reported:  # collected, then the run ended before a word on it: it did not pass
            test.outcome = "error"
            if test.nodeid in started:
                test.message = f"it did not run to its end: {_run_end(run)}"
            else:
                test.message = f"it did not run: the run ended before it ({_run_end(run)})"
                run.never_started.append(test.nodeid)
    return run


async def run_the_rest(run: PytestRun, again: Callable[[list[str]], Awaitable[PytestRun]]) -> PytestRun:
    """`run` with the tests it never started (a test before them took the process down) run again (`again`), for
    as long as each run gets further: a good test is not dropped for the test that crashed the run before it. The
    copy must be as the tests expect it: `again` restores it first when a test changed it."""
    while run.broken and run.never_started and len(run.never_started) < len(run.tests):
        asked = run.never_started
        rest = await again(asked)
        run.resumed = True
        for nodeid in asked:
            if nodeid in rest.tests:
                run.tests[nodeid] = rest.tests[nodeid]
        run.module_attempts += rest.module_attempts
        run.timed_out = rest.timed_out
        run.finished = rest.finished
        run.exit_code = rest.exit_code
        run.output += "\n" + rest.output
        run.duration += rest.duration
        run.never_started = [n for n in rest.never_started if n in run.tests]
        if len(run.never_started) >= len(asked):  # it got no further (it broke before any test started): stop
            break
    return run


def _run_end(run: PytestRun) -> str:
    """How a run that left tests unreported ended, in words."""
    if run.timed_out:
        return "the run was stopped at its time limit"
    code = run.exit_code
    if code is not None and (code < 0 or code > 128):  # killed by a signal (directly, or as the launcher's status)
        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the test process was killed by {name}"
    return f"the test process ended with exit code {code} before pytest finished"


async def run_seeds(
    box: Sandbox, python: Path, nodeids: list[str], seeds: Sequence[int], *, timeout: float
) -> list[PytestRun]:
    """`nodeids` run once per seed, side by side (runs 2 and 3 of a check). A run that broke (`PytestRun.broken`)
    is a fact about the machine, not about the tests, so it is made once more, alone, before its outcomes count."""
    runs = list(await asyncio.gather(*(run_pytest(box, python, nodeids, timeout=timeout, seed=s) for s in seeds)))
    for i, run in enumerate(runs):
        if run.broken:
            log.warning(
                "the test run with seed %s broke (%s); it is made again. Its output ended with: %s",
                run.seed,
                _run_end(run),
                run.output[-1500:],
            )
            runs[i] = await run_pytest(box, python, nodeids, timeout=timeout, seed=run.seed)
    return runs


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
