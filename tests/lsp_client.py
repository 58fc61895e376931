"""Driving a real `oh-lsp serve` process with pytest-lsp's client, against the scripted model server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from oh_lsp.lsp.server import plain
from oh_lsp.testing.sample_project import make_project  # noqa: F401  (the tests import it from here)
from tests.conftest import OH_VARS, SENTINEL_KEY, saw_secret

SERVER = [sys.executable, "-m", "oh_lsp", "serve"]
STATUS = "ohLsp/status"
TASK_ENDED = "ohLsp/taskEnded"
CANDIDATE = "ohLsp/candidate"


def make_client() -> LanguageClient:
    """pytest-lsp's client, with the lsprotocol 2025.0.0 fix for code actions that carry a command (the test client
    would parse them as `Command`s), and a recorder for `workspace/applyEdit` (it has no default handler)."""
    client = pytest_lsp.make_test_lsp_client()
    converter = client.protocol._converter

    def code_action_or_command(obj: Any, _type: Any) -> Any:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, t.Command)
        return converter.structure(obj, t.CodeAction)

    converter.register_structure_hook(t.Command | t.CodeAction, code_action_or_command)
    structure = client.protocol.structure_message

    def checked(data: dict[str, Any]) -> Any:  # every message the server sends, before anything else reads it
        saw_secret(f"a message the language server sent ({data.get('method') or 'a response'})", json.dumps(data))
        return structure(data)

    client.protocol.structure_message = checked  # type: ignore[method-assign]
    client.applied_edits = []  # type: ignore[attr-defined]
    client.apply_result = t.ApplyWorkspaceEditResult(applied=True)  # type: ignore[attr-defined]
    client.statuses = []  # type: ignore[attr-defined]
    client.status_times = []  # type: ignore[attr-defined]
    client.ended = {}  # type: ignore[attr-defined]  # taskId -> the ohLsp/taskEnded payload (a dict)

    @client.feature(t.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: t.ApplyWorkspaceEditParams) -> t.ApplyWorkspaceEditResult:
        client.applied_edits.append(params)  # type: ignore[attr-defined]
        return client.apply_result  # type: ignore[attr-defined]

    @client.feature(STATUS)
    def status(params: Any) -> None:
        client.statuses.append(params)  # type: ignore[attr-defined]
        client.status_times.append(time.monotonic())  # type: ignore[attr-defined]

    @client.feature(TASK_ENDED)
    def task_ended(params: Any) -> None:
        payload = plain(params)
        client.ended[payload["taskId"]] = payload  # type: ignore[attr-defined]

    return client


async def candidate(client: LanguageClient, params: Any) -> dict[str, Any]:
    """The `ohLsp/candidate` request."""
    return plain(await client.protocol.send_request_async(CANDIDATE, params))  # type: ignore[no-any-return]


async def start_server(
    project: Path,
    state: Path,
    base_url: str,
    capabilities: t.ClientCapabilities,
    options: dict[str, Any] | None = None,
    **env: str | None,
) -> LanguageClient:
    """Start `oh-lsp serve` for `project` and initialize it. `env` adds to the server's environment (None: leave that
    variable out)."""
    environment = {k: v for k, v in os.environ.items() if k not in OH_VARS and not k.startswith("OH_LSP_")}
    environment.update(
        OPENHANDS_BASE_URL=base_url,
        OPENROUTER_API_KEY=SENTINEL_KEY,
        OPENHANDS_MODEL="test-model",
        OH_LSP_STATE_DIR=str(state),
        PYTHONUNBUFFERED="1",
    )
    if os.environ.get("OH_LSP_PYTHON"):  # the light test interpreter (module-scoped servers pass it in `env`)
        environment["OH_LSP_PYTHON"] = os.environ["OH_LSP_PYTHON"]
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    config = ClientServerConfig(server_command=SERVER, client_factory=make_client, server_env=environment)
    client = await config.start()
    init = {"trusted": True, "maxRepairIterations": 0, **(options or {})}  # one answer per task unless a test asks
    await client.initialize_session(
        t.InitializeParams(
            capabilities=capabilities,
            root_uri=project.as_uri(),
            initialization_options={"ohLsp": init},
            workspace_folders=[t.WorkspaceFolder(uri=project.as_uri(), name=project.name)],
        )
    )
    return client


async def start_vscode_server(
    workspace: tuple[Path, Path], base_url: str, light_python: Path, **env: str | None
) -> LanguageClient:
    """`start_server` for a module's shared server: VS Code's recorded capabilities, the light test interpreter."""
    project, state = workspace
    capabilities = pytest_lsp.client_capabilities("visual-studio-code")
    return await start_server(project, state, base_url, capabilities, OH_LSP_PYTHON=str(light_python), **env)


async def stop_server(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 20)
    finally:
        await client.stop()
    assert_no_secret_seen(client)


def assert_no_secret_seen(client: LanguageClient) -> None:
    """Everything the server sent (its stdout is the protocol): diagnostics, progress, status notifications,
    messages, logs and edits. The sentinel key must be in none of them."""
    seen = [
        client.diagnostics,
        client.progress_reports,
        client.statuses,
        client.messages,
        client.log_messages,
        client.applied_edits,
    ]
    assert SENTINEL_KEY not in repr(seen), "the API key reached the editor"


async def until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Wait until `check()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def run_command(client: LanguageClient, command: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        t.ExecuteCommandParams(command=command, arguments=list(arguments))
    )


def ended(client: LanguageClient, token: str) -> t.WorkDoneProgressEnd | None:
    reports = client.progress_reports.get(token) or []
    return next((r for r in reports if isinstance(r, t.WorkDoneProgressEnd)), None)


async def outcome_logged(client: LanguageClient, task_id: str) -> str:
    """The whole account of a finished task, which the server writes to the editor's log (its progress ends with a
    short stage)."""
    return await until(
        lambda: next(
            (
                m.message
                for m in client.log_messages
                if m.message.startswith("oh-lsp: ") and f"({task_id[:8]}): " in m.message
            ),
            None,
        ),
        10,
        "the task's outcome in the log",
    )


async def code_actions(
    client: LanguageClient,
    uri: str,
    line: int = 0,
    character: int = 0,
    diagnostics: list[t.Diagnostic] | None = None,
    only: list[str] | None = None,
) -> list[t.CodeAction]:
    result = await client.text_document_code_action_async(
        t.CodeActionParams(
            text_document=t.TextDocumentIdentifier(uri=uri),
            range=t.Range(t.Position(line, character), t.Position(line, character)),
            context=t.CodeActionContext(diagnostics=diagnostics or [], only=only),
        )
    )
    return list(result or [])
