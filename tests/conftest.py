"""Shared fixtures: an isolated state directory, a clean environment, sample projects, and the scripted model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oh_lsp.testing import sample_project

SENTINEL_KEY = "sk-or-v1-SENTINEL-0123456789abcdef-never-print-me"
OH_VARS = (
    "OPENROUTER_API_KEY",
    "OPENHANDS_MODEL",
    "OPENHANDS_WORKSPACE_ROOT",
    "OPENHANDS_TIMEOUT",
    "OPENHANDS_ENABLE_CIRCUIT_BREAKER",
    "OPENHANDS_USE_DOCKER_RUNTIME",
    "OPENHANDS_BASE_URL",
    "OPENHANDS_QUEUE_URL",
)


@pytest.fixture(scope="session")
def light_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter that has pytest and coverage.py but none of this repository's pytest plugins.

    Generated tests run with "the project's interpreter". Ours carries hypothesis, pytest-lsp and others whose import
    costs ~1.5 s per pytest run; a fixture project's own venv would not. Built offline: a venv whose one `.pth` file
    points at a folder with copies of the packages pytest needs (no plugin metadata, so nothing is auto-loaded).
    """
    import importlib.util
    import shutil
    import subprocess
    import sysconfig

    base = tmp_path_factory.mktemp("light-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    site = base / "venv" / "test-tools"  # inside the venv, so that a sandbox showing the venv shows it too
    site.mkdir()
    purelib = Path(sysconfig.get_paths()["purelib"])
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "coverage", "py.py"):
        source = purelib / name
        if not source.exists():
            spec = importlib.util.find_spec(name.removesuffix(".py"))
            source = Path(spec.origin).parent if spec and spec.origin else source
        # copies, not links: a link into this checkout's .venv would not resolve in the sandbox when the checkout
        # itself lives under /tmp (the sandbox has a /tmp of its own)
        if source.is_dir():
            shutil.copytree(source, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, site / name)
    python = base / "venv" / "bin" / "python"
    (site_packages(python) / "oh_lsp_test_tools.pth").write_text(str(site) + "\n")
    return python


def site_packages(python: Path) -> Path:
    """The folder of `python`'s pure-Python packages (a venv's site-packages)."""
    import subprocess

    return Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


USER_ENV = dict(os.environ)  # as the suite started, before any test changed it


def is_setting(name: str) -> bool:
    return name in OH_VARS or (name.startswith("OH_LSP_") and name != "OH_LSP_STATE_DIR")


@pytest.fixture(autouse=True)
def isolated_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    light_python: Path,
) -> Path:
    """Every test gets its own state directory, none of the developer's oh-lsp settings, and (for configurations
    read from the environment) the light test interpreter. A test marked `user_settings` keeps the user's settings
    instead (their own interpreter too); only the state directory and the sentinel key stay the test's."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("OH_LSP_STATE_DIR", str(state))
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name, raising=False)
    if request.node.get_closest_marker("user_settings"):
        for name, value in USER_ENV.items():
            if is_setting(name):
                monkeypatch.setenv(name, value)
    else:
        monkeypatch.setenv("OH_LSP_PYTHON", str(light_python))
    monkeypatch.setenv("OPENROUTER_API_KEY", SENTINEL_KEY)  # the whole suite runs with it; see pytest_sessionfinish
    return state


NET_AUDIT = Path(__file__).parent / "netaudit"
LEAKS: list[str] = []  # where the sentinel key was seen on its way out (see `saw_secret`)


def saw_secret(where: str, data: str | bytes) -> None:
    """Check one text on its way out of oh-lsp (a request body the model server received, a message the language
    server sent): the test that caused it fails if it holds the sentinel key (`no_secret_leaves`)."""
    needle: str | bytes = SENTINEL_KEY.encode() if isinstance(data, bytes) else SENTINEL_KEY
    if needle in data:
        LEAKS.append(where)


@pytest.fixture(autouse=True)
def no_secret_leaves() -> Iterator[None]:
    """Fail the test during which the sentinel key reached the scripted model server or the editor."""
    before = len(LEAKS)
    yield
    if len(LEAKS) > before:
        pytest.fail(f"SECRET LEAK: the sentinel API key was in {', '.join(sorted(set(LEAKS[before:])))}")


def _watch_the_model_servers() -> None:
    """Every request body any scripted model server receives goes through `saw_secret`."""
    from oh_lsp.testing.model_server.script import ReplyScript

    record = ReplyScript.record

    def checked(self: ReplyScript, rec: Any) -> None:
        saw_secret(f"a request body the scripted model server received ({rec.method} {rec.path})", rec.raw_body or b"")
        record(self, rec)

    ReplyScript.record = checked  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    """Record every connection or name lookup outside the loopback, in this process and in every Python process the
    suite starts (tests/netaudit/sitecustomize.py, found through PYTHONPATH); pytest_sessionfinish fails on any."""
    import tempfile

    if os.environ.get("TEST_NET_AUDIT_LOG"):  # a pytest run inside the suite: its parent collects
        return
    log = Path(tempfile.mkdtemp(prefix="oh-lsp-net-audit-")) / "outside-loopback.log"
    log.touch()
    os.environ["TEST_NET_AUDIT_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NET_AUDIT), os.environ.get("PYTHONPATH")]))
    import importlib.util

    spec = importlib.util.spec_from_file_location("oh_lsp_net_audit", NET_AUDIT / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # installs the hook in this process too

    config.stash[NET_LOG] = log
    _watch_the_model_servers()


NET_LOG = pytest.StashKey[Path]()


def fail_session(session: pytest.Session, headline: str, lines: list[str]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(headline, red=True)
        for line in lines[:20]:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite ran with the sentinel key: it must not be in any store, log, report or cache file
    that oh-lsp wrote (only in the `.env` files the tests wrote on purpose); and no process may have reached a host
    outside the loopback (where the key could have gone)."""
    log = session.config.stash.get(NET_LOG, None)
    if log is not None and log.exists() and not session.config.option.collectonly:
        reached = log.read_text(encoding="utf-8", errors="replace").splitlines()
        if reached:
            fail_session(session, f"NETWORK: {len(reached)} connection(s) or lookup(s) outside 127.0.0.1:", reached)
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or session.config.option.collectonly:
        return
    base = factory.getbasetemp()
    needle = SENTINEL_KEY.encode()
    leaks = [f"seen on its way out: {where}" for where in sorted(set(LEAKS))]
    for path in base.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.name == ".env" or path.stat().st_size > 50_000_000:
            continue
        try:
            if needle in path.read_bytes():
                leaks.append(str(path))
        except OSError:
            continue
        if ".sqlite" in path.name and not path.name.endswith(("-wal", "-shm", "-journal")):
            leaks += [f"{path}: {where}" for where in _rows_holding_the_key(path)]
    if leaks:
        fail_session(session, f"SECRET LEAK: the sentinel API key was found in {len(leaks)} file(s):", leaks)


def _rows_holding_the_key(path: Path) -> list[str]:
    """The tables of a SQLite store (through its write-ahead log too) with a row holding the sentinel key: every
    task's result, error and note, every attempt's and model call's fields."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return [
                name for name in tables if any(SENTINEL_KEY in repr(row) for row in db.execute(f"SELECT * FROM {name}"))
            ]
    except sqlite3.Error:
        return []  # not a database (a test's corrupted file)


CALC, GOOD_TESTS = sample_project.CALC, sample_project.GOOD_TESTS  # the module the tests ask about

FAILING_TESTS = """\
from pkg.calc import add


def test_add_is_wrong():
    assert add(2, 2) == 5
"""


SLOW_TESTS = """\
import time

from pkg.calc import add, divide


def test_add():
    time.sleep(1.5)
    assert add(2, 3) == 5


def test_divide():
    assert divide(6, 3) == 2
"""  # each run of test_add takes 1.5 s: time to act on an engine while it validates


def fenced(code: str, prose: str = "Here are the tests:") -> str:
    return f"{prose}\n\n```python\n{code}```\n\nThese cover the main paths."


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A tiny project: pkg/calc.py, no tests yet."""
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text(CALC)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [project]
        name = "proj"
        version = "0"
    """)
    )
    return root


@pytest.fixture
def model_server():
    from oh_lsp.testing.model_server import ScriptedModelServer

    with ScriptedModelServer() as server:
        yield server


def cli_env(project: Path, base_url: str, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: scripted endpoint, sentinel key, the test's state dir."""
    env = {k: v for k, v in os.environ.items() if k not in OH_VARS and not k.startswith("OH_LSP_")}
    env.update(
        OPENHANDS_BASE_URL=base_url,
        OPENROUTER_API_KEY=SENTINEL_KEY,
        OPENHANDS_MODEL="test-model",
        OH_LSP_STATE_DIR=os.environ["OH_LSP_STATE_DIR"],
        OH_LSP_PYTHON=os.environ["OH_LSP_PYTHON"],
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


OH_LSP = [sys.executable, "-m", "oh_lsp"]


def oh_lsp_process(project: Path, env: dict[str, str], *args: str, stderr: int = subprocess.PIPE) -> Any:
    """`oh-lsp ARGS` started in `project`, not waited for: its stdout (text) and, by default, stderr are pipes."""
    return subprocess.Popen([*OH_LSP, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def engine_in_background(project: Path, env: dict[str, str], server: Any, *, answered: bool = True) -> Any:
    """`oh-lsp run-engine --until-idle` in its own process, returned once `server` got the model call (with
    `answered`, once its answer was sent whole: the engine then validates it)."""
    import time

    engine = oh_lsp_process(project, env, "run-engine", "--until-idle")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.completed or not answered for r in server.requests):
        time.sleep(0.05)
    assert server.requests, "the engine never called the model"
    return engine


async def run_task(
    project: Path,
    server,
    task_type: str = "unit_test",
    target: str = "pkg/calc.py",
    *,
    metadata: dict | None = None,
    apply_edits: bool = False,
    description: str = "",
    events: list | None = None,
    **config_kw,
):
    """Run one task through the real engine against the scripted server; returns the final QueuedTask. `events`, if
    given, receives every event the engine publishes."""
    from pydantic import SecretStr

    from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask

    values = {
        "api_key": SecretStr(SENTINEL_KEY),
        "model": "test-model",
        "base_url": server.base_url,
        "python": Path(os.environ["OH_LSP_PYTHON"]),
        "max_repair_iterations": 0,
        "quality_threshold": 0.0,
        "heartbeat_seconds": 0.5,
    }
    values.update(config_kw)
    engine = ExecutionEngine(
        OpenHandsConfig(**values), 1, project_root=project, poll_interval=0.05, apply_edits=apply_edits
    )
    if events is not None:
        engine.events.subscribe(events.append)
    await engine.start()
    try:
        task_id = await engine.submit_task(
            QueuedTask(task_type=task_type, target_file=Path(target), description=description, metadata=metadata or {})
        )
        return await engine.wait_for(task_id, timeout=180)
    finally:
        await engine.stop()
        engine.close()


def codes(task, key: str = "errors") -> list[str]:
    return [f["code"] for f in task.result["validation"][key]]


from tests.postgres_fixtures import pg_url, postgres_server_url  # noqa: E402,F401  (PostgreSQL tests)
