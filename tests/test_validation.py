"""The checks: the project's interpreter, a scrubbed environment, and the validator's dict API."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from pydantic import SecretStr

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, ResultValidator, TaskStatus
from oh_lsp.testing.model_server import Reply
from oh_lsp.validation.sandbox import scrubbed_env
from tests.conftest import GOOD_TESTS, SENTINEL_KEY, fenced

USES_VENV_DEP = """\
import venv_only_dep


def shout(text):
    return venv_only_dep.LOUD(text)
"""

VENV_TESTS = """\
from pkg.shouting import shout


def test_shout():
    assert shout("hi") == "HI!"
"""


def make_venv(root: Path, *, with_pytest: bool) -> Path:
    """A project `.venv` with a package found nowhere else (and, optionally, our pytest through a .pth file)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    python = root / ".venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "venv_only_dep.py").write_text("def LOUD(text):\n    return text.upper() + '!'\n")
    if with_pytest:
        Path(site, "borrowed_test_tools.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


async def run_task(project: Path, server, **config_kw):
    config = OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), model="m", base_url=server.base_url, **config_kw)
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        task_id = await engine.submit_task(QueuedTask(task_type="unit_test", target_file=Path("pkg/shouting.py")))
        return await engine.wait_for(task_id, timeout=120)
    finally:
        await engine.stop()
        engine.close()


async def test_project_venv_interpreter_is_used(project: Path, model_server) -> None:
    (project / "pkg" / "shouting.py").write_text(USES_VENV_DEP)
    python = make_venv(project, with_pytest=True)
    with pytest.raises(ImportError):
        __import__("venv_only_dep")  # oh-lsp's own interpreter does not have it
    model_server.script(Reply.text(fenced(VENV_TESTS)))
    final = await run_task(project, model_server)
    assert final.status is TaskStatus.COMPLETED, final.error
    assert final.result["validation"]["details"]["interpreter"] == str(python)


async def test_folders_a_pth_file_adds_under_tmp_are_seen_in_the_sandbox(
    project: Path, model_server, light_python, tmp_path: Path
) -> None:
    """A project environment that borrows its packages through `.pth` files from folders outside the project, under
    /tmp (which the sandbox replaces with a /tmp of its own): the sandbox shows those folders, read-only."""
    (project / "pkg" / "shouting.py").write_text(USES_VENV_DEP)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project / ".venv")], check=True)
    python = project / ".venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    borrowed = tmp_path / "borrowed"  # under /tmp, outside the project
    borrowed.mkdir()
    (borrowed / "venv_only_dep.py").write_text("def LOUD(text):\n    return text.upper() + '!'\n")
    tools = light_python.parent.parent / "test-tools"  # pytest and coverage, also under /tmp
    Path(site, "borrowed.pth").write_text(f"{borrowed}\n{tools}\n")
    model_server.script(Reply.text(fenced(VENV_TESTS)))
    final = await run_task(project, model_server)
    assert final.status is TaskStatus.COMPLETED, final.error
    details = final.result["validation"]["details"]
    assert details["interpreter"] == str(python)
    assert details["isolated"] is True  # built-in namespaces or bubblewrap: a sandbox on every machine


async def test_interpreter_without_pytest_is_reported_not_replaced(project: Path, model_server) -> None:
    (project / "pkg" / "shouting.py").write_text(USES_VENV_DEP)
    python = make_venv(project, with_pytest=False)
    model_server.script(Reply.text(fenced(VENV_TESTS)))
    final = await run_task(project, model_server)
    assert final.status is TaskStatus.FAILED
    assert f"the project's interpreter {python} cannot import pytest" in final.error
    assert "OH_LSP_PYTHON" in final.error


def test_scrubbed_env_keeps_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("INNOCENT_LOOKING", SENTINEL_KEY)
    monkeypatch.setenv("TZ", f"x{SENTINEL_KEY}")
    env = scrubbed_env(tmp_path, [SENTINEL_KEY], {"EXTRA": "fine", "SNEAKY": SENTINEL_KEY})
    assert not any(SENTINEL_KEY in v for v in env.values())
    assert env["HOME"] == str(tmp_path) and env["EXTRA"] == "fine" and "PATH" in env and "TZ" not in env


async def test_generated_code_never_sees_the_key(project: Path, model_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SENTINEL_KEY)
    (project / ".env").write_text(f"OPENROUTER_API_KEY={SENTINEL_KEY}\n")
    snoop = (
        GOOD_TESTS
        + """

def test_environment_holds_no_key():
    import os, pathlib
    assert not any("SENTINEL" in v for v in os.environ.values())
    assert not pathlib.Path(".env").exists()  # the sandbox copy leaves .env out
"""
    )
    model_server.script(Reply.text(fenced(snoop)))
    config = OpenHandsConfig(
        api_key=SecretStr(SENTINEL_KEY),
        model="m",
        base_url=model_server.base_url,
        python=Path(os.environ["OH_LSP_PYTHON"]),
    )
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        final = await engine.wait_for(
            await engine.submit_task(QueuedTask(task_type="unit_test", target_file=Path("pkg/calc.py"))), timeout=120
        )
    finally:
        await engine.stop()
        engine.close()
    assert final.status is TaskStatus.COMPLETED, final.error
    # the snooping test ran, and passed: no key in sight (it adds no coverage, so it is not delivered)
    assert final.result["validation"]["details"]["tests"]["test_environment_holds_no_key"] == "passed"


def test_validator_passes_a_real_test_file_on_disk(project: Path) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_calc.py").write_text(GOOD_TESTS)
    verdict = ResultValidator(project_root=project).validate(
        {"output_file": "tests/test_calc.py", "target_file": "pkg/calc.py"}
    )
    # every line and branch of calc runs; the tests notice 5 of its 7 mutants (docs/validation.md, the score)
    assert verdict.passed and verdict.details["coverage"]["percent"] == 100.0, verdict.errors
    assert verdict.details["mutation"]["score"] == 5 / 7
    assert verdict.score == round(0.5 * 1.0 + 0.5 * 5 / 7, 4)
    assert verdict.details["execution_result"]["passed"] == 3


def test_validator_reports_syntax_error_at_its_line(project: Path) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_calc.py").write_text("from pkg.calc import add\n\ndef test_x(:\n    pass\n")
    verdict = ResultValidator(project_root=project).validate({"output_file": "tests/test_calc.py"})
    assert not verdict.passed
    assert (verdict.errors[0].code, verdict.errors[0].line) == ("syntax-error", 3)


def test_validator_refuses_paths_outside_the_project(project: Path) -> None:
    verdict = ResultValidator(project_root=project).validate(
        {"output_file": "../elsewhere/test_x.py", "content": "def test_x():\n    pass\n"}
    )
    assert not verdict.passed and "outside the project root" in verdict.errors[0].message


async def test_validator_works_from_async_code(project: Path) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_calc.py").write_text(GOOD_TESTS)
    verdict = ResultValidator(project_root=project).validate({"output_file": "tests/test_calc.py"})
    assert verdict.passed
