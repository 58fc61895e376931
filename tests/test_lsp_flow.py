"""The language server end to end with VS Code's recorded capabilities: a real `oh-lsp serve` process, the
scripted model server, real pytest runs. One server for the module (each start costs about a second)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams

from oh_lsp.paths import state_dir
from oh_lsp.progress_text import savings_text
from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import GOOD_TESTS, SENTINEL_KEY, fenced
from tests.lsp_client import (
    candidate,
    code_actions,
    ended,
    make_project,
    outcome_logged,
    run_command,
    start_vscode_server,
    stop_server,
    until,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ONLY_FAILING_TESTS = """\
from pkg.calc import divide


def test_divide_by_zero_gives_zero():
    assert divide(1, 0) == 0
"""
# three good tests (100% coverage) and one that fails inside the target: 3 kept and delivered, the 4th reported
MIXED_TESTS = (
    GOOD_TESTS
    + """

def test_divide_by_zero_gives_zero():
    assert divide(1, 0) == 0
"""
)
USAGE = {"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420, "cost": 0.00123}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("lsp-flow")
    return make_project(base / "proj"), base / "state"


@pytest.fixture(scope="module")
def model():
    with ScriptedModelServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(workspace, model, light_python):
    client = await start_vscode_server(workspace, model.base_url, light_python)
    yield client
    await stop_server(client)


@pytest.fixture
def calc(workspace) -> str:
    return (workspace[0] / "pkg" / "calc.py").as_uri()


async def finish(client, result: dict) -> t.WorkDoneProgressEnd:
    return await until(lambda: ended(client, result["progressToken"]), 60, "the progress to end")


async def test_code_actions_offer_the_module_and_the_symbol_under_the_cursor(client, calc, workspace) -> None:
    actions = await code_actions(client, calc, line=4, character=4)  # inside `def add`
    offered = {(a.title, a.kind) for a in actions}
    assert ("Generate tests for pkg.calc", "source.ohLsp.generateTests") in offered
    assert ("Generate tests for add", "refactor.ohLsp.generateTests") in offered
    symbol_action = next(a for a in actions if a.title == "Generate tests for add")
    assert list(symbol_action.command.arguments) == [{"uri": calc, "symbol": "add"}]
    only_source = await code_actions(client, calc, line=4, only=["source"])
    assert [a.title for a in only_source] == ["Generate tests for pkg.calc", "Document pkg.calc"]
    readme = workspace[0] / "README.md"
    readme.write_text("# proj\n")
    assert await code_actions(client, readme.as_uri()) == []


async def test_full_flow_progress_edit_and_status(client, calc, model, workspace) -> None:
    model.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    action = next(a for a in await code_actions(client, calc) if a.kind == "source.ohLsp.generateTests")
    result = await run_command(client, action.command.command, *action.command.arguments)
    assert set(result) == {"taskId", "progressToken"}
    end = await finish(client, result)

    reports = client.progress_reports[result["progressToken"]]
    begin = reports[0]
    assert isinstance(begin, t.WorkDoneProgressBegin) and begin.cancellable
    assert begin.title == "oh-lsp: Generate tests for pkg/calc.py"
    assert begin.message.startswith("queued (position ")
    messages = [r.message for r in reports[1:-1]]
    assert any(m.startswith("model test-model") for m in messages)
    assert any(m.startswith("answer received: 420 tokens") for m in messages)
    assert any(m.startswith("validating") for m in messages)
    # the score is 0.5 x coverage after + 0.5 x mutation score after (calc: 5 of its 7 mutants noticed)
    assert end.message == "done: 3 tests kept, 0 dropped, score 0.86"
    assert all(len(r.message) <= 60 for r in reports if r.message), "the contract: progress text is 60 characters"
    logged = await outcome_logged(client, result["taskId"])
    assert "tests/pkg/test_calc.py (applied in the editor)" in logged
    assert "score 0.86" in logged and "3 tests kept, 0 dropped" in logged and "$0.0012" in logged
    assert "→ 100%" in logged and "mutation 0.00 → 0.71" in logged

    edit = client.applied_edits[-1]
    assert edit.label == "oh-lsp: tests for pkg.calc"
    changes = edit.edit.document_changes
    test_file = (workspace[0] / "tests" / "pkg" / "test_calc.py").as_uri()
    assert [c.uri for c in changes if isinstance(c, t.CreateFile)][-1] == test_file
    text_edit = next(c for c in changes if isinstance(c, t.TextDocumentEdit) and c.text_document.uri == test_file)
    assert text_edit.edits[0].new_text == GOOD_TESTS
    assert not (workspace[0] / "tests").exists(), "the editor applies the edit; the server writes nothing"
    # reviewEdits is on by default and VS Code honours change annotations: every change waits for confirmation
    (note,) = edit.edit.change_annotations.values()
    assert note.needs_confirmation is True
    assert all(e.annotation_id in edit.edit.change_annotations for e in text_edit.edits)

    ended_with = client.ended[result["taskId"]]  # ohLsp/taskEnded, sent before the progress's end
    assert ended_with == {
        "taskId": result["taskId"],
        "progressToken": result["progressToken"],
        "kind": "unit_test",
        "status": "completed",
        "target": "pkg/calc.py",
        "outputFile": "tests/pkg/test_calc.py",
        "outputUri": test_file,
        "written": True,
        "delivery": "applied in the editor",
        "score": ended_with["score"],
        "testsKept": ["test_add", "test_divide", "test_divide_by_zero"],
        "testsDropped": [],
        "coverage": {"before": ended_with["coverage"]["before"], "after": 100.0},
        "mutation": ended_with["mutation"],
        "cost": 0.00123,
        "model": "test-model",
        "error": None,
        "candidate": None,
        "message": end.message,
    }
    # 0.5 x coverage after (100%) + 0.5 x mutation score after (5 of 7 mutants noticed)
    assert ended_with["score"] == round(0.5 + 0.5 * 5 / 7, 4) and ended_with["coverage"]["before"] < 100.0
    assert ended_with["mutation"] == {"before": 0.0, "after": round(100 * 5 / 7, 2)}  # percentages, as coverage

    status = await until(
        lambda: next((s for s in reversed(client.statuses) if s.completed >= 1), None), 5, "a status counting the task"
    )
    assert status.tokens >= 420 and status.costSession >= 0.00123 and status.costToday >= 0.00123
    assert status.model == "test-model" and status.cooldowns == [] and status.budgetLeftToday is None
    assert status.modelSelected == "test-model", "OPENHANDS_MODEL chose it explicitly"
    tasks = await run_command(client, "ohLsp.listTasks", {"status": "completed"})
    assert tasks[0]["taskId"] == result["taskId"] and tasks[0]["target"] == "pkg/calc.py"
    assert tasks[0]["written"] is True


async def test_the_edit_is_rebased_on_the_open_buffer(client, calc, model, workspace) -> None:
    """The test module is open with unsaved text (not on disk): the new tests are added to that text, by version."""
    test_file = (workspace[0] / "tests" / "pkg" / "test_calc.py").as_uri()
    mine = "import pytest\n\n\ndef test_mine():\n    assert True  # 🎉 unsaved\n"
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=test_file, language_id="python", version=7, text=mine)
        )
    )
    model.script(Reply.text(fenced(GOOD_TESTS)))
    try:
        result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "into the buffer"})
        end = await finish(client, result)
    finally:
        client.text_document_did_close(
            t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=test_file))
        )
    assert end.message.startswith("done: ")
    assert "recomputed against the current file" in await outcome_logged(client, result["taskId"])
    changes = client.applied_edits[-1].edit.document_changes
    assert not any(isinstance(c, t.CreateFile) and c.uri == test_file for c in changes)
    (document_edit,) = [c for c in changes if isinstance(c, t.TextDocumentEdit) and c.text_document.uri == test_file]
    assert document_edit.text_document.version == 7
    inserted = "".join(e.new_text for e in document_edit.edits)
    assert "def test_add" in inserted and "def test_mine" not in inserted and "import pytest" not in inserted
    assert all(e.range.start.line >= 1 for e in document_edit.edits), "the user's text stays where it is"


async def test_an_edit_the_editor_rejects_is_reported_not_applied(client, calc, model) -> None:
    model.script(Reply.text(fenced(GOOD_TESTS)))
    client.apply_result = t.ApplyWorkspaceEditResult(applied=False, failure_reason="the file is read-only")
    try:
        result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "rejected"})
        end = await finish(client, result)
    finally:
        client.apply_result = t.ApplyWorkspaceEditResult(applied=True)
    assert end.message == "not applied: 3 tests kept, 0 dropped, score 0.86"
    logged = await outcome_logged(client, result["taskId"])
    assert "not applied: the editor did not apply the edit: the file is read-only" in logged
    warning = await until(
        lambda: next((m for m in client.messages if "not applied" in m.message), None), 5, "a warning"
    )
    assert warning.type == t.MessageType.Warning
    (row,) = [r for r in await run_command(client, "ohLsp.listTasks", {}) if r["taskId"] == result["taskId"]]
    assert row["status"] == "completed" and row["delivery"].startswith("not applied: the editor did not apply")
    assert row["written"] is False


async def test_failed_task_gives_diagnostics_on_the_target_and_a_quick_fix(client, calc, model, workspace) -> None:
    model.script(Reply.text(fenced(ONLY_FAILING_TESTS)))
    edits_before = len(client.applied_edits)
    result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "symbol": "divide"})
    end = await finish(client, result)
    assert end.message.startswith("failed: test-failed")
    assert "failed: validation failed" in await outcome_logged(client, result["taskId"])
    (row,) = [r for r in await run_command(client, "ohLsp.listTasks", {}) if r["taskId"] == result["taskId"]]
    assert row["status"] == "failed" and row["written"] is False
    assert len(client.applied_edits) == edits_before, "nothing is delivered when nothing passes"

    diagnostics = await until(lambda: client.diagnostics.get(calc), 10, "diagnostics on calc.py")
    by_code = {d.code: d for d in diagnostics}
    failed = by_code["test-failed"]
    assert failed.range.start.line == 7, "anchored at `def divide`, the function the task was about"
    assert "test_divide_by_zero_gives_zero" in failed.message and failed.source == "oh-lsp"
    assert failed.severity == t.DiagnosticSeverity.Error
    bug = by_code["possible-bug"]
    assert bug.severity == t.DiagnosticSeverity.Warning and bug.range.start.line == 9  # the `raise` in divide
    assert all(d.data == {"taskId": result["taskId"], "code": d.code, "attempt": 1} for d in diagnostics)

    # the failing test's place is in the rejected candidate, which the editor can open: oh-lsp://candidate/…
    uri = f"oh-lsp://candidate/{result['taskId']}/1/tests/pkg/test_calc.py"
    (link,) = failed.related_information
    assert link.location.uri == uri and link.location.range.start.line == 3  # `def test_divide_by_zero_gives_zero`
    assert await candidate(client, {"taskId": result["taskId"]}) == {"uri": uri, "text": ONLY_FAILING_TESTS}
    told = client.ended[result["taskId"]]
    assert told["status"] == "failed" and told["written"] is False and told["outputUri"] is None
    assert told["candidate"] == {"attempt": 1, "uri": uri}
    assert f"{uri}:4:1: test-failed: test_divide_by_zero_gives_zero failed" in told["error"]
    assert "tests/pkg/test_calc.py:4" not in told["error"].replace(uri, "")  # every location points into it
    assert told["testsKept"] == [] and told["testsDropped"][0]["name"] == "test_divide_by_zero_gives_zero"
    assert told["testsDropped"][0]["reason"].startswith("failed: ")

    pulled = await client.text_document_diagnostic_async(
        t.DocumentDiagnosticParams(text_document=t.TextDocumentIdentifier(uri=calc))
    )
    assert [(d.code, d.range, d.message) for d in pulled.items] == [(d.code, d.range, d.message) for d in diagnostics]

    fixes = await code_actions(client, calc, line=7, diagnostics=list(diagnostics), only=["quickfix"])
    assert [f.title for f in fixes] == ["Regenerate with feedback", "Open the rejected candidate"]
    assert list(fixes[0].command.arguments) == [{"taskId": result["taskId"], "withFeedback": True}]
    assert fixes[1].command.command == "ohLsp.openCandidate"  # the editors' own command: it asks ohLsp/candidate
    assert list(fixes[1].command.arguments) == [{"taskId": result["taskId"], "attempt": 1}]

    model.script(Reply.text(fenced(GOOD_TESTS)))
    retry = await run_command(client, fixes[0].command.command, *fixes[0].command.arguments)
    assert retry["taskId"] != result["taskId"]
    end = await finish(client, retry)
    assert end.message.startswith("done: ") and "applied in the editor" in await outcome_logged(client, retry["taskId"])
    prompt = model.requests[-1].body["messages"][-1]["content"]
    assert "previous attempt was rejected" in prompt and "test_divide_by_zero_gives_zero" in prompt
    assert "Write unit tests for divide in module pkg.calc." in prompt
    # the regenerated result replaces the failure's diagnostics with its own: the two mutants no test notices
    regenerated = await until(
        lambda: [d for d in client.diagnostics[calc] if d.data["taskId"] == retry["taskId"]], 5, "new diagnostics"
    )
    assert {d.data["taskId"] for d in client.diagnostics[calc]} == {retry["taskId"]}
    assert [(d.code, d.severity) for d in regenerated] == [("surviving-mutant", t.DiagnosticSeverity.Information)] * 2


async def test_mixed_result_delivers_the_kept_tests_and_reports_the_dropped_one(client, calc, model, workspace) -> None:
    model.script(Reply.text(fenced(MIXED_TESTS)))
    result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "mixed"})
    end = await finish(client, result)
    assert "3 tests kept, 1 dropped" in end.message and "score 0.86" in end.message
    delivered = "".join(
        e.new_text
        for c in client.applied_edits[-1].edit.document_changes
        if isinstance(c, t.TextDocumentEdit)
        for e in c.edits
    )
    assert "def test_divide(" in delivered and "test_divide_by_zero_gives_zero" not in delivered
    test_file = (workspace[0] / "tests" / "pkg" / "test_calc.py").as_uri()
    on_tests = await until(lambda: client.diagnostics.get(test_file), 10, "diagnostics on the test file")
    dropped = next(d for d in on_tests if d.code == "test-failed")
    assert dropped.message.startswith("dropped: test_divide_by_zero_gives_zero failed")
    assert dropped.severity == t.DiagnosticSeverity.Warning and dropped.range.start.line == 0
    bug = next(d for d in client.diagnostics.get(calc, []) if d.code == "possible-bug")
    assert bug.severity == t.DiagnosticSeverity.Warning and bug.range.start.line == 9  # the `raise` in divide


ADD_AND_DIVIDE = """\
from pkg.calc import add, divide


def test_add():
    assert add(2, 3) == 5


def test_divide():
    assert divide(6, 3) == 2
"""
DIVIDE_BY_ZERO = """\
import pytest

from pkg.calc import divide


def test_divide_by_zero():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)
"""


async def test_gaps_are_information_diagnostics_with_generate_tests_for_this(client, calc, model, workspace) -> None:
    """After a unit_test task, what no test runs and the mutants no test notices are Information diagnostics on the
    target; "Generate tests for this" starts a task aimed at that gap, whose prompt and progress name it."""
    model.script(Reply.text(fenced(ADD_AND_DIVIDE)))
    result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "gaps"})
    end = await finish(client, result)
    assert end.message == "done: 2 tests kept, 0 dropped, score 0.73"
    logged = await outcome_logged(client, result["taskId"])
    assert "coverage 25% → 75%" in logged and "mutation 0.00 → 0.71" in logged
    test_file = workspace[0] / "tests" / "pkg" / "test_calc.py"
    try:
        await aimed_at_a_gap(client, calc, model, result, test_file)
    finally:  # the other tests of this module start from a project without tests
        test_file.unlink(missing_ok=True)


async def aimed_at_a_gap(client, calc: str, model, result: dict, test_file: Path) -> None:
    # as the editor saves the file the edit created (the test client only records the edit)
    test_file.parent.mkdir(parents=True, exist_ok=True)
    test_file.write_text(ADD_AND_DIVIDE)
    mine = await until(
        lambda: [d for d in client.diagnostics.get(calc, []) if d.data["taskId"] == result["taskId"]], 10, "gaps"
    )
    by_code = {d.code: d for d in mine}
    uncovered, mutant = by_code["uncovered"], by_code["surviving-mutant"]
    assert uncovered.message == "no test runs this: line 10 is never run" and uncovered.range.start.line == 9
    assert mutant.message == "no test notices if `0` becomes `1` here" and mutant.range.start.line == 8
    assert (mutant.range.start.character, mutant.range.end.character) == (12, 13)  # the `0` of `if b == 0:`
    for diagnostic in (uncovered, mutant, by_code["uncovered-branch"]):
        assert diagnostic.severity == t.DiagnosticSeverity.Information and diagnostic.source == "oh-lsp"
        assert diagnostic.data == {"taskId": result["taskId"], "code": diagnostic.code}

    fixes = await code_actions(client, calc, line=8, diagnostics=[mutant], only=["quickfix"])
    aimed = next(f for f in fixes if f.title == "Generate tests for this")
    (arguments,) = aimed.command.arguments
    assert aimed.command.command == "ohLsp.generateTests" and arguments["uri"] == calc
    assert arguments["gap"] == {
        "kind": "mutant",
        "range": {"start": {"line": 8, "character": 12}, "end": {"line": 8, "character": 13}},
        "detail": "no test notices if `0` becomes `1` here",
    }
    fixes = await code_actions(client, calc, line=9, diagnostics=[uncovered], only=["quickfix"])
    assert [f.title for f in fixes] == ["Generate tests for this", "Regenerate with feedback"]

    model.script(Reply.text(fenced(DIVIDE_BY_ZERO)))
    aimed_task = await run_command(client, fixes[0].command.command, *fixes[0].command.arguments)
    end = await finish(client, aimed_task)
    reports = client.progress_reports[aimed_task["progressToken"]]
    assert reports[0].title == "oh-lsp: Generate tests for calc.py line 10"
    assert any(r.message == "aiming at line 10" for r in reports[1:-1] if getattr(r, "message", None))
    prompt = model.requests[-1].body["messages"][-1]["content"]
    assert "aimed at one gap (line 10): no test runs this: line 10 is never run." in prompt
    gaps = prompt.split("What no test checks yet", 1)[1]
    assert "line 10 is never run" in gaps and "line 9" not in gaps.split("Write tests that")[0]
    assert end.message == "done: 1 test kept, 0 dropped, score 0.86"
    assert "applied in the editor" in await outcome_logged(client, aimed_task["taskId"])
    (row,) = [r for r in await run_command(client, "ohLsp.listTasks", {}) if r["taskId"] == aimed_task["taskId"]]
    assert row["status"] == "completed"

    # "Regenerate with feedback" on that task asks about the same gap again, not about the whole module
    model.script(Reply.text(fenced(DIVIDE_BY_ZERO)))
    again = await run_command(client, "ohLsp.retryTask", {"taskId": aimed_task["taskId"], "withFeedback": True})
    await finish(client, again)
    reports = client.progress_reports[again["progressToken"]]
    assert reports[0].title == "oh-lsp: Generate tests for calc.py line 10"
    prompt = model.requests[-1].body["messages"][-1]["content"]
    assert "line 10 is never run" in prompt.split("What no test checks yet", 1)[1]


async def test_cancel_mid_stream_stops_the_model_call(client, calc, model) -> None:
    model.script(Reply.text(fenced(GOOD_TESTS), chunk_size=4, chunk_delay=0.05))
    result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "slow"})
    token = result["progressToken"]
    await until(
        lambda: any(
            getattr(r, "message", "") and r.message.startswith("streaming")
            for r in client.progress_reports.get(token, [])
        ),
        20,
        "streaming reports",
    )
    client.window_work_done_progress_cancel(t.WorkDoneProgressCancelParams(token=token))
    end = await finish(client, result)
    assert end.message == "cancelled"
    request = model.requests[-1]
    await until(lambda: request.disconnected, 5, "the model server to see the connection closed")
    assert not request.completed and request.chunks_sent < len(fenced(GOOD_TESTS)) // 4
    status = await until(
        lambda: next((s for s in reversed(client.statuses) if s.cancelled >= 1), None),
        5,
        "a status counting the cancel",
    )
    assert status.cancelled == 1
    tasks = await run_command(client, "ohLsp.listTasks", {"status": "cancelled"})
    assert [row["taskId"] for row in tasks] == [result["taskId"]]


async def test_cancel_task_command_by_progress_token(client, calc, model) -> None:
    model.script(Reply.text(fenced(GOOD_TESTS), chunk_size=2, chunk_delay=0.05))
    result = await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "slow again"})
    assert await run_command(client, "ohLsp.cancelTask", {"progressToken": result["progressToken"]}) == {
        "cancelled": True
    }
    assert (await finish(client, result)).message == "cancelled"
    assert await run_command(client, "ohLsp.cancelTask", {"taskId": result["taskId"]}) == {"cancelled": False}


async def test_configuration_change_applies_to_the_next_task(client, calc, model) -> None:
    model.default = Reply.text("I cannot help with that.")  # fails fast: no code, no pytest run
    try:
        client.workspace_did_change_configuration(
            t.DidChangeConfigurationParams(settings={"ohLsp": {"model": "other-model"}})
        )
        await finish(client, await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "a"}))
        assert model.requests[-1].body["model"] == "other-model"

        shown = len(client.messages)
        client.workspace_did_change_configuration(
            t.DidChangeConfigurationParams(
                settings={"ohLsp": {"model": "third-model", "workers": "many", "qualityThreshold": 3}}
            )
        )
        message = await until(lambda: client.messages[shown:] and client.messages[-1], 5, "an error message")
        assert message.type == t.MessageType.Error
        assert "ohLsp.workers must be a whole number" in message.message and "ohLsp.qualityThreshold" in message.message
        await finish(client, await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "b"}))
        assert model.requests[-1].body["model"] == "other-model", "an invalid change keeps the old configuration"

        assert (await run_command(client, "ohLsp.setModel", {"name": "session-model"}))["model"] == "session-model"
        await finish(client, await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "c"}))
        assert model.requests[-1].body["model"] == "session-model"
        assert (await run_command(client, "ohLsp.setModel", {"name": None}))["model"] == "other-model"
    finally:
        model.default = Reply.http_error(500, "no scripted reply")


async def test_status_is_debounced_during_a_burst_of_tasks(client, calc, model) -> None:
    model.default = Reply.text("no code in this answer")  # each task fails at once: many events in a short time
    try:
        failed_before = client.statuses[-1].failed if client.statuses else 0
        first = len(client.status_times)
        results = [
            await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": f"burst {n}"})
            for n in range(12)
        ]
        for result in results:
            await finish(client, result)
        await until(lambda: client.statuses[-1].failed >= failed_before + 12, 5, "the status to count the burst")
    finally:
        model.default = Reply.http_error(500, "no scripted reply")
    times = client.status_times[first:]  # 12 tasks x (queued, started, model chosen, failed) status changes
    assert max(sum(1 for x in times if start <= x < start + 1.0) for start in times) <= 5


async def test_set_api_key_is_used_and_never_logged(client, calc, model, workspace) -> None:
    new_key = "sk-or-v1-SESSION-KEY-fedcba9876543210"
    assert await run_command(client, "ohLsp.setApiKey", {"apiKey": new_key}) == {}
    with pytest.raises(JsonRpcInvalidParams) as bad:
        await run_command(client, "ohLsp.setApiKey", {"apiKey": new_key, "typo": new_key + "-x"})
    assert new_key not in str(bad.value)
    model.script(Reply.text("no code"))
    await finish(client, await run_command(client, "ohLsp.generateTests", {"uri": calc, "description": "key"}))
    assert model.requests[-1].headers["authorization"] == f"Bearer {new_key}"
    log_file = state_dir(workspace[0]) / "oh-lsp.log"
    text = log_file.read_text() if log_file.exists() else ""
    assert new_key not in text and SENTINEL_KEY not in text
    await run_command(client, "ohLsp.setApiKey", {"apiKey": SENTINEL_KEY})


async def test_reporting_commands(client) -> None:
    metrics = await run_command(client, "ohLsp.showMetrics", {})
    assert metrics["system"]["executions"] >= 2 and metrics["system"]["successful"] >= 2
    assert metrics["session"]["completed"] >= 2 and "test-model" in metrics["models"]
    stats = await run_command(client, "ohLsp.queueStats")
    assert stats["completed"] >= 2 and stats["cancelled"] >= 2 and "pending_by_priority" in stats
    chosen = await run_command(client, "ohLsp.selectModel", {"category": "unit_test", "complexity": "simple"})
    assert chosen["model"] == "other-model" and "configured model" in chosen["why"]  # set by the config test
    assert chosen["chain"][0] == "other-model"
    models = await run_command(client, "ohLsp.listModels", {})
    mine = next((m for m in models if m["name"] == "other-model"), None)
    assert mine, models
    assert set(mine) == {
        "name",
        "id",
        "qualityScore",
        "pricePrompt",
        "priceCompletion",
        "contextLength",
        "state",
        "breaker",
    }
    assert mine["state"] == "ready" and mine["breaker"] == "closed"


BAD_CALLS = [
    ("ohLsp.generateTests", [], "takes one object argument"),
    ("ohLsp.generateTests", [{}], "uri is missing"),
    ("ohLsp.generateTests", [{"uri": 5}], "uri must be a non-empty string"),
    ("ohLsp.generateTests", [{"uri": "file:///x.py", "symbol": "1bad"}], "symbol must be a dotted name"),
    ("ohLsp.generateTests", [{"uri": "file:///x.py", "symbol": {"line": -1, "character": 0}}], "symbol must be"),
    ("ohLsp.generateTests", [{"uri": "file:///x.py"}, {"uri": "file:///y.py"}], "it got 2 argument(s)"),
    ("ohLsp.documentModule", [{"uri": 1}], "uri must be"),
    ("ohLsp.refactor", [{"uri": "file:///x.py", "symbol": "f"}], "instruction is missing"),
    ("ohLsp.cancelTask", [{}], "give taskId or progressToken"),
    ("ohLsp.cancelTask", [{"taskId": 3}], "taskId must be"),
    ("ohLsp.retryTask", [{"withFeedback": True}], "taskId is missing"),
    ("ohLsp.retryTask", [{"taskId": "x", "withFeedback": "yes"}], "withFeedback must be true or false"),
    ("ohLsp.showMetrics", [{"verbose": True}], "unknown argument 'verbose'"),
    ("ohLsp.queueStats", ["x"], "takes one object argument"),
    ("ohLsp.listTasks", [{"status": "done"}], "status must be one of"),
    ("ohLsp.selectModel", [{"category": "poetry"}], "category must be one of"),
    ("ohLsp.selectModel", [{"category": "unit_test", "qualityThreshold": 2}], "between 0 and 1"),
    ("ohLsp.listModels", [[]], "takes one object argument"),
    ("ohLsp.setModel", [{}], "name is missing"),
    ("ohLsp.setApiKey", [{"apiKey": ""}], "apiKey must be a non-empty string"),
]


@pytest.mark.parametrize(
    ("command", "arguments", "message"), BAD_CALLS, ids=[f"{c}-{i}" for i, (c, *_) in enumerate(BAD_CALLS)]
)
async def test_bad_arguments_get_invalid_params(client, command, arguments, message) -> None:
    with pytest.raises(JsonRpcInvalidParams) as error:
        await run_command(client, command, *arguments)
    assert message in str(error.value)


async def test_every_command_has_a_bad_call() -> None:
    from oh_lsp.lsp.commands import COMMANDS

    assert {c for c, *_ in BAD_CALLS} == set(COMMANDS)


async def test_bad_targets_get_clear_messages(client, workspace, tmp_path) -> None:
    project = workspace[0]
    cases = [
        ({"uri": (project / "pkg" / "missing.py").as_uri()}, "does not exist under the project root"),
        ({"uri": (project / "pyproject.toml").as_uri()}, "is not a Python file (.py)"),
        ({"uri": (tmp_path / "elsewhere.py").as_uri()}, "is outside the workspace folders"),
        ({"uri": "untitled:Untitled-1"}, "is not a file URI"),
        (
            {"uri": (project / "pkg" / "calc.py").as_uri(), "symbol": "Nope.method"},
            "'Nope.method' is not defined in pkg/calc.py; it defines: add",
        ),
        (
            {"uri": (project / "pkg" / "calc.py").as_uri(), "symbol": {"line": 1, "character": 0}},
            "no function or class at line 2",
        ),
    ]
    (tmp_path / "elsewhere.py").write_text("x = 1\n")
    for arguments, message in cases:
        with pytest.raises(JsonRpcInvalidParams) as error:
            await run_command(client, "ohLsp.generateTests", arguments)
        assert message in str(error.value)
    with pytest.raises(JsonRpcInvalidParams, match="no task 'nope'"):
        await run_command(client, "ohLsp.retryTask", {"taskId": "nope"})
    assert "pending" in await run_command(client, "ohLsp.queueStats", {}), "the server is still alive"
    await asyncio.sleep(0)


async def test_the_result_cache_answers_again_and_every_bypass_asks_the_model(client, calc, model, workspace) -> None:
    """Issue 14 through the server: asking again with nothing changed is served from the result cache (no model call,
    "from cache" at the progress's end and in the status); `noCache: true`, "Regenerate with feedback" and a changed
    test file ask the model; a repeated prompt's cached tokens reach `ohLsp.showMetrics` and the status's savings."""
    from oh_lsp.testing.model_server.wire import PromptCache

    ask = {"uri": calc, "description": "served from the cache"}
    model.prompt_cache = PromptCache(mode="automatic")  # bills and reports cached prompt tokens as OpenRouter does
    try:
        model.script(Reply.text(fenced(GOOD_TESTS)))
        first = await run_command(client, "ohLsp.generateTests", ask)
        end = await finish(client, first)
        assert end.message.startswith("done: ") and "from cache" not in end.message
        calls, edits = len(model.requests), len(client.applied_edits)

        again = await run_command(client, "ohLsp.generateTests", ask)  # nothing scripted: a model call would fail
        end = await finish(client, again)
        assert len(model.requests) == calls, "asking again with nothing changed called the model"
        assert end.message == "done from cache: 3 tests kept, 0 dropped, score 0.86"
        assert "from cache" in await outcome_logged(client, again["taskId"])
        assert len(client.applied_edits) == edits + 1, "the cached edit is delivered again"
        assert client.ended[again["taskId"]]["cost"] == 0 and client.ended[again["taskId"]]["message"] == end.message

        model.script(Reply.text(fenced(GOOD_TESTS)))
        bypass = await finish(client, await run_command(client, "ohLsp.generateTests", {**ask, "noCache": True}))
        assert len(model.requests) == calls + 1 and "from cache" not in bypass.message
        assert model.requests[-1].prompt_cache["cached_tokens"] > 0, "the same prompt again reads the provider's cache"

        model.script(Reply.text(fenced(GOOD_TESTS)))
        retry = await run_command(client, "ohLsp.retryTask", {"taskId": again["taskId"], "withFeedback": True})
        assert "from cache" not in (await finish(client, retry)).message and len(model.requests) == calls + 2

        tests = workspace[0] / "tests"
        (tests / "pkg").mkdir(parents=True, exist_ok=True)  # an earlier test may leave it empty
        (tests / "pkg" / "test_calc.py").write_text("def test_nothing():\n    assert True\n")  # the tests changed
        try:
            model.script(Reply.text(fenced(GOOD_TESTS)))
            changed = await finish(client, await run_command(client, "ohLsp.generateTests", ask))
            assert len(model.requests) == calls + 3 and "from cache" not in changed.message
        finally:
            shutil.rmtree(tests)
    finally:
        model.prompt_cache = None

    metrics = await run_command(client, "ohLsp.showMetrics", {})
    system = metrics["system"]
    assert system["cache_hits"] >= 1 and system["cached_tokens"] > 0
    status = await until(  # the last status says what the metrics say (one workspace folder here)
        lambda: next((s for s in client.statuses[-1:] if s.savings.saved == pytest.approx(system["saved_cost"])), None),
        5,
        "the status's savings",
    )
    assert status.savings.fromCache == system["cache_hits"] and status.savings.cachedShare > 0
    assert status.savings.text == savings_text(system)
    assert status.savings.text.startswith("saved $") and " % cached), " in status.savings.text
