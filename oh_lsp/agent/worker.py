"""oh-lsp's OpenHands agent worker: one agent conversation, run in the agent environment (Python >= 3.12 with
openhands-sdk and openhands-tools), never inside oh-lsp's own process.

This file is run as a script (``python worker.py``) and imports only the standard library and the SDK, so it works
in a virtual environment that does not have oh-lsp installed. The protocol is JSON lines:

- standard input, from oh-lsp: first the run's spec (models with their keys, workspace, limits, the first message),
  then commands: ``{"cmd": "message", "text": ...}`` (continue the conversation), ``{"cmd": "stop", "reason": ...}``
  (pause it: a budget was passed), ``{"cmd": "close"}``. The API key arrives here, never in argv or the environment.
- the original standard output, to oh-lsp: events ``ready``, ``llm_call`` (tokens and cost of each model response,
  from the SDK's own accounting), ``retry``, ``action``, ``message``, ``error``, ``idle`` (the run ended: status
  and totals), ``closed``. Anything the SDK prints goes to standard error instead.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

SUMMARY_CHARS = 300
SDK_ERROR_STATUS = {
    "LLMAuthenticationError": 401,
    "LLMRateLimitError": 429,
    "LLMServiceUnavailableError": 503,
    "LLMTimeoutError": 408,
    "LLMBadRequestError": 400,
    "LLMContextWindowExceedError": 400,
}


class Channel:
    """The event pipe to oh-lsp: one JSON object a line, written whole under a lock."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)  # from here on, stray prints (the SDK's, litellm's) land on stderr, not in the protocol
        self._lock = threading.Lock()

    def emit(self, event: str, **data: Any) -> None:
        line = json.dumps({"event": event, **data}, default=str)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


def build_llm(spec: dict[str, Any], channel: Channel) -> Any:
    from openhands.sdk import LLM
    from openhands.sdk.llm import FallbackStrategy
    from pydantic import SecretStr

    def make(entry: dict[str, Any], usage_id: str) -> Any:
        llm = LLM(
            model=entry["model"],
            base_url=spec["base_url"],
            usage_id=usage_id,
            api_key=SecretStr(spec["api_key"]) if spec.get("api_key") else None,
            num_retries=spec["num_retries"],
            retry_min_wait=1,
            retry_max_wait=spec["retry_max_wait"],
            retry_multiplier=1.0,
            timeout=spec["timeout"],
            max_output_tokens=spec.get("max_output_tokens"),
            input_cost_per_token=entry.get("input_cost_per_token"),
            output_cost_per_token=entry.get("output_cost_per_token"),
            extra_headers={"X-Title": spec["usage_id"]},
            retry_listener=lambda attempt, most, error: channel.emit(
                "retry",
                model=entry["model"],
                attempt=attempt,
                max=most,
                error=f"{type(error).__name__}: {error}"[:SUMMARY_CHARS] if error else None,
            ),
        )
        return llm

    models = spec["models"]
    primary = make(models[0], spec["usage_id"])
    fallbacks = [make(entry, f"{spec['usage_id']}-fallback-{n}") for n, entry in enumerate(models[1:], 1)]
    if fallbacks:
        # The SDK loads fallback models from profile files; ours come from oh-lsp's selector and carry the key, which
        # must not be written to disk, so the strategy is handed the models themselves.
        strategy = FallbackStrategy(fallback_llms=[f.usage_id for f in fallbacks])
        strategy._resolved = fallbacks
        primary.fallback_strategy = strategy
    return primary


def build_workspace(spec: dict[str, Any]) -> Any:
    if spec.get("docker"):
        try:
            from openhands.workspace import DockerWorkspace
        except ImportError:
            raise RuntimeError(
                "the Docker workspace needs openhands-workspace in the agent environment: run"
                " `oh-lsp openhands setup --docker`"
            ) from None
        return DockerWorkspace(
            server_image=spec["docker_image"], working_dir="/workspace", volumes=[f"{spec['workspace']}:/workspace"]
        )
    from openhands.sdk import LocalWorkspace

    return LocalWorkspace(working_dir=spec["workspace"])


class Reporter:
    """Turns the SDK's events and metrics into oh-lsp's events."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.conversation: Any = None
        self.reported = 0
        self.reported_cost = 0.0

    def __call__(self, event: Any) -> None:
        name = type(event).__name__
        if name == "ActionEvent":
            action = getattr(event, "action", None)
            details = {
                k: v
                for k, v in (action.model_dump() if action is not None else {}).items()
                if k in ("command", "path") and v
            }
            self.channel.emit("action", tool=event.tool_name, **details)
        elif name == "MessageEvent" and getattr(event, "source", "") == "agent":
            text = " ".join(getattr(part, "text", "") for part in event.llm_message.content)
            self.channel.emit("message", text=text[:SUMMARY_CHARS])
        elif name in ("AgentErrorEvent", "ConversationErrorEvent"):
            detail = getattr(event, "error", None) or getattr(event, "detail", "")
            self.channel.emit("agent_error", code=getattr(event, "code", name), detail=str(detail)[:SUMMARY_CHARS])
        self.report_calls()

    def report_calls(self) -> None:
        if self.conversation is None:
            return
        metrics = self.conversation.conversation_stats.get_combined_metrics()
        usages = metrics.token_usages[self.reported :]
        if not usages:
            return
        latencies = {lat.response_id: lat.latency for lat in metrics.response_latencies}
        cost = metrics.accumulated_cost - self.reported_cost
        for n, usage in enumerate(usages, 1):
            self.channel.emit(
                "llm_call",
                model=usage.model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost=cost if n == len(usages) else 0.0,
                latency=latencies.get(usage.response_id, 0.0),
            )
        self.reported += len(usages)
        self.reported_cost = metrics.accumulated_cost

    def totals(self) -> dict[str, Any]:
        metrics = self.conversation.conversation_stats.get_combined_metrics()
        usage = metrics.accumulated_token_usage
        return {
            "cost": metrics.accumulated_cost,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "calls": len(metrics.token_usages),
        }


def read_commands(commands: queue.Queue[dict[str, Any]], stop: Any) -> None:
    """Read oh-lsp's commands; a stop pauses the conversation at once, the rest wait for the run to end."""
    for line in sys.stdin:
        try:
            command = json.loads(line)
        except ValueError:
            continue
        if command.get("cmd") == "stop":
            stop(command.get("reason") or "stopped by oh-lsp")
        else:
            commands.put(command)
    commands.put({"cmd": "close"})  # oh-lsp went away


def error_details(exc: BaseException) -> dict[str, Any]:
    """The failure as oh-lsp classifies it: the HTTP status of the provider's error when one is in the chain, else
    the one the SDK's exception type stands for."""
    original = getattr(exc, "original_exception", None) or exc
    status, seen = None, original
    while seen is not None and status is None:
        code = getattr(seen, "status_code", None)
        status = code if isinstance(code, int) else None
        seen = seen.__cause__ or seen.__context__
    return {
        "type": type(original).__name__,
        "message": str(original)[:2000],
        "status": status or SDK_ERROR_STATUS.get(type(original).__name__),
    }


def main() -> int:
    channel = Channel()
    spec = json.loads(sys.stdin.readline())
    started = time.monotonic()
    from openhands.sdk import Agent, Tool, __version__
    from openhands.sdk.conversation import Conversation
    from openhands.sdk.conversation.impl.local_conversation import LocalConversation
    from openhands.tools.file_editor import FileEditorTool
    from openhands.tools.terminal import TerminalTool

    channel.emit("ready", sdk_version=__version__, import_seconds=round(time.monotonic() - started, 3))
    reporter = Reporter(channel)
    try:
        tools = [Tool(name=FileEditorTool.name)]
        if spec.get("terminal", True):  # none under Landlock alone (oh_lsp/agent/runtime.py says why)
            tools.append(Tool(name=TerminalTool.name))
        agent = Agent(llm=build_llm(spec, channel), tools=tools, system_prompt_kwargs={"cli_mode": spec["cli_mode"]})
        workspace = build_workspace(spec)
        options: dict[str, Any] = {
            "agent": agent,
            "workspace": workspace,
            "callbacks": [reporter],
            "visualizer": None,
            "max_iteration_per_run": spec["max_iterations"],
        }
        if spec.get("docker"):
            conversation = Conversation(**options)  # a RemoteConversation: oh-lsp stops it when a budget is passed
        else:  # the SDK itself stops a local run once its reported cost reaches the budget
            conversation = LocalConversation(**options, max_budget_per_run=spec.get("budget_usd"))
    except Exception as exc:  # noqa: BLE001 - any SDK failure is reported to the parent, which decides
        channel.emit("error", **error_details(exc))
        return 3
    reporter.conversation = conversation
    stop_reason: list[str] = []

    def stop(reason: str) -> None:
        stop_reason.append(reason)
        conversation.pause()

    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=read_commands, args=(commands, stop), daemon=True).start()
    text: str | None = spec["message"]
    code = 0
    while text is not None:
        conversation.send_message(text)
        error = None
        try:
            conversation.run()
        except Exception as exc:  # noqa: BLE001 - any SDK failure is reported to the parent, which decides
            error = error_details(exc)
            channel.emit("error", **error)
            code = 4
        reporter.report_calls()
        status = getattr(conversation.state.execution_status, "value", str(conversation.state.execution_status))
        channel.emit(
            "idle",
            status=status,
            stopped=stop_reason[-1] if stop_reason else None,
            failed=error is not None,
            **reporter.totals(),
        )
        command = commands.get()
        text = command.get("text") if command.get("cmd") == "message" else None
    try:
        conversation.close()
    finally:
        channel.emit("closed")
    return code


if __name__ == "__main__":
    sys.exit(main())
