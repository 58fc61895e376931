"""Where the tests of a module go (README.md#quick-start, step 2; the details are here).

`pkg/sub/mod.py` -> `tests/pkg/sub/test_mod.py`; `mod.py` -> `tests/test_mod.py`; `src/pkg/mod.py` ->
`tests/pkg/test_mod.py`; unless the module already has a test file, or the project keeps its tests next to the
modules or in a flat `tests/`. New nested test folders get an `__init__.py`, and so does every folder above them up
to `tests/`, but only when `tests/` is (or becomes) a package itself: an `__init__.py` in `tests/pkg/` under a
`tests/` without one would make pytest import `tests/pkg` as the package `pkg`, shadowing the real one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "env",
    "node_modules",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    "openhands_workspace",
    "site-packages",
}


@dataclass
class TestLocation:
    path: Path  # relative to the project root
    init_files: list[Path] = field(default_factory=list)  # __init__.py files to create, relative to the root
    exists: bool = False


def _is_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def _test_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        for name in filenames:
            if _is_test_file(name):
                found.append(Path(dirpath, name).relative_to(root))
        if len(found) > 5000:
            break
    return found


def _in_tests_dir(path: Path) -> bool:
    return any(part in ("tests", "test") for part in path.parts[:-1])


def locate_tests(root: Path, target: Path) -> TestLocation:
    """The test module for `target` (relative to `root`), and the `__init__.py` files creating it needs."""
    stem = target.stem
    candidates = {f"test_{stem}.py", f"{stem}_test.py"}
    parts = list(target.parent.parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    mirrored = Path("tests", *parts, f"test_{stem}.py")
    beside = target.parent / f"test_{stem}.py"
    existing = _test_files(root)

    # 1. The module already has a test file: the mirrored path, beside it, or a flat tests/ file of that name.
    for path in (mirrored, beside, *(target.parent / c for c in candidates)):
        if (root / path).is_file():
            return TestLocation(path, exists=True)
    same_name = [p for p in existing if p.name in candidates]
    if len(same_name) == 1 and (len(same_name[0].parts) == 2 and _in_tests_dir(same_name[0])):
        return TestLocation(same_name[0], exists=True)

    # 2. The project's layout.
    beside_module = [p for p in existing if not _in_tests_dir(p)]
    in_tests = [p for p in existing if _in_tests_dir(p)]
    if beside_module and not in_tests:
        return TestLocation(beside)
    tests_dir = root / "tests"
    if in_tests and tests_dir.is_dir() and all(len(p.parts) == 2 and p.parts[0] == "tests" for p in in_tests):
        flat = Path("tests", f"test_{stem}.py")
        if (root / flat).exists():
            flat = Path("tests", f"test_{'_'.join([*parts, stem])}.py")
        return TestLocation(flat)
    return _mirrored(root, mirrored, existing)


def _mirrored(root: Path, path: Path, existing: list[Path]) -> TestLocation:
    tests_dir = root / "tests"
    nested = len(path.parts) > 2
    if not nested:
        return TestLocation(path)
    package_tests = not tests_dir.exists() or (tests_dir / "__init__.py").exists()
    if not package_tests:
        # tests/ is a plain folder (rootdir-style imports): no __init__.py anywhere, and a unique basename so
        # that pytest's "import file mismatch" cannot happen.
        if any(p.name == path.name and p != path for p in existing):
            path = path.with_name("test_" + "_".join(path.parts[1:-1]) + "_" + path.name[len("test_") :])
        return TestLocation(path)
    inits = []
    for depth in range(1, len(path.parts)):
        folder = Path(*path.parts[:depth])
        init = folder / "__init__.py"
        if not (root / init).exists():
            inits.append(init)
    return TestLocation(path, init_files=inits)


def tests_importing(root: Path, module: str, limit: int = 50) -> list[Path]:
    """Test modules of the project that import `module` (or something inside it), relative to the root."""
    import ast

    found = []
    last = module.rsplit(".", 1)[-1]
    for path in _test_files(root):
        try:
            text = (root / path).read_text(encoding="utf-8")
            if last not in text:  # cannot import it: no need to parse
                continue
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                names = (
                    [module] if (node.module or "").endswith(last) or any(a.name == last for a in node.names) else []
                )
            if any(n == module or n.startswith(module + ".") for n in names):
                found.append(path)
                break
        if len(found) >= limit:
            break
    return sorted(found)


def tests_of(root: Path, target: Path, module: str) -> list[Path]:
    """The test files whose text decides what a task on `target` finds (relative to `root`): its test module, every
    test module that imports it, and the `conftest.py` files pytest loads for them."""
    location = locate_tests(root, target)
    files = {*tests_importing(root, module), *([location.path] if location.exists else [])}
    for path in list(files):
        for folder in [*path.parents][:-1]:
            if (root / folder / "conftest.py").is_file():
                files.add(folder / "conftest.py")
    if (root / "conftest.py").is_file():
        files.add(Path("conftest.py"))
    return sorted(files)
