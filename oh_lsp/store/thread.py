"""`StoreThread`: the one thread on which a process makes its calls to a store, one after another, with group commit.

SQLite lets one connection write at a time. Writers on several threads of one process only wait for each other
through SQLite's busy handler, which sleeps between tries (1 ms, then 2, 5, 10, ... up to 100 ms): with 64 workers,
the queue's writes and the model-state writes of the model calls spent more time asleep there than writing. On one
thread they run in turn without sleeping, and the caller's event loop never waits on the database.

Group commit: the calls that arrived while the thread was busy run together, in arrival order, inside one transaction
of the store (`transaction`, when the store has one), each in a savepoint of its own: a call that fails is rolled back
alone, and no caller hears of its result before the transaction is committed. One commit and one wake-up of the event
loop then serve several calls (under load a claim, a few completions and model-call records at once).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
MAX_GROUP = 64  # calls committed together at most
_Settled = tuple["asyncio.Future[Any]", Any, BaseException | None]


class StoreThread:
    def __init__(
        self, name: str = "oh-lsp-store", *, transaction: Callable[[], AbstractContextManager[Any]] | None = None
    ) -> None:
        self._name = name
        self._transaction = transaction  # the store's group commit (None: each call on its own)
        self._calls: deque[tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the store's thread, awaited without blocking the event loop."""
        return await self.later(fn, *args, **kwargs)

    def later(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """`fn(*args, **kwargs)` queued for the store's thread; the future says how it went. Calls run in the order
        they were queued, so a later call sees what this one wrote."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the store's thread is closed")
            self._calls.append((partial(fn, *args, **kwargs), loop, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._calls and not self._closed:
                    self._ready.wait()
                if not self._calls:
                    return
                group = [self._calls.popleft() for _ in range(min(len(self._calls), MAX_GROUP))]
            settled = self._execute([call for call, _, _ in group])
            by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
            for (_, loop, future), (result, error) in zip(group, settled, strict=True):
                by_loop.setdefault(loop, []).append((future, result, error))
            for loop, outcomes in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, outcomes)
                except RuntimeError:  # that event loop is closed: nobody waits for these results any more
                    pass

    def _execute(self, calls: list[Callable[[], Any]]) -> list[tuple[Any, BaseException | None]]:
        if len(calls) == 1 or self._transaction is None:
            return [_call(call) for call in calls]
        try:
            with self._transaction():
                return [_call(call) for call in calls]
        except Exception as exc:  # noqa: BLE001 - the group's transaction could not begin or commit: none was kept
            return [(None, exc)] * len(calls)

    def close(self, wait: bool = True) -> None:
        """Stop after the calls already made; with `wait`, until they are done."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()


def _call(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:  # noqa: BLE001 - handed to the caller, who awaits it
        return None, exc


def _settle(outcomes: list[_Settled]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
