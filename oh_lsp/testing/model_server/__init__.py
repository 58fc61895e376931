"""A scriptable OpenAI-compatible chat-completions server for tests and benchmarks.

Standard library only: a small HTTP/1.1 server on asyncio streams (keep-alive, many
concurrent connections, no thread per request). A test queues :class:`Reply` objects
that say exactly what the "model" answers -- text, latency, streaming pace, rate
limits, HTTP errors, error bodies, broken streams -- and then inspects
:class:`RecordedRequest` objects to see what the client sent and how each exchange ended::

    with ScriptedModelServer() as srv:
        srv.script(Reply.text("hello"), Reply.rate_limited(retry_after=2))
        ...  # point the client under test at srv.base_url
        assert srv.requests[0].headers["authorization"] == "Bearer k"

``python -m oh_lsp.testing.model_server`` serves from another process: it prints
``{"base_url": ...}`` and is scripted over HTTP (``POST /__script`` and friends).

One job per module:

- ``script.py``: :class:`Reply`, :class:`RecordedRequest` and the reply queues (what to answer, what was asked);
- ``wire.py``: the OpenAI wire format (paths, completions, stream chunks, usage, errors, the model list) -- where a
  provider's variant of the format goes;
- ``respond.py``: sending one reply in time (latency, pacing, hang-ups, mid-stream errors);
- ``framing.py``: HTTP/1.1 reading and writing;
- ``server.py``: :class:`ScriptedModelServer` (lifecycle, connections, routing);
- ``control.py``: the ``/__*`` endpoints and script files, for scripting from another process;
- ``__main__.py``: the command line.
"""

from oh_lsp.testing.model_server.script import RecordedRequest, Reply, ReplyScript
from oh_lsp.testing.model_server.server import ScriptedModelServer
from oh_lsp.testing.model_server.wire import CHAT_PATHS, MODELS_PATHS

__all__ = ["CHAT_PATHS", "MODELS_PATHS", "RecordedRequest", "Reply", "ReplyScript", "ScriptedModelServer"]
