"""Other clients: Neovim's and Emacs' recorded capability sets, and a bare client with neither progress nor
`workspace/applyEdit`. Limited clients still get their results (on disk, with log messages)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as t

from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests import lsp_client
from tests.conftest import GOOD_TESTS, fenced
from tests.lsp_client import code_actions, ended, make_project, run_command, start_server, stop_server, until

pytestmark = [pytest.mark.timeout(120)]

UNICODE_CALC = '''\
"""Ünïcode 🎉 before the code: columns differ between UTF-8, UTF-16 and code points."""


def add(a, b):
    return a + b  # 🎉🎉


def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("b must not be zero")
    return a / b
'''


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


async def test_neovim_gets_progress_the_edit_and_pull_diagnostics(project, model, tmp_path) -> None:
    (project / "pkg" / "calc.py").write_text(UNICODE_CALC)
    client = await start_server(
        project, tmp_path / "state", model.base_url, pytest_lsp.client_capabilities("neovim@latest")
    )
    try:
        calc = (project / "pkg" / "calc.py").as_uri()
        # Neovim offers UTF-8 positions first; the symbol at a position is found in those units
        actions = await code_actions(client, calc, line=4, character=30)
        assert "Generate tests for add" in [a.title for a in actions]
        model.script(Reply.text(fenced(GOOD_TESTS)))
        result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "symbol": {"line": 4, "character": 20}})
        end = await until(lambda: ended(client, result["progressToken"]), 60, "the progress to end")
        assert end.message.startswith("done: ")
        assert "applied in the editor" in await lsp_client.outcome_logged(client, result["taskId"])
        assert "Write unit tests for add in module pkg.calc." in model.requests[-1].body["messages"][-1]["content"]
        changes = client.applied_edits[-1].edit.document_changes
        assert any(isinstance(c, t.CreateFile) and c.uri.endswith("tests/pkg/test_calc.py") for c in changes)
        report = await client.text_document_diagnostic_async(
            t.DocumentDiagnosticParams(text_document=t.TextDocumentIdentifier(uri=calc))
        )
        # the tests notice every mutant but two in divide (b == 0 becoming b == 1, the message's text): Information
        assert report.kind == "full"
        assert [(d.code, d.severity, d.range.start.line) for d in report.items] == [
            ("surviving-mutant", t.DiagnosticSeverity.Information, 8),
            ("surviving-mutant", t.DiagnosticSeverity.Information, 9),
        ]
    finally:
        await stop_server(client)


async def test_emacs_gets_the_file_on_disk_and_a_log_message(project, model, tmp_path) -> None:
    capabilities = pytest_lsp.client_capabilities("emacs")
    assert capabilities.workspace.workspace_edit.resource_operations is None
    assert capabilities.window.show_document is None
    client = await start_server(project, tmp_path / "state", model.base_url, capabilities)
    try:
        calc = (project / "pkg" / "calc.py").as_uri()
        model.script(Reply.text(fenced(GOOD_TESTS)))
        result = await run_command(client, "ohLsp.generateTests", {"uri": calc})
        end = await until(lambda: ended(client, result["progressToken"]), 60, "the progress to end")
        assert end.message.startswith("done: ")
        assert "written to disk" in await lsp_client.outcome_logged(client, result["taskId"])
        assert (project / "tests" / "pkg" / "test_calc.py").read_text() == GOOD_TESTS
        assert (project / "tests" / "__init__.py").exists()
        assert client.applied_edits == [] and client.shown_documents == []
        assert any("oh-lsp wrote" in m.message and "tests/pkg/test_calc.py" in m.message for m in client.log_messages)

        # untrusted: the generated tests are not run, and the user is told which setting changes that
        client.workspace_did_change_configuration(
            t.DidChangeConfigurationParams(settings={"ohLsp": {"trusted": False}})
        )
        model.script(Reply.text(fenced(GOOD_TESTS.replace("test_add", "test_add_again"))))
        result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "untrusted"})
        end = await until(lambda: ended(client, result["progressToken"]), 60, "the progress to end")
        assert end.message.startswith("failed")
        warning = await until(
            lambda: next((m for m in client.messages if "not trusted" in m.message), None), 5, "the trust message"
        )
        assert "ohLsp.trusted" in warning.message and warning.type == t.MessageType.Warning
        diagnostics = await until(lambda: client.diagnostics.get(calc), 5, "diagnostics on calc.py")
        assert [d.code for d in diagnostics] == ["not-run-untrusted"]
        assert "not run: workspace not trusted" in diagnostics[0].message
        assert "test_add_again" not in (project / "tests" / "pkg" / "test_calc.py").read_text()
        # Emacs drops diagnostic data: the quick fix still finds the task
        bare = [
            t.Diagnostic(range=d.range, message=d.message, code=d.code, source=d.source, severity=d.severity)
            for d in diagnostics
        ]
        fixes = await code_actions(client, calc, diagnostics=bare, only=["quickfix"])
        assert list(fixes[0].command.arguments) == [{"taskId": result["taskId"], "withFeedback": True}]
    finally:
        await stop_server(client)


async def test_a_client_without_progress_or_apply_edit_gets_log_messages_and_the_file(project, model, tmp_path) -> None:
    capabilities = t.ClientCapabilities(
        workspace=t.WorkspaceClientCapabilities(apply_edit=False),
        window=t.WindowClientCapabilities(work_done_progress=False),
    )
    client = await start_server(project, tmp_path / "state", model.base_url, capabilities)
    try:
        calc = (project / "pkg" / "calc.py").as_uri()
        model.script(Reply.text(fenced(GOOD_TESTS)))
        result = await run_command(client, "ohLsp.generateTests", {"uri": calc})
        test_file = project / "tests" / "pkg" / "test_calc.py"
        await until(test_file.exists, 60, "the test file on disk")
        lines = await until(
            lambda: [
                m.message
                for m in client.log_messages
                if f"({result['taskId'][:8]}): " in m.message and "written to disk" in m.message
            ],
            10,
            "the final log line",
        )
        assert test_file.read_text() == GOOD_TESTS
        stages = [m.message for m in client.log_messages if m.message.startswith("oh-lsp: Generate tests")]
        assert any("queued (position" in m for m in stages) and any("validating" in m for m in stages)
        assert client.progress_reports.get(result["progressToken"]) is None
        assert client.applied_edits == [] and lines
    finally:
        await stop_server(client)


async def test_multi_root_workspace_has_one_engine_and_store_per_folder(tmp_path, model, monkeypatch) -> None:
    from oh_lsp.paths import store_path
    from oh_lsp.store.sqlite import SQLiteStore

    first, second = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    state = tmp_path / "state"
    monkeypatch.setenv("OH_LSP_STATE_DIR", str(state))
    model.default = Reply.text("no code here")  # each task fails at once; only where it ran matters
    client = await start_server(first, state, model.base_url, pytest_lsp.client_capabilities("neovim@latest"))
    try:
        client.workspace_did_change_workspace_folders(
            t.DidChangeWorkspaceFoldersParams(
                event=t.WorkspaceFoldersChangeEvent(
                    added=[t.WorkspaceFolder(uri=second.as_uri(), name="b")], removed=[]
                )
            )
        )
        submitted = {}
        for root in (first, second):
            uri = (root / "pkg" / "calc.py").as_uri()
            submitted[root] = await _submit_when_known(client, uri)
            await until(lambda root=root: ended(client, submitted[root]["progressToken"]), 30, "the task to end")
        rows = await run_command(client, "ohLsp.listTasks", {})
        assert sorted(r["uri"] for r in rows) == sorted((r / "pkg" / "calc.py").as_uri() for r in (first, second))
    finally:
        await stop_server(client)
    for root in (first, second):
        store = SQLiteStore(store_path(root.resolve()))
        try:
            tasks = store.list()
            assert [(x.task_id, x.submitter) for x in tasks] == [(submitted[root]["taskId"], f"lsp:{root.resolve()}")]
        finally:
            store.close()


async def _submit_when_known(client, uri):
    """A folder added by didChangeWorkspaceFolders starts its engine in the background: retry until it is there."""
    from pygls.exceptions import JsonRpcInvalidParams

    for _ in range(100):
        try:
            return await run_command(client, "ohLsp.generateTests", {"uri": uri})
        except JsonRpcInvalidParams as exc:
            if "outside the workspace folders" not in str(exc):
                raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"{uri} never became part of the workspace")
