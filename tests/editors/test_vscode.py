"""The VS Code extension (editors/vscode) in real VS Code: code-server 4.100.0 (VS Code 1.100) opened in Debian's
headless Chromium on 127.0.0.1, with the extension installed from its platform-specific .vsix (which bundles oh-lsp
and its Python packages), a real `oh-lsp serve` and the scripted model server.

Inside VS Code the extension's self-test (editors/vscode/src/selftest.ts, run only when OH_LSP_VSCODE_SELFTEST names
its input file) works the editor as a user would: VS Code's code-action provider, the code action's command, the
palette commands, the quick picks, the refactor preview's Apply, a notification's button; it writes down what it
saw, and the assertions are made here. The main flow runs with no oh-lsp setting at all: a bare `python3` on PATH
(one without pydantic, so that only the bundle can run the server), the endpoint and the model from the environment,
the key from the secret storage.

`.ci/run` installs code-server (editors/vscode/scripts/install-code-server.sh, into a cache directory), Chromium and
the extension's node modules, builds the .vsix (`npm run package`: the Python bundle, then a type-checked build) and
sets OH_LSP_VSIX and OH_LSP_TEST_REQUIRE_ALL=1: there anything missing fails these tests. On a developer's machine
they are skipped, saying what is missing; without OH_LSP_VSIX the .vsix is built here.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import GOOD_TESTS, OH_VARS, fenced, site_packages
from tests.lsp_client import make_project
from tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
INSTALLER = EXTENSION / "scripts" / "install-code-server.sh"
LAUNCHER = EXTENSION / "bundled" / "tool" / "launch.py"
SELFTEST_SECONDS = 420
VSIX_LIMIT_MB = 20  # the bundle weighs about 11 MB (see the extension's README)

pytestmark = [pytest.mark.vscode, pytest.mark.timeout(900)]

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


def interpreters() -> list[Path]:
    """Python interpreters of this machine besides ours: pyenv's and the system's."""
    found = glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3")) + glob.glob("/usr/bin/python3.[0-9]*")
    return [Path(p) for p in sorted(set(found)) if re.search(r"python3(\.\d+)?$", p) and os.access(p, os.X_OK)]


def version_of(python: Path) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def has_module(python: Path, module: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=60).returncode == 0


def bare_python(light_python: Path) -> Path:
    """An interpreter that cannot import pydantic (nor oh-lsp): only the bundle can run the server with it. A Python
    other than 3.11 is preferred, so that another of the bundle's per-version folders is used."""
    for python in interpreters():
        version = version_of(python)
        if version and (3, 12) <= version <= (3, 14) and not has_module(python, "pydantic"):
            return python
    assert not has_module(light_python, "pydantic")
    return light_python


def python_without_coverage(light_python: Path, base: Path) -> Path:
    """A project interpreter with pytest but no coverage.py (light_python's tools less coverage): to measure what
    the generated tests cover, the server must lend it its own coverage.py, the one the .vsix bundles."""
    tools = light_python.parent.parent / "test-tools"
    venv = base / "no-coverage"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    shutil.copytree(tools, venv / "test-tools", ignore=shutil.ignore_patterns("coverage", "__pycache__"))
    python = venv / "bin" / "python"
    (site_packages(python) / "oh_lsp_test_tools.pth").write_text(str(venv / "test-tools") + "\n")
    assert has_module(python, "pytest") and not has_module(python, "coverage")
    return python


def old_python() -> Path | None:
    """An interpreter older than 3.11, if this machine has one."""
    return next((p for p in interpreters() if (version_of(p) or (3, 99)) < (3, 11)), None)


def check(python: Path | str, launcher: Path) -> tuple[int, dict]:
    done = subprocess.run([str(python), str(launcher), "--check"], capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_launcher_says_which_python_it_cannot_use(tmp_path: Path) -> None:
    """bundled/tool/launch.py --check, against a bundle whose manifest lists some CPython versions: this Python is
    usable when listed; an unlisted newer one is named as such; an older one (if the machine has one, even a
    Python 2) is told it is too old; a damaged bundle is reported, not a traceback."""
    bundle = tmp_path / "bundled"
    (bundle / "tool").mkdir(parents=True)
    (bundle / "libs").mkdir()
    shutil.copy(LAUNCHER, bundle / "tool" / "launch.py")
    launcher = bundle / "tool" / "launch.py"
    manifest = bundle / "libs" / "manifest.json"
    manifest.write_text(json.dumps({"pythons": ["3.11", "3.12", "3.13", "3.14"]}))
    assert check(sys.executable, launcher) == (
        0,
        {
            "ok": True,
            "version": ".".join(map(str, sys.version_info[:3])),
            "executable": sys.executable,
            "supported": ["3.11", "3.12", "3.13", "3.14"],
            "reason": "",
            "installed": True,  # this checkout's environment has oh-lsp (`fromEnvironment` could run it)
        },
    )
    manifest.write_text(json.dumps({"pythons": ["3.1"]}))
    code, report = check(sys.executable, launcher)
    assert code == 85 and report["ok"] is False and not report["tooOld"]
    assert (
        report["reason"] == f"it is Python {'.'.join(map(str, sys.version_info[:3]))}; oh-lsp needs Python 3.1 to 3.1"
    )
    manifest.write_text("{broken")
    code, report = check(sys.executable, launcher)
    assert code == 85 and report["reason"].startswith("the extension's bundled packages are missing or damaged")
    old = old_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine to see it refused")
    manifest.write_text(json.dumps({"pythons": ["3.11", "3.12"]}))
    code, report = check(old, launcher)
    assert code == 85 and report["tooOld"] is True
    assert re.fullmatch(r"it is Python \d\.\d+\.\d+; oh-lsp needs Python 3\.11 or newer", report["reason"])
    served = subprocess.run([str(old), str(launcher)], capture_output=True, text=True, timeout=60)
    assert served.returncode == 85 and "Traceback" not in served.stderr
    assert served.stderr.startswith(f"oh-lsp cannot start with {old}") or "oh-lsp cannot start with" in served.stderr


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
    """The extension's .vsix for this machine: OH_LSP_VSIX, else built here (npm ci once, then `npm run package`:
    the Python bundle, a type-checked build, `vsce package --target`)."""
    if os.environ.get("OH_LSP_VSIX"):
        path = Path(os.environ["OH_LSP_VSIX"])
        assert path.is_file(), f"OH_LSP_VSIX={path} does not exist"
        return path
    npm = shutil.which("npm")
    assert npm, "npm is needed to build the extension (code-server is installed with it)"
    if not (EXTENSION / "node_modules").is_dir():
        subprocess.run([npm, "ci"], cwd=EXTENSION, check=True, capture_output=True, timeout=600)
    built = subprocess.run([npm, "run", "package"], cwd=EXTENSION, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"npm run package failed:\n{built.stdout}\n{built.stderr}"
    return EXTENSION / "oh-lsp.vsix"


def test_the_vsix_bundles_oh_lsp_for_each_supported_python_and_stays_small(vsix) -> None:
    """What the .vsix carries (see the extension's README): the bundled launcher, oh-lsp and the pure-Python packages
    once, pydantic-core per CPython version; no bytecode, no build-machine scripts; under VSIX_LIMIT_MB."""
    assert vsix.stat().st_size < VSIX_LIMIT_MB * 1e6, f"{vsix.stat().st_size / 1e6:.1f} MB"
    with zipfile.ZipFile(vsix) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("extension/bundled/libs/manifest.json"))
        package = json.loads(archive.read("extension/package.json"))
    assert "extension/bundled/tool/launch.py" in names
    assert manifest["pythons"] == ["3.11", "3.12", "3.13", "3.14"]
    assert any(n.startswith("extension/bundled/libs/any/oh_lsp/lsp/") for n in names)
    # coverage.py, pure: oh-lsp lends it to a project interpreter of any version that lacks it
    assert any(name.startswith("coverage-") for name in manifest["any"]), manifest["any"]
    assert "extension/bundled/libs/any/coverage/control.py" in names
    assert not [n for n in names if re.match(r"extension/bundled/libs/.*/coverage/.*\.(so|pyd)$", n)]
    for version in manifest["pythons"]:
        tag = "cp" + version.replace(".", "")
        assert any(
            re.match(rf"extension/bundled/libs/{tag}/pydantic_core/_pydantic_core\..*(so|pyd)$", n) for n in names
        )
    assert not [n for n in names if "__pycache__" in n or "/bin/" in n]
    assert package["main"] == "./dist/extension.js"


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
        return Reply.text(fenced("def test_never():\n    pass\n"), latency=120)  # cancelled (or crashed) long before
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
    env_extra: dict[str, str] | None = None,
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
    env.update(env_extra or {})
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
    found.update(
        project=project,
        user_data=user_data,
        extensions=extensions,
        api_key=api_key,
        wall_seconds=time.monotonic() - started,
    )
    assert "error" not in found, (
        f"the self-test failed: {found['error']}\n{json.dumps(found, indent=1, default=str)}\n{logs_of(user_data)}"
    )
    return found


@pytest.fixture(scope="module")
def run(editor, vsix, model, tmp_path_factory, light_python) -> dict:
    """The whole flow in a trusted workspace with no oh-lsp setting at all: `python3` on PATH is a bare interpreter,
    the endpoint and the model come from the environment (as they would from a shell profile), the key from the
    secret storage."""
    base = tmp_path_factory.mktemp("vscode")
    project = make_project(base / "proj")
    (project / "pkg" / "other.py").write_text(OTHER)
    (project / "pkg" / "slow.py").write_text(SLOW)
    python = bare_python(light_python)
    project_python = python_without_coverage(light_python, base)
    (base / "bin").mkdir()
    (base / "bin" / "python3").symlink_to(python)
    old = old_python()
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
        "oldPython": str(old) if old else "",
    }
    env = {
        "PATH": os.pathsep.join([str(base / "bin"), os.environ.get("PATH", "")]),
        "OPENHANDS_BASE_URL": model.base_url,
        "OPENHANDS_MODEL": "test-model",
        "OH_LSP_MAX_REPAIR_ITERATIONS": "0",
        # this environment is the user's already (as when VS Code is started from a shell): VS Code does not
        # replace it with the one a login shell's profile makes, whose PATH would find another python3 first
        "VSCODE_CLI": "1",
        # the project's interpreter has pytest but not coverage.py: the bundled server lends its own
        "OH_LSP_PYTHON": str(project_python),
    }
    found = selftest_in_code_server(editor, vsix, base, project, selftest, {}, light_python, True, env)
    found.update(bare_python=python, bare_version=version_of(python), old_python=old, project_python=project_python)
    return found


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
                "ohLsp.server.importStrategy": "fromEnvironment",  # would run an oh-lsp that is not there
                "ohLsp.baseUrl": "http://127.0.0.1:9/v1",  # would fail every model call if it were used
            }
        )
    )
    user_settings = {
        "security.workspace.trust.startupPrompt": "never",
        "ohLsp.server.pythonPath": str(light_python),
        "ohLsp.baseUrl": untrusted_model.base_url,
        "ohLsp.model": "test-model",
        "ohLsp.maxRepairIterations": 0,
    }
    selftest = {"passing": "pkg/calc.py", "generated": "tests/pkg/test_calc.py"}
    return selftest_in_code_server(editor, vsix, base, project, selftest, user_settings, light_python, trusted=False)


def output_log(run: dict) -> str:
    """The oh-lsp output channel, as VS Code wrote it to its logs."""
    found = [p for p in run["user_data"].glob("logs/**/*.log") if p.name.endswith("oh-lsp.log")]
    assert found, f"no oh-lsp output channel log under {run['user_data'] / 'logs'}"
    return "\n".join(p.read_text(errors="replace") for p in found)


def test_installed_with_no_settings_the_bundled_server_starts(run) -> None:
    """No oh-lsp setting anywhere, no Python extension: `python3` on PATH (an interpreter without pydantic or
    oh-lsp) runs the server the extension bundles, and nothing is shown to the user."""
    assert run["settingsAtStart"].get("globalValue") is None and run["settingsAtStart"].get("workspaceValue") is None
    assert (
        not (run["project"] / ".vscode" / "settings.json").exists()
        or "pythonPath" not in (run["project"] / ".vscode" / "settings.json").read_text()
    )
    assert run["serverStarted"] is True
    installed = next(run["extensions"].glob("oh-lsp.oh-lsp-*"))
    assert run["serverCommand"] == f"python3 {installed / 'bundled' / 'tool' / 'launch.py'}"
    version = ".".join(map(str, run["bare_version"]))
    assert re.search(rf"Python {re.escape(version)}\.\d+ at ", output_log(run)), "the bare interpreter ran it"
    assert run["messagesAtStart"] == [], "nothing to tell at start"


def test_generate_preview_accept_and_the_file_on_disk_passes_pytest(run, light_python) -> None:
    """The code action's edit waits in VS Code's refactor preview (reviewEdits, on by default: the server's change
    annotation needs confirmation), lands on Apply, and the new test module is saved: pytest from a shell passes."""
    assert set(run["commandResult"]) == {"taskId", "progressToken"}
    assert run["edit"]["reviewed"] is True
    assert run["editPendingWhileReviewed"] is True and run["onDiskWhileReviewed"] is False
    assert run["edit"]["applied"] is True and run["applyTries"] >= 1
    generated = run["project"] / "tests" / "pkg" / "test_calc.py"
    assert run["edit"]["saved"] == [generated.as_uri()] and run["edit"]["problems"] == []
    assert run["generatedOnDisk"] == GOOD_TESTS and run["generatedDirty"] is False
    assert generated.read_text() == GOOD_TESTS
    done = subprocess.run(
        [str(light_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/pkg/test_calc.py"],
        cwd=run["project"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr


def test_the_bundled_server_lends_coverage_to_a_project_interpreter_without_it(run) -> None:
    """The project's interpreter has pytest but no coverage.py, and the server runs from the bundle (no
    development packages): the coverage before → after in the end message was measured with the bundle's own
    coverage.py, lent to the project's interpreter."""
    assert not has_module(run["project_python"], "coverage")
    assert re.search(r"coverage \d+% → 100%", run["endShown"]["text"]), run["endShown"]["text"]


def test_this_editors_task_shows_as_a_notification_once_with_short_text(run) -> None:
    token = run["commandResult"]["progressToken"]
    shown = [p for p in run["progressRecords"] if p["token"] == token]
    assert [p["location"] for p in shown] == ["notification"], "shown once, as a notification, not in the status bar"
    assert shown[0]["title"] == "oh-lsp: Generate tests for pkg/calc.py"
    assert shown[0]["messages"] and all(len(m) <= 60 for m in shown[0]["messages"]), shown[0]["messages"]
    assert shown[0]["end"] == "done: 3 tests kept, 0 dropped, score 0.86"


def test_a_task_this_editor_did_not_start_stays_in_the_status_bar(run) -> None:
    """A task of this workspace that the server resumed after a restart (not started by a command in this session)
    shows as the language client's status-bar progress, never as a notification."""
    resumed = run["resumedProgress"]
    assert resumed["location"] == "statusBar" and resumed["messages"][0].startswith("resumed")
    assert all(len(m) <= 60 for m in resumed["messages"])
    notifications = [p for p in run["progressRecords"] if p["location"] == "notification"]
    assert resumed["token"] not in {p["token"] for p in notifications}
    assert run["resumedCancel"] == {"cancelled": True}


def test_the_end_of_the_task_is_told(run) -> None:
    shown = run["endShown"]
    assert shown is not None and shown["source"] == "oh-lsp", run["messages"]
    assert "tests/pkg/test_calc.py" in shown["text"] and shown["level"] == "info"


def test_the_end_message_offers_open_tests_and_show_details_and_open_tests_opens_them(run) -> None:
    assert run["endShown"]["actions"] == ["Open tests", "Show details"]
    assert run["endShown"]["text"] == (
        "oh-lsp: 3 tests kept in tests/pkg/test_calc.py (score 1.00, coverage 57% → 100%, $0.0012)."
    ) or run["endShown"]["text"].startswith("oh-lsp: 3 tests kept in tests/pkg/test_calc.py (score ")
    assert "openTests" not in run["optionalErrors"], run["optionalErrors"].get("openTests")
    assert run["endPicked"] == "Open tests"
    assert run["activeAfterOpenTests"] == str(run["project"] / "tests" / "pkg" / "test_calc.py")


def test_a_failing_case_shows_diagnostics_with_a_quick_fix(run) -> None:
    assert set(run["paletteResult"]) >= {"taskId", "progressToken"}  # "Generate Tests for This File" on other.py
    assert run["diagnostics"], "no oh-lsp diagnostics on pkg/other.py"
    assert any("test_double_is_wrong" in d["message"] for d in run["diagnostics"]), run["diagnostics"]
    assert run["quickFixes"] == ["Regenerate with feedback", "Open the rejected candidate"]
    assert not (run["project"] / "tests" / "pkg" / "test_other.py").exists()  # nothing is written for a failure


def test_the_rejected_candidate_opens_read_only(run) -> None:
    assert "candidate" not in run["optionalErrors"], run["optionalErrors"].get("candidate")
    task = run["paletteResult"]["taskId"]
    assert run["candidateCommand"] == {"command": "ohLsp.openCandidate", "arguments": [{"taskId": task, "attempt": 1}]}
    candidate = run["candidate"]  # opened through the quick fix's command
    assert candidate["scheme"] == "oh-lsp" and candidate["languageId"] == "python"
    assert candidate["uri"] == f"oh-lsp://candidate/{task}/1/tests/pkg/test_other.py"
    assert candidate["text"] == FAILING_OTHER_TESTS


def test_cancel_from_the_notification(run, model) -> None:
    """The slow task's notification: its Cancel button (clicked as the keyboard's "Accept Primary Action" does)
    reaches the server as ohLsp.cancelTask, the model's stream is closed, and the status counts the cancel."""
    shown = run["slowProgress"]
    assert [p["location"] for p in shown] == ["notification"]
    assert shown[0]["cancelRequested"] is True and run["cancelAnswer"] is True
    assert shown[0]["end"] == "cancelled"
    slow = [r for r in model.requests if module_of(r) == "pkg.slow"]
    assert slow and slow[0].disconnected, "cancelling must close the model's stream"
    assert run["lastStatus"]["cancelled"] >= 1
    assert "0 running" not in run["statusAfterCancel"] and "idle" in run["statusAfterCancel"]


def test_the_status_bar_text_before_and_after(run) -> None:
    """No rate before anything has finished; the cost of the call and the rate after; the hover names the model
    that answered."""
    assert run["statusBefore"] == "$(beaker) oh-lsp idle · $0.00 today"
    assert run["statusErrorBefore"] is False
    assert "Last model used: none yet" in run["tooltipBefore"]
    assert run["statusAfterPassing"] == "$(beaker) oh-lsp idle · $0.0012 today · 100% ok", run["statusAfterPassing"]
    assert "Last model used: test-model" in run["tooltipAfterPassing"]
    assert run["statusAfterFailing"].endswith("· 50% ok"), run["statusAfterFailing"]
    assert "1 running" in run["statusWhileRunning"], run["statusWhileRunning"]
    texts = run["statusTexts"]
    assert (
        texts.index(run["statusBefore"])
        < texts.index(run["statusAfterPassing"])
        < texts.index(run["statusAfterFailing"])
    )


def test_trace_server_shows_the_traffic_and_never_the_key(run, model) -> None:
    """ohLsp.trace.server = messages: the JSON-RPC messages are in the oh-lsp output channel; the key, handed over
    with tracing paused, is in no log."""
    log = output_log(run)
    assert re.search(r"\[trace\] .*Sending request 'workspace/executeCommand", log), log[-3000:]
    assert re.search(r"\[trace\] .*Received notification 'ohLsp/status'", log)
    chat = [r for r in model.requests if r.path.endswith("/chat/completions")]
    assert chat, "no model request was made"
    # code-server ran without any key in its environment: the key came from the secret storage, after a restart
    assert {r.headers.get("authorization") for r in chat} == {f"Bearer {run['api_key']}"}
    for settings in (run["project"] / ".vscode" / "settings.json", run["user_data"] / "User" / "settings.json"):
        if settings.exists():
            assert run["api_key"] not in settings.read_text()
    for log_file in run["user_data"].glob("logs/**/*"):
        if log_file.is_file():
            assert run["api_key"] not in log_file.read_text(errors="replace"), f"the key is in {log_file}"


def test_the_status_bar_turns_to_the_error_look_when_the_daily_budget_is_spent(run) -> None:
    """ohLsp.budgetPerDayUsd set in the workspace while the server runs (workspace/didChangeConfiguration): $0.001
    is less than the $0.0012 spent today, so nothing is left."""
    assert run["statusErrorBudgetSpent"] is True
    assert run["statusBudgetSpent"].startswith("$(error) oh-lsp")
    assert run["statusErrorBudgetUnset"] is False  # the setting removed again
    assert run["statusBudgetUnset"].startswith("$(beaker) oh-lsp")


def one_message(case: dict) -> dict:
    """The one message a bad input gave: from oh-lsp (no pop-up of the language client besides it), with buttons."""
    assert len(case["messages"]) == 1, case["messages"]
    (message,) = case["messages"]
    assert message["source"] == "oh-lsp" and message["level"] == "error" and message["actions"], message
    assert "Traceback" not in message["text"] and "    at " not in message["text"]
    assert case["statusText"] == "$(error) oh-lsp stopped" and case["statusError"] is True
    return message


def test_a_missing_python_is_one_message_with_what_to_do(run) -> None:
    message = one_message(run["badInput"]["missingPython"])
    assert message["text"].startswith("oh-lsp needs Python 3.11 or newer to run its language server, and `")
    assert "no-such-python3` (ohLsp.server.pythonPath) was not found." in message["text"]
    assert message["actions"] == ["Open Settings", "Show Logs"]  # no Python extension here
    assert message["text"].endswith(
        "Install Python 3.11 or newer, or choose another interpreter (ohLsp.server.pythonPath)."
    )


def test_a_too_old_python_is_one_message_with_what_to_do(run) -> None:
    if run["old_python"] is None:
        pytest.skip("no Python older than 3.11 on this machine")
    message = one_message(run["badInput"]["oldPython"])
    assert f"`{run['old_python']}` (ohLsp.server.pythonPath): it is Python 3." in message["text"]
    assert "oh-lsp needs Python 3.11 or newer." in message["text"]


def test_a_broken_server_command_is_one_message_with_what_to_do(run) -> None:
    message = one_message(run["badInput"]["brokenCommand"])
    assert "from ohLsp.server.command): `" in message["text"] and "no-such-oh-lsp` was not found" in message["text"]
    assert message["text"].endswith("Check ohLsp.server.command.")
    assert message["actions"] == ["Show Logs", "Open Settings", "Restart"]


def test_an_interpreter_without_oh_lsp_in_from_environment_mode_is_explained(run, light_python) -> None:
    """importStrategy fromEnvironment and an interpreter without oh-lsp: told before any start (so no failed start
    and no stack trace in the log)."""
    message = one_message(run["badInput"]["notInstalled"])
    assert message["text"].startswith(
        f"oh-lsp is not installed in `{light_python}` (ohLsp.server.pythonPath): No module named oh_lsp"
    )
    assert "ohLsp.server.importStrategy to useBundled" in message["text"]
    assert message["actions"] == ["Open Settings", "Show Logs"]
    log = output_log(run)
    assert "Stopping server failed" not in log and not re.search(r"^\s+at ", log, re.MULTILINE), "no stack trace"


def test_a_server_that_crashes_mid_task_is_restarted_three_times_in_three_minutes(run) -> None:
    """The server killed 4 times while a task runs: each crash is told once (with Show Logs), 3 restarts, then no
    more and an error with Restart; oh-lsp: Restart Server brings it back."""
    crash = run["badInput"]["crash"]
    assert len(set(crash["pids"])) == 4, "a new server after each of the first 3 crashes"
    texts = [m["text"] for m in crash["messages"]]
    assert len(texts) == 4, texts
    for n, message in enumerate(crash["messages"][:3], start=1):
        assert message["level"] == "warning" and message["actions"] == ["Show Logs"], message
        assert "the language server stopped unexpectedly (killed by SIGKILL)" in message["text"]
        assert f"restarted ({n} of 3 restarts in 3 minutes)" in message["text"]
    last = crash["messages"][3]
    assert last["level"] == "error" and last["actions"] == ["Restart", "Show Logs"]
    assert last["text"].startswith(
        "oh-lsp: the language server is not restarted again: it stopped 4 times in 3 minutes"
    )
    assert all(m["source"] == "oh-lsp" for m in crash["messages"])
    assert crash["running"] is False and crash["statusText"] == "$(error) oh-lsp stopped"
    assert run["recovered"] is True


def test_metrics_and_model_selection_through_the_palette(run, model) -> None:
    assert run["metricsText"].startswith("# oh-lsp metrics")
    assert "Success rate: 50%" in run["metricsText"]
    assert run["selectedModel"] == "other-model"  # picked in the quick pick with the keyboard commands
    slow = [r for r in model.requests if module_of(r) == "pkg.slow"]
    assert slow[0].model == "other-model"  # the task after the selection asked the selected model
    # the model chosen with "Select Model…" is the new server's model too (kept in the workspace state)
    assert run["modelAfterRestart"] == "other-model"


def test_an_untrusted_workspace_runs_no_generated_code_and_the_server_is_told(untrusted_run, untrusted_model) -> None:
    assert untrusted_run["isTrusted"] is False
    # the extension runs in restricted mode (untrustedWorkspaces: limited) with the user's interpreter and the
    # bundled server, not the folder's command or import strategy
    assert untrusted_run["serverStarted"] is True
    assert untrusted_run["serverCommand"].endswith("bundled/tool/launch.py")
    assert set(untrusted_run["paletteResult"]) >= {"taskId", "progressToken"}
    # the server was told the workspace is not trusted: a unit_test task measures the existing tests before asking
    # the model, so there it stops before any call (any request made carries the key from the secret storage)
    chat = [r for r in untrusted_model.requests if r.path.endswith("/chat/completions")]
    assert {r.headers.get("authorization") for r in chat} <= {f"Bearer {untrusted_run['api_key']}"}
    assert [d["code"] for d in untrusted_run["diagnostics"]] == ["not-run-untrusted"]
    assert "workspace not trusted" in untrusted_run["diagnostics"][0]["message"]
    assert untrusted_run["testFileWritten"] is False
