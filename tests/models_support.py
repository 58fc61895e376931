"""Helpers for the model-access tests: fixture catalogs, configs pointing at the scripted server, a gateway on the
project's store, and a log file to read."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from oh_lsp import events as ev
from oh_lsp.config import OpenHandsConfig
from oh_lsp.tasks import QueuedTask
from tests.conftest import SENTINEL_KEY

# Two models on a plain OpenAI-compatible endpoint: A is better on every count, so it heads the chain.
MODEL_A = {
    "quality": 4.5,
    "avg_latency_ms": 500,
    "success_rate": 0.99,
    "price_prompt": 1e-6,
    "price_completion": 2e-6,
    "context_length": 32000,
}
MODEL_B = {
    "quality": 4.0,
    "avg_latency_ms": 1500,
    "success_rate": 0.95,
    "price_prompt": 2e-6,
    "price_completion": 4e-6,
    "context_length": 64000,
}
MESSAGES = [{"role": "system", "content": "You write tests."}, {"role": "user", "content": "Test add(a, b)."}]


def write_catalog(folder: Path, models: dict[str, dict[str, Any]], name: str = "catalog.json", **top: Any) -> Path:
    path = folder / name
    path.write_text(json.dumps({**top, "models": models}))
    return path


def ab_config(server, folder: Path, models: dict[str, dict[str, Any]] | None = None, **kw: Any) -> OpenHandsConfig:
    """The scripted endpoint with a catalog of model-a and model-b (no model set: the selector chooses)."""
    catalog = write_catalog(folder, models if models is not None else {"model-a": MODEL_A, "model-b": MODEL_B})
    values: dict[str, Any] = {
        "api_key": SecretStr(SENTINEL_KEY),
        "base_url": server.base_url,
        "model_catalog": catalog,
        "heartbeat_seconds": 0.2,
        "lease_seconds": 5,
    }
    values.update(kw)
    return OpenHandsConfig(**values)


def gateway_for(config: OpenHandsConfig, project: Path):
    from oh_lsp.llm.gateway import ModelGateway
    from oh_lsp.store import open_store

    return ModelGateway(config, store=open_store(project))


def task(**metadata: Any) -> QueuedTask:
    return QueuedTask(
        task_type="unit_test",
        description="tests for calc",
        target_file=Path("pkg/calc.py"),
        metadata={"category": "unit_test", **metadata},
    )


class Events:
    """Collects what the gateway emits."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, **data: Any) -> None:
        self.seen.append((kind, data))

    def chosen(self) -> list[str]:
        return [data["model"] for kind, data in self.seen if kind == ev.MODEL_CHOSEN]

    def why(self) -> list[str]:
        return [data["why"] for kind, data in self.seen if kind == ev.MODEL_CHOSEN]

    def messages(self) -> list[str]:
        return [data["message"] for kind, data in self.seen if kind == ev.PROGRESS]


class LogFile:
    """The real log file of the project's state directory, set up as the CLI does, removed afterwards."""

    def __init__(self, project: Path) -> None:
        from oh_lsp.logs import setup_logging
        from oh_lsp.paths import state_dir

        self.path = setup_logging(state_dir(project), [SENTINEL_KEY], stderr=False)

    def text(self) -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        return self.path.read_text()

    def close(self) -> None:
        from oh_lsp.logs import is_ours

        root = logging.getLogger()
        for handler in list(root.handlers):
            if is_ours(handler):
                root.removeHandler(handler)
                handler.close()


def requested(server) -> list[str]:
    return [r.model for r in server.requests]
