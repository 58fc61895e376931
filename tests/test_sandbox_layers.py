"""Each sandbox layer blocks what docs/sandbox.md says it blocks (measured here, by oh_lsp/sandbox/measure.py), and
the redaction that every text of a run goes through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
    already = set(known_secrets([], {}))  # what earlier tests of this process `remember`ed
    secrets = known_secrets([SENTINEL_KEY, None, "pw"], {"GITHUB_TOKEN": "ghp_abcdefghij", "PATH": "/usr/bin"})
    assert {SENTINEL_KEY, "ghp_abcdefghij"} <= set(secrets)
    assert set(secrets) - already == {SENTINEL_KEY, "ghp_abcdefghij"} - already  # not "pw" (too short), not PATH
    assert secrets == sorted(secrets, key=len, reverse=True), "longest first"
    text = f'OPENROUTER_API_KEY={SENTINEL_KEY}\x00GITHUB_TOKEN=ghp_abcdefghij {{"k": "{SENTINEL_KEY}"}}'
    assert redact(text, secrets) == f'OPENROUTER_API_KEY={MARK}\x00GITHUB_TOKEN={MARK} {{"k": "{MARK}"}}'
    nested = {"failures": {"test_x": [f"E  assert '{SENTINEL_KEY}' == ''"]}, SENTINEL_KEY: 1}
    assert SENTINEL_KEY not in repr(redact_data(nested, secrets))
    quoted = 'ab"cd\\ef-secret'
    assert redact(repr(quoted) + " " + '"ab\\"cd\\\\ef-secret"', [quoted]) == f"'{MARK}' \"{MARK}\""


@pytest.fixture
def world_reachable_dir():
    """A folder `nobody` can reach (pytest's own temporary folders are private to root)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="oh-lsp-nobody-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_launcher_sandboxes_an_unprivileged_user_too(world_reachable_dir: Path) -> None:
    """The layers need no root: as `nobody` (switched to with setpriv when this runs as root), with the machine's own
    Python (the launcher uses the standard library only), the copy is seen at the project's path, /proc shows only
    the sandbox, and Landlock keeps writes in the copy."""
    import json
    import os
    import shutil
    import subprocess

    from oh_lsp.validation.sandbox import LAUNCHER, probe_kernel

    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not python:
        missing("needs root (to become nobody with setpriv) and /usr/bin/python3")
    if probe_kernel()["namespaces"] is not None or not probe_kernel()["landlock"]:
        missing(f"this kernel lacks a layer: {probe_kernel()}")
    tmp_path = world_reachable_dir
    real, copy = tmp_path / "project", tmp_path / "copy"
    for folder, text in ((real, "real"), (copy, "copy")):
        folder.mkdir()
        (folder / "what.txt").write_text(text)
    shutil.copyfile(LAUNCHER, tmp_path / "launch.py")
    subprocess.run(["chown", "-R", "65534:65534", str(tmp_path)], check=True)
    tmp_path.chmod(0o755)
    spec = {
        "namespaces": {
            "plan": [["tmpfs", "/tmp"], ["bind", str(copy), str(real), True]],
            "writable": [str(real), "/tmp"],
        },
        "landlock": {"read": ["/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/dev"], "write": [str(real)]},
        "chdir": str(real),
    }
    script = "id -u; cat what.txt; echo; ls /proc | grep -c '^[0-9]'; touch new.txt && echo wrote; touch /tmp/x"
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    done = subprocess.run(
        [*as_nobody, python, "-I", "-S", str(tmp_path / "launch.py"), json.dumps(spec), "--", "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    uid, seen, processes, wrote = done.stdout.split()[:4]
    assert (uid, seen, wrote) == ("65534", "copy", "wrote"), done
    assert int(processes) <= 4, "only the sandbox's own processes"
    assert "Permission denied" in done.stderr  # /tmp is mounted writable, but Landlock does not let it write there
    assert (copy / "new.txt").exists() and not (real / "new.txt").exists()
