"""The CLI's `logs` command: the log file's path, its last lines, and following it as it grows."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from oh_lsp.cli.common import EXIT_OK, print_json, root_of
from oh_lsp.paths import state_dir


def logs(args: argparse.Namespace) -> int:
    from oh_lsp.logs import LOG_FILENAME

    path = state_dir(root_of(args)) / LOG_FILENAME
    if args.lines is None and not args.follow:
        print_json({"log_file": str(path)}) if args.json else print(path)
        return EXIT_OK
    if not path.exists() and not args.follow:
        print(f"no log yet at {path}")
        return EXIT_OK
    for line in _last_lines(path, args.lines if args.lines is not None else 10):
        print(line)
    if args.follow:
        try:
            _follow(path)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _last_lines(path: Path, count: int) -> list[str]:
    if count <= 0 or not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        block = min(size, 64 * 1024 * max(1, count // 200 + 1))
        fh.seek(size - block)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    return lines[-count:]


def _follow(path: Path) -> None:
    """Print lines as they are appended (and carry on when the file is rotated)."""
    position = path.stat().st_size if path.exists() else 0
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size < position:  # rotated
            position = 0
        if size > position:
            with path.open("rb") as fh:
                fh.seek(position)
                chunk = fh.read()
            complete = chunk.rfind(b"\n") + 1
            if complete:
                print(chunk[:complete].decode("utf-8", "replace"), end="", flush=True)
                position += complete
        time.sleep(0.2)
