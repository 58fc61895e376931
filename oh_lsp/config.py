"""`OpenHandsConfig`: every setting oh-lsp reads, from code, from the environment, or from a `.env` file.

The environment variables are those of the usage guide (`OPENROUTER_API_KEY`, `OPENHANDS_*`) plus `OPENHANDS_BASE_URL`
for any OpenAI-compatible endpoint, and a few `OH_LSP_*` ones for oh-lsp's own knobs. A value from the process
environment wins over the same name in `.env`.

A project's `.env` comes with the repository, so it may not choose what protects the user from the repository's
generated code (`USER_ONLY`: the sandbox, the interpreters that run generated code) nor send the key elsewhere (a
remote `OPENHANDS_BASE_URL`): those come from the user's own environment, user-level editor settings or the command
line. A `.env` may name a loopback endpoint (a local model), or OpenRouter's, the default.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo

from oh_lsp.errors import ConfigError, MissingApiKeyError

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "mistral-small"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}

# field name -> environment variable. Order is the usage guide's table, then the additions
# (docs/guide-compat.md#environment-variables).
ENV_VARS: dict[str, str] = {
    "api_key": "OPENROUTER_API_KEY",
    "model": "OPENHANDS_MODEL",
    "workspace_path": "OPENHANDS_WORKSPACE_ROOT",
    "timeout_seconds": "OPENHANDS_TIMEOUT",
    "enable_circuit_breaker": "OPENHANDS_ENABLE_CIRCUIT_BREAKER",
    "use_docker_runtime": "OPENHANDS_USE_DOCKER_RUNTIME",
    "base_url": "OPENHANDS_BASE_URL",
    "queue_url": "OPENHANDS_QUEUE_URL",
    "provider": "OH_LSP_PROVIDER",
    "python": "OH_LSP_PYTHON",
    "max_retries": "OH_LSP_MAX_RETRIES",
    "queue_max_size": "OH_LSP_QUEUE_MAX_SIZE",
    "lease_seconds": "OH_LSP_LEASE_SECONDS",
    "heartbeat_seconds": "OH_LSP_HEARTBEAT_SECONDS",
    "budget_per_task_usd": "OH_LSP_BUDGET_PER_TASK_USD",
    "budget_per_day_usd": "OH_LSP_BUDGET_PER_DAY_USD",
    "max_tokens": "OH_LSP_MAX_TOKENS",
    "context_tokens": "OH_LSP_CONTEXT_TOKENS",
    "model_catalog": "OH_LSP_MODEL_CATALOG",
    "breaker_failures": "OH_LSP_BREAKER_FAILURES",
    "breaker_window_seconds": "OH_LSP_BREAKER_WINDOW_SECONDS",
    "breaker_open_seconds": "OH_LSP_BREAKER_OPEN_SECONDS",
    "test_timeout_seconds": "OH_LSP_TEST_TIMEOUT",
    "quality_threshold": "OH_LSP_QUALITY_THRESHOLD",
    "trusted": "OH_LSP_TRUSTED",
    "sandbox": "OH_LSP_SANDBOX",
    "test_seeds": "OH_LSP_TEST_SEEDS",
    "max_repair_iterations": "OH_LSP_MAX_REPAIR_ITERATIONS",
    "mutation": "OH_LSP_MUTATION",
    "mutation_seconds": "OH_LSP_MUTATION_SECONDS",
    "runtime": "OH_LSP_RUNTIME",
    "openhands_env": "OH_LSP_OPENHANDS_ENV",
    "openhands_python": "OH_LSP_OPENHANDS_PYTHON",
    "openhands_max_iterations": "OH_LSP_OPENHANDS_MAX_ITERATIONS",
    "result_cache": "OH_LSP_RESULT_CACHE",
    "result_cache_entries": "OH_LSP_RESULT_CACHE_ENTRIES",
    "prompt_cache": "OH_LSP_PROMPT_CACHE",
    "batch_window_seconds": "OH_LSP_BATCH_WINDOW",
}
# How many tasks one engine runs at once. The engine takes it as an argument, so it is not an OpenHandsConfig field;
# its rule is stated here once for every front end. The default is the editors' `workers` (`run-engine` has its own).
WORKERS: FieldInfo = FieldInfo.from_annotated_attribute(int, Field(default=2, ge=1, le=64))
# Whether an editor shows an edit for review before it lands (the language server's `reviewEdits`; lsp/delivery.py).
REVIEW_EDITS: FieldInfo = FieldInfo.from_annotated_attribute(bool, Field(default=True))
# Settings a repository must not choose (the contract's "Running generated code"): a project's `.env` that sets them
# is not read for them, and the user is told (`OpenHandsConfig.project_notes`).
USER_ONLY = ("sandbox", "python", "openhands_python", "openhands_env")
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


class OpenHandsConfig(BaseModel):
    """Settings for the engine, the CLI and the language server.

    ``OpenHandsConfig(model="mistral-small")`` works without a key: a missing key is reported when a model is first
    called, and only if the endpoint needs one (OpenRouter does; a local Ollama or llama.cpp server does not).
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", arbitrary_types_allowed=True)

    api_key: SecretStr | None = None
    model: str = DEFAULT_MODEL
    base_url: str = OPENROUTER_BASE_URL
    workspace_path: Path = Path("./openhands_workspace")
    timeout_seconds: int = Field(default=300, gt=0)
    enable_circuit_breaker: bool = True
    use_docker_runtime: bool = False
    cli_mode: bool = True
    usage_id: str = "oh-lsp"
    # oh-lsp's additions
    provider: Literal["openrouter", "openai-compatible"] | None = None
    python: Path | None = None
    max_retries: int = Field(default=2, ge=0, le=20)
    queue_max_size: int = Field(default=1000, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    # model access: budgets, the catalog file, the circuit breaker (see oh_lsp/llm/)
    budget_per_task_usd: float | None = Field(default=None, ge=0)
    budget_per_day_usd: float | None = Field(default=None, ge=0)
    max_tokens: int = Field(default=4096, ge=16)  # at most; fitted to the model's context when it is known
    # the context length of the endpoint's models when neither the catalog nor the endpoint gives one (a local
    # server's --ctx-size / --n_ctx)
    context_tokens: int | None = Field(default=None, ge=512)
    model_catalog: Path | None = None
    breaker_failures: int = Field(default=5, ge=1)
    breaker_window_seconds: float = Field(default=60.0, gt=0)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    test_timeout_seconds: float = Field(default=120.0, gt=0)
    quality_threshold: float = Field(default=0.7, ge=0, le=1)
    trusted: bool = True
    sandbox: Literal["auto", "bwrap", "namespaces", "landlock", "none"] = "auto"  # see docs/sandbox.md
    test_seeds: list[int] | None = None  # fixed seeds for the 3 runs of generated tests (reproducing a flaky one)
    max_repair_iterations: int = Field(default=2, ge=0, le=10)
    mutation: bool = True  # mutation analysis of a unit_test target (docs/validation.md); OH_LSP_MUTATION=off
    mutation_seconds: float = Field(default=20.0, gt=0, le=3600)  # the cap on one task's mutation analysis
    # a queue shared by workers on many machines (postgresql://...); None: the project's embedded SQLite store
    queue_url: str | None = Field(default=None, repr=False)
    # who answers a task: the direct chat call, or an OpenHands SDK agent in a subprocess (see oh_lsp/agent/)
    runtime: Literal["direct", "openhands"] = "direct"
    openhands_env: Path | None = None  # the agent environment (Python >= 3.12); default: made by `openhands setup`
    openhands_python: Path | None = None  # the Python >= 3.12 that `oh-lsp openhands setup` builds it with
    openhands_max_iterations: int = Field(default=30, ge=1, le=500)  # agent steps per conversation run
    # issue 14 (docs/caching.md): reuse a completed task's result when nothing it depends on changed; bounded
    result_cache: bool = True
    result_cache_entries: int = Field(default=500, ge=1, le=1_000_000)
    prompt_cache: bool = True  # cache_control breakpoints for the providers that need them
    # similar tasks that become runnable within this many seconds go to one model, the first ahead (0: off)
    batch_window_seconds: float = Field(default=0.5, ge=0, le=60)

    _project_notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def project_notes(self) -> list[str]:
        """What the project's `.env` tried to set and was not allowed to (front ends show these as warnings)."""
        return list(self._project_notes)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http(s) URL such as https://openrouter.ai/api/v1 or http://127.0.0.1:11434/v1")
        return value.rstrip("/")

    @field_validator("queue_url", mode="before")
    @classmethod
    def _check_queue_url(cls, value: Any) -> str | None:
        if value is None or not str(value).strip():
            return None
        from oh_lsp.store.urls import check_queue_url

        return check_queue_url(str(value))

    @field_validator("runtime", mode="before")
    @classmethod
    def _runtime_name(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("model", "usage_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("test_seeds")
    @classmethod
    def _three_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) != 3:
            raise ValueError("give exactly three seeds, one per run")
        return value

    @property
    def model_was_set(self) -> bool:
        """True when the model was chosen explicitly (code, environment or editor), not left at the default
        (docs/models.md#selection: only an explicit choice heads the chain)."""
        return "model" in self.model_fields_set

    @property
    def resolved_provider(self) -> str:
        if self.provider:
            return self.provider
        host = urlparse(self.base_url).hostname or ""
        return "openrouter" if host == "openrouter.ai" or host.endswith(".openrouter.ai") else "openai-compatible"

    @property
    def endpoint_is_local(self) -> bool:
        return (urlparse(self.base_url).hostname or "") in LOCAL_HOSTS

    def secrets(self) -> list[str]:
        """Secret values that must never leave the process (used to redact logs and scrub subprocess environments)."""
        key = self.api_key.get_secret_value() if self.api_key else ""
        from oh_lsp.store.urls import url_password

        return [s for s in (key, url_password(self.queue_url) if self.queue_url else None) if s]

    def require_api_key(self) -> str | None:
        """The key to send, or None for an endpoint that takes none. Raises `MissingApiKeyError` when one is needed."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        if self.resolved_provider == "openrouter":
            raise MissingApiKeyError(
                f"No API key is set for {self.base_url}. Set OPENROUTER_API_KEY (export OPENROUTER_API_KEY=sk-or-...,"
                " or put it in the project's .env), or point OPENHANDS_BASE_URL at a local OpenAI-compatible server"
                " that needs no key: Ollama (http://127.0.0.1:11434/v1), LM Studio (http://127.0.0.1:1234/v1),"
                " llama.cpp's llama-server or vLLM (http://127.0.0.1:8000/v1)."
            )
        return None

    @classmethod
    def from_env(
        cls,
        env_file: str | Path | None = ".env",
        environ: dict[str, str] | None = None,
        *,
        given: Iterable[str] = (),
        **overrides: Any,
    ) -> OpenHandsConfig:
        """Read every variable of docs/guide-compat.md#environment-variables (the usage guide's, `OPENHANDS_BASE_URL`
        and `OH_LSP_*`) and an optional `.env`.

        Variables set in the process environment win over `.env`; `overrides` win over both (`given` names further
        settings the caller sets afterwards: their `.env` values are not looked at). A `.env` is not read for
        `USER_ONLY` settings (`project_notes` says so), and a remote `OPENHANDS_BASE_URL` there raises `ConfigError`.
        An invalid value raises `ConfigError` naming the variable.
        """
        values, notes = _read_env(env_file, os.environ if environ is None else environ, skip={*overrides, *given})
        raw: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            if var in values:
                raw[name] = _coerce(name, var, values[var])
        raw.update(overrides)
        try:
            config = cls(**raw)
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None
        config._project_notes = notes
        return config

    def with_changes(self, **changes: Any) -> OpenHandsConfig:
        """A validated copy with some settings changed; raises `ConfigError` naming the setting."""
        data = {name: getattr(self, name) for name in self.model_fields_set}
        data.update(changes)
        try:
            changed = type(self)(**data)
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None
        changed._project_notes = self.project_notes
        return changed


def check_workers(value: Any, what: str = "workers") -> int:
    """`value` if it obeys `WORKERS`' rule, else `ConfigError` saying so: the CLI's `--workers`, the engine's
    `max_concurrent_tasks` and the editors' `workers` share it."""
    from oh_lsp.field_rules import rule_of

    rule = rule_of(WORKERS)
    if not rule.accepts(value):
        raise ConfigError(f"{what} must be {rule.words()} (tasks run at once), not {value!r}")
    return int(value)


def field_bounds(name: str) -> dict[str, float]:
    """The numeric bounds that setting `name`'s `Field` declares (any of ``ge``, ``gt``, ``le``, ``lt``), e.g.
    ``{"ge": 0, "le": 10}``: a setting's range is written once, on its field, and other checks read it here."""
    rules = OpenHandsConfig.model_fields[name].metadata
    return {key: getattr(rule, key) for rule in rules for key in ("ge", "gt", "le", "lt") if hasattr(rule, key)}


def _read_env(env_file: str | Path | None, environ: Any, skip: set[str]) -> tuple[dict[str, str], list[str]]:
    """The variables of `ENV_VARS` from `environ`, and from `env_file` where `environ` lacks them; and what the file
    was not allowed to set. Settings in `skip` are not looked at in the file (the caller sets them)."""
    values: dict[str, str] = {}
    notes: list[str] = []
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        in_file = dotenv_values(env_file)
        for name, var in ENV_VARS.items():
            text = in_file.get(var) if name not in skip and var not in environ else None
            if text is None:
                continue
            if name in USER_ONLY:
                notes.append(_user_only_note(env_file, name, var))
            elif name == "base_url" and not _is_loopback(text) and text.strip().rstrip("/") != OPENROUTER_BASE_URL:
                raise ConfigError(_remote_url_refusal(env_file, text))
            else:
                values[var] = text
    values.update({k: v for k, v in environ.items() if k in ENV_VARS.values()})
    return values, notes


def _is_loopback(url: str) -> bool:
    return (urlparse(url.strip()).hostname or "") in LOCAL_HOSTS


def _user_only_note(env_file: str | Path, name: str, var: str) -> str:
    what = {
        "sandbox": "the sandbox that contains generated code",
        "python": "the interpreter that runs generated code",
    }.get(name, "the interpreter of the OpenHands agent")
    editor = ", or in your editor's user settings (ohLsp.sandbox)" if name == "sandbox" else ""
    return (
        f"{env_file} sets {var} ({what}), which a repository may not choose: ignored. Set it in your own"
        f" environment (export {var}=...){editor}."
    )


def _remote_url_refusal(env_file: str | Path, url: str) -> str:
    host = urlparse(url.strip()).hostname or url
    return (
        f"{env_file} sets OPENHANDS_BASE_URL to {host}, a remote endpoint: oh-lsp would send your API key there, so a"
        " repository may not choose it. Set it in your own environment (export OPENHANDS_BASE_URL=...), on the"
        " command line, or in your editor's user settings (ohLsp.baseUrl); a project's .env may only name a local"
        " endpoint such as http://127.0.0.1:11434/v1, or remove the line."
    )


def _coerce(name: str, var: str, text: str) -> Any:
    annotation = str(OpenHandsConfig.model_fields[name].annotation)
    if "bool" in annotation:
        lowered = text.strip().lower()
        if lowered in _BOOL_TRUE:
            return True
        if lowered in _BOOL_FALSE:
            return False
        raise ConfigError(f"{var}={text!r} is not a boolean: use true or false")
    if not text.strip() and OpenHandsConfig.model_fields[name].default is None:
        return None  # an empty optional setting (a budget, a path) means "not set"
    if name == "api_key":
        return SecretStr(text.strip()) if text.strip() else None
    if name in ("provider", "python", "test_seeds") and not text.strip():
        return None
    if name == "test_seeds":
        try:
            return [int(part) for part in text.replace(",", " ").split()]
        except ValueError:
            raise ConfigError(f"{var}={text!r} is not a list of integers such as 11,22,33") from None
    return text


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        var = ENV_VARS.get(field)
        label = f"{var} (setting {field!r})" if var else f"setting {field!r}"
        shown = "<hidden>" if field in ("api_key", "queue_url") else repr(err.get("input"))
        lines.append(f"{label}: {shown} is invalid: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)
