"""Model state in the store: the schema migration, atomic updates shared by threads, and one retry loop only."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest

from oh_lsp.records import ModelCall
from oh_lsp.store.sqlite import SQLiteStore, schema
from oh_lsp.tasks import QueuedTask


def test_a_version_1_store_is_migrated_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.sqlite3"
    with monkeypatch.context() as old_oh_lsp:  # what oh-lsp wrote before the model tables
        old_oh_lsp.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        old_oh_lsp.setattr(schema, "LATEST", 1)
        old = SQLiteStore(path)
        task_id, _ = old.add(QueuedTask(task_type="unit_test", description="kept"), dedupe_key="k", max_size=10)
        old.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'model_calls'").fetchone()[0] == 0
    store = SQLiteStore(path)
    store.record_model_call(ModelCall("m", "ok", task_id=task_id, cost=0.25))
    assert store.get(task_id).description == "kept" and store.spent(task_id=task_id) == 0.25
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
