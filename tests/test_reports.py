"""Honest reports (issue 17, items 4-7), against the scripted model server: the log file tells each task's life; a
failed task reports its best and its last answer with the right count; progress events come in order and each stage
is one short line (at most 60 characters, the contract's rule); progress goes to stderr and the result alone to
stdout; a live display on a terminal, plain lines otherwise; a result says whether its file was `written`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oh_lsp import ExecutionEngine, QueuedTask, TaskStatus
from oh_lsp import events as ev
from oh_lsp.paths import state_dir
from oh_lsp.progress_text import MAX_CHARS, event_text, final_text, fit, fit_path, outcome_text, stage_text
from oh_lsp.testing.model_server import Reply
from tests.conftest import FAILING_TESTS, GOOD_TESTS, OH_LSP, SENTINEL_KEY, cli_env, fenced, run_task

ANSI = re.compile(r"\x1b\[")
OTHER_FAILING_TESTS = """\
from pkg.calc import divide


def test_divide_is_wrong():
    assert divide(6, 3) == 3
"""
ONE_TEST = "from pkg.other import one\n\n\ndef test_one():\n    assert one() == 1\n"
LONG = "x" * 400
LONG_PATH = "src/" + "/".join(["a_rather_long_package_name"] * 6) + "/module_with_a_long_name.py"


def run(project: Path, env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


# --- item 6: one short line per stage ---------------------------------------------------------------------------------
def every_kind_of_event() -> list[ev.Event]:
    """An event of every kind the engine publishes, each with its longest data: long paths, long errors, a model's
    330-character why, long findings."""
    why = "test-model: " + "the only model that meets the requirements; quality unknown, ~2000 ms, " * 5
    result = {
        "kind": "unit_test",
        "output_file": LONG_PATH,
        "score": 0.5,
        "iterations": 3,
        "validation": {"errors": [{"code": "test-failed", "test": "test_x", "message": LONG}], "details": {}},
        "tests": ["test_x", "test_y"],
        "coverage": {"before": 10.0, "after": 90.0},
    }
    where = {"kind": "unit_test", "target": LONG_PATH}
    events = [
        ev.Event(ev.QUEUED, "t" * 32, {"position": 12345, "duplicate": False, **where}),
        ev.Event(ev.QUEUED, "t" * 32, {"position": None, "duplicate": True, **where}),
        ev.Event(ev.STARTED, "t" * 32, {"attempt": 3, **where}),
        ev.Event(ev.MODEL_CHOSEN, "t" * 32, {"model": "test-model", "why": why}),
        ev.Event(ev.MODEL_CHOSEN, "t" * 32, {"model": "m" * 100, "why": why}),
        ev.Event(ev.TOKENS, "t" * 32, {"chunks": 1234, "chars": 5_000_000}),
        ev.Event(ev.TOKENS, "t" * 32, {"chunks": 1234}),
        ev.Event(ev.TOKENS, "t" * 32, {"final": True, "tokens": 123_456_789, "cost": 1234.5, "estimated": True}),
        ev.Event(ev.TOKENS, "t" * 32, {"final": True, "tokens": 976, "cost": 0.0, "cost_source": "local"}),
        ev.Event(ev.VALIDATING, "t" * 32, {"step": "checks", "iteration": 2, "of": 3, "output_file": LONG_PATH}),
        ev.Event(ev.VALIDATING, "t" * 32, {"step": LONG}),
        ev.Event(ev.CHECKED, "t" * 32, {"iteration": 2, "of": 3, "passed": False, "score": 0.0, "code": LONG}),
        ev.Event(ev.CHECKED, "t" * 32, {"iteration": 2, "of": 3, "passed": True, "score": 1, "kept": 99, "dropped": 9}),
        ev.Event(ev.PROGRESS, "t" * 32, {"message": LONG}),
        ev.Event(ev.PROGRESS, "t" * 32, {"message": LONG, "rotation": {"from": "a" * 80, "to": "b" * 80}}),
        ev.Event(ev.PROGRESS, "t" * 32, {"message": LONG, "repair": 1, "of": 2}),
        ev.Event(ev.PROGRESS, "t" * 32, {"message": LONG, "delivered": True, "output_file": LONG_PATH}),
        ev.Event(ev.WARNING, "t" * 32, {"message": LONG}),
        ev.Event(ev.HALTED, "", {"message": LONG}),
        ev.Event(ev.RETRYING, "t" * 32, {"delay": 12345.6, "error": LONG}),
        ev.Event(ev.COMPLETED, "t" * 32, {"result": result, "cost": 1.5}),
        ev.Event(ev.FAILED, "t" * 32, {"result": result, "error": LONG}),
        ev.Event(ev.FAILED, "t" * 32, {"result": None, "error": LONG}),
        ev.Event(ev.CANCELLED, "t" * 32, {"reason": LONG}),
    ]
    published = {value for name, value in vars(ev).items() if name.isupper() and isinstance(value, str)}
    assert published <= {e.kind for e in events}, "a new kind of event needs its line here"
    return events


def test_every_kind_of_event_is_one_line_of_at_most_60_characters() -> None:
    for event in every_kind_of_event():
        for text in (stage_text(event), event_text(event), event_text(event, MAX_CHARS - 9)):
            assert text, event.kind
            assert len(text) <= MAX_CHARS and "\n" not in text, (event.kind, text)
        assert len(event_text(event, MAX_CHARS - 9)) <= MAX_CHARS - 9
    for status in ("completed", "failed", "cancelled"):
        for written in (True, False, None):
            text = final_text(status, every_kind_of_event()[-4].data["result"], error=LONG, written=written)
            assert len(text) <= MAX_CHARS, text


def test_a_stage_says_one_thing_and_a_number() -> None:
    texts = [stage_text(e) for e in every_kind_of_event()]
    assert "queued (position 12345)" in texts and "already queued" in texts
    assert "started again (attempt 3)" in texts
    assert "model test-model" in texts, "the model's why is not a stage: it goes to the log, -v and get-status"
    assert "streaming ~1.2M tokens" in texts and "answer received: ~123.5M tokens, $1234.5000" in texts
    assert "answer received: 976 tokens, local: no cost" in texts
    assert "validating answer 2/3" in texts and "repair 1/2: asking again with the findings" in texts
    assert "answer 2/3: 99 kept, 9 dropped, score 1.00" in texts
    assert "done: 1 test kept, 1 dropped, score 0.50" in texts
    assert "failed after 3 answers: test-failed" in texts
    assert fit_path(LONG_PATH, 30) == "…/module_with_a_long_name.py"
    assert fit("one two three four five", 16) == "one two three…"
    started = event_text(ev.Event(ev.STARTED, "t", {"attempt": 1, "kind": "unit_test", "target": "pkg/calc.py"}))
    assert started == "started unit_test pkg/calc.py"


def test_the_long_account_of_a_task_is_not_a_progress_text() -> None:
    result = every_kind_of_event()[-4].data["result"]
    text = outcome_text("completed", result, cost=0.5, delivered="written")
    assert LONG_PATH in text and "coverage 10% → 90% (+80 pts)" in text and len(text) > MAX_CHARS


# --- item 6: events in order ------------------------------------------------------------------------------------------
async def test_queued_is_published_before_started_and_with_its_position(project: Path, model_server) -> None:
    """Workers that poll all the time claim a task as soon as it is stored: the "queued" event, with the task's place,
    still comes before the "started" event of the worker that claims it."""
    from oh_lsp.testing.fleet_worker import stub_executor
    from tests.test_engine import make_config

    engine = ExecutionEngine(
        make_config(model_server), 4, project_root=project, poll_interval=0.001, executor=stub_executor
    )
    seen: list[ev.Event] = []
    engine.subscribe(seen.append)
    await engine.start()
    try:
        ids = []
        for i in range(12):
            ids.append(await engine.submit_task(QueuedTask(task_type="unit_test", description=f"task {i}")))
            await asyncio.sleep(0.01)  # the workers are polling again
        for task_id in ids:
            await engine.wait_for(task_id, timeout=30)
    finally:
        await engine.stop()
        engine.close()
    for task_id in ids:
        kinds = [e.kind for e in seen if e.task_id == task_id]
        assert kinds[:2] == [ev.QUEUED, ev.STARTED], kinds
        queued = next(e for e in seen if e.task_id == task_id and e.kind == ev.QUEUED)
        assert isinstance(queued.data["position"], int) and queued.data["position"] >= 1


# --- items 5 and 7: a failed task's report -----------------------------------------------------------------------------
async def test_a_failed_task_reports_its_best_and_its_last_answer(project: Path, model_server) -> None:
    """Three answers that keep nothing: attempt 1's failing test, attempt 2 without code, attempt 3's other failing
    test. None keeps a test, so each scores what the existing tests are worth (0.12) and the best is the first: the
    report names it and the last one, and counts 3 answers. The candidate kept for inspection is the last one's."""
    model_server.script(
        Reply.text(fenced(FAILING_TESTS)),
        Reply.text("I cannot write tests for this."),
        Reply.text(fenced(OTHER_FAILING_TESTS)),
    )
    seen: list[ev.Event] = []
    task = await run_task(project, model_server, max_repair_iterations=2, events=seen)
    assert task.status is TaskStatus.FAILED and len(model_server.requests) == 3
    assert task.error.startswith("validation failed after 3 answers; best, answer 1: failed (score 0.12)")
    assert "test_add_is_wrong" in task.error.split("; last,")[0]
    assert "; last, answer 3: failed (score 0.12)" in task.error and "test_divide_is_wrong" in task.error
    result = task.result
    assert (result["iterations"], result["attempt"], result["last_attempt"]) == (3, 3, 3)
    assert [a["iteration"] for a in result["attempts"]] == [1, 2, 3]
    assert result["output_file"] == "tests/pkg/test_calc.py" and result["written"] is False
    assert task.summary()["answers"] == 3 and task.summary()["written"] is False

    checked = [e.data for e in seen if e.kind == ev.CHECKED]
    assert [(c["iteration"], c["of"], c["passed"]) for c in checked] == [(1, 3, False), (2, 3, False), (3, 3, False)]
    assert [c["code"] for c in checked] == ["test-failed", "no-code-in-answer", "test-failed"]
    kinds = [e.kind for e in seen]
    assert kinds[:2] == [ev.QUEUED, ev.STARTED] and seen[0].data["position"] == 1
    assert kinds[-1] == ev.FAILED
    assert stage_text(seen[-1]) == "failed after 3 answers: test-failed"
    assert not (project / "tests").exists()


def test_the_cli_reports_the_last_answer_and_that_nothing_was_written(project: Path, model_server) -> None:
    model_server.script(
        Reply.text(fenced(FAILING_TESTS)),
        Reply.text("I cannot write tests for this."),
        Reply.text(fenced(OTHER_FAILING_TESTS)),
    )
    env = cli_env(project, model_server.base_url, OH_LSP_MAX_REPAIR_ITERATIONS="2")
    out = run(project, env, "generate-tests", "pkg/calc.py", "--json")
    assert out.returncode == 1, out.stderr
    status = json.loads(out.stdout)
    assert status["status"] == "failed" and status["answers"] == 3 and status["attempts"] == 1
    assert status["written"] is False and status["result"]["written"] is False
    assert status["result"]["output_file"] == "tests/pkg/test_calc.py" and status["delivery"] is None
    assert "best, answer 1" in status["error"] and "last, answer 3" in status["error"]

    text = run(project, env, "get-status", "--task-id", status["task_id"]).stdout
    assert "attempts: 1 (3 answers)" in text
    assert "output:   tests/pkg/test_calc.py  (not written: the task failed)" in text
    assert "not delivered yet" not in text
    assert "checks:   failed, score 0.00, answer 3 of 3" in text, "the candidate kept is the last answer's"
    assert "test_add_is_wrong" in text and "test_divide_is_wrong" in text
    assert "why:      test-model:" in text, "get-status keeps the long why of the model choice"


# --- item 7: written ----------------------------------------------------------------------------------------------------
async def test_an_edit_the_api_returned_is_not_written(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server)
    assert task.status is TaskStatus.COMPLETED and task.delivery is None
    assert task.result["output_file"] == "tests/pkg/test_calc.py" and task.result["written"] is False
    assert task.written is False and task.summary()["written"] is False
    assert not (project / "tests").exists()


async def test_an_edit_the_engine_applied_is_written(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    from oh_lsp.queue import TaskQueue

    finished = await run_task(project, model_server, apply_edits=True)
    queue = TaskQueue(project_root=project)
    try:
        applied = await queue.get_task(finished.task_id)  # as delivered once the engine stopped
    finally:
        queue.close()
    assert applied.status is TaskStatus.COMPLETED and applied.delivery == "applied", applied.error
    assert applied.result["written"] is True and applied.summary()["written"] is True
    assert (project / "tests" / "pkg" / "test_calc.py").exists()


# --- item 4: the log ----------------------------------------------------------------------------------------------------
def test_the_log_file_tells_each_tasks_life_with_the_key_redacted(project: Path, model_server) -> None:
    """`generate-tests` twice: a task that fails after a repair, then one that completes. `oh-lsp logs` shows their
    lives at the default level: queued, started, the model and the long why of its choice (once), each answer's
    verdict, the repair, the end, and the file written. An error that echoes the key is logged without it."""
    model_server.script(
        Reply.text(fenced(FAILING_TESTS)),
        Reply.http_error(500, f"upstream failed for key {SENTINEL_KEY}"),  # retried on the same model...
        Reply.http_error(500, f"upstream failed for key {SENTINEL_KEY}"),
        Reply.text(fenced(OTHER_FAILING_TESTS)),  # ... which answers the third time
    )
    env = cli_env(project, model_server.base_url, OH_LSP_MAX_REPAIR_ITERATIONS="1")
    failed = run(project, env, "generate-tests", "pkg/calc.py", "--json")
    assert failed.returncode == 1, failed.stderr
    failed_id = json.loads(failed.stdout)["task_id"]
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    done = run(project, env, "generate-tests", "pkg/calc.py", "--json", "--description", "again", "-v")
    assert done.returncode == 0, done.stderr
    done_id = json.loads(done.stdout)["task_id"]
    assert f"task {done_id} model test-model; why: test-model: the configured model" in done.stderr, "-v shows it"

    logs = run(project, env, "logs", "-n", "200")
    assert logs.returncode == 0
    log = logs.stdout
    assert SENTINEL_KEY not in log and SENTINEL_KEY not in failed.stderr + done.stderr + failed.stdout
    store = state_dir(project)
    assert SENTINEL_KEY.encode() not in b"".join(p.read_bytes() for p in store.iterdir() if p.is_file())
    mine = [line for line in log.splitlines() if f"task {failed_id} " in line]
    assert all(" INFO oh_lsp.tasks: " in line for line in mine), mine
    story = "\n".join(mine)
    for words in (
        "queued: unit_test pkg/calc.py (position 1)",
        "started: unit_test pkg/calc.py, attempt 1",
        "model test-model; why: test-model: the configured model",  # the long why, in the log only
        "answer 1 of at most 2: failed (score 0.12): tests/pkg/test_calc.py:4:1: test-failed: test_add_is_wrong",
        "repair iteration 1 of 1",
        "answer 2 of at most 2: failed (score 0.12): tests/pkg/test_calc.py:4:1: test-failed: test_divide_is_wrong",
        "failed: validation failed after 2 answers; best, answer 1",
    ):
        assert words in story, (words, story)
    assert story.count("; why: test-model: the configured model") == 1, "logged once, not for every repair"
    assert "why: retry 1 of 2 on test-model after: server error: upstream failed for key" in story
    assert "***" in story or "[redacted]" in story
    order = [story.index(w) for w in ("queued:", "started:", "model test-model;", "answer 1 of", "failed:")]
    assert order == sorted(order)

    finished = "\n".join(line for line in log.splitlines() if f"task {done_id} " in line)
    assert "completed with test-model: tests/pkg/test_calc.py" in finished
    assert "written: created tests/__init__.py" in finished and "tests/pkg/test_calc.py" in finished


# --- item 6: stderr and stdout ------------------------------------------------------------------------------------------
def test_generate_tests_piped_gives_plain_progress_on_stderr_and_the_result_alone_on_stdout(
    project: Path, model_server
) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), chunk_delay=0.002))
    env = cli_env(project, model_server.base_url)
    out = run(project, env, "generate-tests", "pkg/calc.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("Task ") and "status:   completed" in out.stdout
    assert "output:   tests/pkg/test_calc.py  (written)" in out.stdout
    progress = out.stderr.splitlines()
    assert progress[:2] == ["queued (position 1) unit_test pkg/calc.py", "started unit_test pkg/calc.py"]
    assert "model test-model" in progress and "validating answer 1/3" in progress
    assert progress[-2:] == ["done: 3 tests kept, 0 dropped, score 0.86", "written: tests/pkg/test_calc.py"]
    assert not any(line.startswith("streaming") for line in progress), "piped: no counts of streamed chunks"
    assert all(len(line) <= MAX_CHARS for line in progress), progress
    assert not ANSI.search(out.stderr + out.stdout)
    assert not any(line in out.stdout for line in progress), "no progress on stdout"

    (project / "pkg" / "other.py").write_text("def one():\n    return 1\n")
    model_server.script(Reply.text(fenced(ONE_TEST)))
    as_json = run(project, env, "generate-tests", "pkg/other.py", "--json")
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)  # stdout is one JSON document, nothing else
    assert status["status"] == "completed" and status["written"] is True
    assert "model test-model" in as_json.stderr.splitlines()


def test_run_engine_piped_gives_progress_on_stderr_and_the_tasks_on_stdout(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(project, model_server.base_url)
    submitted = json.loads(run(project, env, "submit-task", "--task-type", "unit_test", "pkg/calc.py", "--json").stdout)
    task_id = submitted["submitted"][0]["task_id"]
    ran = run(project, env, "run-engine", "--until-idle")
    assert ran.returncode == 0, ran.stderr
    (line,) = ran.stdout.splitlines()
    assert line.startswith(
        f"{task_id}  unit_test pkg/calc.py: completed: tests/pkg/test_calc.py (written), score 0.86,"
        " 3 tests kept, 0 dropped, coverage 25% → 100% (+75 pts), mutation 0.00 → 0.71, $0.000"
    )
    lines = ran.stderr.splitlines()
    assert f"{task_id[:8]} started unit_test pkg/calc.py" in lines
    assert all(line.startswith(task_id[:8]) and len(line) <= MAX_CHARS for line in lines), lines

    (project / "pkg" / "other.py").write_text("def one():\n    return 1\n")
    model_server.script(Reply.text(fenced(ONE_TEST)))
    run(project, env, "submit-task", "--task-type", "unit_test", "pkg/other.py")
    as_json = run(project, env, "run-engine", "--until-idle", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["completed"] == 1 and report["failed"] == 0
    assert [t["target_file"] for t in report["tasks"]] == ["pkg/other.py"] and report["tasks"][0]["written"] is True
    events = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert events[0]["event"] == "started" and events[-1]["event"] == "progress"


# --- item 6: a live display on a terminal -------------------------------------------------------------------------------
def test_generate_tests_on_a_terminal_shows_a_live_display(project: Path, model_server) -> None:
    """stderr on a pseudo-terminal, as a new user runs it: rich's live display redraws one row in place (the kind and
    the target, the stage, the time) and ends with a mark; stdout, piped, has the report and no terminal codes."""
    from tests.terminal import run_on_a_terminal

    model_server.script(Reply.text(fenced(GOOD_TESTS), chunk_size=2, chunk_delay=0.01))
    env = cli_env(project, model_server.base_url, TERM="xterm-256color", COLUMNS="100")
    code, screen, stdout = run_on_a_terminal([*OH_LSP, "generate-tests", "pkg/calc.py"], project, env)
    assert code == 0, screen
    assert "\x1b[?25l" in screen, "the cursor is hidden while the display is live"
    assert "\x1b[2K" in screen or "\x1b[1A" in screen, "the row is redrawn in place"
    for stage in ("unit_test pkg/calc.py", "streaming ~", "done: 3 tests kept"):
        assert stage in screen, stage
    # the display redraws a few times a second: a stage as short as "validating answer 1/3" may be drawn over before
    # it is shown, but the tests' run, the longest stage of the checks, is seen
    assert "validating answer 1/3" in screen or "checking 3 tests" in screen, screen
    assert "✓" in screen
    assert stdout.startswith("Task ") and "(written)" in stdout and not ANSI.search(stdout)


def test_the_live_display_shows_brackets_as_they_are() -> None:
    """A stage is plain text, not rich markup: "[redacted]" (where a secret was) and "list[int]" are shown, and a
    "[/]" in a model's error does not stop the display."""
    import io

    from oh_lsp.cli.live import LiveDisplay

    out = io.StringIO()
    display = LiveDisplay(out)
    task = "b" * 32
    display.update(ev.Event(ev.STARTED, task, {"kind": "unit_test", "target": "pkg/[x].py"}))
    display.update(ev.Event(ev.PROGRESS, task, {"message": "key [redacted] in list[int] [/]"}))
    display.progress.refresh()
    display.stop()
    screen = out.getvalue()
    assert "key [redacted] in list[int] [/]" in screen, screen
    assert "unit_test pkg/[x].py" in screen, screen


def test_the_language_server_never_imports_rich() -> None:
    """`oh-lsp serve` keeps its start-up lean: no module of the server, nor the CLI's entry, imports rich."""
    code = (
        "import importlib, pkgutil, sys, oh_lsp.lsp, oh_lsp.cli\n"
        "for m in pkgutil.iter_modules(oh_lsp.lsp.__path__): importlib.import_module('oh_lsp.lsp.' + m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("several", [True, False])
def test_a_warning_is_shown_whole_before_the_progress_goes_on(several: bool) -> None:
    import io

    from oh_lsp.cli.progress import ProgressView

    out = io.StringIO()
    view = ProgressView(out, several=several)
    view.on_event(ev.Event(ev.WARNING, "t" * 32, {"message": LONG}))
    view.on_event(ev.Event(ev.MODEL_CHOSEN, "t" * 32, {"model": "m", "why": LONG}))
    view.on_event(ev.Event(ev.PROGRESS, "t" * 32, {"message": "repair", "repair": 1, "of": 2}))
    view.on_event(ev.Event(ev.MODEL_CHOSEN, "t" * 32, {"model": "m", "why": LONG}))  # a repair: the model once
    lines = out.getvalue().splitlines()
    prefix = "tttttttt " if several else ""
    assert lines == [
        f"oh-lsp: warning: {LONG}",
        f"{prefix}model m",
        f"{prefix}repair 1/2: asking again with the findings",
    ]


def test_the_why_of_a_model_of_unknown_quality_says_it_once() -> None:
    """The why of a local model (no quality known) read "quality quality unknown"."""
    from oh_lsp.llm.catalog import ModelInfo
    from oh_lsp.llm.selector import TaskRequirements, _why

    local = ModelInfo(name="smollm2", id="smollm2")
    why = _why([local], TaskRequirements(category="unit_test"), {"smollm2": 0.0})
    assert "quality unknown" in why and "quality quality" not in why


def test_a_failed_session_numbers_its_answers_in_order_across_segments() -> None:
    """A task asked about two segments gave 4 answers, each segment's numbered 1 and 2 in its own conversation: the
    error counts them in the order they came ("answer 4"), never "after 4 answers; last, answer 2"."""
    from types import SimpleNamespace

    from oh_lsp import QueuedTask
    from oh_lsp.attempt import session_outcome
    from oh_lsp.records import ExecutionMetrics
    from oh_lsp.repair import Attempt
    from oh_lsp.validation.findings import Finding
    from oh_lsp.validation.result import ValidationResult

    def failed(test: str) -> ValidationResult:
        return ValidationResult.from_findings([Finding("test-failed", f"{test} failed", file="t.py")], 0.0)

    history = [
        Attempt(1, "a", None, failed("test_a1"), segment="lines 1-9"),
        Attempt(1, "b", None, failed("test_b1"), segment="lines 10-19"),
        Attempt(2, "a", None, failed("test_a2"), segment="lines 1-9"),
        Attempt(2, "b", None, failed("test_b2"), segment="lines 10-19"),
    ]
    target = SimpleNamespace(path=Path("pkg/calc.py"), sha256="0" * 64)
    outcome = session_outcome(
        QueuedTask(task_type="unit_test", description=""),
        target,
        None,
        failed("all"),
        history,
        0.7,
        ExecutionMetrics(task_id="t", model_id="m", task_type="unit_test"),
        0.0,
    )
    assert outcome.error.startswith("validation failed after 4 answers; best, answer 1: failed (score 0.00)")
    assert "; last, answer 4: failed (score 0.00)" in outcome.error and "test_b2" in outcome.error
