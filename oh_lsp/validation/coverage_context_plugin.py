"""A pytest plugin for runs under ``coverage run``: each test's lines and branches are recorded under a coverage.py
context named by the test's node id (setup, call and teardown together); everything else (collection, imports) stays
in the empty context. It is loaded with ``-p oh_lsp_contexts``.

With ``$OH_LSP_IMPORT_TARGET`` set to a module name, it also imports that module once collection is over, so that the
lines that run at import are measured even when no test imports it.

It runs inside the *project's* interpreter, which may be another Python version than oh-lsp's, so it imports
nothing from oh-lsp and sticks to syntax that Python 3.8 understands.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Generator

import pytest


def _switch(name: str) -> None:
    try:
        import coverage
    except ImportError:
        return
    current = getattr(coverage.Coverage, "current", None)
    measuring = current() if current is not None else None
    if measuring is not None:
        measuring.switch_context(name)


def pytest_collection_finish(session: pytest.Session) -> None:
    module = os.environ.get("OH_LSP_IMPORT_TARGET")
    if module:
        try:
            importlib.import_module(module)
        except (Exception, SystemExit):  # noqa: BLE001 -- the tests that import it report the error; this only measures
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    _switch(item.nodeid)
    yield
    _switch("")
