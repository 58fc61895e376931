"""JSON-RPC errors as the specification words them, where pygls 2 would not (see /work/shared/notes/pygls2.md):

- a body that is not JSON gets a -32700 "Parse error" reply (id null), not an error pop-up;
- a message that is not a JSON-RPC request (a `method` that is not a string, an `id` that is neither a number nor a
  string, `params` that are neither an object nor an array, a batch, no `jsonrpc`) gets -32600 "Invalid Request",
  with its id when it has a usable one; params that do not fit the method get -32602 with the request's id;
- no error reply carries a traceback (pygls puts one, with file paths, in `data.traceback` of every internal error),
  and no error message is longer than `MESSAGE_LIMIT` (an argument a message repeats is cut well before:
  `lsp/errors.shown`); every message is redacted.

`SafeProtocol` replaces pygls' `LanguageServerProtocol`; `reply_to_reader_error` is the server's
`report_server_error` for what goes wrong before a message reaches a handler.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lsprotocol import types as t
from pygls.exceptions import FeatureRequestError, JsonRpcException
from pygls.protocol import LanguageServerProtocol

from oh_lsp.redaction import redact

log = logging.getLogger(__name__)

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32602, -32603
MESSAGE_LIMIT = 1000  # characters of an error message sent back


class Refused(JsonRpcException):
    """A message refused before any handler saw it; carries the request's id (None when it has no usable one)."""

    def __init__(self, msg_id: int | str | None, code: int, message: str) -> None:
        super().__init__(message=message, code=code)
        self.msg_id = msg_id


def _usable_id(value: Any) -> int | str | None:
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def check_envelope(data: dict[str, Any]) -> None:
    """Raise `Refused` (-32600) when a JSON-RPC message's own fields have the wrong types."""
    msg_id = _usable_id(data.get("id"))
    problems = []
    if data.get("jsonrpc") != "2.0":
        problems.append('"jsonrpc" must be "2.0"')
    if "method" in data and not isinstance(data["method"], str):
        problems.append('"method" must be a string')
    if "id" in data and data["id"] is not None and msg_id is None:
        problems.append('"id" must be a number or a string')
    if data.get("params") is not None and not isinstance(data["params"], (dict, list)):
        problems.append('"params" must be an object or an array')
    if "method" not in data and "result" not in data and "error" not in data:
        problems.append('a request needs a "method"')
    if problems:
        raise Refused(msg_id, INVALID_REQUEST, "Invalid Request: " + "; ".join(problems))


class SafeProtocol(LanguageServerProtocol):
    """pygls' protocol, with the message checks and the error replies above."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" not in data:  # a nested object (the parser calls this for every one), or not JSON-RPC at all
            return data
        check_envelope(data)
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:  # params that do not fit the method: say so to the request
            code = exc.code if exc.code in (INVALID_PARAMS, INTERNAL_ERROR) else INVALID_PARAMS
            raise Refused(_usable_id(data.get("id")), code, f"{exc.message} for {data.get('method')!s:.100}") from None

    def _send_response(self, msg_id: Any, result: Any | None = None, error: t.ResponseError | None = None) -> None:
        if error is not None:
            error = clean(error)
        super()._send_response(msg_id, result, error)


def clean(error: t.ResponseError) -> t.ResponseError:
    """An error reply without a traceback, its message redacted and at most `MESSAGE_LIMIT` characters long."""
    message = redact(error.message or "")
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + f"… (cut: {len(message)} characters)"
    data = error.data
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key != "traceback"} or None
    return t.ResponseError(code=error.code, message=message, data=data)


def reply_to_reader_error(protocol: LanguageServerProtocol, error: Exception) -> bool:
    """Answer what went wrong while a message was read and structured, as JSON-RPC says: True when answered."""
    if isinstance(error, Refused):
        reply = t.ResponseError(code=error.code, message=error.message)
        msg_id = error.msg_id
    elif isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
        reply, msg_id = t.ResponseError(code=PARSE_ERROR, message=f"Parse error: {error}"), None
    elif isinstance(error, (AttributeError, TypeError)):  # a batch, a bare value, an object without "jsonrpc"
        reply, msg_id = (
            t.ResponseError(code=INVALID_REQUEST, message="Invalid Request: not a JSON-RPC 2.0 message"),
            None,
        )
    else:
        return False
    log.warning("refused a message: %s", reply.message)
    if msg_id is None:  # JSON-RPC wants `"id": null` here, which pygls' serializer would leave out
        protocol._send_data({"jsonrpc": "2.0", "id": None, "error": {"code": reply.code, "message": reply.message}})
    else:
        protocol._send_response(msg_id, error=reply)
    return True


def report(ls: Any, error: Exception, source: Any) -> None:
    """The server's `report_server_error`: a message the reader could not take gets its JSON-RPC reply; a request's
    error was answered already; any other error is shown, redacted and short, without a traceback."""
    if source is JsonRpcException and reply_to_reader_error(ls.protocol, error):
        return
    if source is FeatureRequestError:
        return
    message = redact(f"oh-lsp: internal error: {error}")[:MESSAGE_LIMIT]
    ls.window_show_message(t.ShowMessageParams(type=t.MessageType.Error, message=message))
