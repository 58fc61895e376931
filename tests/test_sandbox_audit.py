"""The audit of generated tests' behaviour: legitimate tests are kept under every layer, and network beyond the
loopback is recorded (inside a network namespace, where nothing can leave the machine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oh_lsp import TaskStatus
from oh_lsp.sandbox.measure import path_without_bwrap
from oh_lsp.testing.model_server import Reply
from oh_lsp.validation import sandbox
from tests.conftest import GOOD_TESTS, fenced, run_task
from tests.prerequisites import missing

LEGITIMATE = (
    GOOD_TESTS
    + """

import os
import socket
import subprocess
import sys
import threading


def test_uses_tmp_path(tmp_path):
    (tmp_path / "out.txt").write_text("data")
    assert (tmp_path / "out.txt").read_text() == "data"


def test_monkeypatches_the_environment(monkeypatch):
    monkeypatch.setenv("CALC_MODE", "strict")
    monkeypatch.setenv("HOME", "/nonexistent")
    assert os.environ["CALC_MODE"] == "strict"


def test_starts_and_stops_a_subprocess():
    child = subprocess.Popen(["sleep", "30"])
    child.terminate()
    assert child.wait(timeout=10) != 0
    assert subprocess.run([sys.executable, "-c", "print(6 // 3)"], capture_output=True, text=True).stdout == "2\\n"


def test_talks_to_its_own_loopback_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    def answer():
        conn, _ = server.accept()
        conn.sendall(conn.recv(5).upper())
        conn.close()
    thread = threading.Thread(target=answer)
    thread.start()
    with socket.create_connection(server.getsockname(), timeout=5) as client:
        client.sendall(b"hello")
        assert client.recv(5) == b"HELLO"
    thread.join()
    server.close()


def test_leaves_the_usual_caches():
    os.makedirs(".hypothesis/examples", exist_ok=True)
    with open(".hypothesis/examples/x", "w") as cache:
        cache.write("1")
    with open(".coverage.test", "w") as data:
        data.write("")
"""
)
LEGITIMATE_NAMES = [
    "test_add",
    "test_divide",
    "test_divide_by_zero",
    "test_uses_tmp_path",
    "test_monkeypatches_the_environment",
    "test_starts_and_stops_a_subprocess",
    "test_talks_to_its_own_loopback_server",
    "test_leaves_the_usual_caches",
]


@pytest.fixture(params=["auto", "landlock"])
def mode(request, monkeypatch, tmp_path) -> str:
    """auto with bubblewrap hidden from PATH (the built-in namespaces + Landlock), and Landlock alone."""
    monkeypatch.setattr(sandbox, "_bwrap_ok", None)
    monkeypatch.setenv("PATH", path_without_bwrap(os.environ["PATH"], tmp_path / "path"))
    if request.param == "landlock" and not sandbox.probe_kernel()["landlock"]:
        missing("this kernel has no Landlock")
    if request.param == "auto" and sandbox.probe_kernel()["namespaces"] is not None:
        missing(f"user namespaces are not available here: {sandbox.probe_kernel()['namespaces']}")
    return request.param


async def test_legitimate_tests_are_kept(project: Path, model_server, mode: str) -> None:
    model_server.script(Reply.text(fenced(LEGITIMATE)))
    task = await run_task(project, model_server, sandbox=mode)
    assert task.status is TaskStatus.COMPLETED, task.error
    validation = task.result["validation"]
    assert not [f for f in validation["errors"] + validation["warnings"] if f["code"] == "unsafe-behaviour"]
    # none is dropped for what it does: those that add nothing over the others, or assert nothing, are dropped for that
    kept = set(validation["details"]["kept"])
    assert {"test_add", "test_divide", "test_divide_by_zero"} <= kept
    codes = {f["code"] for f in validation["errors"] + validation["warnings"] if f.get("test") in LEGITIMATE_NAMES}
    assert codes <= {"adds-nothing", "no-assertion"}, codes
    assert kept | set(validation["details"]["dropped"]) >= set(LEGITIMATE_NAMES)


async def test_network_beyond_the_loopback_is_recorded(project: Path, model_server, monkeypatch, tmp_path) -> None:
    """Tried in the built-in network namespace, where only a loopback exists: nothing leaves this machine."""
    monkeypatch.setattr(sandbox, "_bwrap_ok", None)
    monkeypatch.setenv("PATH", path_without_bwrap(os.environ["PATH"], tmp_path / "path"))
    if sandbox.probe_kernel()["namespaces"] is not None:
        missing(f"user namespaces are not available here: {sandbox.probe_kernel()['namespaces']}")
    reaching = GOOD_TESTS + (
        "\n\nimport socket\n\n\ndef test_phones_home():\n    try:\n"
        "        socket.create_connection(('192.0.2.1', 443), timeout=1)\n    except OSError:\n        pass\n"
    )
    model_server.script(Reply.text(fenced(reaching)))
    task = await run_task(project, model_server, sandbox="namespaces")
    found = [f for f in task.result["validation"]["warnings"] if f["code"] == "unsafe-behaviour"]
    assert [f["test"] for f in found] == ["test_phones_home"]
    assert "connects to 192.0.2.1:443" in found[0]["message"]
    assert (
        found[0]["line"]
        == reaching.splitlines().index("        socket.create_connection(('192.0.2.1', 443), timeout=1)") + 1
    )
    assert sorted(task.result["validation"]["details"]["kept"]) == ["test_add", "test_divide", "test_divide_by_zero"]


def test_a_command_line_read_while_its_process_is_inside_execve_is_read_again(monkeypatch, tmp_path: Path) -> None:
    """Why `sleep 313.5` could be missing from the leftover-process finding on a loaded machine: `Popen` returns once
    its close-on-exec pipe closes, which `execve` does before the new program's arguments exist, so the plugin could
    read an empty /proc/<pid>/cmdline at the test's end. It now reads an empty one again (and the leftovers' command
    lines again at the session's end)."""
    import importlib
    import io
    import sys

    # in the sandbox the plugin finds the report plugin beside it, under this name
    monkeypatch.setitem(sys.modules, "oh_lsp_report", importlib.import_module("oh_lsp.validation.pytest_report_plugin"))
    from oh_lsp.sandbox import audit_plugin

    reads = iter([b"", b"", b"sleep\x00313.5\x00"])
    real_open = open

    def fake_open(path: str, mode: str = "r", *args, **kwargs):
        if path == "/proc/4242/cmdline":
            return io.BytesIO(next(reads))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(audit_plugin, "open", fake_open, raising=False)
    assert audit_plugin._command_line(4242) == "sleep 313.5"
    reads = iter([b""] * 1000)
    assert audit_plugin._command_line(4242, wait=0.05) == "", "a process with no arguments stays empty, briefly"
