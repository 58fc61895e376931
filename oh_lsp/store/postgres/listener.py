"""`WorkListener`: one thread per store that `LISTEN`s for ready work and calls whoever is watching.

It holds its own connection (a pooled one cannot stay in LISTEN), started when the first watcher arrives and closed
with the store. After a lost connection it reconnects with backoff and then wakes every watcher once, since work may
have been queued while nobody listened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from oh_lsp.store.postgres.schema import WORK_CHANNEL

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5  # how often the thread looks up from its socket to see whether the store is closing


class WorkListener:
    def __init__(self, url: str, schema: str, location: str, connect_timeout: int) -> None:
        self._url = url
        self._schema = schema
        self._location = location
        self._connect_timeout = connect_timeout
        self._watchers: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in place
        self.notifications = 0  # ready-work notifications received for this schema

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            key = self._next
            self._next += 1
            self._watchers[key] = callback
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="oh-lsp-pg-listen", daemon=True)
                self._thread.start()

        def unwatch() -> None:
            with self._lock:
                self._watchers.pop(key, None)

        return unwatch

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=TICK_SECONDS * 4)
            self._thread = None

    def _wake(self) -> None:
        with self._lock:
            watchers = list(self._watchers.values())
        for callback in watchers:
            try:
                callback()
            except Exception:  # a watcher whose event loop has closed: nothing to wake
                log.debug("a work watcher failed", exc_info=True)

    def _run(self) -> None:
        backoff = 0.5
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=self._connect_timeout) as conn:
                    conn.execute(f"LISTEN {WORK_CHANNEL}")
                    self.listening.set()
                    backoff = 0.5
                    self._wake()
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=TICK_SECONDS):
                            if note.payload == self._schema:
                                self.notifications += 1
                                self._wake()
            except psycopg.Error as exc:
                self.listening.clear()
                if self._closing.is_set():
                    break
                log.warning(
                    "oh-lsp: lost the wake-up connection to the queue at %s (%s); idle workers poll until"
                    " it is back, retrying in %.1fs",
                    self._location,
                    str(exc).strip(),
                    backoff,
                )
                self._closing.wait(backoff)
                backoff = min(backoff * 2, 10.0)
