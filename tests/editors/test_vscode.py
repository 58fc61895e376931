"""The VS Code extension (editors/vscode) in real VS Code: code-server 4.100.0 (VS Code 1.100) opened in Debian's
headless Chromium on 127.0.0.1, with the extension installed from its .vsix, a real `oh-lsp serve` and the scripted
model server.

Inside VS Code the extension's self-test (editors/vscode/src/selftest.ts, run only when OH_LSP_VSCODE_SELFTEST names
its input file) works the editor as a user would: VS Code's code-action provider, the code action's command, the
palette commands, the quick picks; it writes down what it saw, and the assertions are made here.

`.ci/run` installs code-server (editors/vscode/scripts/install-code-server.sh, into a cache directory), Chromium and
the extension's node modules, and sets OH_LSP_TEST_REQUIRE_ALL=1: there anything missing fails these tests. On a
developer's machine they are skipped, saying what is missing. OH_LSP_VSIX=<file> uses a built .vsix instead of
building one (`npm run package`, which type-checks first).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import GOOD_TESTS, OH_VARS, fenced
from tests.lsp_client import make_project
from tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
INSTALLER = EXTENSION / "scripts" / "install-code-server.sh"
SELFTEST_SECONDS = 300

pytestmark = [pytest.mark.vscode, pytest.mark.timeout(600)]

OTHER = '''\
"""Doubling."""


def double(x):
    return x * 2
'''
FAILING_OTHER_TESTS = """\
from pkg.other import double


def test_double_is_wrong():
    assert double(2) == 5
"""
SLOW = """\
def wait():
    return "done"
"""
USAGE = {"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420, "cost": 0.00123}
MODELS = [
    {"id": "test-model", "name": "Test model", "context_length": 32000},
    {"id": "other-model", "name": "Other model", "context_length": 16000},
]


def find_code_server() -> tuple[str | None, str]:
    if os.environ.get("OH_LSP_CODE_SERVER"):
        return os.environ["OH_LSP_CODE_SERVER"], ""
    found = subprocess.run(["bash", str(INSTALLER), "--where"], capture_output=True, text=True, timeout=60)
    if found.returncode == 0:
        return found.stdout.strip(), ""
    return (
        None,
        f"code-server 4.100.0 is not installed: run bash {INSTALLER.relative_to(REPO)} ({found.stderr.strip()})",
    )


def find_chromium() -> tuple[str | None, str]:
    chromium = os.environ.get("OH_LSP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return chromium, "" if chromium else "Chromium is not installed: apt-get install chromium"


def test_the_extension_type_checks_and_its_unit_tests_pass() -> None:
    """The extension's own checks: `tsc --noEmit` and its node:test unit tests (status text, settings, metrics
    formatting, the server command line)."""
    npm = shutil.which("npm")
    if npm is None or not (EXTENSION / "node_modules").is_dir():
        missing(f"the extension's node modules are not installed: cd {EXTENSION.relative_to(REPO)} && npm ci")
    for script in ("typecheck", "test:unit"):
        done = subprocess.run([npm, "run", script], cwd=EXTENSION, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm run {script} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert re.search(r"^# fail 0$", done.stdout, re.MULTILINE) and re.search(
        r"^# pass [1-9]", done.stdout, re.MULTILINE
    ), done.stdout


@pytest.fixture(scope="module")
def editor() -> tuple[str, str]:
    code_server, why = find_code_server()
    if code_server is None:
        missing(why)
    chromium, why = find_chromium()
    if chromium is None:
        missing(why)
    return code_server, chromium


@pytest.fixture(scope="module")
def vsix(editor) -> Path:
    """The extension's .vsix: OH_LSP_VSIX, else built here (npm ci once, type-check, bundle, package)."""
    if os.environ.get("OH_LSP_VSIX"):
        path = Path(os.environ["OH_LSP_VSIX"])
        assert path.is_file(), f"OH_LSP_VSIX={path} does not exist"
        return path
    npm = shutil.which("npm")
    assert npm, "npm is needed to build the extension (code-server is installed with it)"
    if not (EXTENSION / "node_modules").is_dir():
        subprocess.run([npm, "ci"], cwd=EXTENSION, check=True, capture_output=True, timeout=600)
    built = subprocess.run([npm, "run", "package"], cwd=EXTENSION, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"npm run package failed:\n{built.stdout}\n{built.stderr}"
    return EXTENSION / "oh-lsp.vsix"


def module_of(request) -> str | None:
    """Which fixture module a chat request is about (the instruction names it)."""
    text = json.dumps(request.body or {})
    return next((m for m in ("pkg.calc", "pkg.other", "pkg.slow") if f"module {m}" in text), None)


def answer(request) -> Reply:
    module = module_of(request)
    if module == "pkg.calc":
        return Reply.text(fenced(GOOD_TESTS), usage=USAGE)
    if module == "pkg.other":
        return Reply.text(fenced(FAILING_OTHER_TESTS))
    if module == "pkg.slow":
        return Reply.text(fenced("def test_never():\n    pass\n"), latency=120)  # cancelled long before
    return Reply.http_error(500, f"unexpected request for {module}")


@pytest.fixture(scope="module")
def model():
    with ScriptedModelServer() as server:
        server.models = MODELS
        server.responder = answer
        yield server


def stop(process: subprocess.Popen) -> None:
    """End a process this test started, and its children (its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(10)


def wait_for_line(path: Path, needle: str, process: subprocess.Popen, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        for line in text.splitlines():
            if needle in line:
                return line
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no {needle!r} from code-server:\n{path.read_text(errors='replace')[-3000:]}")


def logs_of(user_data: Path) -> str:
    """The extension host's and the window's logs, for a failure message."""
    parts = []
    for log in sorted(user_data.glob("logs/**/*.log")):
        if any(name in log.name for name in ("exthost", "oh-lsp", "remoteagent", "window", "renderer")):
            parts.append(f"--- {log.relative_to(user_data)}\n{log.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


USER_SETTINGS = {
    "workbench.startupEditor": "none",
    "telemetry.telemetryLevel": "off",
    "extensions.autoUpdate": False,
    "extensions.autoCheckUpdates": False,
    "update.mode": "none",
    "workbench.enableExperiments": False,
}


def selftest_in_code_server(
    editor: tuple[str, str],
    vsix: Path,
    base: Path,
    project: Path,
    selftest: dict,
    user_settings: dict,
    light_python: Path,
    trusted: bool,
) -> dict:
    """Install the .vsix into a fresh code-server, open `project` in Chromium, and return what the extension's
    self-test saw (plus the folders, for the checks on what was written where)."""
    code_server, chromium = editor
    user_data, extensions, browser = base / "user-data", base / "extensions", base / "chromium"
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(json.dumps({**USER_SETTINGS, **user_settings}))
    api_key = "sk-or-v1-vscode-secret-" + secrets.token_hex(8)
    result = base / "selftest-result.json"
    (base / "selftest-input.json").write_text(
        json.dumps(
            {**selftest, "result": str(result), "apiKey": api_key, "scenario": "trusted" if trusted else "untrusted"}
        )
    )

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in OH_VARS and not k.startswith(("OH_LSP_", "VSCODE_")) and "API_KEY" not in k
    }
    env.update(
        OH_LSP_STATE_DIR=str(base / "state"),
        OH_LSP_PYTHON=str(light_python),
        OH_LSP_VSCODE_SELFTEST=str(base / "selftest-input.json"),
        XDG_CONFIG_HOME=str(base / "xdg-config"),
        XDG_DATA_HOME=str(base / "xdg-data"),
        XDG_CACHE_HOME=str(base / "xdg-cache"),
    )
    common = ["--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]
    started = time.monotonic()
    installed = subprocess.run(
        [code_server, *common, "--install-extension", str(vsix)], env=env, capture_output=True, text=True, timeout=180
    )
    assert installed.returncode == 0 and "successfully installed" in installed.stdout, (
        installed.stdout + installed.stderr
    )

    server_log = base / "code-server.log"
    trust = ["--disable-workspace-trust"] if trusted else []  # else VS Code's default: the folder is not trusted
    with server_log.open("w") as out:
        server = subprocess.Popen(
            [
                code_server,
                *common,
                "--bind-addr",
                "127.0.0.1:0",
                "--auth",
                "none",
                "--disable-telemetry",
                "--disable-update-check",
                *trust,
                "--disable-getting-started-override",
                str(project),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    browser_process = None
    try:
        line = wait_for_line(server_log, "HTTP server listening on", server, 60)
        url = line.split("HTTP server listening on", 1)[1].strip().split()[0].rstrip("/")
        with (base / "chromium.log").open("w") as out:
            browser_process = subprocess.Popen(
                [
                    chromium,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--disable-features=MediaRouter",
                    f"--user-data-dir={browser}",
                    "--window-size=1400,900",
                    f"{url}/?folder={project}",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + SELFTEST_SECONDS
        while not result.exists() and time.monotonic() < deadline:
            assert server.poll() is None, f"code-server exited:\n{server_log.read_text()[-3000:]}"
            assert browser_process.poll() is None, f"Chromium exited:\n{(base / 'chromium.log').read_text()[-3000:]}"
            time.sleep(0.5)
        assert result.exists(), (
            f"the extension's self-test wrote nothing in {SELFTEST_SECONDS} s\n"
            f"{server_log.read_text()[-3000:]}\n{logs_of(user_data)}"
        )
        found = json.loads(result.read_text())
    finally:
        if browser_process is not None:
            stop(browser_process)
        stop(server)
    found.update(project=project, user_data=user_data, api_key=api_key, wall_seconds=time.monotonic() - started)
    assert "error" not in found, (
        f"the self-test failed: {found['error']}\n{json.dumps(found, indent=1, default=str)}\n{logs_of(user_data)}"
    )
    return found


@pytest.fixture(scope="module")
def run(editor, vsix, model, tmp_path_factory, light_python) -> dict:
    """The whole flow in a trusted workspace whose own .vscode/settings.json points oh-lsp at the scripted model."""
    base = tmp_path_factory.mktemp("vscode")
    project = make_project(base / "proj")
    (project / "pkg" / "other.py").write_text(OTHER)
    (project / "pkg" / "slow.py").write_text(SLOW)
    (project / ".vscode").mkdir()
    (project / ".vscode" / "settings.json").write_text(
        json.dumps(
            {
                "ohLsp.server.pythonPath": sys.executable,  # this checkout's environment, which has oh-lsp
                "ohLsp.baseUrl": model.base_url,
                "ohLsp.model": "test-model",
                "ohLsp.maxRepairIterations": 0,
                "ohLsp.workers": 2,
            },
            indent=1,
        )
    )
    selftest = {
        "passing": "pkg/calc.py",
        "generated": "tests/pkg/test_calc.py",
        "failing": "pkg/other.py",
        "slow": "pkg/slow.py",
        "slowModule": "pkg.slow",
        "modelServer": model.base_url,
        "modelToSelect": "other-model",
        "modelPosition": 2,  # Automatic, test-model, other-model
        "pythonWithoutOhLsp": str(light_python),
    }
    return selftest_in_code_server(editor, vsix, base, project, selftest, {}, light_python, trusted=True)


@pytest.fixture(scope="module")
def untrusted_model():
    with ScriptedModelServer() as server:
        server.responder = answer
        yield server


@pytest.fixture(scope="module")
def untrusted_run(editor, vsix, untrusted_model, tmp_path_factory, light_python) -> dict:
    """A folder VS Code does not trust (its default: no trust prompt, restricted mode). What oh-lsp needs is in the
    user's settings; the folder's own settings try to choose a server command and an endpoint of their own."""
    base = tmp_path_factory.mktemp("vscode-untrusted")
    project = make_project(base / "proj")
    (project / ".vscode").mkdir()
    (project / ".vscode" / "settings.json").write_text(
        json.dumps(
            {
                "ohLsp.server.command": [str(base / "not-a-server")],  # would fail to start if it were used
                "ohLsp.baseUrl": "http://127.0.0.1:9/v1",  # would fail every model call if it were used
            }
        )
    )
    user_settings = {
        "security.workspace.trust.startupPrompt": "never",
        "ohLsp.server.pythonPath": sys.executable,
        "ohLsp.baseUrl": untrusted_model.base_url,
        "ohLsp.model": "test-model",
        "ohLsp.maxRepairIterations": 0,
    }
    selftest = {"passing": "pkg/calc.py", "generated": "tests/pkg/test_calc.py"}
    return selftest_in_code_server(editor, vsix, base, project, selftest, user_settings, light_python, trusted=False)


def test_the_code_actions_are_listed(run) -> None:
    offered = {(a["title"], a["kind"]) for a in run["codeActions"]}
    assert ("Generate tests for pkg.calc", "source.ohLsp.generateTests") in offered
    assert ("Generate tests for add", "refactor.ohLsp.generateTests") in offered  # the cursor was inside `add`


def test_the_command_runs_and_the_generated_test_file_appears(run) -> None:
    assert set(run["commandResult"]) == {"taskId", "progressToken"}
    assert run["generatedText"] == GOOD_TESTS  # applied by VS Code from the server's workspace/applyEdit
    assert run["generatedSaved"] is True
    assert (run["project"] / "tests" / "pkg" / "test_calc.py").read_text() == GOOD_TESTS


def test_a_failing_case_shows_diagnostics_with_a_quick_fix(run) -> None:
    assert set(run["paletteResult"]) >= {"taskId", "progressToken"}  # "Generate Tests for This File" on other.py
    assert run["diagnostics"], "no oh-lsp diagnostics on pkg/other.py"
    assert any("test_double_is_wrong" in d["message"] for d in run["diagnostics"]), run["diagnostics"]
    assert "Regenerate with feedback" in run["quickFixes"]
    assert not (run["project"] / "tests" / "pkg" / "test_other.py").exists()  # nothing is written for a failure


def test_the_status_bar_text_changes_with_the_tasks(run) -> None:
    assert run["statusBefore"] == "$(beaker) oh-lsp 0 running, 0 queued · $0.00 today · 0% ok"
    assert run["statusErrorBefore"] is False
    assert run["statusAfterPassing"].endswith("$0.0012 today · 100% ok"), run["statusAfterPassing"]
    assert run["statusAfterFailing"].endswith("· 50% ok"), run["statusAfterFailing"]
    assert "1 running" in run["statusWhileRunning"], run["statusWhileRunning"]
    assert "0 running" in run["statusAfterCancel"]
    texts = run["statusTexts"]
    assert (
        texts.index(run["statusBefore"])
        < texts.index(run["statusAfterPassing"])
        < texts.index(run["statusAfterFailing"])
    )


def test_the_key_from_the_secret_storage_reaches_the_model_and_nothing_else(run, model) -> None:
    chat = [r for r in model.requests if r.path.endswith("/chat/completions")]
    assert chat, "no model request was made"
    # code-server ran without any key in its environment: the key came from the secret storage, after a restart
    assert {r.headers.get("authorization") for r in chat} == {f"Bearer {run['api_key']}"}
    for settings in (run["project"] / ".vscode" / "settings.json", run["user_data"] / "User" / "settings.json"):
        assert run["api_key"] not in settings.read_text()
    for log in run["user_data"].glob("logs/**/*"):
        if log.is_file():
            assert run["api_key"] not in log.read_text(errors="replace"), f"the key is in {log}"


def test_the_status_bar_turns_to_the_error_look_when_the_daily_budget_is_spent(run) -> None:
    """ohLsp.budgetPerDayUsd set in the workspace while the server runs (workspace/didChangeConfiguration): $0.001
    is less than the $0.0015 spent today, so nothing is left."""
    assert run["statusErrorBudgetSpent"] is True
    assert run["statusBudgetSpent"].startswith("$(error) oh-lsp")
    assert run["statusErrorBudgetUnset"] is False  # the setting removed again
    assert run["statusBudgetUnset"].startswith("$(beaker) oh-lsp")


def test_a_server_that_cannot_start_is_explained(run, light_python) -> None:
    """ohLsp.server.pythonPath pointed at an interpreter without oh-lsp: the message says which command failed and
    why (offering Show Logs), the status bar says the server stopped; the old setting back, it runs again."""
    failure = run["failure"]
    assert f"`{light_python} -m oh_lsp serve`, from ohLsp.server.pythonPath" in failure
    assert "No module named oh_lsp" in failure
    assert "ohLsp.server.command" in failure
    assert run["statusStopped"] == "$(error) oh-lsp stopped" and run["statusErrorStopped"] is True
    assert run["recovered"] is True
    # the model chosen with "Select Model…" is the new server's model too (kept in the workspace state)
    assert run["modelAfterRestart"] == "other-model"


def test_metrics_model_selection_and_cancel_through_the_palette(run, model) -> None:
    assert run["metricsText"].startswith("# oh-lsp metrics")
    assert "Success rate: 50%" in run["metricsText"]
    assert run["selectedModel"] == "other-model"  # picked in the quick pick with the keyboard commands
    assert run["cancelAnswer"] is True
    assert run["lastStatus"]["cancelled"] >= 1
    slow = [r for r in model.requests if module_of(r) == "pkg.slow"]
    assert slow and all(r.disconnected for r in slow), "cancelling must close the model's stream"
    assert {r.model for r in slow} == {"other-model"}  # the task after the selection asked the selected model


def test_an_untrusted_workspace_runs_no_generated_code_and_the_server_is_told(untrusted_run, untrusted_model) -> None:
    assert untrusted_run["isTrusted"] is False
    # the extension runs in restricted mode (untrustedWorkspaces: limited) with the user's server command, not the
    # folder's
    assert untrusted_run["serverStarted"] is True
    assert set(untrusted_run["paletteResult"]) >= {"taskId", "progressToken"}
    # the model was asked (at the user's endpoint, with the key from the secret storage, handed over while the
    # server ran), but its tests were not run: the server was told the workspace is not trusted
    chat = [r for r in untrusted_model.requests if r.path.endswith("/chat/completions")]
    assert chat and {r.headers.get("authorization") for r in chat} == {f"Bearer {untrusted_run['api_key']}"}
    assert [d["code"] for d in untrusted_run["diagnostics"]] == ["not-run-untrusted"]
    assert "workspace not trusted" in untrusted_run["diagnostics"][0]["message"]
    assert untrusted_run["testFileWritten"] is False
