"""HTTP/1.1 framing for the scripted model server, on asyncio streams (standard library only).

Reading: :class:`Connection` buffers one client connection and can watch for the client hanging up while a reply is
sent; :func:`read_head` reads a request line and its headers. Writing: :func:`head` makes a status line and headers,
:func:`write_json` a whole JSON response, :func:`chunk` one piece of a chunked body. Nothing here knows what a model is.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

PHRASES = {s.value: s.phrase for s in HTTPStatus}
LAST_CHUNK = b"0\r\n\r\n"  # ends a chunked body


class Connection:
    """Buffered reader for one connection that can also watch for the client hanging up.

    While a reply is sent, :meth:`watch_eof` keeps reading so EOF is seen at once; bytes it
    reads meanwhile (a pipelined request) stay in the buffer for the next request.
    """

    def __init__(self, reader: asyncio.StreamReader, number: int = 0):
        self.reader, self.buf, self.eof = reader, bytearray(), False
        self.number = number

    async def _fill(self) -> bool:
        try:
            data = await self.reader.read(65536)
        except ConnectionError:
            data = b""
        self.buf += data
        self.eof = not data
        return bool(data)

    async def readline(self) -> bytes:
        while (i := self.buf.find(b"\n")) < 0 and len(self.buf) < 65536:
            if self.eof or not await self._fill():
                break
        i = len(self.buf) - 1 if i < 0 else i
        line = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        return line

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof or not await self._fill():
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def watch_eof(self) -> float:
        """Return time.time() at the moment the client closes its side."""
        while not self.eof and await self._fill():
            pass
        return time.time()


@dataclass
class RequestHead:
    """A request line and its headers."""

    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-case keys

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        conn_hdr = self.headers.get("connection", "").lower()
        return "close" not in conn_hdr and (self.version == "HTTP/1.1" or "keep-alive" in conn_hdr)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int:
        return int(self.headers.get("content-length") or 0)


async def read_head(conn: Connection) -> RequestHead | None:
    """Read a request line and headers; None for a stray blank line between requests, or the end of the connection.

    Raises ValueError when the client sends something that is not HTTP.
    """
    line = await conn.readline()
    if not line.strip():
        return None
    method, target, version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while (h := await conn.readline()).strip():
        key, _, value = h.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    return RequestHead(method, target, version, headers)


def head(status: int, ctype: str, extra: dict[str, Any], framing: dict[str, Any], keep: bool) -> bytes:
    """Status line and headers of a response."""
    lines = [
        f"HTTP/1.1 {status} {PHRASES.get(status, 'Unknown')}",
        f"Content-Type: {ctype}",
        f"Connection: {'keep-alive' if keep else 'close'}",
    ]
    lines += [f"{k}: {v}" for k, v in {**framing, **extra}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def write_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: Any,
    keep: bool,
    extra: dict[str, Any] | None = None,
    length: int | None = None,
) -> None:
    """Write a whole JSON response; ``payload`` is bytes or an object to serialise.

    ``length`` announces a Content-Length other than the payload's: a body cut short on purpose.
    """
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    framing = {"Content-Length": str(len(payload) if length is None else length)}
    writer.write(head(status, "application/json", extra or {}, framing, keep) + payload)


def chunk(data: bytes) -> bytes:
    """One piece of a chunked transfer-encoded body."""
    return b"%x\r\n%s\r\n" % (len(data), data)
