"""Model selection (docs/models.md#selection): the usage guide's examples, a swapped fixture catalog, constraints that
exclude models, learning from the store, the chain skipping unavailable models, `select-model`, and catalogs for other
endpoints."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from oh_lsp.config import OpenHandsConfig
from oh_lsp.errors import ConfigError
from oh_lsp.llm.catalog import Catalog, load_catalog
from oh_lsp.llm.selector import ModelSelector, NoModelError, TaskRequirements
from oh_lsp.records import ModelCall
from oh_lsp.store import open_store
from oh_lsp.tasks import TaskCategory
from tests.conftest import OH_LSP, cli_env
from tests.models_support import write_catalog

BUILTIN = json.loads((Path(__file__).parents[1] / "oh_lsp" / "llm" / "catalog.json").read_text())["models"]


def swapped_catalog(folder: Path) -> Path:
    """mistral-small and deepseek-chat with their priors (price, quality, latency, reliability) swapped."""
    small, deep = dict(BUILTIN["mistral-small"]), dict(BUILTIN["deepseek-chat"])
    for key in ("quality", "price_prompt", "price_completion", "avg_latency_ms", "success_rate"):
        small[key], deep[key] = deep[key], small[key]
    return write_catalog(folder, {"mistral-small": small, "deepseek-chat": deep}, include_builtin=False)


def test_guide_model_selection_snippet(capsys: pytest.CaptureFixture[str]) -> None:
    from oh_lsp import ModelSelector, TaskCategory, TaskRequirements

    selector = ModelSelector()

    # Select model for unit test generation
    requirements = TaskRequirements(
        category=TaskCategory.UNIT_TEST,
        complexity="moderate",
        quality_threshold=0.8,
        max_latency_ms=3000,
    )

    model = selector.select_model(requirements)
    print(f"Selected: {model.name}")
    print(f"  Latency: {model.avg_latency_ms}ms")
    print(f"  Quality: {model.quality_score}/5.0")
    print(f"  Success Rate: {model.success_rate * 100}%")

    out = capsys.readouterr().out
    assert f"Selected: {model.name}\n" in out
    assert model.quality_score / 5 >= 0.8 and model.avg_latency_ms <= 3000
    assert model.name != "mistral-small"  # 3.8/5 is below the 0.8 threshold


def test_guide_cost_and_quality_optimization_examples() -> None:
    selector = ModelSelector()
    cheap = selector.select_model(TaskRequirements(category=TaskCategory.DOCUMENTATION, complexity="simple"))
    assert cheap.name == "mistral-small"  # "Will select Mistral Small (fastest, cheapest)"
    best = selector.select_model(
        TaskRequirements(category=TaskCategory.REFACTORING, complexity="complex", quality_threshold=0.9)
    )
    assert best.name == "deepseek-chat"  # "Will select DeepSeek Chat (highest quality)"
    # with several models above the threshold, a complex task still goes to the best one
    assert (
        selector.select_model(
            TaskRequirements(category="refactoring", complexity="complex", quality_threshold=0.8)
        ).name
        == "deepseek-chat"
    )
    why = selector.explain(TaskRequirements(category="documentation", complexity="simple")).why
    assert "cheapest" in why and "fastest" in why


def test_the_choice_follows_the_data_of_a_swapped_catalog(tmp_path: Path) -> None:
    selector = ModelSelector(swapped_catalog(tmp_path))
    assert (
        selector.select_model(TaskRequirements(category="documentation", complexity="simple")).name == "deepseek-chat"
    )
    assert (
        selector.select_model(
            TaskRequirements(category="refactoring", complexity="complex", quality_threshold=0.9)
        ).name
        == "mistral-small"
    )


def test_a_config_catalog_overrides_the_builtin_entries(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, {"mistral-small": {"quality": 4.9}})
    catalog = load_catalog(OpenHandsConfig(model_catalog=path))
    assert catalog.get("mistral-small").quality_score == 4.9
    assert catalog.get("mistral-small").id == BUILTIN["mistral-small"]["id"]  # other fields kept
    assert catalog.get("deepseek-chat") is not None  # the rest of the built-in list is still there
    selector = ModelSelector(catalog)
    assert (
        selector.select_model(
            TaskRequirements(category="refactoring", complexity="complex", quality_threshold=0.9)
        ).name
        == "mistral-small"
    )


def test_no_match_names_the_constraint_that_excluded_each_model() -> None:
    with pytest.raises(NoModelError) as caught:
        ModelSelector().select_model(
            TaskRequirements(category="documentation", complexity="simple", quality_threshold=0.9, max_latency_ms=1000)
        )
    excluded = caught.value.excluded
    assert "quality 3.8/5 is below the threshold 0.9" in excluded["mistral-small"]
    assert "latency 2600 ms exceeds max_latency_ms 1000" in excluded["deepseek-chat"]
    assert "not suited to documentation" in excluded["qwen-coder"]
    assert "mistral-small: quality 3.8/5" in str(caught.value)
    with pytest.raises(NoModelError, match="exceeds max_cost_per_call"):
        ModelSelector().select_model(TaskRequirements(category="unit_test", max_cost_per_call=0.0000001))


def test_bad_requirements_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown complexity 'huge'"):
        TaskRequirements(category="unit_test", complexity="huge")
    with pytest.raises(ValueError, match="unknown task type 'poetry'"):
        TaskRequirements(category="poetry")
    with pytest.raises(ValueError, match="between 0 and 1"):
        TaskRequirements(category="unit_test", quality_threshold=4.5)


def test_observed_success_rate_and_latency_replace_the_priors(project: Path) -> None:
    store = open_store(project)
    selector = ModelSelector(store=store)
    simple_docs = TaskRequirements(category="documentation", complexity="simple")
    assert selector.select_model(simple_docs).name == "mistral-small"
    for _ in range(18):  # not enough evidence yet (20 calls)
        store.record_model_call(ModelCall("mistral-small", "transient", latency_ms=9000))
    for _ in range(5):  # rate limits say nothing of the model itself
        store.record_model_call(ModelCall("mistral-small", "rate_limit"))
    assert selector.select_model(simple_docs).name == "mistral-small"
    store.record_model_call(ModelCall("mistral-small", "transient", latency_ms=9000))
    store.record_model_call(ModelCall("mistral-small", "ok", latency_ms=8000))
    model = selector.select_model(simple_docs)
    assert model.name != "mistral-small"
    learned = next(m for m in selector.explain(simple_docs).ranked if m.name == "mistral-small")
    assert learned.observed_calls == 20 and learned.success_rate == pytest.approx(1 / 20)
    assert learned.avg_latency_ms == 8000
    store.close()


def test_the_share_of_its_tests_kept_ranks_a_model_for_unit_tests(project: Path) -> None:
    """The value gate's verdicts on a model's tests are its quality for unit_test tasks (docs/validation.md, "What is
    delivered") once 20 were judged; other kinds, and whether it qualifies for a threshold, keep the catalog's."""
    store = open_store(project)
    selector = ModelSelector(store=store)
    complex_tests = TaskRequirements(category="unit_test", complexity="complex")
    complex_docs = TaskRequirements(category="documentation", complexity="complex")
    first = selector.select_model(complex_tests).name
    assert selector.select_model(complex_docs).name == first

    def kept(generated: int, kept: int):
        def change(state):
            state.tests_generated += generated
            state.tests_kept += kept

        return change

    store.update_model_state(first, kept(19, 1))
    assert selector.select_model(complex_tests).name == first, "19 tests are not enough evidence"
    store.update_model_state(first, kept(1, 0))
    ranked = selector.explain(complex_tests).ranked
    learned = next(m for m in ranked if m.name == first)
    assert (learned.tests_observed, learned.kept_share) == (20, 0.05)
    assert ranked[0].name != first, "1 test of 20 kept: it no longer heads the chain for unit tests"
    assert selector.select_model(complex_docs).name == first, "its documentation answers say nothing of it"
    assert (
        learned.quality_score == next(m for m in selector.explain(complex_docs).ranked if m.name == first).quality_score
    )
    store.close()


def test_the_chain_skips_models_cooling_down_or_with_an_open_breaker(project: Path) -> None:
    store = open_store(project)
    selector = ModelSelector(store=store)
    simple_docs = TaskRequirements(category="documentation", complexity="simple")
    ranked = [m.name for m in selector.explain(simple_docs).ranked]

    def cool(state):
        state.cooldown_until, state.cooldown_reason = time.time() + 30, "rate limited"

    def trip(state):
        state.breaker, state.breaker_retry_at = "open", time.time() + 30

    store.update_model_state(ranked[0], cool)
    store.update_model_state(ranked[1], trip)
    chain = [m.name for m in selector.select_chain(simple_docs)]
    assert chain == ranked[2:]
    explained = selector.explain(simple_docs)
    assert "cooling down" in explained.excluded[ranked[0]] and "breaker open" in explained.excluded[ranked[1]]
    store.close()


def test_the_configured_model_heads_the_chain_only_when_set_explicitly(project: Path) -> None:
    store = open_store(project)
    req = TaskRequirements(category="unit_test", complexity="complex")
    unset = ModelSelector(store=store, config=OpenHandsConfig())
    assert unset.select_model(req).name == "deepseek-chat"  # the default does not head it (docs/models.md#selection)
    explicit = ModelSelector(store=store, config=OpenHandsConfig(model="mistral-small"))
    selection = explicit.explain(req)
    assert selection.chain[0].name == "mistral-small" and "configured model" in selection.why
    assert selection.chain[1].name == "deepseek-chat"
    # ... and only when it meets the requirements
    strict = explicit.explain(TaskRequirements(category="unit_test", quality_threshold=0.9))
    assert strict.chain[0].name == "deepseek-chat" and "does not qualify" in strict.why
    # a model the catalog does not know has unknown quality: it meets any threshold
    other = ModelSelector(store=store, config=OpenHandsConfig(model="google/gemini-2.0-flash-001"))
    chosen = other.explain(TaskRequirements(category="unit_test", quality_threshold=0.95)).chain[0]
    assert chosen.name == "google/gemini-2.0-flash-001" and not chosen.quality_known
    store.close()


def test_catalog_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = write_catalog(tmp_path, {"m": {"quality": 7}})
    with pytest.raises(ConfigError, match=r"model 'm' field 'quality' = 7 is invalid"):
        Catalog.from_file(bad)
    typo = write_catalog(tmp_path, {"m": {"qualty": 3}}, name="typo.json")
    with pytest.raises(ConfigError, match="unknown field"):
        Catalog.from_file(typo)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Catalog.from_file(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="cannot read"):
        Catalog.from_file(tmp_path / "missing.json")
    toml = tmp_path / "models.toml"
    toml.write_text('[models.local]\nid = "qwen2.5-coder:7b"\nquality = 3.5\ncategories = ["unit_test"]\n')
    assert Catalog.from_file(toml).get("local").id == "qwen2.5-coder:7b"


def run_cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=60)


def test_select_model_cli_json_follows_the_guide_and_the_data(project: Path, model_server, tmp_path: Path) -> None:
    env = cli_env(project, model_server.base_url, OH_LSP_PROVIDER="openrouter")
    env.pop("OPENHANDS_MODEL")
    docs = run_cli(project, env, "select-model", "--task-type", "documentation", "--complexity", "simple", "--json")
    assert docs.returncode == 0, docs.stderr
    data = json.loads(docs.stdout)
    assert data["model"] == "mistral-small" and data["id"] == BUILTIN["mistral-small"]["id"]
    assert "cheapest" in data["why"] and data["chain"][0]["name"] == "mistral-small"
    assert "not suited to documentation" in data["excluded"]["qwen-coder"]
    best = json.loads(
        run_cli(
            project,
            env,
            "select-model",
            "--task-type",
            "refactoring",
            "--complexity",
            "complex",
            "--quality-threshold",
            "0.9",
            "--json",
        ).stdout
    )
    assert best["model"] == "deepseek-chat"
    human = run_cli(project, env, "select-model", "--task-type", "documentation", "--complexity", "simple")
    assert "Selected: mistral-small" in human.stdout and "Why:" in human.stdout and "Chain:" in human.stdout

    env["OH_LSP_MODEL_CATALOG"] = str(swapped_catalog(tmp_path))
    swapped = json.loads(
        run_cli(project, env, "select-model", "--task-type", "documentation", "--complexity", "simple", "--json").stdout
    )
    assert swapped["model"] == "deepseek-chat"
    none = run_cli(project, env, "select-model", "--task-type", "refactoring", "--quality-threshold", "1.0", "--json")
    assert none.returncode == 1 and json.loads(none.stdout)["model"] is None
    assert "quality 4.7/5 is below the threshold 1" in json.loads(none.stdout)["excluded"]["mistral-small"]


def test_models_refresh_updates_openrouter_prices_from_the_endpoint(project: Path, model_server) -> None:
    mistral_id = BUILTIN["mistral-small"]["id"]
    model_server.models = [
        {"id": mistral_id, "pricing": {"prompt": "0.0000003", "completion": "0.0000009"}, "context_length": 99999},
        {"id": "somebody/unlisted-model", "pricing": {"prompt": "0", "completion": "0"}, "context_length": 4096},
    ]
    env = cli_env(project, model_server.base_url, OH_LSP_PROVIDER="openrouter")
    refreshed = run_cli(project, env, "models", "refresh", "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    assert json.loads(refreshed.stdout)["models"] == 2
    rows = {r["name"]: r for r in json.loads(run_cli(project, env, "models", "list", "--json").stdout)}
    assert rows["mistral-small"]["price_prompt"] == 3e-7 and rows["mistral-small"]["context_length"] == 99999
    assert "somebody/unlisted-model" not in rows  # OpenRouter's other models are not selection candidates


def test_another_endpoint_keeps_its_own_model_names_with_unknown_quality(project: Path, model_server) -> None:
    model_server.models = [{"id": "qwen2.5-coder:7b"}, {"id": "llama3.2:3b", "max_model_len": 8192}]
    env = cli_env(project, model_server.base_url)
    env.pop("OPENHANDS_MODEL")
    assert run_cli(project, env, "models", "refresh").returncode == 0
    rows = {r["name"]: r for r in json.loads(run_cli(project, env, "models", "list", "--json").stdout)}
    assert set(rows) == {"qwen2.5-coder:7b", "llama3.2:3b"}
    assert rows["llama3.2:3b"]["context_length"] == 8192 and rows["llama3.2:3b"]["quality_score"] is None
    assert rows["qwen2.5-coder:7b"]["price_prompt"] == 0.0  # a local server costs nothing per token
    picked = json.loads(
        run_cli(
            project, env, "select-model", "--task-type", "unit_test", "--quality-threshold", "0.95", "--json"
        ).stdout
    )
    assert picked["model"] in rows and picked["chain"][0]["quality_known"] is False
