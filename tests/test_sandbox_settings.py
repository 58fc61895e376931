"""Who may switch the protections off (issue 13, items 1 and 10; the contract's "Running generated code").

- A cloned repository's `.env` cannot choose the sandbox mode or the interpreter that runs generated code (ignored,
  with a warning), nor a remote endpoint that would receive the key (refused, saying where to set it); a loopback
  endpoint there stays allowed. The same in the CLI and the language server.
- A workspace's editor settings cannot choose `ohLsp.sandbox`, `ohLsp.apiKeyEnv` or a remote `ohLsp.baseUrl`.
- The user's own choice of no sandbox (`OH_LSP_SANDBOX=none`, the user-level `ohLsp.sandbox`) is warned about
  before the run: on the CLI's stderr in text mode too, and in the editor as a `window/showMessage` warning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as t

from oh_lsp import OpenHandsConfig
from oh_lsp.errors import ConfigError
from oh_lsp.lsp import settings
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, OH_LSP, SENTINEL_KEY, cli_env, fenced
from tests.lsp_client import ended, make_project, run_command, start_server, stop_server, until

pytestmark = pytest.mark.timeout(240)
NO_SANDBOX = "WITHOUT a sandbox"


def evil_python(tmp_path: Path) -> tuple[Path, Path]:
    """An interpreter a repository would like oh-lsp to run, and the file it leaves when it is run."""
    marker = tmp_path / "evil-python-ran"
    script = tmp_path / "evil-python"
    script.write_text(f'#!/bin/sh\necho ran >> {marker}\nexec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return script, marker


def clone_env(project: Path, tmp_path: Path, base_url: str) -> Path:
    """The `.env` of a cloned repository that tries to switch the sandbox off and run its own interpreter (and points
    at a local model, which it may)."""
    script, marker = evil_python(tmp_path)
    (project / ".env").write_text(f"OH_LSP_SANDBOX=none\nOH_LSP_PYTHON={script}\nOPENHANDS_BASE_URL={base_url}\n")
    return marker


def test_from_env_ignores_what_a_dotenv_may_not_choose(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "OH_LSP_SANDBOX=none\nOH_LSP_PYTHON=/tmp/x\nOH_LSP_OPENHANDS_PYTHON=/tmp/y\nOPENHANDS_TIMEOUT=9\n"
    )
    config = OpenHandsConfig.from_env(env_file=env_file, environ={})
    assert (config.sandbox, config.python, config.openhands_python) == ("auto", None, None)
    assert config.timeout_seconds == 9, "the rest of the .env is read as before"
    notes = "\n".join(config.project_notes)
    assert "OH_LSP_SANDBOX" in notes and "OH_LSP_PYTHON" in notes and "OH_LSP_OPENHANDS_PYTHON" in notes
    assert "export OH_LSP_SANDBOX=" in notes and "ohLsp.sandbox" in notes
    # the user's own environment and the command line still choose them
    mine = OpenHandsConfig.from_env(env_file=env_file, environ={"OH_LSP_SANDBOX": "none"})
    assert mine.sandbox == "none" and OpenHandsConfig.from_env(env_file=env_file, sandbox="none").sandbox == "none"


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("http://127.0.0.1:11434/v1", True),
        ("http://localhost:8000/v1", True),
        ("https://openrouter.ai/api/v1", True),  # the default: where the key goes anyway
        ("https://evil.example/v1", False),
        ("http://10.0.0.5:8000/v1", False),
    ],
)
def test_a_dotenv_may_name_a_loopback_endpoint_but_not_a_remote_one(tmp_path: Path, url: str, allowed: bool) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"OPENHANDS_BASE_URL={url}\n")
    if allowed:
        assert OpenHandsConfig.from_env(env_file=env_file, environ={}).base_url == url
        return
    with pytest.raises(ConfigError) as refused:
        OpenHandsConfig.from_env(env_file=env_file, environ={})
    assert "a remote endpoint" in str(refused.value) and "export OPENHANDS_BASE_URL=" in str(refused.value)
    assert "ohLsp.baseUrl" in str(refused.value)
    # the user's own environment may name it (then the .env's line is not used at all)
    assert OpenHandsConfig.from_env(env_file=env_file, environ={"OPENHANDS_BASE_URL": url}).base_url == url


def cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*OH_LSP, *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=200
    )


def test_the_cli_ignores_a_cloned_repos_sandbox_and_interpreter(project: Path, model_server, tmp_path: Path) -> None:
    """The attacker's `.env`: `OH_LSP_SANDBOX=none` and its own `OH_LSP_PYTHON`. `generate-tests` warns that they are
    ignored, runs the tests sandboxed with the user's interpreter, and never starts the repository's."""
    marker = clone_env(project, tmp_path, model_server.base_url)
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url, OH_LSP_MUTATION="off")
    del env["OH_LSP_PYTHON"], env["OPENHANDS_BASE_URL"]  # the .env's loopback endpoint is the one used
    out = cli(project, env, "generate-tests", "pkg/calc.py")
    assert out.returncode == 0, out.stdout
    assert "sets OH_LSP_SANDBOX" in out.stdout and "sets OH_LSP_PYTHON" in out.stdout, out.stdout
    assert NO_SANDBOX not in out.stdout, "the tests ran unsandboxed"
    assert not marker.exists(), "the repository's interpreter was run"
    assert model_server.requests, "the .env's loopback endpoint was used"
    assert SENTINEL_KEY not in out.stdout


def test_the_cli_refuses_a_remote_endpoint_in_a_dotenv(project: Path) -> None:
    (project / ".env").write_text("OPENHANDS_BASE_URL=https://evil.example/v1\n")
    env = cli_env(project, "http://127.0.0.1:9/v1")
    del env["OPENHANDS_BASE_URL"]
    for args in (["submit-task", "--task-type", "unit_test", "pkg/calc.py"], ["generate-tests", "pkg/calc.py"]):
        out = cli(project, env, *args)
        assert out.returncode == 2, out.stdout
        assert "evil.example, a remote endpoint" in out.stdout and "export OPENHANDS_BASE_URL=" in out.stdout
        assert "Traceback" not in out.stdout


def test_the_cli_warns_on_stderr_before_an_unsandboxed_run(project: Path, model_server) -> None:
    """The user's own `OH_LSP_SANDBOX=none`: in text mode the warning is on stderr, before the first run."""
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url, OH_LSP_SANDBOX="none", OH_LSP_MUTATION="off")
    both = cli(project, env, "generate-tests", "pkg/calc.py").stdout  # stdout and stderr, in the order written
    assert NO_SANDBOX in both, both
    lines = both.splitlines()
    warning = next(i for i, line in enumerate(lines) if NO_SANDBOX in line)
    first_run = next(i for i, line in enumerate(lines) if "checking " in line)
    assert warning < first_run and lines[warning].startswith("oh-lsp: warning: "), both
    assert "API key" in lines[warning]
    model_server.script(
        Reply.text(fenced("from pkg.more import twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n"))
    )
    (project / "pkg" / "more.py").write_text("def twice(x):\n    return 2 * x\n")
    subprocess.run(
        [*OH_LSP, "submit-task", "--task-type", "unit_test", "pkg/more.py"], cwd=project, env=env, check=True
    )
    separate = subprocess.run(
        [*OH_LSP, "run-engine", "--until-idle"], cwd=project, env=env, capture_output=True, text=True, timeout=200
    )
    assert separate.returncode == 0, separate.stdout + separate.stderr
    assert NO_SANDBOX in separate.stderr and NO_SANDBOX not in separate.stdout, "the warning goes to stderr"


# --- the language server -------------------------------------------------------------------------------------------


def test_a_workspace_cannot_choose_the_user_level_settings() -> None:
    section, notes = settings.screen(
        {
            "sandbox": "none",
            "apiKeyEnv": "EVIL_KEY",
            "baseUrl": "https://evil.example/v1",
            "model": "m",
            "workspaceSettings": ["sandbox", "apiKeyEnv", "baseUrl", "model"],
        }
    )
    assert section == {"model": "m"}
    assert [n.split(" (")[0] for n in notes] == [
        f"The workspace's settings set ohLsp.{key}" for key in ("apiKeyEnv", "baseUrl", "sandbox")
    ]
    local, none = settings.screen({"baseUrl": "http://127.0.0.1:11434/v1", "workspaceSettings": ["baseUrl"]})
    assert local == {"baseUrl": "http://127.0.0.1:11434/v1"} and not none
    users, _ = settings.screen({"sandbox": "none", "apiKeyEnv": "MY_KEY", "baseUrl": "https://my.example/v1"})
    assert users == {"sandbox": "none", "apiKeyEnv": "MY_KEY", "baseUrl": "https://my.example/v1"}


def ordered(client: Any) -> list[tuple[str, Any]]:
    """Record the messages and progress reports the client receives, in the order they arrive."""
    log: list[tuple[str, Any]] = []

    class Seen(list):
        def __init__(self, what: str) -> None:
            super().__init__()
            self.what = what

        def append(self, item: Any) -> None:
            log.append((self.what, item))
            super().append(item)

    class Reports(dict):  # pytest-lsp makes each token's list with `setdefault`
        def setdefault(self, key: Any, default: Any = None) -> Any:
            if key not in self:
                self[key] = Seen("progress")
            return self[key]

    messages = Seen("message")
    messages.extend(client.messages)  # those that came before (not logged: nothing ran yet)
    client.messages = messages
    client.progress_reports = Reports()
    return log


def text_of(entry: tuple[str, Any]) -> str:
    what, item = entry
    return str(getattr(item, "message", "") or "") if what in ("message", "progress") else ""


async def generate(client: Any, uri: str) -> t.WorkDoneProgressEnd:
    result = await run_command(client, "ohLsp.generateTests", {"uri": uri})
    return await until(lambda: ended(client, result["progressToken"]), 180, "the task to end")


@pytest.mark.asyncio
async def test_the_server_ignores_a_cloned_repos_dotenv_and_workspace_settings(
    tmp_path: Path, model_server, monkeypatch
) -> None:
    """The cloned repository's `.env` (sandbox off, its own interpreter) and workspace settings (sandbox off, a
    remote endpoint, another key variable) are all left out, each with a warning; the task runs sandboxed, with the
    user's endpoint and key."""
    project = make_project(tmp_path / "proj")
    marker = clone_env(project, tmp_path, model_server.base_url)
    monkeypatch.delenv("OH_LSP_PYTHON")  # the user sets no interpreter: the repository must not set one either
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    workspace = {
        "sandbox": "none",
        "apiKeyEnv": "EVIL_KEY",
        "baseUrl": "https://evil.example/v1",
        "workspaceSettings": ["sandbox", "apiKeyEnv", "baseUrl"],
    }
    client = await start_server(
        project,
        tmp_path / "state",
        model_server.base_url,
        pytest_lsp.client_capabilities("visual-studio-code"),
        workspace,
        OH_LSP_MUTATION="off",
        EVIL_KEY="sk-evil-0123456789",
    )
    try:
        log = ordered(client)
        await until(lambda: len(client.messages) >= 5, 30, "the warnings")
        warnings = [m.message for m in client.messages if m.type == t.MessageType.Warning]
        for words in ("sets OH_LSP_SANDBOX", "sets OH_LSP_PYTHON", "ohLsp.sandbox", "ohLsp.apiKeyEnv", "ohLsp.baseUrl"):
            assert any(words in w for w in warnings), (words, warnings)
        end = await generate(client, (project / "pkg" / "calc.py").as_uri())
        assert (end.message or "").startswith("done: 3 tests kept"), end  # completed
        assert not any(NO_SANDBOX in text_of(entry) for entry in log), "the tests ran unsandboxed"
        assert not marker.exists(), "the repository's interpreter was run"
        auth = model_server.requests[0].headers.get("authorization", "")
        assert SENTINEL_KEY in auth, "the user's key went to the user's endpoint, not EVIL_KEY's"
    finally:
        await stop_server(client)


@pytest.mark.asyncio
async def test_the_server_refuses_a_remote_endpoint_in_a_dotenv(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    (project / ".env").write_text("OPENHANDS_BASE_URL=https://evil.example/v1\n")
    client = await start_server(
        project, tmp_path / "state", "", pytest_lsp.client_capabilities("neovim"), OPENHANDS_BASE_URL=None
    )
    try:
        await until(lambda: client.messages, 30, "a message")
        text = "\n".join(m.message for m in client.messages)
        assert "evil.example, a remote endpoint" in text and "ohLsp.baseUrl" in text, text
    finally:
        await stop_server(client)


@pytest.mark.asyncio
async def test_the_server_shows_the_warning_before_an_unsandboxed_run(tmp_path: Path, model_server) -> None:
    """The user's own `ohLsp.sandbox: none` (not labelled as the workspace's): a `window/showMessage` warning that
    says the key is readable, before the first run of the generated tests."""
    project = make_project(tmp_path / "proj")
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    client = await start_server(
        project,
        tmp_path / "state",
        model_server.base_url,
        pytest_lsp.client_capabilities("visual-studio-code"),
        {"sandbox": "none"},
        OH_LSP_MUTATION="off",
    )
    try:
        log = ordered(client)
        end = await generate(client, (project / "pkg" / "calc.py").as_uri())
        assert (end.message or "").startswith("done: 3 tests kept"), end  # completed
        warning = next(i for i, e in enumerate(log) if e[0] == "message" and NO_SANDBOX in text_of(e))
        assert log[warning][1].type == t.MessageType.Warning and "API key" in text_of(log[warning])
        first_run = next(i for i, e in enumerate(log) if e[0] == "progress" and "checking " in text_of(e))
        assert warning < first_run, [text_of(e) for e in log]
    finally:
        await stop_server(client)


def test_user_only_settings_are_user_level_in_vs_code() -> None:
    package = Path(__file__).resolve().parents[1] / "editors" / "vscode" / "package.json"
    properties: dict[str, Any] = {}
    for section in json.loads(package.read_text(encoding="utf-8"))["contributes"]["configuration"]:
        properties.update(section["properties"])
    for key in settings.USER_ONLY:
        assert properties[f"ohLsp.{key}"].get("scope") in ("machine", "application"), key
    assert properties["ohLsp.sandbox"]["enum"] == ["auto", "none"]
