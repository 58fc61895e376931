"""The language server's plain functions, without a client: settings, command arguments, symbols, code actions,
positions and diagnostics, delivery edits, status, progress text; and the engine's reconfiguration."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

import pytest
from lsprotocol import types as t
from pygls.workspace import PositionCodec

from oh_lsp import progress_text, result_facts
from oh_lsp.edits import Edit, FileEdit, whole_file_edit
from oh_lsp.lsp import (
    actions,
    arguments,
    candidates,
    commands,
    delivery,
    diagnostics,
    errors,
    reports,
    settings,
    status,
    symbols,
    under_test,
)
from oh_lsp.paths import sha256_text

UTF16 = PositionCodec(t.PositionEncodingKind.Utf16)
UTF8 = PositionCodec(t.PositionEncodingKind.Utf8)


# --- settings ------------------------------------------------------------------------------------------------------
def test_settings_merge_checks_every_value_and_keeps_the_old_ones_on_error() -> None:
    current, unknown = settings.merge_settings({}, {"model": "m", "workers": 4, "trusted": True, "color": "red"})
    assert current == {"model": "m", "workers": 4, "trusted": True} and unknown == ["color"]
    merged, _ = settings.merge_settings(current, {"model": None, "qualityThreshold": 0.5})
    assert merged == {"workers": 4, "trusted": True, "qualityThreshold": 0.5}, "null resets a setting"
    with pytest.raises(settings.SettingsError) as error:
        settings.merge_settings(current, {"workers": 0, "trusted": "yes", "apiKey": 42, "timeoutSeconds": 1.5})
    text = str(error.value)
    for part in (
        "ohLsp.workers must be a whole number from 1 to 64",
        "ohLsp.trusted must be true or false",
        "ohLsp.apiKey must be a string, not <hidden>",
        "ohLsp.timeoutSeconds must be a whole number",
    ):
        assert part in text
    assert "42" not in text and current == {"model": "m", "workers": 4, "trusted": True}
    assert settings.section_of({"ohLsp": {"model": "x"}}) == {"model": "x"}
    assert settings.section_of({"model": "x"}) == {"model": "x"} and settings.section_of(None) is None


def test_build_config_trust_comes_from_the_editor_never_from_the_project(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("OH_LSP_TRUSTED=true\nOPENHANDS_MODEL=from-dotenv\n")
    config = settings.build_config(tmp_path, {})
    assert config.trusted is False and config.model == "from-dotenv"
    assert settings.build_config(tmp_path, {"trusted": True, "model": "chosen"}).model == "chosen"
    monkeypatch.setenv("MY_KEY", "sk-from-my-env")
    config = settings.build_config(tmp_path, {"apiKeyEnv": "MY_KEY", "timeoutSeconds": 30})
    assert config.api_key.get_secret_value() == "sk-from-my-env" and config.timeout_seconds == 30
    session_key = settings.build_config(tmp_path, {"apiKeyEnv": "MY_KEY"}, settings.Overrides(api_key="sk-session"))
    assert session_key.api_key.get_secret_value() == "sk-session"
    with pytest.raises(settings.SettingsError, match=r"ohLsp\.baseUrl: .*http\(s\) URL"):
        settings.build_config(tmp_path, {"baseUrl": "ftp://example"})


# --- command arguments ---------------------------------------------------------------------------------------------
def test_command_arguments_are_checked_field_by_field() -> None:
    args = arguments.parse(arguments.TargetArgs, "c", [{"uri": "file:///a.py", "symbol": {"line": 3, "character": 1}}])
    assert args.symbol == arguments.Position(3, 1) and args.description == ""
    assert arguments.parse(arguments.TargetArgs, "c", [{"uri": "u", "symbol": "A.b"}]).symbol == "A.b"
    assert arguments.parse(arguments.SetModelArgs, "c", [{"name": None}]).name is None
    assert arguments.parse(arguments.NoArgs, "c", []) == arguments.NoArgs()
    assert arguments.parse(arguments.CancelArgs, "c", [{"progressToken": "tok"}]).progress_token == "tok"
    with pytest.raises(errors.CommandError) as error:
        arguments.parse(arguments.RetryArgs, "ohLsp.retryTask", [{"taskid": "x"}])
    assert str(error.value) == (
        "ohLsp.retryTask: unknown argument 'taskid'; taskId is missing. ohLsp.retryTask takes"
        " one object argument {taskId: string, withFeedback?: boolean}."
    )
    assert arguments.usage(arguments.TargetArgs) == (
        "{uri: string, symbol?: string | {line, character} | null, description?: string, noCache?: boolean}"
    )


def test_feedback_names_the_findings_of_the_failed_attempt() -> None:
    from oh_lsp.tasks import QueuedTask

    task = QueuedTask(
        task_type="unit_test",
        result={
            "validation": {
                "errors": [{"code": "test-failed", "message": "test_x failed: assert 1 == 2"}],
                "warnings": [],
            }
        },
    )
    assert "- test-failed: test_x failed: assert 1 == 2" in commands.feedback_text(task)
    assert commands.feedback_text(QueuedTask(task_type="unit_test", error="HTTP 500")).endswith(
        "- HTTP 500\nDo not repeat these mistakes."
    )


# --- symbols and code actions --------------------------------------------------------------------------------------
SOURCE = '''\
import os


class Shop:
    """A shop."""

    @property
    def name(self):
        return "x"

    def total(self, items):
        def helper(x):
            return x
        return sum(map(helper, items))


def free():
    pass
'''


def test_symbols_under_the_cursor_and_by_name() -> None:
    assert symbols.symbol_at(SOURCE, 13).qualname == "Shop.total.helper"
    assert symbols.symbol_at(SOURCE, 14).qualname == "Shop.total"
    assert symbols.symbol_at(SOURCE, 5).qualname == "Shop"
    assert symbols.symbol_at(SOURCE, 1) is None
    assert symbols.find_symbol(SOURCE, "Shop.name").line == 8
    assert symbols.symbols("def broken(:\n") == ()
    assert "it defines: Shop, Shop.name, Shop.total, Shop.total.helper, free" in symbols.describe_missing(
        SOURCE, "Nope", "shop.py"
    )


def test_code_actions_by_kind_and_the_only_filter() -> None:
    symbol = symbols.find_symbol(SOURCE, "Shop.total")
    every = actions.code_actions("file:///p/shop.py", "shop", symbol, ["unit_test", "documentation", "refactoring"])
    assert [(a.title, a.kind) for a in every] == [
        ("Generate tests for shop", "source.ohLsp.generateTests"),
        ("Document shop", "source.ohLsp.document"),
        ("Generate tests for Shop.total", "refactor.ohLsp.generateTests"),
        ("Document Shop.total", "refactor.ohLsp.document"),
        ("Refactor Shop.total…", "refactor.rewrite.ohLsp"),
    ]
    refactor = every[-1].command
    assert refactor.command == "ohLsp.refactorPrompt" and refactor.arguments == [
        {"uri": "file:///p/shop.py", "symbol": "Shop.total"}
    ]
    assert [a.title for a in actions.code_actions("u", "shop", symbol, ["unit_test"], only=["refactor"])] == [
        "Generate tests for Shop.total"
    ]
    assert (
        actions.code_actions("u", "shop", None, ["documentation"], only=["source.ohLsp.document"])[0].title
        == "Document shop"
    )
    ours = t.Diagnostic(
        range=t.Range(t.Position(0, 0), t.Position(0, 1)),
        message="m",
        source="oh-lsp",
        data={"taskId": "abc", "code": "test-failed"},
    )
    other = t.Diagnostic(range=ours.range, message="m", source="pyright", data={"taskId": "zzz"})
    fixes = actions.code_actions("u", "shop", None, [], [ours, other, ours])
    assert [(f.title, f.kind, f.command.arguments) for f in fixes] == [
        ("Regenerate with feedback", "quickfix", [{"taskId": "abc", "withFeedback": True}])
    ]
    assert fixes[0].diagnostics == [ours, ours]
    with_candidate = t.Diagnostic(
        range=ours.range, message="m", source="oh-lsp", data={"taskId": "abc", "code": "test-failed", "attempt": 2}
    )
    fixes = actions.code_actions("u", "shop", None, [], [ours, with_candidate])
    assert [(f.title, f.command.command, f.command.arguments) for f in fixes] == [
        ("Regenerate with feedback", "ohLsp.retryTask", [{"taskId": "abc", "withFeedback": True}]),
        ("Open the rejected candidate", "ohLsp.openCandidate", [{"taskId": "abc", "attempt": 2}]),
    ]


# --- the function a failing test tests, the rejected candidate --------------------------------------------------
TARGET = """import math


def area(r):
    return helper(r) * 2


def helper(r):
    return math.pi * r * r


class Stack:
    def push(self, item):
        raise NotImplementedError
"""


def test_the_function_under_test_from_the_traceback_a_possible_bug_or_the_call() -> None:
    failures = {
        "test_area": "tests/test_geo.py:4: in test_area\n    area(1)\ngeo.py:5: in area\n"
        "    return helper(r) * 2\ngeo.py:9: ZeroDivisionError\n"
    }
    result = {"validation": {"details": {"failures": failures}}}
    found = under_test.function_under_test("test_area", "geo.py", TARGET, result, None)
    assert found is not None and found.qualname == "area", "its first frame in the target"
    bug = {"code": "possible-bug", "test": "test_b", "file": "geo.py", "line": 14}
    result = {"validation": {"warnings": [bug], "details": {"failures": {"test_b": "tests/test_geo.py:9: E"}}}}
    assert under_test.function_under_test("test_b", "geo.py", TARGET, result, None).qualname == "Stack.push"
    tests = """\
import pytest
from geo import helper as h, Stack


class TestGeo:
    def test_h(self):
        assert round(h(1), 2) == 3.0

def test_push():
    with pytest.raises(TypeError):
        Stack().push(1)

def test_nothing_of_ours():
    assert len([]) == 1
"""
    assert under_test.function_under_test("TestGeo::test_h[1]", "geo.py", TARGET, {}, tests).qualname == "helper"
    assert under_test.function_under_test("test_push", "geo.py", TARGET, {}, tests).qualname == "Stack.push"
    assert under_test.function_under_test("test_nothing_of_ours", "geo.py", TARGET, {}, tests) is None
    assert under_test.function_under_test("test_missing", "geo.py", TARGET, {}, "def broken(:") is None


def test_a_failed_module_tasks_findings_go_to_the_function_and_link_into_the_candidate() -> None:
    generated = "from geo import area\n\n\ndef test_area():\n    assert area(1) == 0\n"
    finding = {
        "code": "test-failed",
        "message": "test_area failed: see tests/test_geo.py:5:1",
        "file": "tests/test_geo.py",
        "line": 4,
        "end_line": 5,
        "test": "test_area",
    }
    result = {"output_file": "tests/test_geo.py", "content": generated, "validation": {"errors": [finding]}}
    found = candidates.Candidate("T", 3, "tests/test_geo.py", {"tests/test_geo.py": generated})
    by_file = diagnostics.task_diagnostics(
        "T", result, completed=False, target="geo.py", text_of={"geo.py": TARGET}.get, codec=UTF16, candidate=found
    )
    (diagnostic,) = by_file["geo.py"]
    assert diagnostic.range.start.line == 3, "`def area`, which the test calls"
    uri = "oh-lsp://candidate/T/3/tests/test_geo.py"
    assert diagnostic.message == f"generated test_geo.py: test_area failed: see {uri}:5:1"
    (link,) = diagnostic.related_information
    assert link.location.uri == uri and (link.location.range.start.line, link.location.range.end.line) == (3, 4)
    assert diagnostic.data == {"taskId": "T", "code": "test-failed", "attempt": 3}


def test_point_into_rewrites_only_the_candidates_locations() -> None:
    found = candidates.Candidate("T", 1, "tests/test_m.py", {"tests/test_m.py": "x", "tests/__init__.py": ""})
    text = "tests/test_m.py:3:1: failed; other/tests/test_m.py:2; tests/test_m.py is named; m.py:4: ok"
    assert found.point_into(text) == (
        "oh-lsp://candidate/T/1/tests/test_m.py:3:1: failed; other/tests/test_m.py:2; tests/test_m.py is named;"
        " m.py:4: ok"
    )
    assert candidates.candidate_uri("a b", 2, "tests/t 1.py") == "oh-lsp://candidate/a%20b/2/tests/t%201.py"


def test_result_facts_give_kept_dropped_with_reasons_coverage_and_mutation() -> None:
    result = {
        "coverage": {"before": 40.0, "after": 72.5, "gained_lines": 3},
        "mutation": {"before": None, "after": 0.625},
        "validation": {
            "errors": [],
            "warnings": [
                {"code": "flaky-test", "test": "test_b[2]", "message": "test_b[2] is flaky: it passed, then failed"},
                {"code": "test-failed", "test": "TestX::test_c", "message": "TestX::test_c failed: assert 1 == 2"},
            ],
            "details": {"kept": ["test_a"], "dropped": ["TestX::test_c", "test_b"]},
        },
    }
    facts = result_facts.result_facts("completed", result)
    assert facts.kept == ["test_a"]
    assert facts.dropped == [
        result_facts.Dropped("TestX::test_c", "failed: assert 1 == 2"),
        result_facts.Dropped("test_b", "is flaky: it passed, then failed"),
    ]
    assert facts.coverage == {"before": 40.0, "after": 72.5}
    assert facts.mutation == {"before": None, "after": 62.5}, "scores 0–1 as percentages"
    bare = result_facts.result_facts("failed", {"validation": {"errors": [{"code": "x", "test": "test_q"}]}})
    assert (bare.kept, bare.dropped, bare.coverage, bare.mutation) == (
        [],
        [result_facts.Dropped("test_q", "x")],
        None,
        None,
    )


# --- positions and diagnostics -------------------------------------------------------------------------------------
def test_finding_columns_become_utf16_or_utf8_units() -> None:
    lines = ["s = '🎉é'; x = 1"]  # code points: 🎉=5, é=6, the closing quote=7; 🎉 is 2 UTF-16 units, 4 bytes
    r16 = diagnostics.lsp_range(lines, UTF16, 1, 7, 1, 8)
    assert (r16.start.character, r16.end.character) == (8, 9)
    r8 = diagnostics.lsp_range(lines, UTF8, 1, 7, 1, 8)
    assert (r8.start.character, r8.end.character) == (11, 12)
    whole = diagnostics.lsp_range(lines, UTF16, 1)
    assert (whole.start.character, whole.end.character) == (0, 16)  # 15 code points, 🎉 counts twice
    clamped = diagnostics.lsp_range(["a", "b"], UTF16, 40)
    assert clamped.start.line == 1
    assert diagnostics.split_lines("a\r\nb\rc\n") == ["a", "b", "c"]


def test_failed_task_findings_are_shown_on_the_target_and_completed_ones_where_they_are() -> None:
    result = {
        "output_file": "tests/test_calc.py",
        "content": "def test_x():\n    assert 1 == 2\n",
        "validation": {
            "errors": [
                {
                    "code": "test-failed",
                    "message": "test_x failed",
                    "file": "tests/test_calc.py",
                    "line": 1,
                    "col": 0,
                    "end_line": 2,
                    "severity": "error",
                    "test": "test_x",
                }
            ],
            "warnings": [
                {
                    "code": "possible-bug",
                    "message": "test_x expected otherwise",
                    "severity": "warning",
                    "file": "calc.py",
                    "line": 3,
                }
            ],
        },
    }
    texts = {"calc.py": "def f():\n    x = 1\n    raise ValueError\n"}
    failed = diagnostics.task_diagnostics(
        "T", result, completed=False, target="calc.py", text_of=texts.get, codec=UTF16, anchor_line=1
    )
    assert list(failed) == ["calc.py"]
    test_failed, bug = failed["calc.py"]
    assert test_failed.message == "generated test_calc.py: test_x failed" and test_failed.range.start.line == 0
    assert (bug.range.start.line, bug.severity) == (2, t.DiagnosticSeverity.Warning)
    assert test_failed.data == {"taskId": "T", "code": "test-failed"} and test_failed.source == "oh-lsp"
    done = diagnostics.task_diagnostics("T", result, completed=True, target="calc.py", text_of=texts.get, codec=UTF16)
    assert done["tests/test_calc.py"][0].range == t.Range(t.Position(0, 0), t.Position(1, 17))


def test_diagnostic_store_replaces_a_slot_and_finds_tasks_without_data() -> None:
    store = diagnostics.DiagnosticStore()
    first = t.Diagnostic(
        range=t.Range(t.Position(1, 0), t.Position(1, 3)),
        message="a",
        code="x",
        source="oh-lsp",
        data={"taskId": "one", "code": "x"},
    )
    assert store.replace(("root", "unit_test", "a.py"), "one", {"u": [first]}) == {"u"}
    assert store.for_uri("u") == [first]
    bare = t.Diagnostic(range=first.range, message="a", code="x", source="oh-lsp")
    assert store.with_task_ids("u", [bare])[0].data == {"taskId": "one", "code": "x"}
    assert store.replace(("root", "unit_test", "a.py"), "two", {}) == {"u"}
    assert store.for_uri("u") == [] and store.known("u", bare) is None


# --- delivery ------------------------------------------------------------------------------------------------------
def test_can_apply_follows_the_clients_capabilities() -> None:
    def caps(apply: bool, operations=None) -> t.ClientCapabilities:
        return t.ClientCapabilities(
            workspace=t.WorkspaceClientCapabilities(
                apply_edit=apply, workspace_edit=t.WorkspaceEditClientCapabilities(resource_operations=operations)
            )
        )

    assert delivery.can_apply(caps(True, [t.ResourceOperationKind.Create]), creates=True)
    assert not delivery.can_apply(caps(True), creates=True) and delivery.can_apply(caps(True), creates=False)
    assert not delivery.can_apply(caps(False, [t.ResourceOperationKind.Create]), creates=False)
    assert not delivery.can_apply(t.ClientCapabilities(), creates=False)


def test_an_edit_is_rebased_on_the_open_buffer_and_sent_in_client_units() -> None:
    from oh_lsp.kinds.unit_test import recompute

    generated = "from m import f\n\n\ndef test_f():\n    assert f() == 1\n"
    made_against = "import os\n"
    result = {"output_file": "tests/test_m.py", "generated_source": generated}
    change = FileEdit(path="tests/test_m.py", new_text=made_against + generated, base_sha256=sha256_text(made_against))
    buffer = "# ünïcode 🎉\nimport os\n\n\ndef test_old():\n    pass\n"  # the user edited the open file since
    bound, outcomes = delivery.bind(
        Edit("l", [change]), recompute(result), lambda _p: (buffer, 7), lambda p: f"file:///p/{p}"
    )
    assert [(o.action, o.message) for o in outcomes] == [("updated", "recomputed against the current file")]
    assert "def test_old" in bound[0].change.new_text and "def test_f" in bound[0].change.new_text
    capabilities = t.ClientCapabilities(
        workspace=t.WorkspaceClientCapabilities(
            apply_edit=True, workspace_edit=t.WorkspaceEditClientCapabilities(document_changes=True)
        )
    )
    workspace_edit = delivery.workspace_edit(bound, UTF16, capabilities)
    (document_edit,) = workspace_edit.document_changes
    assert document_edit.text_document.version == 7
    from oh_lsp.edits import TextEdit
    from oh_lsp.kinds.placement import apply_text_edits

    # the client-unit ranges, applied to the buffer the way an editor would, give the recomputed text
    lines = buffer.split("\n")
    edits = [
        TextEdit(
            e.range.start.line,
            UTF16.position_from_client_units(lines, e.range.start).character,
            e.range.end.line,
            UTF16.position_from_client_units(lines, e.range.end).character,
            e.new_text,
        )
        for e in document_edit.edits
    ]
    assert apply_text_edits(buffer, edits) == bound[0].change.new_text

    refused, outcomes = delivery.bind(Edit("l", [change]), None, lambda _p: (buffer, 7), lambda p: p)
    assert refused == [] and outcomes[0].action == "refused"
    created, _ = delivery.bind(
        Edit("l", [whole_file_edit("tests/__init__.py", None, "")]),
        None,
        lambda _p: (None, None),
        lambda p: f"file:///p/{p}",
    )
    plain = delivery.workspace_edit(created, UTF16, capabilities)
    assert [type(c).__name__ for c in plain.document_changes] == ["CreateFile"], "an empty file needs no text edit"
    no_document_changes = t.ClientCapabilities(workspace=t.WorkspaceClientCapabilities(apply_edit=True))
    assert delivery.workspace_edit(bound, UTF16, no_document_changes).changes["file:///p/tests/test_m.py"]


def test_review_puts_every_change_under_one_annotation_that_needs_confirmation() -> None:
    """reviewEdits: a client that honours change annotations (VS Code) gets each change annotated with one
    `needsConfirmation` annotation, and shows the edit before it lands; other clients get the edit as it is."""
    bound, _ = delivery.bind(
        Edit(
            "Generate tests for m",
            [whole_file_edit("tests/__init__.py", None, ""), whole_file_edit("tests/test_m.py", None, "x = 1\n")],
        ),
        None,
        lambda _p: (None, None),
        lambda p: f"file:///p/{p}",
    )
    annotating = t.ClientCapabilities(
        workspace=t.WorkspaceClientCapabilities(
            apply_edit=True,
            workspace_edit=t.WorkspaceEditClientCapabilities(
                document_changes=True,
                resource_operations=[t.ResourceOperationKind.Create],
                change_annotation_support=t.ChangeAnnotationsSupportOptions(groups_on_label=True),
            ),
        )
    )
    reviewed = delivery.workspace_edit(bound, UTF16, annotating, "Generate tests for m", review=True)
    assert list(reviewed.change_annotations) == [delivery.REVIEW]
    note = reviewed.change_annotations[delivery.REVIEW]
    assert note.needs_confirmation is True and note.label == "Generate tests for m"
    creates = [c for c in reviewed.document_changes if isinstance(c, t.CreateFile)]
    texts = [c for c in reviewed.document_changes if isinstance(c, t.TextDocumentEdit)]
    assert [c.annotation_id for c in creates] == [delivery.REVIEW, delivery.REVIEW]
    assert [type(e).__name__ for c in texts for e in c.edits] == ["AnnotatedTextEdit"]
    assert all(e.annotation_id == delivery.REVIEW for c in texts for e in c.edits)
    # reviewEdits off, or a client without annotation support (Neovim 0.11): the same edit with no annotation
    for edit in (
        delivery.workspace_edit(bound, UTF16, annotating, "l", review=False),
        delivery.workspace_edit(
            bound,
            UTF16,
            t.ClientCapabilities(
                workspace=t.WorkspaceClientCapabilities(
                    apply_edit=True, workspace_edit=t.WorkspaceEditClientCapabilities(resource_operations=["create"])
                )
            ),
            "l",
            review=True,
        ),
    ):
        assert edit.change_annotations is None
        assert all(getattr(c, "annotation_id", None) is None for c in edit.document_changes)
        assert all(
            type(e).__name__ == "TextEdit"
            for c in edit.document_changes
            if isinstance(c, t.TextDocumentEdit)
            for e in c.edits
        )
    # an edit to an existing file is annotated too, in documentChanges form (annotations do not exist in `changes`)
    existing, _ = delivery.bind(
        Edit("l", [whole_file_edit("m.py", "a = 1\n", "a = 2\n")]), None, lambda _p: ("a = 1\n", 3), lambda p: p
    )
    plain_client = t.ClientCapabilities(
        workspace=t.WorkspaceClientCapabilities(
            apply_edit=True,
            workspace_edit=t.WorkspaceEditClientCapabilities(
                change_annotation_support=t.ChangeAnnotationsSupportOptions()
            ),
        )
    )
    (only,) = delivery.workspace_edit(existing, UTF16, plain_client, "l", review=True).document_changes
    assert only.edits[0].annotation_id == delivery.REVIEW


# --- status and progress -------------------------------------------------------------------------------------------
def test_status_counts_events_and_adds_up_the_stores() -> None:
    from oh_lsp import events as ev

    counts = status.SessionCounts()
    assert not counts.on_event(ev.Event(ev.MODEL_CHOSEN, "a", {"model": "m1"})), "chosen is not used yet"
    for kind, task, data in [
        (ev.COMPLETED, "a", {"tokens": 100, "cost": 0.5}),
        (ev.FAILED, "b", {"tokens": 10, "cost": 0.25}),
        (ev.CANCELLED, "c", {}),
        (ev.RETRYING, "d", {"tokens": 1, "cost": 0.0}),
    ]:
        assert counts.on_event(ev.Event(kind, task, data))
    assert not counts.on_event(ev.Event(ev.TOKENS, "t", {"chunks": 3}))
    assert counts.model is None, "a model that was chosen has not answered yet"
    payload = status.build_status(
        counts,
        [{"pending": 2, "running": 1}, {"pending": 1, "running": 0}],
        [
            {
                "system": {
                    "executions": 4,
                    "successful": 3,
                    "cost_today": 1.0,
                    "prompt_tokens": 1000,
                    "cached_tokens": 600,
                    "saved_cost": 0.002,
                    "cache_hits": 1,
                },
                "budget": {"spent_today_usd": 1.25},
            },
            {
                "system": {
                    "executions": 0,
                    "successful": 0,
                    "cost_today": 0.5,
                    "prompt_tokens": 1000,
                    "cached_tokens": 200,
                    "saved_cost": 0.001,
                }
            },
        ],
        "configured",
        status.model_layer_state([]),
    )
    assert payload == {
        "queued": 3,
        "running": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
        "tokens": 111,
        "tokensEstimated": False,
        "costSession": 0.75,
        "costToday": 1.75,  # the call ledger where the store has one (it grows per call), else the attempts
        "successRate": 0.75,
        "model": None,
        "modelSelected": "configured",
        "cooldowns": [],
        "breakers": [],
        "budgetLeftToday": None,
        # what caching saved, added up over the stores: USD, the share of prompt tokens cached, results from cache
        "savings": {
            "saved": 0.003,
            "cachedShare": 0.4,
            "fromCache": 1,
            "text": "saved $0.003000 (40 % cached), 1 result from cache",
        },
    }
    nothing_ended = status.build_status(status.SessionCounts(), [], [{"system": {"executions": 0}}], None, {})
    assert nothing_ended["successRate"] is None, "no rate before anything has finished"


def test_status_moves_with_each_model_call_and_names_the_model_that_answered() -> None:
    """Cost and tokens grow with each call's final `tokens` event (cumulative per attempt), the attempt's end adds
    only what was not counted yet, and `model` is the model that answered last, not the one a call was sent to."""
    from oh_lsp import events as ev

    counts = status.SessionCounts()
    assert not counts.on_event(ev.Event(ev.MODEL_CHOSEN, "a", {"model": "first"}))
    assert not counts.on_event(ev.Event(ev.MODEL_CHOSEN, "a", {"model": "second"}))  # rotated: "first" failed
    assert counts.on_event(ev.Event(ev.TOKENS, "a", {"final": True, "tokens": 400, "cost": 0.001}))
    assert (counts.tokens, counts.cost, counts.model) == (400, 0.001, "second")
    counts.on_event(ev.Event(ev.MODEL_CHOSEN, "a", {"model": "second"}))  # the repair call
    counts.on_event(ev.Event(ev.TOKENS, "a", {"final": True, "tokens": 900, "cost": 0.0025}))
    assert (counts.tokens, round(counts.cost, 6)) == (900, 0.0025)
    counts.on_event(ev.Event(ev.COMPLETED, "a", {"tokens": 900, "cost": 0.0025, "model": "second"}))
    assert (counts.tokens, round(counts.cost, 6), counts.completed) == (900, 0.0025, 1), "not counted twice"
    # a runtime that reports only at the end, and a task cancelled after a call
    counts.on_event(ev.Event(ev.FAILED, "b", {"tokens": 50, "cost": 0.0005}))
    counts.on_event(ev.Event(ev.MODEL_CHOSEN, "c", {"model": "third"}))
    counts.on_event(ev.Event(ev.TOKENS, "c", {"final": True, "tokens": 10, "cost": 0.0001}))
    counts.on_event(ev.Event(ev.CANCELLED, "c", {}))
    assert (counts.tokens, round(counts.cost, 6), counts.model) == (960, 0.0031, "third")


async def test_debouncer_sends_at_most_once_per_interval() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send() -> None:
        sent.append(loop.time())

    debouncer = status.Debouncer(send, interval=0.05)
    started = loop.time()
    for _ in range(200):
        debouncer.poke()
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.12)
    await debouncer.aclose()
    most = (loop.time() - started) / 0.05 + 1  # 200 pokes take longer than 0.2 s on a busy machine
    assert 2 <= len(sent) <= most < 200, sent
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(sent))


def test_outcome_text_names_file_score_tests_coverage_and_cost() -> None:
    result = {
        "output_file": "tests/test_m.py",
        "score": 0.75,
        "tests": ["test_a", "test_b", "test_c"],
        "coverage": {"before": 40.0, "after": 72.5},
        "validation": {"errors": [{"code": "test-failed", "test": "test_c"}]},
    }
    assert progress_text.outcome_text("completed", result, cost=0.0123, delivered="applied in the editor") == (
        "tests/test_m.py (applied in the editor), score 0.75, 2 tests kept, 1 dropped,"
        " coverage 40% → 72% (+32 pts), $0.0123"
    )
    assert progress_text.outcome_text("failed", None, error="HTTP 401") == "failed: HTTP 401, $0.000000"
    result["mutation"] = {"before": 0.4, "after": 0.85}
    assert progress_text.outcome_text("completed", result).endswith("(+32 pts), mutation 0.40 → 0.85, $0.000000")


def test_summaries_of_several_stores() -> None:
    one = {
        "system": {
            "executions": 2,
            "successful": 2,
            "total_cost": 1.0,
            "avg_duration_seconds": 1.0,
            "avg_quality_score": 5.0,
        },
        "models": {"a": {"executions": 2, "successful": 2}},
        "task_types": {},
    }
    two = {
        "system": {
            "executions": 2,
            "successful": 0,
            "total_cost": 0.5,
            "avg_duration_seconds": 3.0,
            "avg_quality_score": 0.0,
        },
        "models": {"a": {"executions": 2, "successful": 0, "tokens_estimated": True}},
        "task_types": {},
    }
    merged = reports.merge_metrics([one, two])
    assert merged["models"]["a"]["tokens_estimated"] and not merged["system"]["tokens_estimated"]
    assert merged["system"]["success_rate"] == 0.5 and merged["system"]["total_cost"] == 1.5
    assert merged["system"]["avg_duration_seconds"] == 2.0 and merged["system"]["avg_quality_score"] == 5.0
    assert merged["models"]["a"]["executions"] == 4
    counts = reports.merge_counts(
        [
            {"pending": 1, "next_retry_at": None, "store": "a", "pending_by_priority": {"high": 1}},
            {"pending": 2, "next_retry_at": 5.0, "store": "b", "pending_by_priority": {"high": 2}},
        ]
    )
    assert counts == {"pending": 3, "next_retry_at": 5.0, "stores": ["a", "b"], "pending_by_priority": {"high": 3}}


def test_logs_hide_api_key_parameters_even_when_the_key_is_unknown() -> None:
    from oh_lsp.logs import RedactSecrets

    record = logging.LogRecord(
        "pygls",
        logging.ERROR,
        "p",
        1,
        "Failed to handle request %s %s",
        ("7", "ExecuteCommandParams(command='ohLsp.setApiKey', arguments=[{'apiKey': 'sk-unknown-123'}])"),
        None,
    )
    RedactSecrets([]).filter(record)
    assert "sk-unknown-123" not in record.getMessage() and "'apiKey': '***'" in record.getMessage()


# --- the engine follows configuration changes ----------------------------------------------------------------------
async def test_engine_reconfigure_changes_config_and_workers_for_the_next_tasks(project: Path) -> None:
    from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
    from oh_lsp.attempt import Outcome

    seen: list[tuple[str, int]] = []
    running = 0

    async def executor(task, ctx):
        nonlocal running
        running += 1
        seen.append((ctx.config.model, running))
        await asyncio.sleep(0.3)
        running -= 1
        return Outcome("completed", result={})

    engine = ExecutionEngine(  # batching off: two tasks on one target would otherwise run one after the other
        OpenHandsConfig(model="first", batch_window_seconds=0),
        1,
        project_root=project,
        executor=executor,
        poll_interval=0.02,
    )
    await engine.start()
    try:
        engine.reconfigure(OpenHandsConfig(model="second", batch_window_seconds=0), max_concurrent_tasks=2)
        ids = [
            await engine.submit_task(QueuedTask(task_type="unit_test", description=str(i), target_file="pkg/calc.py"))
            for i in range(2)
        ]
        for task_id in ids:
            await engine.wait_for(task_id, timeout=10)
        assert [model for model, _ in seen] == ["second", "second"]
        assert max(n for _, n in seen) == 2, "two workers ran at once"
        engine.reconfigure(engine.config, max_concurrent_tasks=1)
        seen.clear()
        ids = [
            await engine.submit_task(QueuedTask(task_type="unit_test", description=f"b{i}", target_file="pkg/calc.py"))
            for i in range(2)
        ]
        for task_id in ids:
            await engine.wait_for(task_id, timeout=10)
        assert max(n for _, n in seen) == 1, "back to one worker"
    finally:
        await engine.stop()
        engine.close()
