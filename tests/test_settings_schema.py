"""Each setting's rule is stated once, as a pydantic field (`OpenHandsConfig`'s, or `config.WORKERS`):
- the language server's checks and messages are read from it, and refuse exactly what the field refuses;
- the VS Code extension's settings schema (editors/vscode/package.json) agrees with it on every `ohLsp.*` setting:
  the server knows the setting, and the schema's type, bounds, enum and default are the field's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo

from oh_lsp.config import WORKERS, OpenHandsConfig
from oh_lsp.field_rules import FieldRule, rule_of
from oh_lsp.lsp import settings

PACKAGE = Path(__file__).resolve().parents[1] / "editors" / "vscode" / "package.json"
CLIENT_ONLY = ("ohLsp.server.", "ohLsp.trace.")  # how VS Code starts and traces the server: never sent to it
JSON_TYPES = {"whole": "integer", "number": "number", "bool": "boolean", "text": "string", "choice": "string"}


def schema() -> dict[str, dict]:
    properties: dict[str, dict] = {}
    for section in json.loads(PACKAGE.read_text(encoding="utf-8"))["contributes"]["configuration"]:
        properties.update(section["properties"])
    return {name: spec for name, spec in properties.items() if not name.startswith(CLIENT_ONLY)}


def test_every_setting_of_the_schema_is_one_the_server_knows() -> None:
    names = set(schema())
    assert names, "no ohLsp settings found in package.json"
    unknown = {name for name in names if name.removeprefix("ohLsp.") not in settings.SETTINGS}
    assert not unknown, f"the server would ignore {sorted(unknown)}"


def ruled() -> list[tuple[str, dict, FieldRule]]:
    return [
        (name, spec, settings.SETTINGS[name.removeprefix("ohLsp.")].rule)
        for name, spec in schema().items()
        if settings.SETTINGS.get(name.removeprefix("ohLsp."), None) is not None
        and settings.SETTINGS[name.removeprefix("ohLsp.")].rule is not None
    ]


def test_the_settings_that_follow_a_field_are_checked_here() -> None:
    names = {name for name, _spec, _rule in ruled()}
    assert {"ohLsp.workers", "ohLsp.maxRepairIterations", "ohLsp.qualityThreshold", "ohLsp.timeoutSeconds"} <= names


@pytest.mark.parametrize("name", [name for name, _spec, _rule in ruled()])
def test_schema_agrees_with_the_field(name: str) -> None:
    spec, rule = next((spec, rule) for n, spec, rule in ruled() if n == name)
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    assert JSON_TYPES[rule.kind] in types, f"{name}: {types} lacks {JSON_TYPES[rule.kind]}"
    assert set(types) <= {JSON_TYPES[rule.kind], "null"}, f"{name}: {types}"
    assert "null" in types or rule.nullable is False
    minimum = "exclusiveMinimum" if rule.low_open else "minimum"
    maximum = "exclusiveMaximum" if rule.high_open else "maximum"
    assert spec.get(minimum) == rule.low, f"{name}: {minimum} {spec.get(minimum)} but the field says {rule.low}"
    assert spec.get(maximum) == rule.high, f"{name}: {maximum} {spec.get(maximum)} but the field says {rule.high}"
    if rule.kind == "choice" or "enum" in spec:
        assert set(spec.get("enum", [])) - {None} <= set(rule.choices), f"{name}: enum outside {rule.choices}"
    if spec.get("default") is not None:
        assert spec["default"] == rule.default, f"{name}: default {spec['default']} but the field says {rule.default}"
    else:  # unset: the description names the default the server falls back to
        text = spec.get("markdownDescription") or spec.get("description") or ""
        unset = text.split("Unset:", 1)[-1] if "Unset:" in text else ""
        assert unset, f"{name}: the description does not say what unset means"
        if isinstance(rule.default, (int, float)) and not isinstance(rule.default, bool):
            assert re.search(rf"(?<![\d.]){re.escape(f'{rule.default:g}')}(?![\d])", unset), (
                f"{name}: 'Unset: …' should name the default {rule.default:g}: {unset!r}"
            )
        elif rule.default is None:
            assert "no cap" in unset or "null" in unset, f"{name}: unset means no value: {unset!r}"


def test_rules_read_from_fields() -> None:
    def field(annotation: object, **constraints: object) -> FieldInfo:
        return FieldInfo.from_annotated_attribute(annotation, Field(default=None, **constraints))

    above_zero = rule_of(field(int, gt=0))
    assert (above_zero.low, above_zero.words("seconds")) == (1, "a whole number of seconds, at least 1")
    assert not above_zero.accepts(0) and above_zero.accepts(1) and not above_zero.accepts(1.5)
    assert not above_zero.accepts(True), "a boolean is not a number"
    lease = rule_of(field(float, gt=0, lt=5))
    assert lease.words() == "a number, more than 0, less than 5"
    assert lease.accepts(0.1) and not lease.accepts(0) and not lease.accepts(5) and not lease.accepts(float("nan"))
    budget = rule_of(field(float | None, ge=0))
    assert budget.words("dollars") == "a number of dollars, at least 0, or null" and budget.accepts(None)
    assert rule_of(field(int, ge=0, le=10)).words() == "a whole number from 0 to 10"
    assert rule_of(field(float, ge=0, le=1)).range_words() == "between 0 and 1"
    assert rule_of(OpenHandsConfig.model_fields["sandbox"]).choices == (
        "auto",
        "bwrap",
        "namespaces",
        "landlock",
        "none",
    )
    assert rule_of(OpenHandsConfig.model_fields["trusted"]).words() == "true or false"
    assert rule_of(WORKERS).words() == "a whole number from 1 to 64" and WORKERS.default == 2


def _field_accepts(name: str, value: object) -> bool:
    try:
        OpenHandsConfig(**{name: value})
    except ValidationError:
        return False
    return True


def _server_accepts(key: str, value: object) -> bool:
    try:
        settings.merge_settings({}, {key: value})
    except settings.SettingsError as exc:
        assert f"ohLsp.{key} must be {settings.SETTINGS[key].words}" in str(exc)
        return False
    return True


@pytest.mark.parametrize(
    "key", [k for k, s in settings.SETTINGS.items() if s.rule and s.rule.kind in ("whole", "number")]
)
def test_the_server_refuses_exactly_what_the_field_refuses(key: str) -> None:
    rule = settings.SETTINGS[key].rule
    edges = [rule.low, rule.high, 1, 7, 100]
    probes = sorted({v + d for v in edges if v is not None for d in (-1, -0.5, 0, 0.5, 1)})
    for value in probes:
        if key in settings.CONFIG_FIELDS:
            expected = _field_accepts(settings.CONFIG_FIELDS[key], value)
        else:  # workers: a field of its own
            expected = rule.accepts(value)
        assert _server_accepts(key, value) == expected, f"ohLsp.{key} = {value}"
