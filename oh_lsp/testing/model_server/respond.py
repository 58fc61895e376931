"""Sending one scripted :class:`Reply`: its latency, the pace of its stream, and the faults it asks for.

The bodies come from ``wire.py`` and the bytes on the wire from ``framing.py``; what happens in time is decided here
(sleep before the status line, sleep between SSE events, hang up early, a mid-stream error, a malformed body).
:attr:`RecordedRequest.completed` and ``chunks_sent`` record how far it got.
"""

from __future__ import annotations

import asyncio
import json

from oh_lsp.testing.model_server.framing import LAST_CHUNK, chunk, head, write_json
from oh_lsp.testing.model_server.script import RecordedRequest, Reply
from oh_lsp.testing.model_server.wire import Event, completion, sse, stream_error, stream_steps


async def send_reply(rec: RecordedRequest, reply: Reply, writer: asyncio.StreamWriter, keep: bool) -> None:
    """Write the scripted response; ``rec.completed`` is set just before the last byte."""
    if reply.latency > 0:
        await asyncio.sleep(reply.latency)
    if rec.stream and reply.status == 200 and not reply.malformed:
        return await _stream(rec, reply, writer, keep)
    if reply.malformed:
        payload = b'{"choices": ['
    elif reply.error_body is not None:
        payload = json.dumps({"error": reply.error_body}).encode()
    else:
        payload = json.dumps(completion(rec, reply)).encode()
    cut = len(payload)  # truncate_after: announce len(payload) bytes, send fewer, hang up
    if reply.truncate_after is not None:
        cut = max(0, min(reply.truncate_after, len(payload) - 1))
    rec.completed = cut == len(payload)  # before writing: the client may look at once
    write_json(writer, reply.status, payload[:cut], keep, reply.headers, len(payload))
    await writer.drain()


async def _stream(rec: RecordedRequest, reply: Reply, writer: asyncio.StreamWriter, keep: bool) -> None:
    """Send the reply as an SSE chat-completion stream in chunked transfer encoding."""
    framing_headers = {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"}
    out = bytearray(head(200, "text/event-stream", reply.headers, framing_headers, keep))

    async def flush() -> None:
        writer.write(out)
        out.clear()
        await writer.drain()

    async def send(event: Event) -> None:
        """Queue one SSE event; a paced stream sleeps first and sends it at once."""
        if event.paced and reply.chunk_delay > 0:
            await asyncio.sleep(reply.chunk_delay)
        out.extend(chunk(sse(event.data)))
        if reply.chunk_delay > 0:
            await flush()  # unpaced streams go out in one write: far less CPU under load

    steps = stream_steps(rec, reply)
    error_after = reply.stream_error_after
    if error_after is None and reply.error_body is not None:
        error_after = 0  # an HTTP-200 error body becomes a lone SSE error event
    for i, step in enumerate(steps):
        if reply.truncate_after is not None and i >= reply.truncate_after:
            return await flush()  # the caller hangs up: no [DONE], no chunked terminator
        if error_after is not None and i >= error_after:
            await send(stream_error(reply))
            break
        for event in step:
            await send(event)
        if i < len(steps) - 1:  # a content chunk, not the closing step
            rec.chunks_sent += 1
    out.extend(LAST_CHUNK)
    rec.completed = True
    await flush()
