"""What generated tests tried that a test must not (recorded by oh_lsp/sandbox/audit_plugin.py), as findings.

A test that tries any of it is dropped even when the sandbox stopped the attempt: the user's own pytest will later run
the delivered tests with no sandbox. What a module tries at import, outside any test, rejects the whole module.
"""

from __future__ import annotations

from typing import Any

from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.pytest_runner import PytestRun

MAX_PER_TEST = 3


def attempted(*runs: PytestRun) -> dict[str, list[dict[str, Any]]]:
    """node id -> what that test tried, over `runs` (each attempt once)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for test in run.tests.values():
            for attempt in test.attempts:
                seen = found.setdefault(test.nodeid, [])
                if attempt["detail"] not in [a["detail"] for a in seen]:
                    seen.append(attempt)
    return found


def behaviour_findings(
    tried: dict[str, list[dict[str, Any]]], names: dict[str, str], output_file: str, *, severity: str
) -> list[Finding]:
    """One finding per attempt (at most `MAX_PER_TEST` per test), at the line that made it. `names` maps node ids to
    test names."""
    found = []
    for nodeid, attempts in tried.items():
        name = names.get(nodeid, nodeid.rsplit("::", 1)[-1])
        for attempt in attempts[:MAX_PER_TEST]:
            found.append(
                Finding(
                    F.UNSAFE_BEHAVIOUR,
                    f"{name} was dropped: it {attempt['detail']} ({attempt['kind']}); a test must not, even in the"
                    " sandbox, because your own pytest runs it without one",
                    severity=severity,
                    file=output_file,
                    line=_line(attempt, output_file),
                    test=name,
                )
            )
    return found


def module_findings(run: PytestRun, output_file: str) -> list[Finding]:
    """What the test module tried while it was imported (outside any test): the whole module is rejected."""
    return [
        Finding(
            F.UNSAFE_BEHAVIOUR,
            f"the test module {attempt['detail']} when it is imported ({attempt['kind']}); it is not delivered",
            file=output_file,
            line=_line(attempt, output_file),
        )
        for attempt in run.module_attempts
        if str(attempt.get("path") or "").endswith(output_file)
    ]


def _line(attempt: dict[str, Any], output_file: str) -> int:
    path = str(attempt.get("path") or "")
    return int(attempt.get("line") or 1) if path.endswith(output_file) else 1
