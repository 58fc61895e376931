"""A server stopped in the middle of a task gives it back to the queue; the next server resumes it, finishes it and
delivers the result to its editor."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types as t

from oh_lsp.paths import store_path
from oh_lsp.store.sqlite import SQLiteStore
from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import GOOD_TESTS, fenced
from tests.lsp_client import ended, make_project, run_command, start_server, stop_server, until

pytestmark = [pytest.mark.timeout(120)]


async def test_restart_resumes_the_task_and_delivers_it(tmp_path, monkeypatch) -> None:
    project, state = make_project(tmp_path / "proj"), tmp_path / "state"
    monkeypatch.setenv("OH_LSP_STATE_DIR", str(state))
    capabilities = pytest_lsp.client_capabilities("visual-studio-code")
    calc = (project / "pkg" / "calc.py").as_uri()
    with ScriptedModelServer() as model:
        model.script(
            Reply.text(fenced(GOOD_TESTS), chunk_size=2, chunk_delay=0.05),  # cut by the shutdown
            Reply.text(fenced(GOOD_TESTS)),
        )  # the resumed attempt
        first = await start_server(project, state, model.base_url, capabilities)
        try:
            result = await run_command(first, "ohLsp.generateTests", {"uri": calc})
            token = result["progressToken"]
            await until(
                lambda: any(
                    (getattr(r, "message", None) or "").startswith("streaming")
                    for r in first.progress_reports.get(token, [])
                ),
                20,
                "streaming",
            )
        finally:
            await stop_server(first)
        assert ended(first, token).message.startswith("re-queued")
        assert model.requests[0].disconnected and not model.requests[0].completed
        store = SQLiteStore(store_path(project.resolve()))
        try:
            task = store.get(result["taskId"])
            assert task.status.value == "pending" and task.note.startswith("re-queued")
        finally:
            store.close()

        second = await start_server(project, state, model.base_url, capabilities)
        try:
            edit = await until(lambda: second.applied_edits, 60, "the resumed task's edit")
            changes = edit[0].edit.document_changes
            created = [
                c
                for c in changes
                if isinstance(c, t.TextDocumentEdit) and c.text_document.uri.endswith("tests/pkg/test_calc.py")
            ]
            assert created[0].edits[0].new_text == GOOD_TESTS
            resumed = await until(
                lambda: [
                    reports
                    for reports in second.progress_reports.values()
                    if isinstance(reports[-1], t.WorkDoneProgressEnd)
                ],
                10,
                "its progress",
            )
            assert resumed[0][0].message.startswith("resumed")
            tasks = await run_command(second, "ohLsp.listTasks", {})
            assert [(r["taskId"], r["status"]) for r in tasks] == [(result["taskId"], "completed")]
        finally:
            await stop_server(second)
        store = SQLiteStore(store_path(project.resolve()))
        try:
            assert store.get(result["taskId"]).delivery == "applied"
        finally:
            store.close()
        assert len(model.requests) == 2


async def test_a_result_finished_by_another_process_is_delivered_when_the_server_sees_it(tmp_path, monkeypatch) -> None:
    from pydantic import SecretStr

    from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
    from tests.conftest import SENTINEL_KEY

    project, state = make_project(tmp_path / "proj"), tmp_path / "state"
    monkeypatch.setenv("OH_LSP_STATE_DIR", str(state))
    with ScriptedModelServer() as model:
        model.script(Reply.text(fenced(GOOD_TESTS)))
        config = OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), model="test-model", base_url=model.base_url)
        submitter = f"lsp:{project.resolve()}"  # an editor's task, run by another engine (as `run-engine` would)
        engine = ExecutionEngine(config, 1, project_root=project, submitter=submitter, poll_interval=0.05)
        await engine.start()
        try:
            task_id = await engine.submit_task(QueuedTask(task_type="unit_test", target_file="pkg/calc.py"))
            assert (await engine.wait_for(task_id, timeout=60)).status.value == "completed"
        finally:
            await engine.stop()
            engine.close()
        assert not (project / "tests").exists()

        client = await start_server(project, state, model.base_url, pytest_lsp.client_capabilities("neovim@latest"))
        try:
            edits = await until(lambda: client.applied_edits, 20, "the waiting result to be delivered")
            assert any(
                isinstance(c, t.TextDocumentEdit) and c.edits[0].new_text == GOOD_TESTS
                for c in edits[0].edit.document_changes
            )
            await until(
                lambda: any(
                    task_id[:8] in m.message and "finished elsewhere" in m.message for m in client.log_messages
                ),
                5,
                "the log line",
            )
        finally:
            await stop_server(client)
        store = SQLiteStore(store_path(project.resolve()))
        try:
            assert store.get(task_id).delivery == "applied"
        finally:
            store.close()
        assert len(client.applied_edits) == 1, "delivered once"
