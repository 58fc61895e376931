"""Incremental work (issue 14, item 2): when a module changed since its last completed unit_test task, only the changed
functions and their gaps are asked for; tests kept earlier for unchanged code are checked again (real pytest, no
model) and delivered, not asked for again. Real parts throughout: the scripted model server (what it received is
asserted), real pytest in the sandbox, the SQLite and PostgreSQL stores, the CLI in its own processes."""

from __future__ import annotations

import ast
import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest

from oh_lsp.paths import store_path
from oh_lsp.testing.model_server import RecordedRequest, Reply
from tests.conftest import OH_LSP, cli_env, fenced, run_task
from tests.test_tests_worth_having import THREE

OPS = THREE + "\n\ndef double(values):\n    return [2 * v for v in values]\n"  # sign, grade, clamp, double
# grade changed: a new branch (the lines below it move; their functions did not change)
OPS_GRADE_CHANGED = OPS.replace(
    '        return "A"\n', '        return "A"\n    if score >= 75:\n        return "B+"\n'
)
# a body line only each function has, as the prompt shows its source -> the test the scripted model writes for it
TESTS = {
    "if x > 0:": ("sign", "def test_sign():\n    assert (sign(3), sign(-2), sign(0)) == (1, -1, 0)\n"),
    'return "C"': ("grade", "def test_grade():\n    assert [grade(95), grade(60), grade(10)] == ['A', 'B', 'C']\n"),
    "if x > high:": (
        "clamp",
        "def test_clamp():\n    assert (clamp(-1, 0, 5), clamp(9, 0, 5), clamp(3, 0, 5)) == (0, 5, 3)\n",
    ),
    "2 * v for v": ("double", "def test_double():\n    assert double([1, 2]) == [2, 4]\n"),
}
B_PLUS = "def test_grade_b_plus():\n    assert [grade(95), grade(80), grade(60), grade(10)] == ['A', 'B+', 'B', 'C']\n"
TESTS_FILE = Path("tests/pkg/test_ops.py")


def prompt_of(request: RecordedRequest) -> str:
    content = request.body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def answer(request: RecordedRequest) -> Reply:
    """Tests for each function whose body the prompt shows (only the signature of a function: no test for it)."""
    prompt = prompt_of(request)
    chosen = [(name, code) for marker, (name, code) in TESTS.items() if marker in prompt]
    if '"B+"' in prompt:
        chosen = [(n, B_PLUS if n == "grade" else c) for n, c in chosen]
    names = ", ".join(name for name, _ in chosen)
    return Reply.text(fenced(f"from pkg.ops import {names}\n\n\n" + "\n\n".join(code for _, code in chosen)))


@pytest.fixture
def ops_project(project: Path, model_server) -> Path:
    (project / "pkg" / "ops.py").write_text(OPS)
    model_server.responder = answer
    return project


@pytest.fixture(params=["sqlite", "postgres"])
def store_kw(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"queue_url": request.getfixturevalue("pg_url")} if request.param == "postgres" else {}


def function_names(content: str) -> list[str]:
    return [n.name for n in ast.parse(content).body if isinstance(n, ast.FunctionDef)]


async def task_on_ops(project: Path, server, **kw):
    return await run_task(project, server, target="pkg/ops.py", mutation=False, **kw)


# --- the engine, against the scripted model and real pytest --------------------------------------------------------
async def test_one_changed_function_is_all_that_is_asked_for(ops_project: Path, model_server, store_kw) -> None:
    first = await task_on_ops(ops_project, model_server, **store_kw)
    assert first.status.value == "completed", first.error
    assert sorted(first.result["kept_tests"]) == ["test_clamp", "test_double", "test_grade", "test_sign"]
    assert "incremental" not in first.result
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED)
    events: list = []
    second = await task_on_ops(ops_project, model_server, events=events, **store_kw)
    assert second.status.value == "completed", second.error
    assert len(model_server.requests) == 2, "one question, about grade only"
    prompt = prompt_of(model_server.requests[1])
    assert 'return "B+"' in prompt and "Asked about only: grade" in prompt
    for other in ("if x > 0:", "if x > high:", "2 * v for v"):  # the other functions: their signatures only
        assert other not in prompt
    assert "def sign(" not in prompt and "def clamp(" not in prompt, "grade uses neither"
    gaps = prompt.split("What no test checks yet", 1)[1]
    assert "lines 13–19 are never run" in gaps and "if x" not in gaps, "grade's gaps, by their lines in the file"
    # the tests kept for the unchanged functions are delivered without being asked for; grade's new test beside them
    reused = second.result["incremental"]
    assert reused["from_task"] == first.task_id and reused["changed"] == ["grade"] and reused["functions"] == 4
    assert reused["carried"] == ["test_clamp", "test_double", "test_sign"] and reused["carried_dropped"] == []
    assert sorted(second.result["kept_tests"]) == ["test_clamp", "test_double", "test_grade_b_plus", "test_sign"]
    assert sorted(function_names(second.result["content"])) == sorted(second.result["kept_tests"])
    assert second.result["coverage"]["after"] == 100.0
    assert 0 < second.tokens < 0.85 * first.tokens, (
        second.tokens,
        first.tokens,
    )  # the system prompt is most of it here (P6b: bench)
    steps = [e.data.get("step") for e in events if e.kind == "validating"]
    assert "incremental: 1 of 4 functions changed" in steps and "checking again 3 tests kept earlier" in steps


async def test_an_unchanged_function_still_untested_is_asked_about_too(ops_project: Path, model_server) -> None:
    """Incremental work spares the tests kept earlier, never what is still untested: `double`, which the first
    answer left without a test, is asked about with the changed `grade`, and the result says so."""
    model_server.responder = lambda request: Reply.text(answer(request).content.replace(TESTS["2 * v for v"][1], ""))
    first = await task_on_ops(ops_project, model_server)
    assert sorted(first.result["kept_tests"]) == ["test_clamp", "test_grade", "test_sign"], first.error
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED)
    model_server.responder = answer
    second = await task_on_ops(ops_project, model_server)
    assert second.status.value == "completed", second.error
    prompt = prompt_of(model_server.requests[1])
    assert "Asked about only: double, grade (" in prompt and "if x > 0:" not in prompt
    reused = second.result["incremental"]
    assert reused["changed"] == ["grade"] and reused["asked"] == ["double", "grade"]
    assert sorted(second.result["kept_tests"]) == ["test_clamp", "test_double", "test_grade_b_plus", "test_sign"]


async def test_mutants_an_earlier_task_left_alive_in_unchanged_code_are_not_asked_about_again(
    ops_project: Path, model_server
) -> None:
    """With mutation analysis: `double`'s first test runs its line but notices no mutant. After `grade` changes, the
    second task asks about `grade` alone (its lines and mutants); `double`'s survivors were there for the first task,
    which was asked about them. The result still reports them (the editor's diagnostics)."""
    weak = "def test_double():\n    assert double([]) == []\n"
    model_server.responder = lambda request: Reply.text(answer(request).content.replace(TESTS["2 * v for v"][1], weak))
    first = await run_task(ops_project, model_server, target="pkg/ops.py", mutation=True)
    assert "test_double" in first.result["kept_tests"], first.error
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED)
    model_server.responder = answer
    second = await run_task(ops_project, model_server, target="pkg/ops.py", mutation=True)
    assert second.status.value == "completed", second.error
    prompt = prompt_of(model_server.requests[-1])
    assert "Asked about only: grade (" in prompt and "2 * v for v" not in prompt, prompt
    assert second.result["incremental"]["asked"] == ["grade"]
    line = OPS_GRADE_CHANGED.splitlines().index("    return [2 * v for v in values]") + 1
    survivors = [w for w in second.result["validation"]["warnings"] if w["code"] == "surviving-mutant"]
    assert any(w["line"] == line for w in survivors), f"double's survivors are still reported: {survivors}"


async def test_a_bypass_asks_for_everything(ops_project: Path, model_server) -> None:
    await task_on_ops(ops_project, model_server)
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED)
    fresh = await task_on_ops(ops_project, model_server, metadata={"no_cache": True})  # --no-cache, noCache
    assert fresh.status.value == "completed", fresh.error
    prompt = prompt_of(model_server.requests[1])
    assert all(marker in prompt for marker in TESTS) and "Asked about only" not in prompt
    assert "incremental" not in fresh.result
    assert sorted(fresh.result["kept_tests"]) == ["test_clamp", "test_double", "test_grade_b_plus", "test_sign"]
    # what the bypass kept is what the next task reuses
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED.replace("return [2 * v", "return [v * 2"))
    model_server.responder = lambda request: Reply.text(
        fenced("from pkg.ops import double\n\n\ndef test_double_again():\n    assert double([3]) == [6]\n")
    )
    third = await task_on_ops(ops_project, model_server)
    assert third.result["incremental"]["from_task"] == fresh.task_id
    assert third.result["incremental"]["carried"] == ["test_clamp", "test_grade_b_plus", "test_sign"]


async def test_no_function_changed_is_a_plain_task(ops_project: Path, model_server) -> None:
    """The test files changed (so the result cache misses) but no function did: the task asks for what the existing
    tests leave, as "Tests worth having" does, with the whole module; nothing is carried from the last task. When the
    existing tests leave nothing, no model is asked."""
    await task_on_ops(ops_project, model_server, apply_edits=True)  # its tests are written: the existing tests now
    (ops_project / "tests" / "conftest.py").write_text("")
    events: list = []
    again = await task_on_ops(ops_project, model_server, events=events)
    assert len(model_server.requests) == 1, "the existing tests leave nothing to ask for"
    assert again.tokens == 0 and "incremental" not in again.result and "from_cache" not in again.result
    assert not any("incremental" in str(e.data.get("step")) for e in events)
    (ops_project / TESTS_FILE).write_text("from pkg.ops import sign\n\n\ndef test_sign():\n    assert sign(2) == 1\n")
    plain = await task_on_ops(ops_project, model_server)
    assert len(model_server.requests) == 2 and "incremental" not in plain.result
    prompt = prompt_of(model_server.requests[1])
    assert all(marker in prompt for marker in TESTS) and "Asked about only" not in prompt, "the whole module"


async def test_a_corrupt_entry_is_ignored_and_replaced(
    ops_project: Path, model_server, caplog: pytest.LogCaptureFixture
) -> None:
    from oh_lsp.result_cache import TaskMemory
    from oh_lsp.tasks import QueuedTask

    await task_on_ops(ops_project, model_server)
    key = TaskMemory(None, QueuedTask(task_type="unit_test", target_file=Path("pkg/ops.py")), 1).key  # type: ignore[arg-type]
    with sqlite3.connect(store_path(ops_project)) as db:
        assert db.execute("UPDATE result_cache SET result = '{not json' WHERE key = ?", (key,)).rowcount == 1
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED)
    with caplog.at_level(logging.WARNING):
        full = await task_on_ops(ops_project, model_server)
    assert "cannot be read" in caplog.text
    assert full.status.value == "completed" and "incremental" not in full.result
    assert all(marker in prompt_of(model_server.requests[1]) for marker in TESTS), "a full task"
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED.replace("return [2 * v", "return [v * 2"))
    model_server.responder = lambda request: Reply.text(
        fenced("from pkg.ops import double\n\n\ndef test_double_again():\n    assert double([3]) == [6]\n")
    )
    replaced = await task_on_ops(ops_project, model_server)
    assert replaced.result["incremental"]["from_task"] == full.task_id, "the corrupt entry was replaced"


async def test_a_memory_that_cannot_be_written_does_not_fail_the_task(
    ops_project: Path, model_server, caplog: pytest.LogCaptureFixture
) -> None:
    from oh_lsp.store import open_store

    open_store(ops_project).close()
    with sqlite3.connect(store_path(ops_project)) as db:
        db.execute("CREATE TRIGGER full BEFORE INSERT ON result_cache BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    with caplog.at_level(logging.WARNING):
        task = await task_on_ops(ops_project, model_server)
    assert task.status.value == "completed" and len(task.result["kept_tests"]) == 4
    assert "could not be written" in caplog.text and "the task is not affected" in caplog.text


# --- the CLI, in its own processes: the tests were delivered ---------------------------------------------------------
def test_the_cli_after_delivered_tests_asks_about_the_changed_function(ops_project: Path, model_server) -> None:
    """The first task's tests were written into the project: they are the existing tests now (not carried); the
    question about the changed function shows only the existing tests that name it."""
    env = cli_env(ops_project, model_server.base_url, OH_LSP_MUTATION="off")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*OH_LSP, *args], cwd=ops_project, env=env, capture_output=True, text=True, timeout=180)

    first = cli("generate-tests", "pkg/ops.py")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "def test_sign" in (ops_project / TESTS_FILE).read_text()
    (ops_project / "pkg" / "ops.py").write_text(OPS_GRADE_CHANGED)
    second = cli("generate-tests", "pkg/ops.py")
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(model_server.requests) == 2
    prompt = prompt_of(model_server.requests[1])
    assert "Asked about only: grade" in prompt and "if x > 0:" not in prompt
    existing = prompt.split("Existing tests in tests/pkg/test_ops.py (do not repeat them):", 1)[1]
    assert "def test_grade" in existing and "def test_sign" not in existing and "def test_clamp" not in existing
    assert "incremental: 1 of 4 functions changed" in second.stdout, second.stdout
    delivered = function_names((ops_project / TESTS_FILE).read_text())
    assert "test_grade_b_plus" in delivered and delivered.count("test_sign") == 1


# --- the parts -------------------------------------------------------------------------------------------------------
def test_fingerprints_ignore_moved_lines_and_comments() -> None:
    from oh_lsp.kinds.unit_test_increment import MODULE_LEVEL, units

    before = units(OPS)
    moved = units("import os\n\n# a comment\n" + OPS.replace("def clamp", "# clamp it\ndef clamp"))
    assert {n for n in before if before[n] != moved[n]} == {MODULE_LEVEL}, "only the new import counts"
    assert {n for n in before if before[n] != units(OPS_GRADE_CHANGED)[n]} == {"grade"}
    klass = "class K:\n    size = 1\n\n    def a(self):\n        return 1\n\n    def b(self):\n        return 2\n"
    changed = units(klass.replace("return 2", "return 3"))
    assert {n for n, fp in units(klass).items() if changed[n] != fp} == {"K.b"}, "the class is not its methods"


def test_the_outline_shows_the_asked_functions_and_what_they_use() -> None:
    from oh_lsp.kinds.unit_test_increment import outline, tests_about

    source = "import math\n\nLIMIT = 3\n" + OPS.replace('return "C"', 'return "C" if clamp(score, 0, 9) else "D"')
    source += "\n\nclass Box:\n    size = 2\n\n    def area(self):\n        return self.side() ** 2\n\n    def side(self):\n        return self.size\n\n    def other(self):\n        return 0\n"
    text = outline(source, {"grade"})
    assert "1: import math" in text and "3: LIMIT = 3" in text
    assert "16:     if score >= 90:" in text and '19:         return "B"' in text
    assert "23: def clamp(x, low, high): ..." in text, "grade uses clamp: its signature"
    assert "if x < low" not in text and "def sign" not in text and "def double" not in text and "class Box" not in text
    box = outline(source, {"Box.area"})
    assert "class Box:" in box and "size = 2" in box and "return self.side() ** 2" in box
    assert "def side(self): ..." in box and "def other" not in box and "def grade" not in box
    existing = "import pytest\n\n\ndef test_a():\n    assert sign(1)\n\n\ndef test_b():\n    assert grade(99)\n"
    trimmed = tests_about(existing, {"grade"})
    assert "import pytest" in trimmed and "def test_b" in trimmed and "def test_a" not in trimmed
    existing = (
        "from __future__ import annotations\n\nfrom pkg.ops import (\n    clamp,\n    grade as g,\n    sign,\n)\n"
    )
    existing += "from pkg.other import double\n\n\ndef helper():\n    return clamp(1, 0, 2)\n\n\n"
    existing += "def test_a():\n    assert sign(1) == double(0) + 1\n\n\ndef test_b():\n    assert g(99) == grade(99)\n"
    trimmed = tests_about(existing, {"grade"})
    assert "from pkg.ops import clamp, grade as g\n" in trimmed, "the names the dropped test alone used go"
    assert "double" not in trimmed and "sign" not in trimmed and "from __future__ import annotations" in trimmed
    assert tests_about(existing, {"sign", "grade"}) == existing, "nothing dropped: the module as it is"
