"""Many workers asking the gateway at once: one selector is built, and the cache of the endpoint's models is written
without collisions."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from pydantic import SecretStr

from oh_lsp import OpenHandsConfig, QueuedTask
from oh_lsp.llm.catalog import load_cache, save_cache
from oh_lsp.llm.gateway import ModelGateway
from oh_lsp.store.sqlite import SQLiteStore
from tests.conftest import SENTINEL_KEY


async def test_concurrent_first_calls_build_one_selector(project: Path, model_server, tmp_path: Path) -> None:
    model_server.models = [{"id": "alpha"}, {"id": "beta"}]
    config = OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), base_url=model_server.base_url)
    gateway = ModelGateway(config, store=SQLiteStore(tmp_path / "s.sqlite3"))
    try:
        tasks = [QueuedTask(task_type="unit_test", description=f"t{i}") for i in range(50)]
        selections = await asyncio.gather(*(gateway.select(task) for task in tasks))
    finally:
        await gateway.aclose()
    assert {tuple(m.name for m in s.ranked) for s in selections} == {("alpha", "beta")}


async def test_concurrent_cache_writes_do_not_collide() -> None:
    """Workers refresh the models cache at the same moment (the gateway writes it from a thread) while others read it:
    every write succeeds, every read finds a whole cache, and no writer's temporary file is left behind."""
    base_url = "http://127.0.0.1:1/v1"
    written = [[{"id": f"m{i}"}] for i in range(40)]
    path = save_cache(base_url, [{"id": "first"}])
    writing = threading.Event()
    writing.set()

    def write(models: list[dict]) -> list[Path]:
        return [save_cache(base_url, models) for _ in range(2)]

    def read() -> list[list[dict]]:
        seen = []
        while writing.is_set():
            seen.append(load_cache(base_url))
        return seen

    readers = [asyncio.ensure_future(asyncio.to_thread(read)) for _ in range(2)]
    try:
        paths = await asyncio.gather(*(asyncio.to_thread(write, models) for models in written))
    finally:
        writing.clear()
        seen = [cache for reads in await asyncio.gather(*readers) for cache in reads]
    assert [p for ps in paths for p in ps] == [path] * 80  # every write went through, to the one cache file
    assert seen, "the readers ran while the cache was written"
    torn = [cache for cache in seen if cache not in [*written, [{"id": "first"}]]]
    assert not torn, f"{len(torn)} of {len(seen)} reads found a torn or empty cache, e.g. {torn[0]}"
    assert load_cache(base_url) in written  # one writer's whole list, not a mix
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "a temporary file was left behind"
