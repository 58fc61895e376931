"""Editor settings (section `ohLsp`, from `initializationOptions` and `workspace/didChangeConfiguration`) and the
`OpenHandsConfig` each workspace folder's engine runs with.

Settings are kept as the values the editor gave explicitly; anything not given falls back to the environment (and
the project's `.env`), then to oh-lsp's defaults. `trusted` is the exception: only the editor (or the user's own
process environment, never a project's `.env`) can make a workspace trusted to run generated code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.lsp.ids import SETTINGS_SECTION as SECTION

if TYPE_CHECKING:
    from oh_lsp.config import OpenHandsConfig

DEFAULT_WORKERS = 2
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# setting -> what it must be. A null value always means "back to the default".
_KINDS: dict[str, str] = {
    "model": "a model name",
    "baseUrl": "an http(s) URL",
    "apiKey": "a string",
    "apiKeyEnv": "the name of an environment variable",
    "workers": "a whole number from 1 to 64",
    "timeoutSeconds": "a whole number of seconds, at least 1",
    "budgetPerTaskUsd": "a number of dollars, at least 0, or null",
    "budgetPerDayUsd": "a number of dollars, at least 0, or null",
    "qualityThreshold": "a number from 0 to 1",
    "maxRepairIterations": "a whole number from 0 to 10",
    "trusted": "true or false",
    "reviewEdits": "true or false",  # the editor shows the edit for review before it lands (lsp/delivery.py)
}
# setting -> OpenHandsConfig field
CONFIG_FIELDS = {
    "model": "model",
    "baseUrl": "base_url",
    "timeoutSeconds": "timeout_seconds",
    "qualityThreshold": "quality_threshold",
    "trusted": "trusted",
    "budgetPerTaskUsd": "budget_per_task_usd",
    "budgetPerDayUsd": "budget_per_day_usd",
    "maxRepairIterations": "max_repair_iterations",
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """One or more settings are invalid. The message names each one and says what it must be."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return _number(value) and float(value).is_integer()


def _valid(key: str, value: Any) -> bool:
    if key in ("model", "baseUrl", "apiKey"):
        return isinstance(value, str) and bool(value.strip())
    if key == "apiKeyEnv":
        return isinstance(value, str) and bool(_ENV_NAME.match(value))
    if key == "workers":
        return _whole(value) and 1 <= value <= 64
    if key == "timeoutSeconds":
        return _whole(value) and value >= 1
    if key in ("budgetPerTaskUsd", "budgetPerDayUsd"):
        return _number(value) and value >= 0
    if key == "qualityThreshold":
        return _number(value) and 0 <= value <= 1
    if key == "maxRepairIterations":
        return _whole(value) and 0 <= value <= 10
    if key in ("trusted", "reviewEdits"):
        return isinstance(value, bool)
    return False


def section_of(raw: Any) -> dict[str, Any] | None:
    """The `ohLsp` section of what an editor sent: `{"ohLsp": {...}}` or the section itself. None: nothing usable."""
    if not isinstance(raw, dict):
        return None
    inner = raw.get(SECTION)
    return inner if isinstance(inner, dict) else raw


def merge_settings(current: dict[str, Any], raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`current` updated with `raw` (null resets a setting). Returns (settings, ignored unknown keys).

    Raises `SettingsError` naming every invalid value; `current` is never changed."""
    merged = dict(current)
    problems: list[str] = []
    unknown: list[str] = []
    for key, value in raw.items():
        if key not in _KINDS:
            unknown.append(key)
            continue
        if value is None:
            merged.pop(key, None)
        elif _valid(key, value):
            merged[key] = (
                int(value) if _whole(value) and key in ("workers", "timeoutSeconds", "maxRepairIterations") else value
            )
        else:
            shown = "<hidden>" if key == "apiKey" else repr(value)
            problems.append(f"{SECTION}.{key} must be {_KINDS[key]}, not {shown}")
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems) + ". The previous settings stay in force.")
    return merged, unknown


def _process_trusted() -> bool:
    """`OH_LSP_TRUSTED` from the user's own environment (a project's `.env` cannot make itself trusted)."""
    return os.environ.get("OH_LSP_TRUSTED", "").strip().lower() in _TRUE


@dataclass
class Overrides:
    """What the session changed at run time, on top of the settings: held in memory only."""

    api_key: str | None = None  # ohLsp.setApiKey
    model: str | None = None  # ohLsp.setModel


def build_config(root: Path, settings: dict[str, Any], overrides: Overrides | None = None) -> OpenHandsConfig:
    """The engine configuration of the workspace folder `root`. Raises `SettingsError` naming the setting."""
    from pydantic import SecretStr

    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.errors import ConfigError

    overrides = overrides or Overrides()
    try:
        config = OpenHandsConfig.from_env(env_file=root / ".env")
    except ConfigError as exc:
        raise SettingsError(
            f"{exc}. Fix the environment or the project's .env, or set it in the editor's {SECTION} settings."
        ) from None
    values: dict[str, Any] = {}
    for key, name in CONFIG_FIELDS.items():
        if key in settings and name in OpenHandsConfig.model_fields:
            values[name] = settings[key]
    values["trusted"] = settings.get("trusted", _process_trusted())
    if overrides.model:
        values["model"] = overrides.model
    key = overrides.api_key or settings.get("apiKey")
    if not key and settings.get("apiKeyEnv"):
        key = os.environ.get(settings["apiKeyEnv"]) or None
    if key:
        values["api_key"] = SecretStr(key)
    problems = []
    for name, value in values.items():
        try:
            config = config.with_changes(**{name: value})
        except ConfigError as exc:
            setting = next((k for k, v in CONFIG_FIELDS.items() if v == name), name)
            reason = str(exc).split(" is invalid: ", 1)[-1]
            problems.append(f"{SECTION}.{setting}: {reason}")
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems) + ". The previous settings stay in force.")
    return config


def not_enforced(settings: dict[str, Any]) -> list[str]:
    """Settings that were given but that this version cannot act on yet (no such engine setting)."""
    from oh_lsp.config import OpenHandsConfig

    return [
        f"{SECTION}.{key}"
        for key, name in CONFIG_FIELDS.items()
        if settings.get(key) is not None and name not in OpenHandsConfig.model_fields
    ]


def workers(settings: dict[str, Any]) -> int:
    return int(settings.get("workers", DEFAULT_WORKERS))
