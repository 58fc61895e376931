"""What a test needs from outside this repository's Python environment: an editor, PostgreSQL's server programs,
bubblewrap, a Python >= 3.12 for the OpenHands SDK.

On a developer's machine a test whose prerequisite is missing is skipped, saying what is missing and how to get it.
`.ci/run` installs them all and sets OH_LSP_TEST_REQUIRE_ALL=1: there the same absence fails the run, so CI never
passes by skipping.
"""

from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("OH_LSP_TEST_REQUIRE_ALL") == "1"  # read at import: isolated_env hides OH_LSP_* later


def missing(why: str) -> None:
    """Skip the test because `why`; fail it instead where every prerequisite is required."""
    if REQUIRED:
        pytest.fail(f"{why} (OH_LSP_TEST_REQUIRE_ALL=1: .ci/run installs this)")
    pytest.skip(why)
