"""OpenHandsConfig: the variables of docs/guide-compat.md#environment-variables, .env, clear errors that name the
variable, and a key that never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from oh_lsp import OpenHandsConfig
from oh_lsp.errors import ConfigError, MissingApiKeyError
from tests.conftest import SENTINEL_KEY


def test_defaults_are_the_guides() -> None:
    config = OpenHandsConfig.from_env(env_file=None, environ={})
    assert config.api_key is None
    assert config.model == "mistral-small" and not config.model_was_set
    assert config.base_url == "https://openrouter.ai/api/v1"
    assert config.workspace_path == Path("./openhands_workspace")
    assert config.timeout_seconds == 300
    assert config.enable_circuit_breaker is True
    assert config.use_docker_runtime is False


def test_from_env_reads_every_variable() -> None:
    environ = {
        "OPENROUTER_API_KEY": SENTINEL_KEY,
        "OPENHANDS_MODEL": "deepseek-chat",
        "OPENHANDS_WORKSPACE_ROOT": "/tmp/ws",
        "OPENHANDS_TIMEOUT": "600",
        "OPENHANDS_ENABLE_CIRCUIT_BREAKER": "false",
        "OPENHANDS_USE_DOCKER_RUNTIME": "yes",
        "OPENHANDS_BASE_URL": "http://127.0.0.1:11434/v1/",
        "UNRELATED": "ignored",
    }
    config = OpenHandsConfig.from_env(env_file=None, environ=environ)
    assert config.api_key.get_secret_value() == SENTINEL_KEY
    assert config.model == "deepseek-chat" and config.model_was_set
    assert config.workspace_path == Path("/tmp/ws")
    assert config.timeout_seconds == 600
    assert config.enable_circuit_breaker is False
    assert config.use_docker_runtime is True
    assert config.base_url == "http://127.0.0.1:11434/v1"
    assert config.resolved_provider == "openai-compatible"


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f'OPENROUTER_API_KEY="{SENTINEL_KEY}"\nOPENHANDS_MODEL=from-dotenv\nOPENHANDS_TIMEOUT=42\n')
    config = OpenHandsConfig.from_env(env_file=env_file, environ={"OPENHANDS_TIMEOUT": "7"})
    assert config.api_key.get_secret_value() == SENTINEL_KEY
    assert config.model == "from-dotenv"
    assert config.timeout_seconds == 7


@pytest.mark.parametrize(
    "var, value, words",
    [
        ("OPENHANDS_TIMEOUT", "soon", "OPENHANDS_TIMEOUT"),
        ("OPENHANDS_TIMEOUT", "-5", "greater than 0"),
        ("OPENHANDS_ENABLE_CIRCUIT_BREAKER", "maybe", "OPENHANDS_ENABLE_CIRCUIT_BREAKER='maybe' is not a boolean"),
        ("OPENHANDS_USE_DOCKER_RUNTIME", "2", "OPENHANDS_USE_DOCKER_RUNTIME"),
        ("OPENHANDS_BASE_URL", "openrouter.ai", "OPENHANDS_BASE_URL"),
        ("OPENHANDS_MODEL", "   ", "OPENHANDS_MODEL"),
    ],
)
def test_invalid_values_name_the_variable(var: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        OpenHandsConfig.from_env(env_file=None, environ={var: value})


def test_missing_key_message_says_how_to_fix_it() -> None:
    config = OpenHandsConfig(model="mistral-small")  # no key needed to build it (docs/guide-compat.md#openhandsconfig)
    with pytest.raises(MissingApiKeyError) as info:
        config.require_api_key()
    text = str(info.value)
    assert "OPENROUTER_API_KEY" in text and "OPENHANDS_BASE_URL" in text
    for server in ("Ollama", "LM Studio", "llama.cpp", "vLLM"):
        assert server in text


def test_local_endpoint_needs_no_key() -> None:
    config = OpenHandsConfig(base_url="http://127.0.0.1:8080/v1")
    assert config.require_api_key() is None


def test_key_never_appears_in_repr_or_errors() -> None:
    config = OpenHandsConfig(api_key=SecretStr(SENTINEL_KEY), model="mistral-small")
    assert SENTINEL_KEY not in repr(config) and SENTINEL_KEY not in str(config)
    assert SENTINEL_KEY not in config.model_dump_json()
    with pytest.raises(ConfigError) as info:
        OpenHandsConfig.from_env(env_file=None, environ={"OPENROUTER_API_KEY": SENTINEL_KEY, "OPENHANDS_TIMEOUT": "x"})
    assert SENTINEL_KEY not in str(info.value)
