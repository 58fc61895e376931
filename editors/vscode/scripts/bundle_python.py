"""Bundle oh-lsp and its Python dependencies into the extension (bundled/libs), for one VS Code platform.

The extension then runs the language server with the user's own interpreter (the one the Python extension selects,
else python3 on PATH) and these packages, as the extensions built from Microsoft's vscode-python-tools-extension-template
do (ruff, black-formatter, pylint, isort): nothing is installed into the user's environment and nothing is fetched
when the extension runs.

One dependency must be compiled per CPython version and platform: pydantic-core. aiohttp, multidict, yarl, frozenlist
and propcache ship compiled accelerators too, but they are optional (each falls back to its own pure-Python code, as
with AIOHTTP_NO_EXTENSIONS): the bundle leaves them out, which halves its size, and those packages then are pure.
coverage.py's C tracer is optional too (it falls back to its Python tracer, or sys.monitoring on 3.12+), and a pure
coverage.py is the one oh-lsp can lend to a project interpreter of any Python version. So the bundle holds:

  bundled/libs/any/            the pure-Python packages, oh-lsp itself among them (the same for every version)
  bundled/libs/cp311/ ...      the compiled packages, one folder per supported CPython version (pydantic-core)
  bundled/libs/manifest.json   the platform, the CPython versions and the packages, for the launcher and the tests

Usage (needs uv: on PATH, in $UV, or as a module of this Python; uses the package index through uv's cache, like `npm ci` does for the node modules):

  python3 scripts/bundle_python.py [--target linux-x64] [--python 3.11 3.12 ...]

Only the Python standard library is used here, so any python3 can run it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXTENSION = Path(__file__).resolve().parents[1]
REPO = EXTENSION.parents[1]
LIBS = EXTENSION / "bundled" / "libs"
# The CPython versions oh-lsp supports (pyproject: requires-python >= 3.11) that have wheels of every dependency.
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# VS Code's platform targets (`vsce package --target`) -> uv's --python-platform. VS Code needs glibc 2.28 on Linux.
PLATFORMS = {
    "linux-x64": "x86_64-manylinux_2_28",
    "linux-arm64": "aarch64-manylinux_2_28",
    "darwin-x64": "x86_64-apple-darwin",
    "darwin-arm64": "aarch64-apple-darwin",
    "win32-x64": "x86_64-pc-windows-msvc",
    "win32-arm64": "aarch64-pc-windows-msvc",
}
# Packages whose compiled modules only speed them up: the bundle keeps their pure-Python code alone.
OPTIONAL_ACCELERATORS = ("aiohttp", "multidict", "yarl", "frozenlist", "propcache", "coverage")
COMPILED = ("*.so", "*.pyd")
# Not needed to run the server: scripts with a shebang of the build machine, bytecode, SBOM documents.
DROPPED = ("bin", "__pycache__", "sboms")


def current_target() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system(), "linux")
    machine = {"x86_64": "x64", "AMD64": "x64", "arm64": "arm64", "aarch64": "arm64"}.get(platform.machine(), "x64")
    return f"{system}-{machine}"


def uv() -> list[str] | None:
    """How to run uv: `uv run` names itself in $UV; else uv on PATH; else the uv module of this Python."""
    import importlib.util
    import os

    if os.environ.get("UV"):
        return [os.environ["UV"]]
    if shutil.which("uv"):
        return ["uv"]
    return [sys.executable, "-m", "uv"] if importlib.util.find_spec("uv") else None


UV: list[str] = []


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True, **kwargs)


def build_wheel(out: Path) -> Path:
    run([*UV, "build", "--wheel", "--quiet", "--out-dir", str(out), str(REPO)])
    return next(out.glob("oh_lsp-*.whl"))


def install(wheel: Path, version: str, target: str, into: Path) -> None:
    run(
        [
            *UV,
            "pip",
            "install",
            "--quiet",
            "--target",
            str(into),
            "--python-version",
            version,
            "--python-platform",
            PLATFORMS[target],
            "--only-binary",
            ":all:",
            "--no-compile",
            "--no-installer-metadata",
            str(wheel),
        ]
    )


def distributions(folder: Path) -> dict[str, dict]:
    """name-version -> {pure, paths (top-level entries it installed)} for every distribution in `folder`."""
    found = {}
    for info in sorted(folder.glob("*.dist-info")):
        wheel = (info / "WHEEL").read_text(encoding="utf-8")
        pure = "Root-Is-Purelib: true" in wheel
        tops = {info.name}
        for line in (info / "RECORD").read_text(encoding="utf-8").splitlines():
            path = line.split(",", 1)[0]
            top = path.split("/", 1)[0]
            if path and not path.startswith("..") and top not in DROPPED:
                tops.add(top)
        name = info.name.removesuffix(".dist-info")
        if not pure and name.split("-", 1)[0] in OPTIONAL_ACCELERATORS:
            for top in tops:
                for pattern in COMPILED:
                    for module in (folder / top).rglob(pattern) if (folder / top).is_dir() else ():
                        module.unlink()
            pure = True
        found[name] = {"pure": pure, "paths": sorted(tops)}
    return found


def move(folder: Path, entries: list[str], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        source = folder / entry
        if source.exists() and not (into / entry).exists():
            shutil.move(str(source), str(into / entry))


def prune(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.name in DROPPED and path.is_dir():
            shutil.rmtree(path)


def bundle(target: str, versions: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="oh-lsp-bundle-") as scratch:
        work = Path(scratch)
        wheel = build_wheel(work / "wheel")
        installed = {}
        for version in versions:
            folder = work / f"cp{version.replace('.', '')}"
            install(wheel, version, target, folder)
            installed[version] = (folder, distributions(folder))
        # a pure distribution installed, at the same version, for every Python goes to any/ once; the rest stays
        # with its version (compiled ones, and pure ones whose version or presence depends on the Python)
        common = set.intersection(*(set(d) for _, d in installed.values()))
        shared = sorted(name for name in common if all(d[name]["pure"] for _, d in installed.values()))
        if LIBS.exists():
            shutil.rmtree(LIBS)
        first = next(iter(installed.values()))
        move(first[0], [p for name in shared for p in first[1][name]["paths"]], LIBS / "any")
        per_version = {}
        for version, (folder, found) in installed.items():
            for name in shared:  # the same files, already in any/
                for entry in found[name]["paths"]:
                    path = folder / entry
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
            own = sorted(set(found) - set(shared))
            move(folder, [p for name in own for p in found[name]["paths"]], LIBS / folder.name)
            per_version[version] = own
        prune(LIBS)
    manifest = {
        "target": target,
        "pythons": versions,
        "ohLsp": wheel.name.split("-")[1],
        "any": shared,
        "perVersion": per_version,
    }
    (LIBS / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--target", choices=sorted(PLATFORMS), default=current_target())
    parser.add_argument("--python", nargs="+", default=list(PYTHONS), choices=PYTHONS, metavar="X.Y")
    args = parser.parse_args()
    found = uv()
    if found is None:
        print("bundle_python.py needs uv (on PATH, or `pip install uv`)", file=sys.stderr)
        return 2
    UV[:] = found
    manifest = bundle(args.target, sorted(set(args.python)))
    print(
        f"bundled oh-lsp {manifest['ohLsp']} for {args.target}, CPython {', '.join(manifest['pythons'])}:"
        f" {len(manifest['any'])} pure packages, {size(LIBS) / 1e6:.1f} MB in {LIBS.relative_to(EXTENSION)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
