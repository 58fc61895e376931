"""The endpoint's models-list cache is written by every engine worker and process that refreshes it: writers at the
same moment must all succeed (they once shared one temporary file and renamed it away from each other)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from oh_lsp.llm.catalog import cache_path, load_cache, save_cache

BASE_URL = "http://127.0.0.1:9/v1"


def test_concurrent_writers_all_succeed_and_leave_one_whole_file() -> None:
    def write(n: int) -> None:
        for _ in range(30):
            save_cache(BASE_URL, [{"id": f"model-{n}"}])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))  # re-raises any writer's error
    path = cache_path(BASE_URL)
    assert json.loads(path.read_text())["base_url"] == BASE_URL
    assert load_cache(BASE_URL)[0]["id"].startswith("model-")
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"], "no temporary file is left behind"
