"""Context length: learned from the endpoint, the prompt and `max_tokens` fitted to it, and the error table's row for a
"context length exceeded" error (a 400, an HTTP-200 error body, an error event in the stream): never resent as is,
reported with the figures, retried once with a smaller prompt, then a larger-context model; never counted toward the
breaker; failed with the figures when nothing fits. Against the scripted server, through the real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from oh_lsp import TaskStatus
from oh_lsp.config import OpenHandsConfig
from oh_lsp.kinds.context import TRUNCATED
from oh_lsp.llm.catalog import learned_context_lengths
from oh_lsp.llm.errors import ContextFigures, ErrorKind, ModelCallError, classify_body_error, classify_status
from oh_lsp.testing.model_server import Reply
from oh_lsp.testing.model_server.wire import context_exceeded, model_entry, scripted_tokens
from tests.conftest import GOOD_TESTS, SENTINEL_KEY, fenced, run_task
from tests.models_support import MODEL_A, MODEL_B, Events, ab_config, gateway_for, task

ANSWER = fenced(GOOD_TESTS)
SYSTEM = {"role": "system", "content": "You write tests."}
SOURCE = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(2000))  # ~50,000 characters
LLAMA_CPP_PYTHON = "Requested tokens (13170) exceed context window of 4096"  # its engine's words, after HTTP 200
OPENAI_400 = (
    "This model's maximum context length is 4096 tokens. However, you requested 17266 tokens (13170 in the messages,"
    " 4096 in the completion). Please reduce the length of the messages or completion."
)


def refit(tokens: int) -> list[dict[str, str]]:
    """A prompt builder: as much of the source as `tokens` allow (about 4 characters a token)."""
    return [SYSTEM, {"role": "user", "content": "Write tests for:\n" + SOURCE[: tokens * 4]}]


FULL = refit(100_000)


def sizes(server) -> list[tuple[str, int, int | None]]:
    """What each request sent: the model, the prompt's characters, max_tokens."""
    return [
        (r.model, sum(len(m["content"]) for m in r.body["messages"]), r.body.get("max_tokens")) for r in server.requests
    ]


def one_model(server, folder: Path, context_length: int | None = 4096, **kw):
    entry = {"quality": 4} | ({"context_length": context_length} if context_length else {})
    return ab_config(server, folder, models={"model-a": entry}, **kw)


# --- what the providers say ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, prompt, limit",
    [
        ({"error": {"message": LLAMA_CPP_PYTHON}}, 13170, 4096),
        ({"error": {"message": OPENAI_400, "code": "context_length_exceeded"}}, 13170, 4096),
        (  # llama.cpp's llama-server
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
            5000,
            4096,
        ),
        (  # vLLM
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens. However, your request has 9001"
                    " input tokens. Please reduce the length of the input messages."
                }
            },
            9001,
            8192,
        ),
        ({"error": {"message": "prompt is too long: 210,000 tokens > 200,000 maximum"}}, 210000, 200000),
        ({"error": {"message": "input length exceeds the context length"}}, None, None),  # Ollama: no figures
    ],
)
def test_the_figures_of_each_providers_words(body, prompt, limit) -> None:
    for error in (classify_status(400, {}, body, model="m"), classify_body_error(body, model="m", where="stream")):
        assert error.kind is ErrorKind.CONTEXT_LENGTH and not error.fatal
        assert (error.figures.prompt, error.figures.limit) == (prompt, limit)
    if prompt:
        assert f"prompt {prompt} tokens" in str(error) and f"context {limit}" in str(error)


def test_other_errors_are_not_context_errors() -> None:
    assert classify_status(400, {}, {"error": {"message": "messages: field required"}}).kind is ErrorKind.BAD_REQUEST
    assert classify_body_error({"error": {"message": "upstream failed", "code": 502}}).kind is ErrorKind.TRANSIENT
    assert str(ContextFigures()) == "no sizes given"


# --- never resent as is; a smaller prompt; figures ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "too_long",
    [
        pytest.param(lambda: context_exceeded("openai", 13170, 4096), id="OpenAI-style 400"),
        pytest.param(lambda: context_exceeded("llama.cpp", 13170, 4096), id="llama-server 400"),
        pytest.param(lambda: context_exceeded("llama.cpp-stream", 13170, 4096), id="llama-server error: line"),
        pytest.param(lambda: context_exceeded("in-stream", 13170, 4096), id="error event after HTTP 200"),
        pytest.param(
            lambda: Reply.text(ANSWER, error_body={"message": LLAMA_CPP_PYTHON}, stream_error_after=2),
            id="error event mid-stream",
        ),
        pytest.param(
            lambda: Reply(error_body={"message": LLAMA_CPP_PYTHON, "code": 400}, stream=False),
            id="HTTP-200 error body",
        ),
    ],
)
async def test_a_context_error_is_retried_once_with_a_smaller_prompt_never_as_is(
    project: Path, model_server, tmp_path: Path, too_long
) -> None:
    model_server.script(too_long(), Reply.text(ANSWER))
    gateway = gateway_for(one_model(model_server, tmp_path, context_length=None), project)
    events = Events()
    try:
        result = await gateway.complete(task(), FULL, emit=events, refit=refit)
    finally:
        await gateway.aclose()  # the successful call's record, queued without waiting, is written by then
    calls = gateway.store.model_call_stats(0)
    state = gateway.store.model_states()["model-a"]
    assert result.content == ANSWER
    (_, first, first_max), (_, second, second_max) = sizes(model_server)
    assert first_max is None, "the context was not known: no max_tokens was sent"
    assert second < first / 3, "the next try has a smaller prompt"
    # fitted to the figures: the prompt is counted as the server counted it (13170 for ~the first prompt's size)
    assert second_max is not None and second * 13170 / first + second_max <= 4096
    assert model_server.requests[0].body["messages"] != model_server.requests[1].body["messages"]
    reported = [data for kind, data in events.seen if data.get("context")]
    assert reported and (reported[0]["context"]["prompt"], reported[0]["context"]["limit"]) == (13170, 4096)
    assert not state.failures and state.breaker == "closed", "not a fault of the model: no count toward the breaker"
    assert calls["model-a"] == {"calls": 1, "ok": 1, "avg_latency_ms": calls["model-a"]["avg_latency_ms"]}
    assert learned_context_lengths(model_server.base_url) == {"model-a": 4096}, "kept for the next process"


async def test_the_learned_context_fits_the_next_tasks_first_prompt(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.script(context_exceeded("openai", 13170, 4096), Reply.text(ANSWER), Reply.text(ANSWER))
    config = one_model(model_server, tmp_path, context_length=None)
    gateway = gateway_for(config, project)
    try:
        await gateway.complete(task(), FULL, emit=Events(), refit=refit)
    finally:
        await gateway.aclose()
    gateway = gateway_for(config, project)  # a new gateway: a new process would read the same cache
    try:
        assert await gateway.context_tokens(task()) == 4096
        await gateway.complete(task(), FULL, emit=Events(), refit=refit)
    finally:
        await gateway.aclose()
    _, _, (_, chars, max_tokens) = sizes(model_server)
    assert chars < len(SOURCE) / 3 and max_tokens is not None and chars / 4 + max_tokens <= 4096


async def test_without_a_smaller_prompt_the_request_moves_to_a_larger_context(
    project: Path, model_server, tmp_path: Path
) -> None:
    """No refit and figures that show the prompt itself is too long: no same-model retry (it would be the same
    request), straight to the model with the larger context."""
    model_server.script(context_exceeded("openai", 13170, 4096), model="model-a")
    model_server.default = Reply.text(ANSWER)
    gateway = gateway_for(
        ab_config(model_server, tmp_path, models={"model-a": MODEL_A | {"context_length": 4096}, "model-b": MODEL_B}),
        project,
    )
    try:
        result = await gateway.complete(task(), FULL, emit=Events())
    finally:
        await gateway.aclose()
    assert result.model == "model-b"
    assert [r.model for r in model_server.requests] == ["model-a", "model-b"]


async def test_when_no_model_fits_the_task_fails_with_the_figures_and_no_request_is_repeated(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.default = context_exceeded("openai", 13170, 4096)
    models = {"model-a": {"quality": 4.5}, "model-b": {"quality": 4}, "model-c": MODEL_A | {"context_length": 4096}}
    gateway = gateway_for(ab_config(model_server, tmp_path, models=models, breaker_failures=1), project)
    try:
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(task(), FULL, emit=Events(), refit=refit)
        states = gateway.store.model_states()
    finally:
        await gateway.aclose()
    error = caught.value
    assert error.kind is ErrorKind.CONTEXT_LENGTH and error.fatal
    for name in ("model-a", "model-b"):
        assert f"{name}: the prompt does not fit its context (prompt 13170 tokens" in str(error)
    assert "model-c: its context (4096) is not larger" in str(error)
    sent = [(r.model, json.dumps(r.body["messages"]), r.body.get("max_tokens")) for r in model_server.requests]
    assert len(sent) == len(set(sent)), "a request that got a context error is never sent again as it was"
    assert sorted(m for m, _, _ in sent) == ["model-a", "model-a", "model-b", "model-b"], "one smaller retry each"
    assert all(not s.failures and s.breaker == "closed" for s in states.values()), "breaker_failures=1 never opened"


async def test_the_pipeline_refits_with_the_kinds_prompt_builder(project: Path, model_server) -> None:
    """The real task: the second request is the prompt builder's own, fitted to the context the error gave."""
    (project / "pkg" / "calc.py").write_text((project / "pkg" / "calc.py").read_text() + "\n\n" + SOURCE)
    model_server.script(context_exceeded("in-stream", 13170, 4096), Reply.text(ANSWER))
    final = await run_task(project, model_server)
    assert final.status is TaskStatus.COMPLETED, final.error
    # a module this long is asked about in segments: the first request met the error, its refit follows
    first, *later = (r.body["messages"][-1]["content"] for r in model_server.requests)
    second = next(c for c in later if TRUNCATED.strip() in c)
    assert len(second) < len(first) / 3 and TRUNCATED.strip() in second
    assert "def divide" in second, "the target's source is cut last: its head stays"


# --- learning the context length ------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["openrouter", "vllm", "lmstudio", "llama.cpp"])
async def test_the_context_length_comes_from_the_endpoints_models_list(project: Path, model_server, style) -> None:
    model_server.models = [model_entry("local-m", 2048, style)]
    model_server.default = Reply.text(ANSWER)
    config = OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), base_url=model_server.base_url, model="local-m")
    gateway = gateway_for(config, project)
    try:
        assert await gateway.context_tokens(task()) == 2048
        await gateway.complete(task(), FULL, emit=Events(), refit=refit)
    finally:
        await gateway.aclose()
    ((_, chars, max_tokens),) = sizes(model_server)
    assert max_tokens is not None and chars / 4 + max_tokens <= 2048, "the prompt and max_tokens fit before sending"


async def test_the_setting_gives_the_context_length_when_the_endpoint_does_not(
    project: Path, model_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.models = [model_entry("local-m", 4096, "llama-cpp-python")]  # its list gives no size
    model_server.default = Reply.text(ANSWER)
    monkeypatch.setenv("OH_LSP_CONTEXT_TOKENS", "3000")
    config = OpenHandsConfig.from_env(None, base_url=model_server.base_url, model="local-m")
    assert config.context_tokens == 3000
    gateway = gateway_for(config, project)
    try:
        await gateway.complete(task(), FULL, emit=Events(), refit=refit)
    finally:
        await gateway.aclose()
    ((_, chars, max_tokens),) = sizes(model_server)
    assert max_tokens is not None and chars / 4 + max_tokens <= 3000


async def test_llama_servers_props_give_the_context_length(project: Path, model_server) -> None:
    model_server.models = [{"id": "local-m", "object": "model"}]
    model_server.props = {"default_generation_settings": {"n_ctx": 2048}, "total_slots": 1}
    config = OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), base_url=model_server.base_url, model="local-m")
    gateway = gateway_for(config, project)
    try:
        assert await gateway.context_tokens(task()) == 2048
    finally:
        await gateway.aclose()


# --- llama-cpp-python: HTTP 200, then a stream without a word -------------------------------------------------------
def local_config(server, **kw) -> OpenHandsConfig:
    server.models = [model_entry("local-m", style="llama-cpp-python")]
    return OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), base_url=server.base_url, model="local-m", **kw)


async def test_a_silent_stream_is_a_context_error_when_the_servers_tokenizer_says_so(
    project: Path, model_server
) -> None:
    """llama-cpp-python answers an oversized prompt with HTTP 200 and an empty stream (its words go to its own
    log). Its tokenizer tells: the prompt is counted, reported with that figure, and the next try is smaller."""
    model_server.tokenizer = "llama-cpp-python"
    model_server.script(context_exceeded("llama-cpp-python", 13170, 4096), Reply.text(ANSWER))
    gateway = gateway_for(local_config(model_server), project)
    events = Events()
    try:
        result = await gateway.complete(task(), FULL, emit=events, refit=refit)
        state = gateway.store.model_states()["local-m"]
    finally:
        await gateway.aclose()
    assert result.content == ANSWER
    (_, first, _), (_, second, _) = sizes(model_server)
    assert second < first * 0.6, "the next try has about half the prompt"
    reported = [data["context"] for _, data in events.seen if data.get("context")]
    assert reported == [
        {"prompt": scripted_tokens("\n".join(m["content"] for m in FULL)) + 8, "requested": None, "limit": None}
    ]
    assert not state.failures, "not counted toward the breaker"


async def test_a_silent_stream_stays_a_transient_failure_without_evidence(project: Path, model_server) -> None:
    """No tokenizer to ask, or a prompt that fits the known context: the usual transient failure (retried twice)."""
    model_server.default = context_exceeded("llama-cpp-python", 13170, 4096)
    gateway = gateway_for(local_config(model_server), project)
    try:
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(task(), FULL, emit=Events(), refit=refit)
    finally:
        await gateway.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT and "without a single event" in str(caught.value)
    assert len(model_server.requests) == 3


async def test_a_local_servers_tokenizer_fits_the_prompt_before_it_is_sent(project: Path, model_server) -> None:
    """A known context (the setting) and a local server with a tokenizer: the prompt is counted by it first, and
    what is sent fits exactly, by the server's own count."""
    model_server.tokenizer = "llama.cpp"
    model_server.default = Reply.text(ANSWER)
    gateway = gateway_for(local_config(model_server, context_tokens=4096), project)
    try:
        await gateway.complete(task(), FULL, emit=Events(), refit=refit)
    finally:
        await gateway.aclose()
    (request,) = model_server.requests
    counted = scripted_tokens("\n".join(m["content"] for m in request.body["messages"]))
    assert counted + request.body["max_tokens"] <= 4096 and counted > 1000
    assert model_server.tokenized, "the server's tokenizer was asked"
