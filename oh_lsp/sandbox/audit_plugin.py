"""A pytest plugin that records what each test *tries* that a test must not do, even when the sandbox stops it: the
user's own pytest will later run the delivered tests with no sandbox at all. Loaded with ``-p oh_lsp_audit`` next to
``oh_lsp_report`` (whose `_write` it uses), in the project's interpreter: standard library only, Python 3.8 syntax.

Recorded, one ``{"event": "attempt", ...}`` line each, with the test's node id and the line of the test module:
- ``network``: a connection, datagram or name lookup beyond the loopback;
- ``write``: a file written, created, removed or renamed outside the temporary folders (TMPDIR, /tmp, /var/tmp,
  /dev/shm, ``$HOME/.cache``);
- ``project``: a file of the project copy changed, other than the usual caches (``.pytest_cache``, ``.hypothesis``,
  ``__pycache__``, ``.coverage*``); also found by comparing the copy before and after each test, which catches
  changes made by a subprocess;
- ``environ``: another process's ``/proc/<pid>/environ`` opened;
- ``signal``: a signal sent to a process the test did not start (itself and its descendants are allowed);
- ``process``: a process the test started still running when the test has ended (it is then killed).

Python-level actions are seen through audit hooks (PEP 578). What a subprocess does (``rm``, ``kill``, ``cat``) is
not, except through the comparison of the copy and the leftover-process check; the sandbox still blocks it.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from oh_lsp_report import _write  # type: ignore[import-not-found]  # beside it in the sandbox's tools

CACHE_NAMES = (".pytest_cache", ".hypothesis", "__pycache__")
SKIP_DIRS = (".git", ".venv", "venv", "node_modules", ".tox", ".nox", *CACHE_NAMES)
LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "", "::ffff:127.0.0.1", "ip6-localhost")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/stdout", "/dev/stderr", "/dev/tty")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {
    "os.remove": "removes",
    "os.rmdir": "removes",
    "os.mkdir": "creates",
    "os.chmod": "changes the mode of",
    "os.chown": "changes the owner of",
    "os.truncate": "truncates",
    "os.utime": "touches",
    "shutil.rmtree": "removes the tree",
}
TWO_PATH_EVENTS = {
    "os.rename": "renames",
    "os.replace": "renames",
    "os.link": "links",
    "os.symlink": "links",
    "shutil.move": "moves",
    "shutil.copyfile": "copies",
    "shutil.copytree": "copies",
}

_state: dict[str, Any] = {
    "test": None,
    "file": None,
    "busy": False,
    "root": None,
    "temp": (),
    "own": (),
    "skip": (),
    "real": None,
}


def _real(path: Any) -> str | None:
    try:
        return os.path.realpath(os.path.abspath(os.fsdecode(path)))
    except (TypeError, ValueError):
        return None


def _below(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _is_cache(relative: str) -> bool:
    return any(part in CACHE_NAMES or part.startswith(".coverage") for part in relative.split("/"))


def _where(path: str | None) -> tuple[str, str] | None:
    """What writing `path` is: None (allowed), ("project", ...) or ("write", ...)."""
    if path is None or path in _state["own"]:
        return None
    # in this order: the copy, its own temporary folders (which may lie in the real project's scratch folder), the
    # real project (which may lie under /tmp), then the machine's temporary folders
    for roots, project in ((_state["root"], True), (_state["temp"][:2], False), (_state["real"], True)):
        for root in roots if isinstance(roots, tuple) else (roots,):
            if root and _below(path, root):
                relative = os.path.relpath(path, root)
                return None if not project or _is_cache(relative) else ("project", relative)
    if any(_below(path, temp) for temp in _state["temp"][2:]) or path in DEVICES:
        return None
    return ("write", path)


def _line() -> tuple[str | None, int | None]:
    """The innermost line of the running test's module (else of any file in the project) on the current stack."""
    frame: Any = sys._getframe(2)
    fallback: tuple[str, int] | None = None
    while frame is not None:
        name = frame.f_code.co_filename
        if _state["file"] and name == _state["file"]:
            return name, frame.f_lineno
        if fallback is None and _state["root"] and name.startswith(_state["root"]) and "site-packages" not in name:
            fallback = (name, frame.f_lineno)
        frame = frame.f_back
    return fallback or (None, None)


def _record(kind: str, detail: str, path: str | None = None, line: int | None = None) -> None:
    if path is None:
        path, line = _line()
    root = _state["root"]
    if path and root and _below(path, root):
        path = os.path.relpath(path, root)
    _state["busy"] = True
    try:
        _write(
            {"event": "attempt", "nodeid": _state["test"], "kind": kind, "detail": detail, "path": path, "line": line}
        )
    finally:
        _state["busy"] = False


def _check_write(verb: str, raw: Any) -> None:
    found = _where(_real(raw))
    if found:
        kind, where = found
        _record(kind, f"{verb} {where}" + ("" if kind == "project" else " (outside its temporary folders)"))


def _check_open(args: tuple[Any, ...]) -> None:
    path, mode, flags = args[0], args[1], args[2]
    if isinstance(path, int):
        return
    text = os.fsdecode(path)
    if text.startswith("/proc/") and text.endswith("/environ"):
        pid = text.split("/")[2]
        if pid not in ("self", "thread-self", str(os.getpid())):
            _record("environ", f"reads another process's environment ({text})")
        return
    writes = (flags or 0) & WRITE_FLAGS or (isinstance(mode, str) and any(c in mode for c in "wax+"))
    if writes:
        _check_write("writes", path)


def _host_outside(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return isinstance(host, str) and host not in LOOPBACK and not host.startswith("127.")


def _is_address(host: Any) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _check_address(event: str, args: tuple[Any, ...]) -> None:
    address = args[1] if len(args) > 1 else None
    if isinstance(address, tuple) and address and _host_outside(address[0]):
        _record("network", f"{event.split('.')[1]}s to {address[0]}:{address[1] if len(address) > 1 else ''}")


def _check_lookup(event: str, args: tuple[Any, ...]) -> None:
    if args and _host_outside(args[0]) and not _is_address(args[0]):  # a literal address needs no lookup
        _record("network", f"looks up {args[0]!r} (a name beyond the loopback)")


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
    except (OSError, ValueError):
        pass
    return found


def _tree() -> list[int]:
    """This process's descendants, as far as /proc shows them (under Landlock alone: its children)."""
    seen, todo = [], [os.getpid()]
    while todo:
        for child in _children(todo.pop()):
            if child not in seen:
                seen.append(child)
                todo.append(child)
    return seen


def _own_child(pid: int) -> bool:
    """Whether `pid` is a child of this process, without reaping it (works where /proc is hidden)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return True
    except (ChildProcessError, OSError, AttributeError):
        return False


def _descends(pid: int) -> bool:
    return pid in _tree() or _own_child(pid)


def _check_signal(event: str, args: tuple[Any, ...]) -> None:
    target, number = args[0], args[1]
    if number == 0 or target == os.getpid():
        return
    if event == "os.killpg" or target <= 0:
        group = abs(target) if target else os.getpgid(0)
        allowed = group != os.getpgid(0) and _descends(group)
        what = f"process group {group}"
    else:
        allowed, what = _descends(target), f"process {target}"
    if not allowed:
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        _record("signal", f"sends {name} to {what}, which it did not start")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _state["busy"]:
        return
    try:
        if event == "open":
            _check_open(args)
        elif event in PATH_EVENTS:
            relative_to_fd = event in ("os.remove", "os.rmdir") and isinstance(args[1], int) and args[1] >= 0
            if not isinstance(args[0], int) and not relative_to_fd:  # (inside a tree shutil.rmtree reported)
                _check_write(PATH_EVENTS[event], args[0])
        elif event in TWO_PATH_EVENTS:
            for path in args[:2]:
                if not isinstance(path, int):
                    _check_write(TWO_PATH_EVENTS[event], path)
        elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            _check_address(event, args)
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
            _check_lookup(event, args)
        elif event in ("os.kill", "os.killpg"):
            _check_signal(event, args)
    except Exception:  # noqa: BLE001 - an audit hook must never break the test it watches
        pass


# --- per test: the copy before and after, and the processes left ----------------------------------------------------
def _snapshot() -> dict[str, tuple[int, int]]:
    root, files = _state["root"], {}  # type: str | None, dict[str, tuple[int, int]]
    if not root:
        return files
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and os.path.join(top, d) not in _state["skip"]]
        for name in names:
            path = os.path.join(top, name)
            relative = os.path.relpath(path, root)
            if _is_cache(relative):
                continue
            try:
                info = os.lstat(path)
            except OSError:
                continue
            files[relative] = (info.st_mtime_ns, info.st_size)
    return files


def _descendants() -> dict[int, str]:
    """pid -> command line of each live descendant (zombies left out)."""
    found = {}
    for pid in _tree():
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except (OSError, IndexError):
            if not _own_child(pid):
                continue
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    continue  # exited, not yet reaped
            except OSError:
                continue
        found[pid] = _command_line(pid)
    return found


def _command_line(pid: int, wait: float = 0.5) -> str:
    """The command line of `pid`. A process still inside `execve` shows an empty one (its parent's `Popen` has
    already returned: the close-on-exec pipe it waits on closes before the new program's arguments are set up), so an
    empty one is read again for up to `wait` seconds; on a loaded machine that window is long enough to be seen."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                text = cmd.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
        except OSError:
            return f"pid {pid} (its command line is hidden from the sandbox)"
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.01)


def _leftovers(before: set[int]) -> dict[int, str]:
    deadline = time.monotonic() + 1.0
    left = {}
    while True:
        left = {pid: cmd for pid, cmd in _descendants().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def pytest_configure(config: Any) -> None:
    if not hasattr(sys, "addaudithook"):
        return
    home_cache = os.path.join(os.environ.get("HOME") or tempfile.gettempdir(), ".cache")
    temp = [tempfile.gettempdir(), home_cache, "/tmp", "/var/tmp", "/dev/shm"]  # the test's own ones first
    _state["temp"] = tuple(_real(p) for p in temp)
    _state["own"] = tuple(_real(p) for p in [os.environ.get("OH_LSP_REPORT")] if p)
    _state["real"] = _real(os.environ["OH_LSP_PROJECT"]) if os.environ.get("OH_LSP_PROJECT") else None
    _state["skip"] = tuple(_real(p) for p in [os.environ.get("OH_LSP_SANDBOX_DIR")] if p)  # oh-lsp's, not the copy
    _state["root"] = _real(str(config.rootpath if hasattr(config, "rootpath") else config.rootdir))
    try:  # orphans of a test (a daemon it started) are re-parented to us, so that they can be found
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    sys.addaudithook(_hook)


_pending: dict[
    int, tuple[str, tuple[str, int], str]
] = {}  # pid -> (node id, its location, command line) of a process a test left behind


try:
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: Any, nextitem: Any) -> Iterator[None]:
        before_files, before_procs = _snapshot(), _descendants()
        _state["test"], _state["file"] = item.nodeid, _real(str(item.fspath))
        try:
            yield
        finally:
            after = _snapshot()
            changed = set(before_files) ^ set(after)
            changed |= {k for k in after if before_files.get(k, after[k]) != after[k]}
            where = (item.location[0], item.location[1] + 1)
            for relative in sorted(changed):
                verb = "deletes" if relative not in after else "creates" if relative not in before_files else "changes"
                _record("project", f"{verb} {relative}", *where)
            for pid, cmd in _descendants().items():
                if pid not in before_procs and pid not in _pending:
                    _pending[pid] = (item.nodeid, where, cmd)
            _state["test"], _state["file"] = None, None

    def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
        """Processes a test started that are still running once every fixture is torn down."""
        alive = _leftovers(set(_descendants()) - set(_pending)) if _pending else {}
        for pid in sorted(alive):
            if pid in _pending:
                nodeid, where, cmd = _pending[pid]
                _state["test"] = nodeid
                cmd = alive[pid] or cmd  # read again now: at the test's end it may have been inside `execve`
                _record("process", f"leaves a process running after it ended: {cmd or pid}", *where)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _state["test"] = None
except ImportError:  # imported outside pytest (the plugin is only ever loaded by pytest)
    pass
