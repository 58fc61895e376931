"""A pytest plugin that writes one JSON line per collection error, per test start and per test phase to
`$OH_LSP_REPORT`.

It runs inside the *project's* interpreter, which may be another Python version than oh-lsp's, so it imports
nothing from oh-lsp and sticks to syntax that Python 3.8 understands (its annotations are never evaluated). It is
loaded with ``-p oh_lsp_report``.
"""

from __future__ import annotations

import json
import os
from typing import Any

_MAX_TEXT = 6000


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get("OH_LSP_REPORT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")


def _frames(longrepr: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    chain = getattr(longrepr, "chain", None)
    tracebacks = [element[0] for element in chain] if chain else [getattr(longrepr, "reprtraceback", None)]
    for reprtraceback in tracebacks:
        for entry in getattr(reprtraceback, "reprentries", None) or []:
            loc = getattr(entry, "reprfileloc", None)
            if loc is not None:
                entries.append({"path": str(loc.path), "lineno": int(loc.lineno), "message": str(loc.message)})
    return entries


def _crash(longrepr: Any) -> dict[str, Any] | None:
    crash = getattr(longrepr, "reprcrash", None)
    if crash is None:
        return None
    return {"path": str(crash.path), "lineno": int(crash.lineno), "message": str(crash.message)[:_MAX_TEXT]}


def pytest_runtest_setup(item: Any) -> None:
    seed = os.environ.get("OH_LSP_SEED")
    if seed:
        import random

        random.seed(int(seed))


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _write(
            {
                "event": "collect_error",
                "nodeid": report.nodeid,
                "longrepr": str(report.longrepr)[-_MAX_TEXT:],
                "crash": _crash(report.longrepr),
            }
        )


def pytest_collection_finish(session: Any) -> None:
    _write(
        {
            "event": "collected",
            "count": len(session.items),
            "items": [
                {"nodeid": item.nodeid, "path": str(item.location[0]), "lineno": item.location[1], "name": item.name}
                for item in session.items
            ],
        }
    )


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _write({"event": "start", "nodeid": nodeid})  # a test started but never reported took its process down


def pytest_runtest_logreport(report: Any) -> None:
    if report.when != "call" and report.passed:
        return
    record: dict[str, Any] = {
        "event": "test",
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
        "location": list(report.location),
    }
    if report.failed:
        record["longrepr"] = str(report.longrepr)[-_MAX_TEXT:]
        record["crash"] = _crash(report.longrepr)
        record["frames"] = _frames(report.longrepr)
    if report.skipped and isinstance(report.longrepr, tuple):
        record["reason"] = str(report.longrepr[2])
    _write(record)


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    _write({"event": "finished", "exitstatus": int(exitstatus)})
