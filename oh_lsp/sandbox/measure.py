"""What each sandbox layer blocks, measured: a probe runs under a layer and tries each thing; this module says which
attempts got through. `scripts/sandbox_table.py` prints the table of docs/sandbox.md from it, and
tests/test_sandbox_layers.py checks that the documented table is what this machine measures.

Everything the probe reaches is on this machine: a folder beside the project, the project's own `.env`, this process
(its /proc entry, a harmless signal 0) and TCP servers of this process on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from oh_lsp.validation.sandbox import Sandbox, SandboxError

# row key -> what the row says the code tried
ROWS = {
    "write_outside": "write a file outside the project copy",
    "write_project": "change the real project's files (by absolute path)",
    "read_dotenv": "read the real project's `.env`",
    "tcp_host": "reach a TCP server outside the sandbox (127.0.0.1, port 20000-29999)",
    "tcp_host_ephemeral": "reach a TCP server outside the sandbox (127.0.0.1, ephemeral port)",
    "see_processes": "see oh-lsp's process in /proc",
    "signal": "signal oh-lsp's process (signal 0)",
    "environ": "read oh-lsp's `/proc/<pid>/environ`",
    "outlive": "leave a process running after the run",
    "capability": "hold a capability (run as root: e.g. to unmount the copy)",
}
LAYERS = {  # column -> OH_LSP_SANDBOX mode (bubblewrap hidden from PATH except for "bwrap")
    "none": "none",
    "landlock": "landlock",
    "namespaces": "namespaces",
    "namespaces + landlock (auto, no bubblewrap)": "auto",
    "bubblewrap + landlock (auto with bubblewrap)": "bwrap",
}
MARK = "271.25"

PROBE = r"""
import json, os, socket, subprocess, sys
spec = json.loads(sys.argv[1])
got = {}
def attempt(key, action):
    try:
        action()
        got[key] = True
    except Exception:
        got[key] = False
def write(path):
    with open(path, "a") as handle:
        handle.write("probe\n")
def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.recv(1)
attempt("write_outside", lambda: write(spec["outside"]))
attempt("write_project", lambda: write(spec["project_file"]))
attempt("read_dotenv", lambda: open(spec["dotenv"]).read())
attempt("tcp_host", lambda: connect(spec["port"]))
attempt("tcp_host_ephemeral", lambda: connect(spec["ephemeral_port"]))
got["see_processes"] = os.path.exists("/proc/%d" % spec["pid"])
attempt("signal", lambda: os.kill(spec["pid"], 0))
attempt("environ", lambda: open("/proc/%d/environ" % spec["pid"], "rb").read())
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
got["capability"] = int(status["CapEff"].strip(), 16) != 0
subprocess.Popen(["sleep", spec["mark"]], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(json.dumps(got))
"""


def _server(port: int = 0) -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(8)
    server.settimeout(0.1)
    return server


def _fixed_port_server() -> socket.socket:
    for port in range(20000 + os.getpid() % 5000, 30000):
        try:
            return _server(port)
        except OSError:
            continue
    raise OSError("no free port between 20000 and 29999")


def _sleepers() -> list[int]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in ps.splitlines() if f"sleep {MARK}" in line]


async def measure(mode: str) -> dict[str, bool] | str:
    """Which attempts of `ROWS` got through under `mode` (True: allowed), or why the layer cannot be had here."""
    with tempfile.TemporaryDirectory(prefix="oh-lsp-measure-") as folder:
        base = Path(folder)
        project = base / "project"
        project.mkdir()
        (project / "module.py").write_text("X = 1\n")
        (project / ".env").write_text("SECRET=probe\n")
        fixed, ephemeral = _fixed_port_server(), _server()
        spec = {
            "outside": str(base / "outside.txt"),
            "project_file": str(project / "module.py"),
            "dotenv": str(project / ".env"),
            "port": fixed.getsockname()[1],
            "ephemeral_port": ephemeral.getsockname()[1],
            "pid": os.getpid(),
            "mark": MARK,
        }
        accepting = asyncio.create_task(_accept(fixed, ephemeral))
        try:
            async with Sandbox(project, base / "scratch", secrets=[], mode=mode) as box:
                python = Path(os.path.realpath(sys.executable))
                result = await box.run(
                    [str(python), "-I", "-c", PROBE, json.dumps(spec)], timeout=60, readable=[python.parent.parent]
                )
        except SandboxError as exc:
            return str(exc)
        finally:
            accepting.cancel()
            fixed.close()
            ephemeral.close()
        try:
            got: dict[str, bool] = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return f"the probe failed: {result.output[-500:]}"
        got["write_outside"] = Path(spec["outside"]).exists()
        got["write_project"] = (project / "module.py").read_text() != "X = 1\n"
        await asyncio.sleep(0.5)
        left = _sleepers()
        got["outlive"] = bool(left)
        for pid in left:
            os.kill(pid, 9)
        return got


async def _accept(*servers: socket.socket) -> None:
    """Answer each connection with one byte (a probe's `recv` then proves it reached the server)."""
    while True:
        for server in servers:
            try:
                conn, _ = await asyncio.to_thread(server.accept)
            except (TimeoutError, OSError):
                continue
            conn.sendall(b"!")
            conn.close()


def table(results: dict[str, dict[str, bool] | str]) -> str:
    """The markdown table: one row per attempt, one column per layer; "blocked" or "**allowed**"."""
    columns = [c for c in LAYERS if c in results]
    lines = ["| the generated code tries to | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key, text in ROWS.items():
        cells = []
        for column in columns:
            got = results[column]
            cells.append("n/a" if isinstance(got, str) else "**allowed**" if got[key] else "blocked")
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def path_without_bwrap(path: str, shims: Path) -> str:
    """`path` as a fresh machine has it: each folder holding `bwrap` is replaced by a folder in `shims` of links to
    everything else in it (so `sleep`, `sh` and the rest stay found)."""
    folders = []
    for number, folder in enumerate(path.split(os.pathsep)):
        if folder and Path(folder, "bwrap").exists():
            copy = shims / str(number)
            copy.mkdir(parents=True, exist_ok=True)
            for entry in Path(folder).iterdir():
                if entry.name != "bwrap" and not (copy / entry.name).exists():
                    (copy / entry.name).symlink_to(entry)
            folder = str(copy)
        folders.append(folder)
    return os.pathsep.join(folders)


async def measure_all() -> dict[str, dict[str, bool] | str]:
    """`measure` under every column of `LAYERS`, bubblewrap hidden from PATH except in its own column."""
    from oh_lsp.validation import sandbox

    results: dict[str, dict[str, bool] | str] = {}
    path = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="oh-lsp-path-") as shims:
        hidden = path_without_bwrap(path, Path(shims))
        for column, mode in LAYERS.items():
            os.environ["PATH"] = path if mode == "bwrap" else hidden
            sandbox._bwrap_ok = None  # asked again with this PATH
            try:
                results[column] = await measure(mode)
            finally:
                os.environ["PATH"] = path
                sandbox._bwrap_ok = None
    return results
