"""The model catalog: which models exist, what they cost, and what we expect of them before we have evidence
(docs/models.md#the-catalog).

Three layers, later ones winning:

1. the built-in `catalog.json` (OpenRouter only): the usage guide's short names (`mistral-small`, `deepseek-chat`, ...)
   mapped to OpenRouter ids, with priors for latency, quality (0-5), success rate, prices and context length;
2. the endpoint's own models list, cached by `oh-lsp models refresh` (OpenRouter: fresh prices and context lengths
   for catalog models; any other OpenAI-compatible endpoint: its models, names unchanged, quality unknown);
3. a user file named by `OH_LSP_MODEL_CATALOG` (JSON or TOML, ``{"models": {"name": {...}}}``), which overrides
   fields of existing entries or adds models. ``"include_builtin": false`` leaves the built-in list out.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from oh_lsp.errors import ConfigError
from oh_lsp.tasks import TaskCategory

FIELDS = (
    "id",
    "avg_latency_ms",
    "quality",
    "success_rate",
    "price_prompt",
    "price_completion",
    "context_length",
    "categories",
    "price_cache_read",
    "price_cache_write",
    "cache_control",
)
DEFAULT_SUCCESS_RATE = 0.95  # the prior for a model we know nothing about
# Prompt caching by provider (the first part of an OpenRouter model id), as OpenRouter's prompt-caching guide gives
# it: whether a prompt must carry cache_control breakpoints to be cached, and what a cached prompt token costs when
# read and when written, as multiples of the prompt price. A catalog entry's own `price_cache_read`,
# `price_cache_write` and `cache_control` (or the endpoint's `input_cache_read`/`input_cache_write` prices) win.
PROVIDER_CACHING: dict[str, tuple[bool, float, float]] = {
    "anthropic": (True, 0.1, 1.25),
    "google": (True, 0.25, 1.0),
    "openai": (False, 0.5, 1.0),
    "deepseek": (False, 0.1, 1.0),
    "x-ai": (False, 0.25, 1.0),
    "moonshotai": (False, 0.25, 1.0),
}


@dataclass(frozen=True)
class ModelInfo:
    """One model. `quality_score` is 0-5 (docs/models.md#the-catalog); None means unknown (it meets any threshold)."""

    name: str
    id: str
    avg_latency_ms: float | None = None
    quality_score: float | None = None
    success_rate: float = DEFAULT_SUCCESS_RATE
    price_prompt: float | None = None  # USD per token; None: unknown
    price_completion: float | None = None
    context_length: int | None = None
    categories: tuple[str, ...] = ()  # empty: suits every category
    source: str = "builtin"  # builtin | endpoint | config | pinned
    observed_calls: int = 0  # > 0: latency and success rate come from the metrics store, not the priors
    price_cache_read: float | None = None  # USD per prompt token read from the provider's cache; None: by provider
    price_cache_write: float | None = None  # USD per prompt token written to it
    cache_control: bool | None = None  # whether prompts need cache_control breakpoints; None: by provider
    tests_observed: int = 0  # unit tests it wrote that the value gate judged (the store's model state)
    kept_share: float | None = None  # of them, the share kept: its learned quality for unit tests (5 x this)

    @property
    def quality_known(self) -> bool:
        return self.quality_score is not None

    @property
    def priced(self) -> bool:
        return self.price_prompt is not None and self.price_completion is not None

    def suits(self, category: str) -> bool:
        return not self.categories or category in self.categories

    def qualifies(self, threshold: float) -> bool:
        """A model qualifies for threshold t when quality / 5 >= t; unknown quality qualifies
        (docs/models.md#selection)."""
        return self.quality_score is None or self.quality_score / 5.0 >= threshold - 1e-9

    def cost(self, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0) -> float | None:
        """Catalog price x tokens, or None when the price is unknown. Of the prompt tokens, `cached` were read from
        the provider's prompt cache and `written` were written to it (priced as `cache_prices` says)."""
        if self.price_prompt is None or self.price_completion is None:
            return None
        read, write = self.cache_prices()
        plain = max(prompt_tokens - cached - written, 0) * self.price_prompt
        return plain + cached * read + written * write + completion_tokens * self.price_completion

    def cache_prices(self) -> tuple[float, float]:
        """USD per prompt token read from the provider's cache and written to it (the full prompt price when the
        provider is not known to cache)."""
        prompt = self.price_prompt or 0.0
        _, read, write = PROVIDER_CACHING.get(self.provider, (False, 1.0, 1.0))
        return (
            self.price_cache_read if self.price_cache_read is not None else prompt * read,
            self.price_cache_write if self.price_cache_write is not None else prompt * write,
        )

    @property
    def provider(self) -> str:
        """The provider part of an OpenRouter id (``anthropic`` of ``anthropic/claude-...``); "" for other names."""
        return self.id.split("/", 1)[0].lower() if "/" in self.id else ""

    @property
    def breakpoints(self) -> bool:
        """Whether prompts to this model must carry cache_control breakpoints to be cached."""
        if self.cache_control is not None:
            return self.cache_control
        return PROVIDER_CACHING.get(self.provider, (False, 1.0, 1.0))[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = list(self.categories)
        data["quality_known"] = self.quality_known  # unknown quality meets any threshold
        return data


class Catalog:
    """Models by name. `resolve` also accepts a provider id, and passes unknown names through unchanged."""

    def __init__(
        self, models: Iterable[ModelInfo], *, listed: dict[str, ModelInfo] | None = None, local: bool = False
    ) -> None:
        self._models: dict[str, ModelInfo] = {m.name: m for m in models}
        self._listed = listed or {}  # models the endpoint lists that are not selection candidates (OpenRouter)
        self._local = local  # a local server: any model it runs costs nothing per token

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, name: str) -> ModelInfo | None:
        if name in self._models:
            return self._models[name]
        for model in self._models.values():
            if model.id == name:
                return model
        return None

    def resolve(self, name: str) -> ModelInfo:
        """The catalog entry for a short name or id; otherwise the name as it is (priced if the endpoint lists it)."""
        known = self.get(name)
        if known is not None:
            return known
        if name in self._listed:
            return replace(self._listed[name], source="pinned")
        free = 0.0 if self._local else None
        return ModelInfo(name=name, id=name, price_prompt=free, price_completion=free, source="pinned")

    @classmethod
    def from_file(cls, path: str | Path) -> Catalog:
        """Only the models of one catalog file (as a fixture or a curated list)."""
        data = read_catalog_file(Path(path))
        return cls(_entries(data.get("models", {}), "config", str(path), {}).values())


def load_catalog(config: Any) -> Catalog:
    """The catalog for `config`'s endpoint: built-in (OpenRouter), then the cached models list, then the user file."""
    provider = config.resolved_provider
    user = read_catalog_file(Path(config.model_catalog)) if config.model_catalog else {}
    models: dict[str, ModelInfo] = {}
    if provider == "openrouter" and user.get("include_builtin", True):
        models.update(builtin_models())
    listed: dict[str, ModelInfo] = {}
    free = config.endpoint_is_local
    for entry in load_cache(config.base_url):
        info = _listed_model(entry, free)
        if info is None:
            continue
        match = next((m for m in models.values() if m.id == info.id), None)
        if match is not None:
            models[match.name] = replace(
                match,
                price_prompt=_pick(info.price_prompt, match.price_prompt),
                price_completion=_pick(info.price_completion, match.price_completion),
                context_length=info.context_length or match.context_length,
                price_cache_read=_pick(info.price_cache_read, match.price_cache_read),
                price_cache_write=_pick(info.price_cache_write, match.price_cache_write),
            )
        elif provider == "openrouter":
            listed[info.id] = info
        else:
            models[info.name] = info
    if user:
        models.update(_entries(user.get("models", {}), "config", str(config.model_catalog), models))
    return Catalog(models.values(), listed=listed, local=free)


def builtin_models() -> dict[str, ModelInfo]:
    text = resources.files("oh_lsp.llm").joinpath("catalog.json").read_text(encoding="utf-8")
    return _entries(json.loads(text)["models"], "builtin", "the built-in catalog", {})


def read_catalog_file(path: Path) -> dict[str, Any]:
    """A catalog file as a dict; a clear `ConfigError` when it is missing or malformed."""
    where = f"model catalog {path} (OH_LSP_MODEL_CATALOG)"
    try:
        raw = path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {where}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the {where} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise ConfigError(f'the {where} must hold {{"models": {{"name": {{...}}}}}}')
    return data


def _entries(raw: dict[str, Any], source: str, where: str, base: dict[str, ModelInfo]) -> dict[str, ModelInfo]:
    """Parse catalog entries; an entry whose name (or id) is already in `base` overrides only the fields it gives."""
    out: dict[str, ModelInfo] = {}
    for name, data in raw.items():
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: model {name!r} must be a table of fields ({', '.join(FIELDS)})")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ConfigError(f"{where}: model {name!r} has unknown field(s) {unknown}; known: {', '.join(FIELDS)}")
        values = {key: _field(where, name, key, value) for key, value in data.items()}
        if "quality" in values:
            values["quality_score"] = values.pop("quality")
        previous = base.get(name) or next((m for m in base.values() if m.id == values.get("id", name)), None)
        if previous is not None:
            out[previous.name] = replace(previous, source=source, **values)
        else:
            out[name] = ModelInfo(name=name, **{"id": name, **values}, source=source)
    return out


def _field(where: str, name: str, key: str, value: Any) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: model {name!r} field {key!r} = {value!r} is invalid: expected {expected}")

    if key == "id":
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        return value.strip()
    if key == "categories":
        if not isinstance(value, list):
            raise bad("a list of task types")
        try:
            return tuple(TaskCategory.parse(v).value for v in value)
        except ValueError as exc:
            raise bad(str(exc)) from None
    if key == "quality" and value is None:
        return None
    if key == "cache_control":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    limits = {
        "avg_latency_ms": (0, math.inf),
        "quality": (0, 5),
        "success_rate": (0, 1),
        "price_prompt": (0, math.inf),
        "price_completion": (0, math.inf),
        "context_length": (1, math.inf),
        "price_cache_read": (0, math.inf),
        "price_cache_write": (0, math.inf),
    }
    number = _number(value)
    low, high = limits[key]
    if number is None or not low <= number <= high:
        raise bad(f"a number from {low} to {high}" if high != math.inf else f"a number of at least {low}")
    return int(number) if key == "context_length" else number


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _pick(new: float | None, old: float | None) -> float | None:
    return new if new is not None else old


# --- the endpoint's models list (cached) ---------------------------------------------------------------------------
def cache_path(base_url: str) -> Path:
    from oh_lsp.paths import cache_dir

    host = (urlparse(base_url).hostname or "endpoint").replace(":", "_")
    return cache_dir() / f"models-{host}-{hashlib.sha256(base_url.encode()).hexdigest()[:10]}.json"


def _read_cache(base_url: str) -> dict[str, Any]:
    try:
        data = json.loads(cache_path(base_url).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(base_url: str, data: dict[str, Any]) -> Path:
    from oh_lsp.edits import atomic_write  # a temporary file of its own, so concurrent writers never collide

    path = cache_path(base_url)
    atomic_write(path, json.dumps({**data, "base_url": base_url}))
    return path


def save_cache(base_url: str, entries: list[dict[str, Any]]) -> Path:
    """The endpoint's models list; the context lengths learned from its errors are kept."""
    learned = _read_cache(base_url).get("learned_context_length")
    data: dict[str, Any] = {"fetched_at": time.time(), "models": entries}
    if isinstance(learned, dict):
        data["learned_context_length"] = learned
    return _write_cache(base_url, data)


def load_cache(base_url: str) -> list[dict[str, Any]]:
    models = _read_cache(base_url).get("models")
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def learned_context_lengths(base_url: str) -> dict[str, int]:
    """Context lengths that the endpoint's own context-length errors gave, by model id."""
    learned = _read_cache(base_url).get("learned_context_length")
    if not isinstance(learned, dict):
        return {}
    return {str(k): int(v) for k, v in learned.items() if isinstance(v, int) and v > 0}


def remember_context_length(base_url: str, model_id: str, tokens: int) -> None:
    """Keep what a context-length error said, so that the next process fits its first prompt."""
    data = _read_cache(base_url)
    learned = _dict(data.get("learned_context_length"))
    if learned.get(model_id) != tokens:
        _write_cache(base_url, {**data, "learned_context_length": {**learned, model_id: tokens}})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def server_context_length(props: Any) -> int | None:
    """llama.cpp's ``GET /props``: the context the server was started with (``--ctx-size``)."""
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    value = props.get("n_ctx") or (settings.get("n_ctx") if isinstance(settings, dict) else None)
    number = _number(value)
    return int(number) if number and number > 0 else None


def entry_context_length(entry: dict[str, Any]) -> int | None:
    """The context length a models-list entry gives: OpenRouter's ``context_length``, vLLM's ``max_model_len``, LM
    Studio's ``max_context_length``, or llama.cpp's ``meta.n_ctx`` (not ``n_ctx_train``: the server may run with less
    than the model was trained for)."""
    meta = _dict(entry.get("meta"))
    for value in (entry.get(k) for k in ("context_length", "max_model_len", "max_context_length", "context_window")):
        number = _number(value)
        if number and number > 0:
            return int(number)
    number = _number(meta.get("n_ctx"))
    return int(number) if number and number > 0 else None


def _listed_model(entry: dict[str, Any], free: bool) -> ModelInfo | None:
    """A models-list entry (its prices, its context length) as a ModelInfo."""
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None
    pricing = entry.get("pricing")
    if not isinstance(pricing, dict):
        pricing = {}
    prompt, completion = _number(pricing.get("prompt")), _number(pricing.get("completion"))
    if free and prompt is None and completion is None:
        prompt = completion = 0.0  # a local server costs nothing per token
    context = entry_context_length(entry)
    return ModelInfo(
        name=model_id,
        id=model_id,
        price_prompt=prompt,
        price_completion=completion,
        context_length=context,
        source="endpoint",
        price_cache_read=_number(pricing.get("input_cache_read")),
        price_cache_write=_number(pricing.get("input_cache_write")),
    )


async def refresh_models(config: Any) -> tuple[Path, int]:
    """Fetch ``{base_url}/models`` into the cache. Returns the cache file and how many models it lists."""
    from oh_lsp.llm.client import ChatClient

    client = ChatClient(config)
    try:
        entries = await client.list_models()
    finally:
        await client.aclose()
    return save_cache(config.base_url, entries), len(entries)
