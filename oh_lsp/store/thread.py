"""`StoreThread`: the one thread on which a process makes its calls to a store, one after another.

SQLite lets one connection write at a time. Writers on several threads of one process only wait for each other
through SQLite's busy handler, which sleeps between tries (1 ms, then 2, 5, 10, ... up to 100 ms): with 64 workers,
the queue's writes and the model-state writes of the model calls spent more time asleep there than writing. On one
thread they run in turn without sleeping, and the caller's event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


class StoreThread:
    def __init__(self, name: str = "oh-lsp-store") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the store's thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args, **kwargs))

    def close(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait)
