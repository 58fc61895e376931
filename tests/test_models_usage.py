"""Tokens when the server reports no usage (llama-cpp-python's streams): asked for (`stream_options.include_usage`),
else estimated -- by the server's own tokenizer where it has one, else from the characters -- and marked so in the
answer, the task's result, its events, `get-status` and the editors' status; a local model's cost is 0 and says
"local". Against the scripted server, which speaks each provider's variant (tested first, on the wire)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, TaskStatus
from oh_lsp import events as ev
from oh_lsp.llm.budget import call_cost
from oh_lsp.llm.catalog import ModelInfo
from oh_lsp.llm.client import ChatResult
from oh_lsp.llm.tokens import ESTIMATED_BY_CHARACTERS, ESTIMATED_BY_TOKENIZER, TOKENS_PER_MESSAGE
from oh_lsp.lsp.status import SessionCounts, build_status
from oh_lsp.testing.model_server import Reply
from oh_lsp.testing.model_server.wire import context_exceeded, model_entry, scripted_tokens
from tests.conftest import GOOD_TESTS, OH_LSP, SENTINEL_KEY, cli_env, fenced
from tests.models_support import MESSAGES, Events, gateway_for, task

ANSWER = fenced(GOOD_TESTS)
NO_USAGE = {"usage_chunk": False}  # llama-cpp-python's streams


def local_config(server) -> OpenHandsConfig:
    server.models = [model_entry("local-m", style="llama-cpp-python")]
    return OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), base_url=server.base_url, model="local-m")


def prompt_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


# --- the scripted server speaks each variant ---------------------------------------------------------------------------
def stream_lines(server, reply: Reply) -> tuple[int, list[str]]:
    server.script(reply)
    body = {"model": "m", "stream": True, "messages": MESSAGES}
    with httpx.Client(trust_env=False) as http:
        response = http.post(server.base_url + "/chat/completions", json=body)
    return response.status_code, [line for line in response.text.splitlines() if line]


def test_the_scripted_server_speaks_each_providers_variant(model_server) -> None:
    status, lines = stream_lines(model_server, Reply.text("hello", **NO_USAGE))
    assert status == 200 and lines[-1] == "data: [DONE]" and not any('"usage"' in line for line in lines)
    status, lines = stream_lines(model_server, context_exceeded("llama.cpp-stream", 5000, 4096))
    assert status == 200 and len(lines) == 1 and lines[0].startswith("error: ") and '"n_ctx": 4096' in lines[0]
    status, lines = stream_lines(model_server, context_exceeded("llama-cpp-python", 5000, 4096))
    assert status == 200 and lines == [], "HTTP 200, then nothing"
    status, lines = stream_lines(model_server, Reply(error_body={"message": "x"}, error_style="event"))
    assert lines == ["event: error", 'data: {"error": {"message": "x"}}']
    status, lines = stream_lines(model_server, Reply(error_body={"message": "x", "code": 400}, stream=False))
    assert status == 200 and json.loads(lines[0]) == {"error": {"message": "x", "code": 400}}
    root = model_server.base_url.removesuffix("/v1")
    with httpx.Client(trust_env=False) as http:
        assert http.post(root + "/tokenize", json={"content": "abcdefg"}).status_code == 404, "no tokenizer yet"
        assert http.get(root + "/props").status_code == 404
        model_server.tokenizer, model_server.props = "llama.cpp", {"default_generation_settings": {"n_ctx": 512}}
        assert http.post(root + "/tokenize", json={"content": "abcdefg"}).json() == {"tokens": [0, 1, 2]}
        assert http.post(root + "/extras/tokenize/count", json={"input": "abcdefg"}).status_code == 404
        assert http.get(root + "/props").json()["default_generation_settings"]["n_ctx"] == 512
        model_server.tokenizer = "llama-cpp-python"
        assert http.post(root + "/extras/tokenize/count", json={"input": "abcdefg"}).json() == {"count": 3}
    assert model_server.tokenized == ["abcdefg", "abcdefg"]


# --- estimated tokens ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokenizer", ["llama.cpp", "llama-cpp-python"])
async def test_without_usage_the_servers_tokenizer_counts_the_tokens(project: Path, model_server, tokenizer) -> None:
    model_server.tokenizer = tokenizer
    model_server.default = Reply.text(ANSWER, **NO_USAGE)
    gateway = gateway_for(local_config(model_server), project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
        result_again = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert model_server.requests[0].body["stream_options"] == {"include_usage": True}, "usage was asked for"
    assert result.tokens_estimated == ESTIMATED_BY_TOKENIZER
    assert result.prompt_tokens == scripted_tokens(prompt_text(MESSAGES)) + TOKENS_PER_MESSAGE * len(MESSAGES)
    assert result.completion_tokens == scripted_tokens(ANSWER)
    assert (result.cost, result.cost_source) == (0.0, "local")
    assert result_again.total_tokens == result.total_tokens
    assert model_server.tokenized == [prompt_text(MESSAGES), ANSWER] * 2


async def test_without_usage_or_tokenizer_the_characters_are_counted(project: Path, model_server) -> None:
    model_server.default = Reply.text(ANSWER, **NO_USAGE)
    gateway = gateway_for(local_config(model_server), project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert result.tokens_estimated == ESTIMATED_BY_CHARACTERS
    assert result.completion_tokens == -(-len(ANSWER) // 4) and result.prompt_tokens > 0


async def test_reported_usage_is_not_estimated(project: Path, model_server) -> None:
    model_server.tokenizer = "llama.cpp"
    usage = {"prompt_tokens": 812, "completion_tokens": 164, "total_tokens": 976}
    model_server.default = Reply.text(ANSWER, usage=usage)
    gateway = gateway_for(local_config(model_server), project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert (result.prompt_tokens, result.completion_tokens, result.tokens_estimated) == (812, 164, None)
    assert not model_server.tokenized


def test_only_a_local_unpriced_model_costs_nothing_as_local() -> None:
    answer = ChatResult(content="x", model="m", prompt_tokens=1000, completion_tokens=500)
    free = ModelInfo(name="m", id="m", price_prompt=0.0, price_completion=0.0)
    priced = ModelInfo(name="m", id="m", price_prompt=1e-6, price_completion=2e-6)
    unknown = ModelInfo(name="m", id="m")
    assert call_cost(answer, free, local=True) == (0.0, "local")
    assert call_cost(answer, priced, local=True) == (pytest.approx(0.002), "catalog"), "a price set for it wins"
    assert call_cost(answer, unknown, local=False) == (0.0, "unknown")


async def test_estimated_tokens_are_marked_in_the_result_events_status_and_get_status(
    project: Path, model_server
) -> None:
    """Through the engine and the CLI, as a user sees it."""
    model_server.tokenizer = "llama-cpp-python"
    model_server.default = Reply.text(ANSWER, **NO_USAGE)
    model_server.models = [model_entry("local-m", style="llama-cpp-python")]
    config = OpenHandsConfig(
        base_url=model_server.base_url, model="local-m", max_repair_iterations=0, quality_threshold=0.0
    )
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    seen: list[ev.Event] = []
    engine.subscribe(seen.append)
    await engine.start()
    try:
        task_id = await engine.submit_task(QueuedTask(task_type="unit_test", target_file=Path("pkg/calc.py")))
        final = await engine.wait_for(task_id, timeout=120)
    finally:
        await engine.stop()
        engine.close()
    assert final.status is TaskStatus.COMPLETED, final.error
    assert final.tokens > 0 and final.result["tokens_estimated"] is True and final.cost == 0.0
    (answered,) = [e for e in seen if e.kind == ev.TOKENS and e.data.get("final")]
    assert answered.data["estimated"] is True and answered.data["estimated_by"] == ESTIMATED_BY_TOKENIZER
    assert answered.data["cost_source"] == "local"
    counts = SessionCounts()
    for event in seen:
        counts.on_event(event)
    status = build_status(counts, [], [], None, {})
    assert status["tokens"] == final.tokens and status["tokensEstimated"] is True

    env = cli_env(project, model_server.base_url)
    shown = subprocess.run(
        [*OH_LSP, "get-status", "--task-id", task_id], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert f"tokens: {final.tokens} (estimated)" in shown.stdout, shown.stdout + shown.stderr
    as_json = subprocess.run(
        [*OH_LSP, "get-status", "--task-id", task_id, "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(as_json.stdout)["result"]["tokens_estimated"] is True
    metrics = [
        subprocess.run([*OH_LSP, "metrics", *flag], cwd=project, env=env, capture_output=True, text=True, timeout=60)
        for flag in ((), ("--json",))
    ]
    assert "tokens (some estimated)" in metrics[0].stdout, metrics[0].stdout + metrics[0].stderr
    assert json.loads(metrics[1].stdout)["models"]["local-m"]["tokens_estimated"] is True
