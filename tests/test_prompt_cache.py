"""Provider prompt caching (issue 14): prompts put their stable part first and mark it; providers that need it get
cache_control breakpoints; cached tokens are recorded per call and the money they saved shows in the metrics. Against
the scripted model server, which reports and bills cached tokens as OpenRouter does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from oh_lsp.llm.catalog import ModelInfo
from oh_lsp.llm.prompt_cache import STABLE, mark_stable, wire_messages
from oh_lsp.testing.model_server import Reply
from oh_lsp.testing.model_server.wire import PRICE_PROMPT, PromptCache
from tests.conftest import FAILING_TESTS, GOOD_TESTS, OH_LSP, cli_env, fenced, run_task

CACHING_MODEL = {  # an Anthropic-like model: caches only at breakpoints, reads at 0.1x, writes at 1.25x
    "id": "test-model",
    "price_prompt": PRICE_PROMPT,
    "price_completion": 2 * PRICE_PROMPT,
    "price_cache_read": 0.1 * PRICE_PROMPT,
    "price_cache_write": 1.25 * PRICE_PROMPT,
    "cache_control": True,
}


def catalog(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": {"test-model": {**CACHING_MODEL, **fields}}}))
    return path


def test_the_wire_form_of_marked_messages() -> None:
    messages = [
        mark_stable({"role": "system", "content": "rules"}),
        mark_stable({"role": "user", "content": "source...Instruction: x"}, len("source...")),
        mark_stable({"role": "assistant", "content": "answer"}),
        {"role": "user", "content": "findings"},
    ]
    plain = wire_messages(messages, breakpoints=False)
    assert [m["content"] for m in plain] == ["rules", "source...Instruction: x", "answer", "findings"]
    assert all(STABLE not in m for m in plain), "the mark never goes on the wire"
    parts = wire_messages(messages, breakpoints=True)
    assert parts[1]["content"] == [
        {"type": "text", "text": "source...", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Instruction: x"},
    ]
    assert parts[2]["content"] == [{"type": "text", "text": "answer", "cache_control": {"type": "ephemeral"}}]
    assert parts[3]["content"] == "findings"
    many = [mark_stable({"role": "user", "content": f"m{i}"}) for i in range(6)]
    marked = [m for m in wire_messages(many, breakpoints=True) if isinstance(m["content"], list)]
    assert [m["content"][0]["text"] for m in marked] == ["m2", "m3", "m4", "m5"], "at most 4, the last ones"


def test_the_catalog_knows_which_providers_need_breakpoints_and_what_cached_tokens_cost() -> None:
    claude = ModelInfo("claude", "anthropic/claude-sonnet-4", price_prompt=3e-6, price_completion=15e-6)
    gpt = ModelInfo("gpt", "openai/gpt-4o-mini", price_prompt=1.5e-7, price_completion=6e-7)
    assert claude.breakpoints and not gpt.breakpoints
    assert claude.cache_prices() == pytest.approx((3e-7, 3.75e-6))
    assert gpt.cost(1000, 100, cached=800) == pytest.approx(200 * 1.5e-7 + 800 * 0.75e-7 + 100 * 6e-7)
    local = ModelInfo("m", "m", price_prompt=1e-6, price_completion=1e-6, cache_control=True, price_cache_read=0.0)
    assert local.breakpoints and local.cost(10, 0, cached=10) == 0.0


def test_what_the_prompt_cache_saved_is_never_negative() -> None:
    """The saving of a call is its cached tokens x the catalog's discount on them, less the premium of what it wrote
    to the cache, and never below 0, whatever the provider reported as the call's cost (once, a reported cost above
    the catalog's price showed as "saved $-0.000183")."""
    from oh_lsp.llm.budget import cache_savings
    from oh_lsp.llm.client import ChatResult
    from oh_lsp.progress_text import savings_text

    claude = ModelInfo("claude", "anthropic/claude-sonnet-4", price_prompt=3e-6, price_completion=15e-6)
    dearer = ChatResult("", "claude", prompt_tokens=1000, completion_tokens=100, cost=1.0, cached_tokens=800)
    assert cache_savings(dearer, claude) == pytest.approx(800 * 3e-6 * 0.9), "the catalog's discount, not its cost"
    mixed = ChatResult("", "claude", prompt_tokens=1000, cached_tokens=100, cache_write_tokens=900)
    assert cache_savings(mixed, claude) == 0.0, "the write premium (900 x 0.25) outweighs the discount: 0, not less"
    assert cache_savings(ChatResult("", "claude", prompt_tokens=1000, cache_write_tokens=1000), claude) == 0.0
    unpriced = ModelInfo("x", "x")
    assert cache_savings(ChatResult("", "x", prompt_tokens=10, cached_tokens=10, cost=0.5), unpriced) == 0.0
    texts = [savings_text({"saved_cost": cache_savings(r, claude)}) for r in (dearer, mixed)]
    assert all(t.startswith("saved $") and "$-" not in t for t in texts), texts


def test_the_scripted_server_caches_at_breakpoints_as_openrouter_reports_it() -> None:
    from oh_lsp.testing.model_server.script import RecordedRequest

    cache = PromptCache(mode="breakpoints")

    def request(stable: str, variable: str) -> RecordedRequest:
        body = {
            "model": "m",
            "messages": wire_messages(
                [mark_stable({"role": "user", "content": stable + variable}, len(stable))], breakpoints=True
            ),
        }
        return RecordedRequest("POST", "/v1/chat/completions", {}, body, b"", "m", True, 0.0)

    first = cache.account(request("s" * 400, "one"))
    assert (first["cached_tokens"], first["cache_write_tokens"]) == (0, 100)
    second = cache.account(request("s" * 400, "two"))
    assert (second["cached_tokens"], second["cache_write_tokens"]) == (100, 0)
    other = cache.account(request("t" * 400, "two"))
    assert other["cached_tokens"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_repair_reads_the_conversation_from_the_prompt_cache(
    project: Path, model_server, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    model_server.prompt_cache = PromptCache(mode="breakpoints")
    model_server.script(Reply.text(fenced(FAILING_TESTS)), Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(
        project,
        model_server,
        max_repair_iterations=1,
        quality_threshold=0.7,
        model_catalog=catalog(tmp_path),
        **({"queue_url": url} if url else {}),
    )
    assert task.status.value == "completed", task.error
    first, repair = model_server.requests
    user = first.body["messages"][1]["content"]
    assert user[0]["cache_control"] == {"type": "ephemeral"} and "Source of pkg/calc.py" in user[0]["text"]
    assert user[1]["text"].startswith("Instruction:"), "the variable part comes after the stable one"
    assert repair.body["messages"][:2] == first.body["messages"], "the repair repeats the first prompt as it was"
    assert repair.body["messages"][2]["content"][0]["cache_control"], "and marks the model's answer"
    assert first.prompt_cache["cached_tokens"] == 0 and first.prompt_cache["cache_write_tokens"] > 0
    cached = repair.prompt_cache["cached_tokens"]
    assert cached > 0 and cached >= first.prompt_cache["cache_write_tokens"]
    from oh_lsp.store import open_store

    store = open_store(project, url=url)
    try:
        system = store.metrics_summary()["system"]
    finally:
        store.close()
    assert system["cached_tokens"] == cached
    assert 0 < system["cached_share"] < 1
    # saved, call by call and never below 0: what the cached tokens would have cost at the full prompt price, minus
    # what they cost (0.1x), minus the premium of the tokens the same call wrote (0.25x); the first call only wrote
    expected = max(cached * PRICE_PROMPT * 0.9 - repair.prompt_cache["cache_write_tokens"] * PRICE_PROMPT * 0.25, 0)
    assert system["saved_cost"] == pytest.approx(expected, rel=1e-6) and expected > 0


async def test_a_provider_that_caches_on_its_own_gets_plain_prompts(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.prompt_cache = PromptCache(mode="automatic", read=0.5, write=1.0)
    model_server.script(Reply.text(fenced(FAILING_TESTS)), Reply.text(fenced(GOOD_TESTS)))
    path = catalog(tmp_path, cache_control=False, price_cache_read=0.5 * PRICE_PROMPT, price_cache_write=PRICE_PROMPT)
    task = await run_task(project, model_server, max_repair_iterations=1, quality_threshold=0.7, model_catalog=path)
    assert task.status.value == "completed", task.error
    first, repair = model_server.requests
    assert all(isinstance(m["content"], str) for r in (first, repair) for m in r.body["messages"])
    assert repair.prompt_cache["cached_tokens"] > 0


def test_oh_lsp_metrics_says_what_caching_saved(project: Path, model_server, tmp_path: Path) -> None:
    model_server.prompt_cache = PromptCache(mode="breakpoints")
    model_server.script(Reply.text(fenced(FAILING_TESTS)), Reply.text(fenced(GOOD_TESTS)))
    env = cli_env(
        project, model_server.base_url, OH_LSP_MODEL_CATALOG=str(catalog(tmp_path)), OH_LSP_MAX_REPAIR_ITERATIONS="1"
    )
    run = subprocess.run(
        [*OH_LSP, "generate-tests", "pkg/calc.py"], cwd=project, env=env, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout + run.stderr
    metrics = subprocess.run([*OH_LSP, "metrics", "--json"], cwd=project, env=env, capture_output=True, text=True)
    system = json.loads(metrics.stdout)["system"]
    assert system["cached_tokens"] == model_server.requests[1].prompt_cache["cached_tokens"] > 0
    share = round(100 * system["cached_share"])
    text = subprocess.run([*OH_LSP, "metrics"], cwd=project, env=env, capture_output=True, text=True).stdout
    assert f"saved ${system['saved_cost']:.6f} ({share} % cached)" in text, text
