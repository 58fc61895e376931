"""Fuzzed LSP input: random arguments to every command, and random params to the handlers. The server answers each
one (a result or an error), never crashes or hangs, and keeps answering afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams

from oh_lsp.lsp.commands import COMMANDS
from oh_lsp.testing.model_server import ScriptedModelServer
from tests.lsp_client import make_project, start_server, stop_server

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "uri",
        "symbol",
        "description",
        "instruction",
        "taskId",
        "progressToken",
        "withFeedback",
        "status",
        "category",
        "complexity",
        "qualityThreshold",
        "name",
        "apiKey",
        "line",
        "character",
    ]
)
arguments = st.one_of(
    st.lists(json_values, max_size=3),
    st.lists(st.dictionaries(keys, json_values, max_size=5), min_size=1, max_size=1),
)


@pytest.fixture(scope="module")
def model():
    with ScriptedModelServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory, model, light_python):
    base = tmp_path_factory.mktemp("lsp-fuzz")
    project = make_project(base / "proj")
    client = await start_server(
        project,
        base / "state",
        model.base_url,
        pytest_lsp.client_capabilities("visual-studio-code"),
        OH_LSP_PYTHON=str(light_python),
    )
    client.project = project  # type: ignore[attr-defined]
    yield client
    await stop_server(client)


async def still_answers(client) -> None:
    stats = await asyncio.wait_for(
        client.workspace_execute_command_async(t.ExecuteCommandParams(command="ohLsp.queueStats", arguments=[{}])), 10
    )
    assert "pending" in stats


@given(command=st.sampled_from(sorted(COMMANDS)), args=arguments)
@FUZZ
async def test_commands_with_random_arguments(client, command: str, args: list) -> None:
    try:
        await asyncio.wait_for(
            client.workspace_execute_command_async(t.ExecuteCommandParams(command=command, arguments=args)), 20
        )
    except JsonRpcInvalidParams as exc:
        assert str(exc).strip()  # a refusal a person can act on; an internal error would be a bug
    await still_answers(client)


uris = st.one_of(st.text(max_size=40), st.sampled_from(["file:///nope.py", "untitled:1", "file:///etc/passwd"]))
positions = st.builds(t.Position, line=st.integers(0, 2**31 - 1), character=st.integers(0, 2**31 - 1))


@given(uri=uris, start=positions, end=positions, text=st.text(max_size=200))
@FUZZ
async def test_handlers_with_random_params(client, uri: str, start, end, text: str) -> None:
    real = (client.project / "pkg" / "calc.py").as_uri()
    for target in (uri, real):
        client.text_document_did_open(
            t.DidOpenTextDocumentParams(
                text_document=t.TextDocumentItem(uri=target, language_id="python", version=1, text=text)
            )
        )
        for request in (
            client.text_document_code_action_async(
                t.CodeActionParams(
                    text_document=t.TextDocumentIdentifier(uri=target),
                    range=t.Range(start=start, end=end),
                    context=t.CodeActionContext(diagnostics=[]),
                )
            ),
            client.text_document_diagnostic_async(
                t.DocumentDiagnosticParams(text_document=t.TextDocumentIdentifier(uri=target))
            ),
        ):
            await asyncio.wait_for(request, 10)  # an unknown or odd document gets an empty answer, not an error
        client.text_document_did_close(t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=target)))
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"ohLsp": {"workers": text}}))
    await still_answers(client)
    assert Path(real[len("file://") :]).exists()
