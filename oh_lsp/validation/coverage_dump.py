"""Write what a ``coverage run`` with contexts measured of some files as one JSON document.

Run by the *project's* interpreter (with the coverage.py it has, or the one oh-lsp lends it), after the run, in the
sandbox: ``python oh_lsp_coverage_dump.py RCFILE OUT FILE...``. For each FILE (an absolute path) it writes its
statements, its missing lines, every possible branch arc (from a line with two or more exits to each exit; a negative
destination is an exit from the code object whose first line is its absolute value), and, per coverage context, the
lines and branch arcs that ran. Imports nothing from oh-lsp; Python 3.8 syntax.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from typing import Any

import coverage


def _report(cov: coverage.Coverage, files: list[str]) -> dict[str, dict[str, Any]]:
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        try:
            cov.json_report(morfs=files, outfile=path)
        except coverage.CoverageException:  # "no data to report": nothing ran
            return {}
        with open(path, encoding="utf-8") as source:
            found: dict[str, dict[str, Any]] = json.load(source).get("files", {})
            return found
    finally:
        os.unlink(path)


def _find(report: dict[str, dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    for name, info in report.items():
        if os.path.abspath(name) == wanted or wanted.endswith("/" + name.replace(os.sep, "/")):
            return info
    return None


def main(rcfile: str, out: str, files: list[str]) -> None:
    cov = coverage.Coverage(config_file=rcfile)
    cov.load()
    data = cov.get_data()
    report = _report(cov, files)
    measured = {os.path.abspath(name): name for name in data.measured_files()}
    contexts = sorted(data.measured_contexts())
    documents: dict[str, Any] = {}
    result = {"version": coverage.__version__, "files": documents}
    for wanted in files:
        info = _find(report, wanted)
        if info is None:
            documents[wanted] = None
            continue
        branches = [list(a) for a in info.get("executed_branches", []) + info.get("missing_branches", [])]
        branch_set = {tuple(a) for a in branches}
        statements = sorted(set(info.get("executed_lines", [])) | set(info.get("missing_lines", [])))
        per_context = {}
        name = measured.get(wanted)
        if name is not None:
            for context in contexts:
                data.set_query_contexts(["^" + re.escape(context) + "$"])
                lines = sorted(data.lines(name) or [])
                arcs = sorted(a for a in (data.arcs(name) or []) if a in branch_set)
                if lines or arcs:
                    per_context[context] = {"lines": lines, "arcs": [list(a) for a in arcs]}
            data.set_query_contexts(None)
        documents[wanted] = {
            "statements": statements,
            "missing": sorted(info.get("missing_lines", [])),
            "branches": sorted(branches),
            "contexts": per_context,
        }
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
