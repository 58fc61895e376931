"""The records oh-lsp keeps between processes: what one attempt at a task cost and achieved (`ExecutionMetrics`), each
model's health (`ModelState`) and each request to a model (`ModelCall`).

Plain dataclasses that import nothing of oh-lsp's own: the store writes them, the engine, the model layer and
`oh-lsp metrics` read them, and none of those imports another to get them. Times are epoch seconds (`time.time()`),
so another process reads them correctly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
PROVIDER_PREFIX = "provider:"  # a state row for a whole endpoint (a 402 cools the provider down, not one model)


@dataclass
class ExecutionMetrics:
    """What one attempt at a task cost and achieved. `quality_score` is 0-5: 5 x the validation score
    (docs/validation.md)."""

    task_id: str
    model_id: str
    task_type: str
    success: bool = False
    tokens_used: int = 0
    tokens_estimated: bool = False  # the endpoint reported no usage: the tokens were estimated
    cost: float = 0.0
    quality_score: float = 0.0
    validation_passed: bool = False
    duration_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempt: int = 1
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    cached_tokens: int = 0  # prompt tokens the provider read from its prompt cache
    saved_cost: float = 0.0  # what the prompt cache, or a result served from the result cache, saved (USD)
    from_cache: bool = False  # the result came from the result cache: no model was called

    @property
    def kind(self) -> str:
        """The task kind; `task_type` is the usage guide's name for it
        (docs/guide-compat.md#metricscollector-executionmetrics)."""
        return self.task_type

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelState:
    """Cooldown, circuit breaker and rotation counts of one model (or, with `PROVIDER_PREFIX`, one endpoint), and what
    its unit tests were worth: of the tests it wrote, how many the value gate kept (the model's quality:
    docs/validation.md#what-is-delivered)."""

    model: str
    cooldown_until: float = 0.0
    cooldown_reason: str = ""
    breaker: str = CLOSED
    failures: list[float] = field(default_factory=list)  # times of recent failures (closed state)
    opened_at: float = 0.0
    breaker_retry_at: float = 0.0  # when an open breaker lets a probe through (fixed when it opens)
    probe_until: float = 0.0  # half-open: a probe is in flight until then
    probe_successes: int = 0
    rotations_away: int = 0  # times a call moved from this model to another
    rotations_to: int = 0  # times a call moved to this model from another
    last_error: str = ""
    tests_generated: int = 0  # unit tests it wrote (every answer of every unit_test task)
    tests_kept: int = 0  # of them, kept by the value gate

    @property
    def kept_share(self) -> float | None:
        """The share of its tests that were kept (None before it wrote any)."""
        return self.tests_kept / self.tests_generated if self.tests_generated else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now

    def breaker_view(self, now: float) -> str:
        """The breaker as a caller would find it now: an open breaker past its timeout admits a half-open probe."""
        if self.breaker == OPEN and now >= self.breaker_retry_at:
            return HALF_OPEN
        return self.breaker

    def ready_at(self, now: float) -> float | None:
        """When this model can take a call (None: now). Counts cooldowns, an open breaker and a probe in flight."""
        times = [self.cooldown_until] if self.cooldown_until > now else []
        if self.breaker == OPEN and self.breaker_retry_at > now:
            times.append(self.breaker_retry_at)
        if self.breaker == HALF_OPEN and self.probe_until > now:
            times.append(self.probe_until)
        return max(times) if times else None

    def why_unavailable(self, now: float) -> str | None:
        """A short reason this model cannot take a call now, or None when it can."""
        if self.cooling(now):
            return f"cooling down {self.cooldown_until - now:.1f}s ({self.cooldown_reason or 'rate limited'})"
        if self.breaker == OPEN and self.breaker_retry_at > now:
            return f"circuit breaker open ({self.breaker_retry_at - now:.1f}s left)"
        if self.breaker == HALF_OPEN and self.probe_until > now:
            return "circuit breaker half-open, a probe call is in flight"
        return None

    def view(self, now: float) -> dict[str, Any]:
        """What `oh-lsp metrics` shows for this model."""
        return {
            "cooldown_seconds_left": round(max(self.cooldown_until - now, 0.0), 3),
            "cooldown_until": self.cooldown_until if self.cooling(now) else None,
            "cooldown_reason": self.cooldown_reason if self.cooling(now) else None,
            "breaker": self.breaker_view(now),
            "breaker_seconds_left": round(max(self.breaker_retry_at - now, 0.0), 3) if self.breaker == OPEN else 0.0,
            "recent_failures": len(self.failures),
            "rotations_away": self.rotations_away,
            "rotations_to": self.rotations_to,
            "last_error": self.last_error or None,
            "tests_generated": self.tests_generated,
            "tests_kept": self.tests_kept,
            "kept_share": None if self.kept_share is None else round(self.kept_share, 4),
        }


@dataclass
class ModelCall:
    """One request to a model, as the gateway made it. `outcome` is "ok" or an `ErrorKind` value."""

    model: str
    outcome: str
    task_id: str | None = None
    task_kind: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_source: str = "none"  # provider (usage.cost) | catalog (price x tokens) | unknown | none
    created_at: float = field(default_factory=time.time)
    cached_tokens: int = 0  # of `prompt_tokens`, read from the provider's prompt cache
    saved_cost: float = 0.0  # what those cached tokens saved against the full prompt price (USD)

    @property
    def day(self) -> str:
        """The local calendar day, as budgets and the metrics count it."""
        return local_day(self.created_at)


@dataclass
class StatesSnapshot:
    """The models' states as last read from the store, shared by the queue (which reads them in the same trip as a
    claim, when someone `wanted` them) and the model layer (which uses them while fresh instead of asking the store
    again, and forgets them when it changes a state). `version` counts those changes."""

    states: dict[str, ModelState] = field(default_factory=dict)
    read_at: float = float("-inf")  # time.monotonic() of the read
    wanted: bool = False
    version: int = 0

    def fresh(self, max_age: float) -> bool:
        return time.monotonic() - self.read_at <= max_age

    def put(self, states: dict[str, ModelState]) -> None:
        self.states, self.read_at = states, time.monotonic()

    def changed(self) -> None:
        """A state was written: the snapshot is stale, and rankings made from it too."""
        self.read_at = float("-inf")
        self.version += 1


@dataclass
class CachedResult:
    """A completed task's result, kept in the store's result cache under the key of its inputs (`result_cache.py`)."""

    key: str
    kind: str
    task_id: str  # the task that produced it
    result: dict[str, Any]
    target_file: str | None = None
    tokens: int = 0  # what producing it cost: what a hit saves
    cost: float = 0.0
    created_at: float = field(default_factory=time.time)


def provider_key(base_url: str) -> str:
    """The state row of a whole endpoint (a 402 cools the provider down, not one model)."""
    from urllib.parse import urlparse

    return PROVIDER_PREFIX + (urlparse(base_url).netloc or base_url)


def local_day(when: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if when is None else when).strftime("%Y-%m-%d")


def next_local_midnight(now: float | None = None) -> float:
    """Epoch time of the next local midnight (when the daily budget and a 402 cooldown end)."""
    from datetime import timedelta

    today = datetime.fromtimestamp(time.time() if now is None else now)
    midnight = (today + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()
