"""Findings: what a check found, precise enough to show as a diagnostic on the exact line.

Codes are stable strings; editors and scripts may rely on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"

# Stable codes.
SYNTAX_ERROR = "syntax-error"
IMPORT_ERROR = "import-error"
COLLECTION_ERROR = "collection-error"
NO_TESTS = "no-tests-collected"
TEST_FAILED = "test-failed"
TEST_ERROR = "test-error"
FLAKY_TEST = "flaky-test"
NO_COVERAGE_GAIN = "no-coverage-gain"
POSSIBLE_BUG = "possible-bug"
TARGET_NOT_IMPORTED = "target-not-imported"
OUTPUT_MISSING = "output-missing"
CONTENT_DIFFERS = "content-differs"
UNTRUSTED_INPUT = "untrusted-input"
NOT_RUN_UNTRUSTED = "not-run-untrusted"
NOT_ISOLATED = "not-isolated"
NO_SANDBOX = "no-sandbox"
UNSAFE_BEHAVIOUR = "unsafe-behaviour"
TIMEOUT = "timeout"
INTERPRETER = "interpreter-error"
NO_CODE = "no-code-in-answer"
BELOW_THRESHOLD = "below-threshold"
NO_DOCSTRING_GAIN = "no-docstring-gain"
NOT_VERIFIED = "not-verified"
BEHAVIOUR_CHANGED = "behaviour-changed"
UNKNOWN_PARAMETER = "unknown-parameter"
PUBLIC_NAME_REMOVED = "public-name-removed"
EXISTING_TESTS_BROKEN = "existing-tests-broken"
# coverage baselines, mutation analysis and the per-test value gate (docs/validation.md)
EXISTING_TESTS_FAILING = "existing-tests-failing"
BASELINE_INCOMPLETE = "baseline-incomplete"
NO_ASSERTION = "no-assertion"
NO_VALUE = "adds-nothing"
UNCOVERED = "uncovered"  # lines no test runs
UNCOVERED_BRANCH = "uncovered-branch"  # a branch no test takes
SURVIVING_MUTANT = "surviving-mutant"
MUTATION_INCOMPLETE = "mutation-incomplete"
NOTHING_LEFT = "nothing-left"  # the existing tests already cover and notice everything the task is about


@dataclass(frozen=True)
class Finding:
    """One thing a check found. Lines are 1-based and columns 0-based, as Python's AST reports them."""

    code: str
    message: str
    severity: str = ERROR
    file: str | None = None
    line: int = 1
    col: int = 0
    end_line: int | None = None
    end_col: int | None = None
    test: str | None = None  # the test function concerned, if any

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col + 1}: " if self.file else ""
        return f"{where}{self.code}: {self.message}"


def syntax_error(exc: SyntaxError, what: str, file: str | None) -> Finding:
    """`SYNTAX_ERROR` where Python found it ("{what} does not parse: ..."); its 1-based offset becomes a column."""
    return Finding(
        SYNTAX_ERROR,
        f"{what} does not parse: {exc.msg}",
        file=file,
        line=exc.lineno or 1,
        col=max((exc.offset or 1) - 1, 0),
    )
