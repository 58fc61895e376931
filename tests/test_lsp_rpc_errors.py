"""The language server's answers to bad requests (issue 13, item 8), over its real stdio with raw bytes (an LSP client
library cannot send malformed JSON): -32700 for a body that is not JSON, -32600 for a message that is not a
JSON-RPC request, never a traceback, never a long echo of what was sent; and `codeAction` on a 5 MB document, whose
symbol lookup is bounded (the time is measured by bench/lsp_latency.py, not here)."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.lsp_latency import big_module
from oh_lsp.lsp import symbols
from oh_lsp.lsp.rpc_errors import MESSAGE_LIMIT
from tests.lsp_client import make_project

pytestmark = [pytest.mark.timeout(120)]


def test_the_symbol_under_the_cursor_looks_at_a_bounded_window(monkeypatch) -> None:
    """On a 5 MB module the lookup parses no more than its window around the cursor (it used to parse the whole text
    at every code action: 19.5 s), and finds what parsing the whole module finds."""
    source = big_module(5.1)
    assert len(source) >= 5_000_000
    whole = symbols.symbols.__wrapped__(source)  # the exact answer, parsing all of it (once, here)
    parsed: list[int] = []
    parse = ast.parse

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(text.count("\n"))
        return parse(text, *args, **kwargs)

    monkeypatch.setattr(symbols.ast, "parse", counting)
    total = source.count("\n")
    for line in (1, 2, 6, 7, 11, 12, total // 3, total // 2 + 5, total - 3, total + 50):
        expected = max((s for s in whole if s.line <= line <= s.end_line), key=lambda s: s.line, default=None)
        assert symbols.symbol_at(source, line) == expected, line
    assert parsed and max(parsed) <= 2 * symbols.WINDOW_LINES + 1, "the lookup parsed more than its window"
    first, window = symbols.lines_around(source, total // 2, 10, 10)
    assert first == total // 2 - 10 and window == source.splitlines(True)[first - 1 : first + 20]


class RawClient:
    """An LSP client that sends bytes as they are."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout
        while True:
            length = 0
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line in (b"\r\n", b"\n") and length:
                    break
            message = json.loads(await self.proc.stdout.readexactly(length))
            if "method" in message and "id" in message:  # the server asks something: accept
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" not in message or message["method"] == "window/showMessage":
                await self.replies.put(message)

    def send(self, message: dict[str, Any] | bytes | list[Any]) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        assert self.proc.stdin
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def reply(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.replies.get(), 30)


@pytest.fixture
async def raw(tmp_path: Path):
    project = make_project(tmp_path / "proj")
    env = {**os.environ, "OH_LSP_STATE_DIR": str(tmp_path / "state"), "OPENHANDS_BASE_URL": "http://127.0.0.1:9/v1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oh_lsp", "serve", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    client = RawClient(proc)
    client.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "processId": None,
                "rootUri": project.as_uri(),
                "capabilities": {},
                "workspaceFolders": [{"uri": project.as_uri(), "name": "proj"}],
            },
        }
    )
    assert (await client.reply())["id"] == 1
    client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    client.project = project  # type: ignore[attr-defined]
    yield client
    proc.kill()
    await proc.wait()
    client.reader.cancel()


async def test_bad_requests_get_json_rpc_errors_without_tracebacks(raw: RawClient) -> None:
    raw.send(b'{"jsonrpc": "2.0", "id": 2, "method": ')
    parse = await raw.reply()
    assert parse["error"]["code"] == -32700 and "id" in parse and parse["id"] is None, parse
    raw.send({"jsonrpc": "2.0", "id": 3, "method": 123, "params": {}})
    invalid = await raw.reply()
    assert invalid["id"] == 3 and invalid["error"]["code"] == -32600 and '"method" must be a string' in str(invalid)
    raw.send([{"jsonrpc": "2.0", "id": 4, "method": "shutdown"}])  # a batch: LSP has none
    assert (await raw.reply())["error"]["code"] == -32600
    raw.send({"jsonrpc": "2.0", "id": 5, "method": "textDocument/codeAction", "params": {"x": 1}})
    params = await raw.reply()
    assert params["id"] == 5 and params["error"]["code"] == -32602
    raw.send({"id": 6, "method": "shutdown"})  # no "jsonrpc"
    assert (await raw.reply())["error"]["code"] == -32600
    for reply in (parse, invalid, params):
        assert "traceback" not in json.dumps(reply) and "File \\" not in json.dumps(reply)
    raw.send(
        {"jsonrpc": "2.0", "id": 7, "method": "workspace/executeCommand", "params": {"command": "ohLsp.queueStats"}}
    )
    assert "pending" in (await raw.reply())["result"], "the server still answers"


async def test_an_argument_is_never_echoed_at_length(raw: RawClient) -> None:
    huge = "x" * 3_000_000
    for n, arguments in enumerate(
        [[{"taskId": huge}], [{huge: 1}], [{"uri": huge}], [{"uri": "file:///a.py", "symbol": huge}], [huge]], 10
    ):
        command = "ohLsp.cancelTask" if n < 12 else "ohLsp.generateTests"
        raw.send(
            {
                "jsonrpc": "2.0",
                "id": n,
                "method": "workspace/executeCommand",
                "params": {"command": command, "arguments": arguments},
            }
        )
        reply = await raw.reply()
        while reply.get("id") != n:  # e.g. a message shown while the engine starts
            reply = await raw.reply()
        assert reply["error"]["code"] in (-32602, -32803), reply
        assert len(reply["error"]["message"]) <= MESSAGE_LIMIT + 40 and "x" * 200 not in reply["error"]["message"]
        assert "traceback" not in json.dumps(reply)


async def test_code_actions_on_a_5_mb_document_find_the_symbol(raw: RawClient) -> None:
    source = big_module(5.0)
    uri = (raw.project / "pkg" / "big.py").as_uri()  # type: ignore[attr-defined]
    raw.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": source}},
        }
    )
    line = source.count("\n") // 2
    line = next(i for i, text in enumerate(source.splitlines()[line:], line) if "def method" in text) + 1  # 0-based
    for n in range(20, 23):
        raw.send(
            {
                "jsonrpc": "2.0",
                "id": n,
                "method": "textDocument/codeAction",
                "params": {
                    "textDocument": {"uri": uri},
                    "range": {"start": {"line": line, "character": 8}, "end": {"line": line, "character": 8}},
                    "context": {"diagnostics": []},
                },
            }
        )
        reply = await raw.reply()
        while reply.get("id") != n:
            reply = await raw.reply()
        titles = [action["title"] for action in reply["result"] or []]
        if any(".method" in title for title in titles):
            return
        await asyncio.sleep(1)  # the engine may still be starting: no actions before it runs
    raise AssertionError(f"no action for the method under the cursor: {titles}")
