"""Fuzzed inputs: CLI arguments and model answers (random text, huge answers, deeply nested fences, bytes that are
not UTF-8). Nothing crashes or hangs: each input ends in a result or a clear error."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oh_lsp.cli import main
from oh_lsp.extract import ExtractionError, extract_python
from oh_lsp.kinds import documentation, refactoring, unit_test
from oh_lsp.kinds.base import Target
from oh_lsp.paths import sha256_text
from tests.conftest import CALC

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])

COMMANDS = [
    "submit-task",
    "get-status",
    "cancel-task",
    "queue-stats",
    "metrics",
    "list-tasks",
    "select-model",
    "models",
]
OPTIONS = [
    "--task-type",
    "--target-file",
    "--priority",
    "--description",
    "--complexity",
    "--quality-threshold",
    "--task-id",
    "--status",
    "--limit",
    "--json",
    "--project-root",
    "-v",
    "list",
    "reset",
    "unit_test",
    "documentation",
    "high",
    "critical",
    "1.5",
    "-1",
    "0.5",
    "pkg/calc.py",
    "../../etc/passwd",
    "/etc/passwd",
    "pkg",
    "",
    "\x00",
    "é",
    "--",
    "-",
    "nope.py",
    "999999999999999999999",
]
argv_token = st.one_of(st.sampled_from(OPTIONS), st.text(max_size=20))


@given(argv=st.lists(argv_token, max_size=8), command=st.sampled_from(COMMANDS))
@FUZZ
def test_cli_arguments_end_in_an_exit_code(
    argv: list[str], command: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("OPENHANDS_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: no call can leave
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([command, *argv])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    assert code in (0, 1, 2), (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue()


def target(root: Path) -> Target:
    return Target(root, Path("pkg/calc.py"), CALC, "pkg.calc", sha256_text(CALC))


answers = st.one_of(
    st.text(max_size=3000),
    st.binary(max_size=3000).map(lambda b: b.decode("utf-8", "surrogateescape")),  # bytes that are not UTF-8
    st.integers(1, 60).map(
        lambda depth: (
            "".join(f"{'`' * (3 + i)}python\n" for i in range(depth))
            + "x = 1\n"
            + "".join(f"{'`' * (3 + i)}\n" for i in reversed(range(depth)))
        )
    ),
    st.text(alphabet="`~ \npythondef:()", max_size=500),
    st.builds(lambda n, s: "```python\n" + s * n + "\n```", st.integers(1, 2000), st.text(max_size=40)),
)


# Python 3.11's parser raises MemoryError, not SyntaxError, on this answer (found by hypothesis)
PARSER_OUT_OF_MEMORY = "```python\n" + "A A " * 747 + "\n```"


@given(answer=answers)
@example(answer=PARSER_OUT_OF_MEMORY)
@FUZZ
def test_model_answers_give_a_candidate_or_a_clear_error(answer: str, project: Path) -> None:
    for kind in (unit_test, documentation, refactoring):
        try:
            candidate = kind.make_candidate(answer, target(project), None)
        except ExtractionError as exc:
            assert str(exc)
            continue
        assert candidate.output_file and isinstance(candidate.content, str)


def test_code_the_parser_cannot_hold_is_reported_as_a_syntax_error() -> None:
    code = extract_python(PARSER_OUT_OF_MEMORY)
    tree, findings = unit_test.static_findings("tests/test_x.py", code, "pkg/calc.py", trusted=True)
    assert tree is None and [f.code for f in findings] == ["syntax-error"]
    assert "too deeply nested or too long to parse" in findings[0].message


def test_a_huge_answer_is_refused_quickly() -> None:
    huge = "```python\n" + "x = 1\n" * 500_000 + "```"
    with pytest.raises(ExtractionError, match="too large"):
        extract_python(huge)
    assert os.getpid()
