"""Model state in the store: the schema migration, atomic updates shared by threads, and one retry loop only."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

from oh_lsp.records import ModelCall
from oh_lsp.store.sqlite import SQLiteStore, schema


def test_a_version_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # what oh-lsp wrote before the model tables, with one task in it
        db.executescript(schema.MIGRATIONS[0][2])
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO tasks (id, kind, description, priority, status, submitter, dedupe_key, max_retries,"
            " created_at) VALUES ('t1', 'unit_test', 'kept', 2, 'pending', 'cli', 'k', 2, 0)"
        )
    task_id = "t1"
    store = SQLiteStore(path)
    store.record_model_call(ModelCall("m", "ok", task_id=task_id, cost=0.25))
    assert store.get(task_id).description == "kept" and store.spent(task_id=task_id) == 0.25
    assert store.stats()["pending"] == 1, "the task counts kept by triggers start from the tasks already there"
    store.close()
    again = SQLiteStore(path)  # opening a current store changes nothing
    assert again.spent(task_id=task_id) == 0.25
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST


def test_model_state_updates_are_atomic_across_threads(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")

    def bump(state):
        state.rotations_away += 1

    def worker() -> None:
        for _ in range(50):
            store.update_model_state("m", bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.model_states()["m"].rotations_away == 200
    store.close()


def test_there_is_exactly_one_request_layer_retry_loop() -> None:
    package = Path(__file__).parents[1] / "oh_lsp"
    users = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if re.search(r"^\s*(import|from) tenacity\b", p.read_text(), re.MULTILINE)
    }
    assert users == {"llm/gateway.py"}
    assert (package / "llm" / "gateway.py").read_text().count("AsyncRetrying(") == 1
