# Starts the oh-lsp language server that this extension bundles (bundled/libs) with the Python running this file.
#
#   <python> launch.py            run `oh-lsp serve` (stdio)
#   <python> launch.py --check    print one JSON line: {"ok", "version", "executable", "supported", "reason",
#                                 "installed" (the interpreter itself has oh-lsp: what `fromEnvironment` runs)}
#
# The extension runs `--check` first, so that a Python it cannot use gets one clear message instead of a failed
# start. This file must stay readable by any Python (2.7 included): no f-strings, no annotations, no unpacking in
# list literals; hence the ruff rules it opts out of.
# ruff: noqa: UP024, UP031, RUF005
import json
import os
import sys

LIBS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "libs")
UNSUPPORTED = 85  # the exit code for "this Python cannot run the bundled server"; the extension knows it


def supported():
    with open(os.path.join(LIBS, "manifest.json")) as manifest:
        return json.load(manifest)["pythons"]


def installed():
    """Whether this interpreter, as it is, can import oh-lsp."""
    try:
        import importlib.util

        return importlib.util.find_spec("oh_lsp") is not None
    except (ImportError, AttributeError, ValueError):
        return False


def check():
    """(ok, report) for the running interpreter."""
    version = "%d.%d.%d" % tuple(sys.version_info[:3])
    short = "%d.%d" % tuple(sys.version_info[:2])
    report = {
        "ok": False,
        "version": version,
        "executable": sys.executable,
        "supported": [],
        "reason": "",
        "installed": installed(),
    }
    try:
        report["supported"] = supported()
    except (IOError, OSError, ValueError, KeyError) as error:
        report["reason"] = "the extension's bundled packages are missing or damaged (%s)" % (error,)
        return False, report
    implementation = getattr(getattr(sys, "implementation", None), "name", "cpython")
    if implementation != "cpython":
        report["reason"] = "it is %s %s; oh-lsp's bundle is built for CPython" % (implementation, version)
    elif short not in report["supported"]:
        oldest, newest = report["supported"][0], report["supported"][-1]
        too_old = tuple(sys.version_info[:2]) < tuple(int(part) for part in oldest.split("."))
        report["reason"] = "it is Python %s; oh-lsp needs Python %s%s" % (
            version,
            oldest,
            " or newer" if too_old else " to %s" % newest,
        )
        report["tooOld"] = too_old
    else:
        report["ok"] = True
    return report["ok"], report


def main():
    ok, report = check()
    if "--check" in sys.argv[1:]:
        print(json.dumps(report))
        return 0 if ok else UNSUPPORTED
    if not ok:
        sys.stderr.write("oh-lsp cannot start with %s: %s\n" % (report["executable"], report["reason"]))
        return UNSUPPORTED
    tag = "cp" + "".join(report["version"].split(".")[:2])
    # first on the path: the user's own packages never replace the bundled ones; nothing is added to PYTHONPATH,
    # so the project's tests, which oh-lsp runs in their own processes, see only the project's environment
    sys.path[0:0] = [os.path.join(LIBS, tag), os.path.join(LIBS, "any")]
    from oh_lsp.cli import main as oh_lsp

    return oh_lsp(["serve"] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
