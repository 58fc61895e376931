"""What the editor gets when a task ends, through a real `oh-lsp serve` with VS Code's recorded capabilities: the
`reviewEdits` setting on the edit, a failed module-wide task's diagnostics at the function its test tests, the
`ohLsp/candidate` request (and its bad inputs), and the status's `modelSelected` when no model was chosen. The server
runs without OPENHANDS_MODEL: the selector picks from the scripted endpoint's models."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams

from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import GOOD_TESTS, fenced
from tests.lsp_client import (
    candidate,
    ended,
    make_project,
    outcome_logged,
    run_command,
    start_vscode_server,
    stop_server,
    until,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

# fails inside the target: its traceback runs through `divide`
RAISES_IN_DIVIDE = """\
from pkg.calc import divide


def test_divide_by_zero_gives_zero():
    assert divide(1, 0) == 0
"""
# fails in the test itself (a wrong expectation): only its call says what it tests; `plus` is `add` imported as
ASSERTS_WRONG_SUM = """\
import pytest
from pkg.calc import add as plus


def test_sum_is_wrong():
    with pytest.raises(AssertionError):
        pass
    assert plus(2, 2) == 5
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("lsp-task-end")
    return make_project(base / "proj"), base / "state"


@pytest.fixture(scope="module")
def model():
    with ScriptedModelServer() as server:
        server.models = [{"id": "test-model"}]
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(workspace, model, light_python):
    client = await start_vscode_server(workspace, model.base_url, light_python, OPENHANDS_MODEL=None)  # no model set
    yield client
    await stop_server(client)


@pytest.fixture
def calc(workspace) -> str:
    return (workspace[0] / "pkg" / "calc.py").as_uri()


async def generate(client, arguments: dict) -> tuple[dict, t.WorkDoneProgressEnd]:
    result = await run_command(client, "ohLsp.generateTests", arguments)
    end = await until(lambda: ended(client, result["progressToken"]), 60, "the progress to end")
    return result, end


async def test_model_selected_is_null_until_a_model_is_chosen(client) -> None:
    first = await until(lambda: client.statuses and client.statuses[-1], 20, "a status")
    assert first.modelSelected is None and first.model is None, "nothing chosen, nothing used yet"
    await run_command(client, "ohLsp.setModel", {"name": "test-model"})
    chosen = await until(
        lambda: next((s for s in reversed(client.statuses) if s.modelSelected), None), 5, "the chosen model"
    )
    assert chosen.modelSelected == "test-model"
    seen = len(client.statuses)
    await run_command(client, "ohLsp.setModel", {"name": None})
    back = await until(lambda: client.statuses[seen:] and client.statuses[-1], 5, "a status after the reset")
    assert back.modelSelected is None


async def test_review_edits_on_annotates_the_edit_and_off_sends_it_plain(client, calc, model) -> None:
    """reviewEdits (default on): every change carries the annotation that needs confirmation (VS Code's refactor
    preview); set to false, the same kind of edit comes with no annotation, to be applied at once."""
    model.script(Reply.text(fenced(GOOD_TESTS)))
    result, end = await generate(client, {"uri": calc, "symbol": "add"})
    assert end.message.startswith("done: ") and "applied in the editor" in await outcome_logged(
        client, result["taskId"]
    )
    reviewed = client.applied_edits[-1].edit
    (note,) = reviewed.change_annotations.values()
    assert note.needs_confirmation is True
    changes = reviewed.document_changes
    assert all(c.annotation_id in reviewed.change_annotations for c in changes if isinstance(c, t.CreateFile))
    assert all(
        e.annotation_id in reviewed.change_annotations
        for c in changes
        if isinstance(c, t.TextDocumentEdit)
        for e in c.edits
    )

    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ohLsp": {"reviewEdits": False}})
    )
    try:
        model.script(Reply.text(fenced(GOOD_TESTS)))
        result, end = await generate(client, {"uri": calc, "symbol": "divide", "description": "review off"})
        assert end.message.startswith("done: ")
        assert "applied in the editor" in await outcome_logged(client, result["taskId"])
        plain = client.applied_edits[-1].edit
        assert plain.change_annotations is None
        assert plain.document_changes, "a new file is still a CreateFile"
        for change in plain.document_changes:
            if isinstance(change, t.CreateFile):
                assert change.annotation_id is None
            else:
                assert all(not isinstance(e, t.AnnotatedTextEdit) for e in change.edits)
    finally:
        client.workspace_did_change_configuration(
            t.DidChangeConfigurationParams(settings={"ohLsp": {"reviewEdits": None}})  # back to the default
        )


async def failing_module_task(client, calc: str, model, tests: str) -> dict[str, t.Diagnostic]:
    """A module-wide task whose answer is `tests`, which fail: its diagnostics on the target, by code."""
    model.script(Reply.text(fenced(tests)))
    result, end = await generate(client, {"uri": calc, "description": tests})
    assert end.message.startswith("failed: ")
    found = await until(
        lambda: [d for d in client.diagnostics.get(calc, []) if d.data["taskId"] == result["taskId"]],
        10,
        "the diagnostics",
    )
    return {d.code: d for d in found}


async def test_a_module_tasks_failing_test_points_at_the_function_it_tests(client, calc, model) -> None:
    """No symbol was given: the failing test's diagnostic goes to the function under test, found from its traceback
    (`divide`, where it raised), or else from its call (`plus` is `add`: the traceback never enters the target)."""
    by_code = await failing_module_task(client, calc, model, RAISES_IN_DIVIDE)
    assert by_code["test-failed"].range.start.line == 7, "`def divide`, where the test's traceback went"
    assert by_code["possible-bug"].range.start.line == 9  # the `raise`, as before

    by_code = await failing_module_task(client, calc, model, ASSERTS_WRONG_SUM)
    test_failed = by_code["test-failed"]
    assert test_failed.range.start.line == 3, "`def add`, the function its call names"
    assert "possible-bug" not in by_code


async def test_the_candidate_request_gives_each_file_and_refuses_bad_input_clearly(client, calc, model) -> None:
    model.script(Reply.text(fenced(RAISES_IN_DIVIDE)))
    failed, _end = await generate(client, {"uri": calc, "description": "candidate"})
    task = failed["taskId"]
    main = await candidate(client, {"taskId": task, "attempt": 1})
    assert main == {"uri": f"oh-lsp://candidate/{task}/1/tests/pkg/test_calc.py", "text": RAISES_IN_DIVIDE}
    init = await candidate(client, {"taskId": task, "segment": "tests/pkg/__init__.py"})
    assert init == {"uri": f"oh-lsp://candidate/{task}/1/tests/pkg/__init__.py", "text": ""}

    model.script(Reply.text(fenced(GOOD_TESTS)))
    completed, _end = await generate(client, {"uri": calc, "description": "a completed one"})
    model.script(Reply.text("I would rather not write code today."))
    no_code, _end = await generate(client, {"uri": calc, "description": "no code"})
    bad = [
        ({"taskId": "nope"}, "ohLsp/candidate: no task 'nope' in the workspace folders' stores"),
        ({"taskId": completed["taskId"]}, "has no rejected candidate: it completed, and its result was delivered"),
        ({"taskId": no_code["taskId"]}, "has no rejected candidate: its model's answer held no code to check"),
        ({"taskId": task, "attempt": 2}, "keeps only the candidate of attempt 1, not of attempt 2"),
        ({"taskId": task, "segment": "nope.py"}, "has no file 'nope.py'; its files: tests/__init__.py,"),
        ({"taskId": task, "attempt": 0}, "attempt must be a whole number from 1, not 0"),
        ({"attempt": 1}, "taskId is missing. ohLsp/candidate takes one object argument {taskId: string"),
        ({"taskId": task, "path": "x"}, "unknown argument 'path'"),
        (None, "ohLsp/candidate takes one object argument"),
    ]
    for params, message in bad:
        with pytest.raises(JsonRpcInvalidParams) as error:
            await candidate(client, params)
        assert message in str(error.value), (params, str(error.value))
    assert (await candidate(client, {"taskId": task}))["text"] == RAISES_IN_DIVIDE, "the server is still fine"
