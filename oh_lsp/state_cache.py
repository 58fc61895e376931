"""A small cache of JSON values in the project's state directory, shared by every process of one project root (the
CLI, the language server, `run-engine`).

One namespace per use (`baseline` for coverage baselines; issue 14's result cache can take another). A value lives in
`<state dir>/cache/<namespace>/<key>.json`, written atomically (a temporary file, then a rename), so a reader in
another process sees either the old value or the new one, never half of one. A namespace keeps at most `limit` entries:
the least recently written go first. A corrupt or unreadable entry reads as missing; a cache that cannot be written is
skipped (it is only a cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from oh_lsp.paths import state_dir

DEFAULT_LIMIT = 200
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def cache_key(*parts: str) -> str:
    """A key from any number of strings (content hashes, paths, versions): their sha256, order included."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _folder(root: Path, namespace: str) -> Path:
    if not _NAMESPACE.match(namespace):
        raise ValueError(f"bad cache namespace {namespace!r}")
    return state_dir(root) / "cache" / namespace


def _entry(root: Path, namespace: str, key: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{16,64}", key):
        raise ValueError(f"bad cache key {key!r}: use cache_key()")
    return _folder(root, namespace) / f"{key}.json"


def read_cached(root: Path, namespace: str, key: str) -> Any | None:
    """The value stored under `key`, or None when there is none (or it cannot be read). A bad namespace or key is a
    `ValueError`: they never come from outside."""
    path = _entry(root, namespace, key)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_cached(root: Path, namespace: str, key: str, value: Any, *, limit: int = DEFAULT_LIMIT) -> bool:
    """Store `value` (JSON-serialisable) under `key`. Returns False when the cache could not be written."""
    path = _entry(root, namespace, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(value, out, separators=(",", ":"))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(path.parent, limit)
        return True
    except OSError:
        return False


def _prune(folder: Path, limit: int) -> None:
    entries = []
    for entry in folder.glob("*.json"):
        try:
            entries.append((entry.stat().st_mtime, entry))
        except OSError:
            continue
    for _, entry in sorted(entries)[: max(0, len(entries) - limit)]:
        entry.unlink(missing_ok=True)
