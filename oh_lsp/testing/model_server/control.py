"""Scripting a server from another process: the ``/__*`` control endpoints and the CLI's ``--script`` file.

Replies travel as dicts of :class:`Reply` fields (``Reply.from_dict``; an unknown field is an error, never ignored).

====================  =========================================================  ==================================
endpoint              body                                                       answer
====================  =========================================================  ==================================
``POST /__script``    ``{"replies": [{...}, ...], "model": name?}``              ``{"ok": true, "queued": n}``
``POST /__default``   one reply dict                                                       ``{"ok": true}``
``POST /__prompt_cache`` ``wire.PromptCache`` fields (``{}``: none)              ``{"ok": true}``
``GET /__requests``   --                                                         the recorded requests, as dicts
``POST /__clear``     --                                                         ``{"ok": true}``
====================  =========================================================  ==================================

They answer under the base URL too (``/v1/__script``). A bad body gets a 400, an unknown endpoint a 404.
"""

from __future__ import annotations

import json
from typing import Any

from oh_lsp.testing.model_server.script import Reply, ReplyScript
from oh_lsp.testing.model_server.wire import PromptCache, error


def is_control(path: str) -> bool:
    return path.removeprefix("/v1").startswith("/__")


def queue_replies(script: ReplyScript, spec: dict[str, Any]) -> int:
    """Queue ``spec["replies"]`` (dicts of Reply fields), for ``spec["model"]`` if given; return how many."""
    replies = [Reply.from_dict(r) for r in spec.get("replies", [])]
    script.script(*replies, model=spec.get("model"))
    return len(replies)


def load_spec(script: ReplyScript, spec: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Apply a script file: a list of reply dicts, or ``{"replies", "model", "default", "models", "tokenizer",
    "props"}``."""
    spec = {"replies": spec} if isinstance(spec, list) else spec
    queue_replies(script, spec)
    if "default" in spec:
        script.default = Reply.from_dict(spec["default"])
    script.models = spec.get("models", script.models)
    script.tokenizer = spec.get("tokenizer", script.tokenizer)
    script.props = spec.get("props", script.props)
    if spec.get("prompt_cache"):
        script.prompt_cache = PromptCache(**spec["prompt_cache"])


def control(script: ReplyScript, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    """Answer one control request: (HTTP status, JSON payload)."""
    path = path.removeprefix("/v1")
    try:
        data = json.loads(raw) if raw else {}
        if (method, path) == ("POST", "/__script"):
            return 200, {"ok": True, "queued": queue_replies(script, data)}
        if (method, path) == ("POST", "/__default"):
            script.default = Reply.from_dict(data)
            return 200, {"ok": True}
        if (method, path) == ("POST", "/__prompt_cache"):
            script.prompt_cache = PromptCache(**data) if data else None
            return 200, {"ok": True}
        if (method, path) == ("GET", "/__requests"):
            return 200, [r.to_dict() for r in script.requests]
        if (method, path) == ("POST", "/__clear"):
            script.clear()
            return 200, {"ok": True}
    except (ValueError, TypeError, AttributeError) as exc:
        return 400, error(f"bad control request: {exc}", 400)
    return 404, error(f"unknown control endpoint: {method} {path}", 404)
