"""Taking code out of answers, placing tests into modules through the AST, and choosing where tests go."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from oh_lsp.extract import ExtractionError, extract_python
from oh_lsp.kinds.placement import apply_text_edits, merge_tests
from oh_lsp.kinds.test_layout import locate_tests


def test_fenced_python_block_is_taken() -> None:
    answer = "Sure!\n```python\nimport x\n\ndef test_a():\n    assert x\n```\nDone."
    assert extract_python(answer) == "import x\n\ndef test_a():\n    assert x\n"


def test_block_with_tests_is_preferred_over_others() -> None:
    answer = "```python\nprint('setup')\n```\n\n```py\ndef test_real():\n    pass\n```\n```bash\npytest\n```\n"
    assert "test_real" in extract_python(answer, prefer="def test")


def test_longer_fence_keeps_inner_fences() -> None:
    answer = '````python\ndef test_doc():\n    s = """\n```\nnot the end\n```\n"""\n    assert s\n````\n'
    code = extract_python(answer)
    assert "not the end" in code
    ast.parse(code)


def test_unfenced_code_and_prose_prefix() -> None:
    assert extract_python("def test_a():\n    pass") == "def test_a():\n    pass\n"
    code = extract_python("Here you go:\nimport os\n\ndef test_b():\n    assert os\n")
    assert code.startswith("import os")


@pytest.mark.parametrize("answer", ["", "   ", "I cannot help with that.", "```bash\nls\n```"])
def test_garbage_gives_a_clear_error(answer: str) -> None:
    with pytest.raises(ExtractionError):
        extract_python(answer)


EXISTING = '''\
"""Tests of calc."""
import pytest

from pkg.calc import add

# a comment the user wrote


def test_add():
    assert add(1, 1) == 2  # keep me
'''

GENERATED = """\
import pytest
from pkg.calc import add, divide


@pytest.fixture
def two():
    return 2


def test_add():
    assert add(1, 1) == 2


def test_divide(two):
    assert divide(4, two) == 2
"""


def test_merge_keeps_user_text_renames_duplicates_and_adds_only_new_imports() -> None:
    placement = merge_tests(EXISTING, GENERATED)
    text = placement.text
    assert text.startswith(
        EXISTING.split("# a comment")[0].replace(
            "from pkg.calc import add\n", "from pkg.calc import add\nfrom pkg.calc import divide\n"
        )
    )
    assert "# a comment the user wrote" in text and "# keep me" in text
    assert placement.renamed == {"test_add": "test_add_2"}
    assert placement.tests == ["test_add_2", "test_divide"]
    names = [n.name for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)]
    assert names == ["test_add", "two", "test_add_2", "test_divide"]
    assert text.count("import pytest") == 1
    assert apply_text_edits(EXISTING, placement.edits) == text
    assert all(e.start_line == e.end_line for e in placement.edits)  # insertions only


def test_merge_into_file_without_final_newline() -> None:
    placement = merge_tests("import os", "import sys\n\ndef test_x():\n    assert sys and os\n")
    ast.parse(placement.text)
    assert placement.text.startswith("import os\nimport sys\n")


def test_helper_defined_differently_is_left_out_with_a_note() -> None:
    existing = "def helper():\n    return 1\n\n\ndef test_one():\n    assert helper() == 1\n"
    generated = "def helper():\n    return 2\n\n\ndef test_two():\n    assert helper()\n"
    placement = merge_tests(existing, generated)
    assert placement.text.count("def helper") == 1
    assert placement.skipped and "helper" in placement.skipped[0]


def _make(root: Path, *files: str) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_mirrored_layout_creates_packages(tmp_path: Path) -> None:
    _make(tmp_path, "pkg/sub/mod.py")
    loc = locate_tests(tmp_path, Path("pkg/sub/mod.py"))
    assert loc.path == Path("tests/pkg/sub/test_mod.py") and not loc.exists
    assert loc.init_files == [
        Path("tests/__init__.py"),
        Path("tests/pkg/__init__.py"),
        Path("tests/pkg/sub/__init__.py"),
    ]


def test_top_level_and_src_layouts(tmp_path: Path) -> None:
    _make(tmp_path, "mod.py", "src/pkg/mod.py")
    assert locate_tests(tmp_path, Path("mod.py")).path == Path("tests/test_mod.py")
    loc = locate_tests(tmp_path, Path("src/pkg/mod.py"))
    assert loc.path == Path("tests/pkg/test_mod.py")


def test_existing_test_module_is_found(tmp_path: Path) -> None:
    _make(tmp_path, "pkg/mod.py", "tests/pkg/test_mod.py")
    loc = locate_tests(tmp_path, Path("pkg/mod.py"))
    assert loc.path == Path("tests/pkg/test_mod.py") and loc.exists


def test_tests_beside_modules_layout_is_followed(tmp_path: Path) -> None:
    _make(tmp_path, "pkg/a.py", "pkg/test_a.py", "pkg/b.py")
    assert locate_tests(tmp_path, Path("pkg/b.py")).path == Path("pkg/test_b.py")


def test_flat_tests_layout_is_followed(tmp_path: Path) -> None:
    _make(tmp_path, "pkg/a.py", "pkg/b.py", "tests/test_a.py")
    assert locate_tests(tmp_path, Path("pkg/b.py")).path == Path("tests/test_b.py")


def test_no_init_that_would_shadow_the_package(tmp_path: Path) -> None:
    # tests/ exists as a plain folder (no __init__.py) with nested tests: add none anywhere
    _make(tmp_path, "pkg/sub/mod.py", "pkg/mod.py", "tests/pkg/test_mod.py")
    loc = locate_tests(tmp_path, Path("pkg/sub/mod.py"))
    assert loc.init_files == []
    assert loc.path.name != "test_mod.py"  # a unique basename instead: no "import file mismatch"
