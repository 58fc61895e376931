"""Editor settings (section `ohLsp`, from `initializationOptions` and `workspace/didChangeConfiguration`) and the
`OpenHandsConfig` each workspace folder's engine runs with.

Settings are kept as the values the editor gave explicitly; anything not given falls back to the environment (and
the project's `.env`), then to oh-lsp's defaults. `trusted` is the exception: only the editor (or the user's own
process environment, never a project's `.env`) can make a workspace trusted to run generated code.

Settings a repository must not choose (the contract's "Running generated code"): `sandbox` and `apiKeyEnv` come only
from the user's own settings, and `baseUrl` from a workspace only when it is a loopback endpoint. The server reads
the editor's settings (`initializationOptions`, `workspace/didChangeConfiguration`, an unscoped
`workspace/configuration`) and never asks for a folder's section; an editor that merges workspace or folder values
into what it sends names those keys in `workspaceSettings` (VS Code does; Neovim's settings are the user's own
config), and `screen` leaves out the ones a workspace may not set. See docs/sandbox.md.

Each setting's rule (its type, bounds and default) is stated once, as a pydantic field: the `OpenHandsConfig` field
it sets, or `config.WORKERS`. The checks and messages here are read from those fields (`oh_lsp.field_rules`), and
`tests/test_settings_schema.py` checks that the VS Code extension's settings schema says the same.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import SecretStr

from oh_lsp.config import LOCAL_HOSTS, REVIEW_EDITS, WORKERS, OpenHandsConfig
from oh_lsp.errors import ConfigError
from oh_lsp.field_rules import FieldRule, rule_of
from oh_lsp.lsp.ids import SETTINGS_SECTION as SECTION

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# setting -> the OpenHandsConfig field it sets (and whose rule it follows)
CONFIG_FIELDS = {
    "model": "model",
    "baseUrl": "base_url",
    "timeoutSeconds": "timeout_seconds",
    "qualityThreshold": "quality_threshold",
    "trusted": "trusted",
    "budgetPerTaskUsd": "budget_per_task_usd",
    "budgetPerDayUsd": "budget_per_day_usd",
    "maxRepairIterations": "max_repair_iterations",
    "sandbox": "sandbox",
    "mutation": "mutation",
    "mutationSeconds": "mutation_seconds",
}
_UNITS = {
    "timeoutSeconds": "seconds",
    "mutationSeconds": "seconds",
    "budgetPerTaskUsd": "dollars",
    "budgetPerDayUsd": "dollars",
}
USER_ONLY = ("sandbox", "apiKeyEnv")  # never from a workspace's or a folder's settings
WORKSPACE_KEYS = "workspaceSettings"  # the keys an editor sends whose values come from the workspace or a folder
_TEXT_WORDS = {"model": "a model name", "baseUrl": "an http(s) URL"}  # the field's validator checks the rest


@dataclass(frozen=True)
class Setting:
    """One `ohLsp.*` setting: what a value must be (for messages) and the check. Null always resets it."""

    words: str
    accepts: Callable[[Any], bool]
    rule: FieldRule | None = None  # the field it follows, if any

    @property
    def whole(self) -> bool:
        return self.rule is not None and self.rule.kind == "whole"


def _following(key: str, field: FieldInfo) -> Setting:
    rule = rule_of(field)
    words = _TEXT_WORDS.get(key) if rule.kind == "text" else None
    return Setting(words or rule.words(_UNITS.get(key, "")), rule.accepts, rule)


SETTINGS: dict[str, Setting] = {
    **{key: _following(key, OpenHandsConfig.model_fields[name]) for key, name in CONFIG_FIELDS.items()},
    "workers": _following("workers", WORKERS),
    "reviewEdits": _following("reviewEdits", REVIEW_EDITS),
    "apiKey": Setting("a string", lambda value: isinstance(value, str) and bool(value.strip())),
    "apiKeyEnv": Setting(
        "the name of an environment variable", lambda value: isinstance(value, str) and bool(_ENV_NAME.match(value))
    ),
}
_TRUE = {"1", "true", "yes", "on"}


def screen(section: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`section` without the values a workspace may not choose (those named in its `workspaceSettings` that are
    `USER_ONLY`, or a remote `baseUrl`), and a note for each one left out."""
    section = dict(section)
    labelled = section.pop(WORKSPACE_KEYS, None)
    from_workspace = {key for key in labelled if isinstance(key, str)} if isinstance(labelled, list) else set()
    notes = []
    for key in sorted(from_workspace & set(section)):
        value = section[key]
        if key in USER_ONLY or (
            key == "baseUrl" and isinstance(value, str) and (urlparse(value).hostname or "") not in LOCAL_HOSTS
        ):
            del section[key]
            what = "a remote endpoint, which receives your API key" if key == "baseUrl" else "a user-level setting"
            notes.append(
                f"The workspace's settings set {SECTION}.{key} ({what}): ignored, a repository may not choose it."
                f" Set it in your user settings (or your own environment) instead."
            )
    return section, notes


class SettingsError(ValueError):
    """One or more settings are invalid. The message names each one and says what it must be."""


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
        setting = SETTINGS.get(key)
        if setting is None:
            unknown.append(key)
        elif value is None:
            merged.pop(key, None)
        elif setting.accepts(value):
            merged[key] = int(value) if setting.whole else value
        else:
            shown = "<hidden>" if key == "apiKey" else repr(value)
            problems.append(f"{SECTION}.{key} must be {setting.words}, not {shown}")
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
    overrides = overrides or Overrides()
    given = [name for key, name in CONFIG_FIELDS.items() if key in settings]
    try:
        config = OpenHandsConfig.from_env(env_file=root / ".env", given=given)
    except ConfigError as exc:
        raise SettingsError(
            f"{exc}. Fix the environment or the project's .env, or set it in the editor's {SECTION} settings."
        ) from None
    values: dict[str, Any] = {}
    for key, name in CONFIG_FIELDS.items():
        if key in settings:
            values[name] = settings[key]
    values["trusted"] = settings.get("trusted", _process_trusted())
    if overrides.model:
        values["model"] = overrides.model
    api_key: str | None = overrides.api_key or settings.get("apiKey")
    if not api_key and settings.get("apiKeyEnv"):
        api_key = os.environ.get(settings["apiKeyEnv"]) or None
    if api_key:
        values["api_key"] = SecretStr(api_key)
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


def workers(settings: dict[str, Any]) -> int:
    return int(settings.get("workers", WORKERS.default))


def review_edits(settings: dict[str, Any]) -> bool:
    """`reviewEdits`: whether an edit is sent with a change annotation that needs confirmation (lsp/delivery.py)."""
    return bool(settings.get("reviewEdits", REVIEW_EDITS.default))
