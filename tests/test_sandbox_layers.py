"""Each sandbox layer blocks what docs/sandbox.md says it blocks (measured here, by oh_lsp/sandbox/measure.py), and
the redaction that every text of a run goes through."""

from __future__ import annotations

import re
from pathlib import Path

from oh_lsp.redaction import MARK, known_secrets, redact, redact_data
from oh_lsp.sandbox.measure import LAYERS, ROWS, measure_all, table
from tests.conftest import SENTINEL_KEY
from tests.prerequisites import missing

DOC = Path(__file__).parent.parent / "docs" / "sandbox.md"


def documented() -> dict[str, dict[str, str]]:
    """column -> row text -> cell, from the table between the sandbox-table markers of docs/sandbox.md."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- sandbox-table -->\n(.*?)\n<!-- /sandbox-table -->", text, re.DOTALL)
    assert block, "docs/sandbox.md has no measured table"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.group(1).splitlines()]
    header, body = rows[0], rows[2:]
    return {column: {row[0]: row[i] for row in body} for i, column in enumerate(header) if i}


async def test_the_documented_table_is_what_this_machine_measures() -> None:
    results = await measure_all()
    docs = documented()
    assert list(docs) == list(LAYERS) and list(next(iter(docs.values()))) == list(ROWS.values())
    measured: dict[str, dict[str, str]] = {column: {} for column in LAYERS}
    for line in table(results).splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for column, cell in zip(LAYERS, cells[1:], strict=True):
            measured[column][cells[0]] = cell
    unavailable = [column for column, got in results.items() if isinstance(got, str)]
    for column in LAYERS:
        if column not in unavailable:
            assert measured[column] == docs[column], f"{column}: measured {measured[column]}"
    if unavailable:
        missing("not measurable here: " + "; ".join(f"{c}: {results[c]}"[:300] for c in unavailable))


def test_redaction_takes_out_every_form_of_every_known_secret() -> None:
    secrets = known_secrets([SENTINEL_KEY, None, "pw"], {"GITHUB_TOKEN": "ghp_abcdefghij", "PATH": "/usr/bin"})
    assert secrets == [SENTINEL_KEY, "ghp_abcdefghij"]  # too short ("pw") and ordinary variables are not secrets
    text = f'OPENROUTER_API_KEY={SENTINEL_KEY}\x00GITHUB_TOKEN=ghp_abcdefghij {{"k": "{SENTINEL_KEY}"}}'
    assert redact(text, secrets) == f'OPENROUTER_API_KEY={MARK}\x00GITHUB_TOKEN={MARK} {{"k": "{MARK}"}}'
    nested = {"failures": {"test_x": [f"E  assert '{SENTINEL_KEY}' == ''"]}, SENTINEL_KEY: 1}
    assert SENTINEL_KEY not in repr(redact_data(nested, secrets))
    quoted = 'ab"cd\\ef-secret'
    assert redact(repr(quoted) + " " + '"ab\\"cd\\\\ef-secret"', [quoted]) == f"'{MARK}' \"{MARK}\""
