"""Many workers asking the gateway at once: one selector is built, and the cache of the endpoint's models is written
without collisions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from oh_lsp import OpenHandsConfig, QueuedTask
from oh_lsp.llm.catalog import save_cache
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


async def test_concurrent_cache_writes_do_not_collide(tmp_path: Path) -> None:
    await asyncio.gather(
        *(asyncio.to_thread(save_cache, "http://127.0.0.1:1/v1", [{"id": f"m{i}"}]) for i in range(40))
    )
