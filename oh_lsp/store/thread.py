"""`StoreThread`: where a process makes its calls to a store, one after another, with group commit: on the store's
own thread, or, for the queue's short calls, at once on the caller's thread when that never waits.

SQLite lets one connection write at a time. Writers on several threads of one process only wait for each other
through SQLite's busy handler, which sleeps between tries (1 ms, then 2, 5, 10, ... up to 100 ms): with 64 workers,
the queue's writes and the model-state writes of the model calls spent more time asleep there than writing. Made in
turn, one call after another, they never sleep there, and the caller's event loop never waits on a lock.

Group commit: the calls that arrived while the thread was busy run together, in arrival order, inside one transaction
of the store (`transaction`, when the store has one), each in a savepoint of its own: a call that fails is rolled back
alone, and no caller hears of its result before the transaction is committed. One commit then serves several calls
(under load a claim, a few completions and model-call records at once).

On the caller's thread (`now`, `soon`): the queue's short calls (a submit, a claim, a completion: a few indexed rows,
one transaction) are made where they are awaited when nothing is queued for or running on the store's thread and the
store can make them there without waiting (`InlineStore`: SQLite, when no other process holds the write lock; else it
raises `WouldWait`, having done nothing, and the calls go to the store's thread). `now` makes its call at once;
`soon` at the end of the event loop's turn, together with the other `soon` calls of that turn, in one transaction
(the workers of an engine end their tasks in the same turn). A hand-off to the thread costs two thread switches and
the GIL passing between two busy threads: several times the call itself, and far more on a loaded machine (P1 in
docs/benchmarks.md). An inline call holds its event loop for about as long as those switches would have.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
MAX_GROUP = 64  # calls committed together at most
_Call = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
_Settled = tuple["asyncio.Future[Any]", Any, BaseException | None]
log = logging.getLogger(__name__)


class WouldWait(Exception):
    """An inline call (`InlineStore.inline`) could only go on by waiting (another process holds the database's write
    lock): nothing of it was done, and it is made on the store's thread instead."""


class InlineStore(Protocol):
    """A store that can make short calls on the caller's thread without ever waiting (`StoreThread.now`)."""

    def inline(self, call: Callable[[], T]) -> T:
        """`call()` (one transaction, or reads) here and now, or `WouldWait` with nothing done."""

    def checkpoint_due(self) -> bool:
        """Whether the inline calls' writes call for a `checkpoint` (once each time they do)."""

    def checkpoint(self) -> None:
        """The housekeeping inline calls leave out (it waits on the disk), made on the store's thread."""


class StoreThread:
    def __init__(
        self,
        name: str = "oh-lsp-store",
        *,
        transaction: Callable[[], AbstractContextManager[Any]] | None = None,
        inline: InlineStore | None = None,
    ) -> None:
        self._name = name
        self._transaction = transaction  # the store's group commit (None: each call on its own)
        self._inline = inline  # the store that can make short calls on the caller's thread (None: never)
        self._calls: deque[_Call] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._serving = False  # the store's thread is making a group of calls
        self._inline_now = False  # calls are being made inline (on their caller's thread)
        self._checkpoint_wanted = False  # the inline calls' writes call for the store's `checkpoint`
        self._unsettled = 0  # results of the store's thread not yet handed to their callers' event loops
        self._turn: dict[asyncio.AbstractEventLoop, list[_Call]] = {}  # `soon` calls waiting for their turn's end

    # --- on the store's thread ---------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the store's thread, awaited without blocking the event loop."""
        return await self.later(fn, *args, **kwargs)

    def later(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """`fn(*args, **kwargs)` queued for the store's thread; the future says how it went. Calls run in the order
        they were made, so a later call sees what this one wrote."""
        loop = asyncio.get_running_loop()
        self._end_turn(loop)  # the `soon` calls made before this one go first
        future: asyncio.Future[T] = loop.create_future()
        self._hand_over([(partial(fn, *args, **kwargs), loop, future)])
        return future

    def _hand_over(self, calls: list[_Call]) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("the store's thread is closed")
            self._calls.extend(calls)
            self._start()
            self._ready.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()

    # --- on the caller's thread --------------------------------------------------------------------------------
    async def now(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run`, made at once on this thread when the store can do it without waiting and no call is queued for or
        running on the store's thread; else on the store's thread. Only for short calls: one transaction, or reads,
        of a few indexed rows."""
        loop = asyncio.get_running_loop()
        self._end_turn(loop)
        call = partial(fn, *args, **kwargs)
        if self._inline is not None and self._enter_inline():
            try:
                return self._inline.inline(call)
            except WouldWait:
                pass
            finally:
                self._leave_inline()
        return await self.later(call)

    def soon(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """`now`, made at the end of this turn of the event loop, in one transaction with the other `soon` calls of
        the turn (group commit without a thread); on the store's thread when that cannot be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._inline is None:
            self._hand_over([(partial(fn, *args, **kwargs), loop, future)])
            return future
        turn = self._turn.setdefault(loop, [])
        if not turn:
            loop.call_soon(self._end_turn, loop)
        turn.append((partial(fn, *args, **kwargs), loop, future))
        return future

    def _end_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make the `soon` calls of `loop`'s turn, together: inline when that never waits, else on the store's
        thread (in their order, before any call made after them)."""
        calls = self._turn.pop(loop, None)
        if not calls:
            return
        if self._inline is not None and self._enter_inline():
            try:
                settled = self._inline.inline(partial(self._execute, [call for call, _, _ in calls]))
            except WouldWait:
                pass
            else:
                _settle([(future, *outcome) for (_, _, future), outcome in zip(calls, settled, strict=True)])
                return
            finally:
                self._leave_inline()
        try:
            self._hand_over(calls)
        except RuntimeError as exc:  # closed meanwhile
            _settle([(future, None, exc) for _, _, future in calls])

    def _enter_inline(self) -> bool:
        with self._ready:
            # a call made inline before the results of earlier calls reach their callers could overtake them (a
            # worker's claim could start a task before its submitter heard that it was queued); and a checkpoint
            # that is due goes first (inline calls one after another would keep the store's thread from it)
            busy = self._calls or self._serving or self._inline_now or self._unsettled or self._checkpoint_wanted
            if self._closed or busy:
                return False
            self._inline_now = True
            return True

    def _leave_inline(self) -> None:
        with self._ready:
            self._inline_now = False
            if self._inline is not None and self._inline.checkpoint_due():
                self._checkpoint_wanted = True  # made by the store's thread, outside any transaction
                self._start()
            if self._calls or self._checkpoint_wanted:
                self._ready.notify()

    # --- the store's thread ------------------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            with self._ready:
                # inline calls end before the next call here begins
                while self._inline_now or not (self._calls or self._checkpoint_wanted):
                    if self._closed and not self._calls:
                        return
                    self._ready.wait()
                group = [self._calls.popleft() for _ in range(min(len(self._calls), MAX_GROUP))]
                checkpoint, self._checkpoint_wanted = self._checkpoint_wanted, False
                self._serving = True
            try:
                self._serve_group(group, checkpoint)
            finally:
                with self._ready:
                    self._serving = False

    def _serve_group(self, group: list[_Call], checkpoint: bool) -> None:
        settled = self._execute([call for call, _, _ in group]) if group else []
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for (_, loop, future), (result, error) in zip(group, settled, strict=True):
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, outcomes in by_loop.items():
            with self._ready:
                self._unsettled += 1
            try:
                loop.call_soon_threadsafe(self._settle_here, outcomes)
            except RuntimeError:  # that event loop is closed: nobody waits for these results any more
                with self._ready:
                    self._unsettled -= 1
        if checkpoint:  # no write meanwhile (calls wait for it here): the next writer starts the WAL afresh
            self._checkpoint()

    def _settle_here(self, outcomes: list[_Settled]) -> None:
        """On the callers' event loop: hand the results over, in the order the calls were made."""
        _settle(outcomes)
        with self._ready:
            self._unsettled -= 1

    def _checkpoint(self) -> None:
        assert self._inline is not None
        try:
            self._inline.checkpoint()
        except Exception as exc:  # noqa: BLE001 - housekeeping: the next one tries again
            log.warning("the store's checkpoint failed: %s", exc)

    def _execute(self, calls: list[Callable[[], Any]]) -> list[tuple[Any, BaseException | None]]:
        """The calls' outcomes, made in one transaction of the store (each in its own savepoint). Raises `WouldWait`
        (inline, nothing done) when the transaction cannot begin without waiting."""
        if len(calls) == 1 or self._transaction is None:
            return [_call(call) for call in calls]
        try:
            with self._transaction():
                return [_call(call) for call in calls]
        except WouldWait:
            raise
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
    except WouldWait:  # nothing done: the whole group goes to the store's thread
        raise
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
