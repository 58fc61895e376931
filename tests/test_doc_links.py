"""Every in-repo document that the code, the tests and the docs cite (`docs/models.md#selection`,
`README.md#quick-start`, a Markdown link) exists, and so does the section its `#anchor` names, as GitHub renders it.
A comment that cites a rule points a reader at a page they can open."""

from __future__ import annotations

import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `README.md` or `docs/….md`, optionally with `#anchor`, as code and tests cite them (not part of a longer path)
CITED = re.compile(r"(?<![\w./-])((?:README|CHANGELOG)\.md|docs/[\w/-]+\.md)(#[\w-]+)?")
# a Markdown link target relative to the page: `(other.md#anchor)`, `(#anchor)`, `(../README.md)`
LINKED = re.compile(r"\]\(((?:\.\./)?[\w/-]*\.md|)(#[\w-]+)?\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.*)", line)):
            name = anchor(heading.group(1))
            count = sum(1 for a in found if a == name or re.fullmatch(re.escape(name) + r"-\d+", a))
            found.add(name if count == 0 else f"{name}-{count}")  # GitHub numbers repeated headings
    return found


def broken(root: Path, sources: list[Path]) -> list[str]:
    """Each citation or link in `sources` whose page or section does not exist under `root`: ``file:line: target``."""
    problems = []
    for source in sources:
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            cited = [(root / page, page, section) for page, section in CITED.findall(line)]
            if source.suffix == ".md":
                cited += [
                    ((source.parent / page).resolve() if page else source, page or source.name, section)
                    for page, section in LINKED.findall(line)
                ]
            for path, page, section in cited:
                where = f"{source.relative_to(root)}:{number}: {page}{section}"
                if not path.is_file():
                    problems.append(f"{where} (no such file)")
                elif section and section[1:] not in anchors(path):
                    problems.append(f"{where} (no such section)")
    return problems


def project_sources() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for folder in ("oh_lsp", "tests", "scripts", "bench"):
        files += sorted(p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".json", ".md") and p.is_file())
    return [p for p in files if p != Path(__file__).resolve()]  # this file plants broken ones


def test_every_cited_document_and_section_exists() -> None:
    assert broken(REPO, project_sources()) == []


def test_a_missing_section_or_page_is_reported_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "models.md").write_text(
        "# Models\n\n## The error table (request layer)\n\n```\n# not a heading\n```\n## Selection\n## Selection\n"
    )
    (tmp_path / "README.md").write_text("See [models](docs/models.md#selection-1) and [here](#nowhere).\n")
    code = tmp_path / "m.py"
    code.write_text(
        '"""As docs/models.md#the-error-table-request-layer says."""\n'
        "# docs/models.md#not-a-heading, README.md#nowhere, docs/gone.md\n"
    )
    assert broken(tmp_path, [tmp_path / "README.md", code]) == [
        "README.md:1: README.md#nowhere (no such section)",
        "m.py:2: docs/models.md#not-a-heading (no such section)",
        "m.py:2: README.md#nowhere (no such section)",
        "m.py:2: docs/gone.md (no such file)",
    ]


def test_anchors_are_githubs() -> None:
    assert (
        anchor("P1 — engine throughput through the durable queue") == "p1--engine-throughput-through-the-durable-queue"
    )
    assert anchor("In the editor: `oh-lsp serve`") == "in-the-editor-oh-lsp-serve"
    assert (
        anchor("QueuedTask, TaskPriority, TaskCategory, TaskStatus")
        == "queuedtask-taskpriority-taskcategory-taskstatus"
    )
    assert anchor("unit_test") == "unit_test"
