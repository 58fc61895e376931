"""The result cache (issue 14): a task whose inputs did not change since a completed task of its kind gets that result
with 0 tokens and no model call. Real parts throughout: the scripted model server, real pytest runs, the SQLite and
PostgreSQL stores, the CLI in its own processes. (The store's side, on both backends, is in test_store_contract.py.)"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest

from oh_lsp.paths import store_path
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, OH_LSP, cli_env, fenced, run_task

USAGE = {"prompt_tokens": 400, "completion_tokens": 100, "total_tokens": 500, "cost": 0.0021}
TESTS_FILE = Path("tests/pkg/test_calc.py")


@pytest.fixture(params=["sqlite", "postgres"])
def store_kw(request: pytest.FixtureRequest) -> dict[str, str]:
    """`run_task`'s store: the project's SQLite store, or a PostgreSQL queue (the fleet's)."""
    return {"queue_url": request.getfixturevalue("pg_url")} if request.param == "postgres" else {}


def system_metrics(project: Path, store_kw: dict[str, str]) -> dict:
    from oh_lsp.store import open_store

    store = open_store(project, url=store_kw.get("queue_url"))
    try:
        return store.metrics_summary()["system"]
    finally:
        store.close()


def test_the_key_covers_what_changes_a_unit_test_outcome(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit_test task's result depends on the gap it aims at, the mutation analysis settings and the kind's prompt
    version (issue 12): each one changed is another key; the same inputs are the same key."""
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.kinds import unit_test
    from oh_lsp.result_cache import cache_key
    from oh_lsp.tasks import QueuedTask

    config = OpenHandsConfig(base_url="http://127.0.0.1:9/v1")
    gap = {"kind": "lines", "line": 9, "end_line": 10, "detail": "lines 9–10 are never run"}

    def key(config: OpenHandsConfig = config, **metadata: object) -> str | None:
        task = QueuedTask(task_type="unit_test", target_file=Path("pkg/calc.py"), metadata=metadata)
        return cache_key(task, project, config)

    plain = key()
    assert plain is not None and key() == plain
    aimed = key(gap=gap)
    assert aimed not in (None, plain) and key(gap=gap) == aimed
    assert key(gap={**gap, "line": 8}) != aimed, "another gap is another task"
    assert key(config.with_changes(mutation=False)) != plain
    assert key(config.with_changes(mutation_seconds=5.0)) != plain
    monkeypatch.setattr(unit_test, "PROMPT_VERSION", unit_test.PROMPT_VERSION + "-next")
    assert key() != plain, "a new prompt version does not reuse the results of the last"


# --- the engine, against the scripted model and real pytest --------------------------------------------------------
async def test_asking_again_with_nothing_changed_costs_nothing(project: Path, model_server, store_kw) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    first = await run_task(project, model_server, **store_kw)
    assert first.status.value == "completed" and first.tokens == 500 and len(model_server.requests) == 1
    events: list = []
    second = await run_task(project, model_server, events=events, **store_kw)  # nothing scripted: a call would fail
    assert len(model_server.requests) == 1, "the second task called the model"
    assert second.status.value == "completed" and second.tokens == 0 and second.cost == 0.0
    assert second.result["from_cache"]["task_id"] == first.task_id
    assert second.result["from_cache"]["tokens"] == 500 and second.result["from_cache"]["cost"] == 0.0021
    assert second.result["edit"] == first.result["edit"] and second.result["content"] == GOOD_TESTS
    assert any(e.kind == "progress" and e.data.get("from_cache") for e in events)
    system = system_metrics(project, store_kw)
    assert system["cache_hits"] == 1 and system["saved_cost"] == pytest.approx(0.0021)
    assert system["executions"] == 2 and system["total_tokens"] == 500


async def test_no_cache_asks_the_model_and_replaces_the_entry(project: Path, model_server, store_kw) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE), Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    first = await run_task(project, model_server, **store_kw)
    bypass = await run_task(project, model_server, metadata={"no_cache": True}, **store_kw)
    assert len(model_server.requests) == 2 and bypass.tokens == 500 and "from_cache" not in bypass.result
    third = await run_task(project, model_server, **store_kw)
    assert len(model_server.requests) == 2
    assert third.result["from_cache"]["task_id"] == bypass.task_id != first.task_id, "the bypass's result replaced it"


async def test_a_changed_test_file_is_a_miss_and_undoing_the_edit_a_hit(project: Path, model_server, store_kw) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE), Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    await run_task(project, model_server, apply_edits=True, **store_kw)  # the tests are written: their text changed
    assert (project / TESTS_FILE).read_text() == GOOD_TESTS
    after = await run_task(project, model_server, **store_kw)
    assert len(model_server.requests) == 2, "a changed test file must not be served from the cache"
    assert "from_cache" not in after.result
    (project / TESTS_FILE).unlink()  # the user undid the edit: the tests' text is back to before
    undone = await run_task(project, model_server, apply_edits=True, **store_kw)
    assert len(model_server.requests) == 2 and undone.result["from_cache"]
    assert (project / TESTS_FILE).read_text() == GOOD_TESTS, "the cached edit is delivered again"
    (project / "pkg" / "calc.py").write_text((project / "pkg" / "calc.py").read_text() + "\n# changed\n")
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    changed = await run_task(project, model_server, **store_kw)
    assert len(model_server.requests) == 3 and "from_cache" not in changed.result, "a changed target is a miss"


async def test_an_unwritable_cache_does_not_fail_the_task(
    project: Path, model_server, caplog: pytest.LogCaptureFixture
) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE), Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    from oh_lsp.store import open_store

    open_store(project).close()  # create the store, then make its cache refuse every write, as a full disk would
    with sqlite3.connect(store_path(project)) as db:
        db.execute(
            "CREATE TRIGGER cache_full BEFORE INSERT ON result_cache BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
    with caplog.at_level(logging.WARNING, logger="oh_lsp.engine"):
        task = await run_task(project, model_server)
    assert task.status.value == "completed" and task.result["content"] == GOOD_TESTS
    assert "the result cache could not be written" in caplog.text and "disk is full" in caplog.text
    again = await run_task(project, model_server)
    assert again.status.value == "completed" and len(model_server.requests) == 2  # nothing was cached


async def test_a_fleet_shares_the_cache_through_postgresql(project: Path, model_server, pg_url: str) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), usage=USAGE))
    first = await run_task(project, model_server, queue_url=pg_url)
    other = project.parent / "machine-b"  # another machine: its own checkout of the same project, the same queue
    subprocess.run(["cp", "-r", str(project), str(other)], check=True)
    second = await run_task(other, model_server, queue_url=pg_url)
    assert len(model_server.requests) == 1 and second.result["from_cache"]["task_id"] == first.task_id


# --- the CLI, in its own processes -------------------------------------------------------------------------------
def cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=180)


def test_the_cli_serves_from_the_cache_and_says_so(project: Path, model_server) -> None:
    model_server.script(*[Reply.text(fenced(GOOD_TESTS), usage=USAGE)] * 3)
    env = cli_env(project, model_server.base_url)
    first = cli(project, env, "generate-tests", "pkg/calc.py", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    (project / TESTS_FILE).write_text("def test_nothing():\n    assert True\n")  # the user changed the tests
    changed = cli(project, env, "generate-tests", "pkg/calc.py")
    assert len(model_server.requests) == 2 and "from cache" not in changed.stdout, "a changed test file is a miss"
    (project / TESTS_FILE).unlink()  # back to the first task's inputs (no test module)
    second = cli(project, env, "generate-tests", "pkg/calc.py")
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(model_server.requests) == 2
    assert "from cache" in second.stdout and (project / TESTS_FILE).read_text() == GOOD_TESTS
    task_id = next(line.split()[1] for line in second.stdout.splitlines() if line.startswith("Task "))
    status = cli(project, env, "get-status", "--task-id", task_id)
    assert f"from cache: the result of task {json.loads(first.stdout)['task_id']}, no model call" in status.stdout
    assert "tokens: 0" in status.stdout
    (project / TESTS_FILE).unlink()
    bypass = cli(project, env, "generate-tests", "pkg/calc.py", "--no-cache")
    assert bypass.returncode == 0 and len(model_server.requests) == 3 and "from cache" not in bypass.stdout
    metrics = cli(project, env, "metrics")
    assert "1 result from cache" in metrics.stdout and "saved $0.0021" in metrics.stdout, metrics.stdout
    assert json.loads(cli(project, env, "metrics", "--json").stdout)["system"]["cache_hits"] == 1
