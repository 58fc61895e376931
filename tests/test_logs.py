"""oh_lsp/logs.py: which root handlers are oh-lsp's own, so that setting logging up again replaces only those."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from oh_lsp.logs import RedactSecrets, is_ours, setup_logging


@pytest.fixture
def root_handlers() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in before:
            handler.close()
    root.handlers[:] = before
    root.setLevel(level)


def test_setup_logging_replaces_its_own_handlers_and_keeps_the_others(tmp_path: Path, root_handlers) -> None:
    foreign = logging.StreamHandler(io.StringIO())  # someone else's (pytest's capture, an embedding program)
    server_console = logging.StreamHandler(io.StringIO())  # what `oh-lsp serve` adds before a folder is known
    server_console.addFilter(RedactSecrets([]))
    root_handlers.addHandler(foreign)
    root_handlers.addHandler(server_console)
    assert not is_ours(foreign)
    assert is_ours(server_console)

    setup_logging(tmp_path / "one", ["sk-first"])
    first = [h for h in root_handlers.handlers if is_ours(h)]
    setup_logging(tmp_path / "two", ["sk-second"])
    second = [h for h in root_handlers.handlers if is_ours(h)]

    assert foreign in root_handlers.handlers
    assert server_console not in root_handlers.handlers
    assert len(first) == len(second) == 2  # the log file and stderr, once each
    assert not set(first) & set(second)
    logging.getLogger("oh_lsp.test").warning("key sk-second here")
    for handler in second:
        handler.flush()
    assert "key *** here" in (tmp_path / "two" / "oh-lsp.log").read_text()
