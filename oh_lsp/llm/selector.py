"""`ModelSelector`: which model should answer a task, and which ones to fall back to.

Models that do not meet the requirements (category, quality threshold, latency, cost per call, context) are left
out, each with the constraint that excluded it. The rest are ranked by a score that weighs quality against cost and
latency according to the task's complexity: a simple task favours the cheapest, fastest model; a complex one the
best. Once the metrics store holds enough calls of a model, its observed latency and success rate replace the
catalog's priors; once it holds enough of its unit tests, the share of them the value gate kept is its quality when
ranking for unit_test tasks (5 x that share; docs/validation.md#what-is-delivered). Whether a model qualifies for a quality threshold
stays the catalog's word. The chain then leaves out models that are cooling down or whose circuit breaker is open.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oh_lsp.errors import OhLspError
from oh_lsp.llm.catalog import Catalog, ModelInfo, load_catalog
from oh_lsp.records import ModelState, provider_key
from oh_lsp.tasks import QueuedTask, TaskCategory

COMPLEXITIES = ("simple", "moderate", "complex")
# (quality, cost, latency) weights of the score, by complexity
WEIGHTS = {"simple": (0.2, 0.45, 0.35), "moderate": (0.45, 0.3, 0.25), "complex": (0.85, 0.08, 0.07)}
WEIGHTING = {
    "simple": "a simple task weighs cost and latency most",
    "moderate": "a moderate task balances quality against cost and latency",
    "complex": "a complex task weighs quality most",
}
TYPICAL_CALL_TOKENS = (2000, 1000)  # prompt, completion: what "cost per call" means for ranking and limits
UNKNOWN_QUALITY = 3.0  # how an unknown quality ranks (it still meets any threshold)
UNKNOWN_LATENCY_MS = 2000.0
MIN_EVIDENCE = 20  # calls of a model before observed figures replace its priors
MIN_TEST_EVIDENCE = 20  # unit tests of a model judged by the value gate before their kept share ranks it
EVIDENCE_SECONDS = 7 * 86400


class NoModelError(OhLspError, ValueError):
    """No model meets the requirements (or none is available now). `excluded` maps each model to the reason."""

    def __init__(self, message: str, excluded: dict[str, str], retry_after: float | None = None) -> None:
        super().__init__(message)
        self.excluded = excluded
        self.retry_after = retry_after


@dataclass(init=False)
class TaskRequirements:
    """What a task needs from a model. ``quality_threshold`` is 0-1 (a model qualifies when quality/5 >= it).

    `category` may be given as a `TaskCategory` or its value (``"unit_test"``), as in the usage guide; it is kept as a
    `TaskCategory`."""

    category: TaskCategory
    complexity: str = "moderate"
    quality_threshold: float = 0.0
    max_latency_ms: float | None = None
    max_cost_per_call: float | None = None  # USD for a typical call (2,000 prompt + 1,000 completion tokens)
    min_context_tokens: int | None = None

    def __init__(
        self,
        category: TaskCategory | str,
        complexity: str = "moderate",
        quality_threshold: float = 0.0,
        max_latency_ms: float | None = None,
        max_cost_per_call: float | None = None,
        min_context_tokens: int | None = None,
    ) -> None:
        self.category = TaskCategory.parse(category)
        self.complexity = str(complexity or "moderate").strip().lower()
        if self.complexity not in COMPLEXITIES:
            raise ValueError(f"unknown complexity {self.complexity!r}: use one of {', '.join(COMPLEXITIES)}")
        self.quality_threshold = float(quality_threshold or 0.0)
        if not 0.0 <= self.quality_threshold <= 1.0:
            raise ValueError(f"quality_threshold {self.quality_threshold} must be between 0 and 1")
        self.max_latency_ms = max_latency_ms
        self.max_cost_per_call = max_cost_per_call
        self.min_context_tokens = min_context_tokens

    @classmethod
    def for_task(cls, task: QueuedTask, config: Any) -> TaskRequirements:
        """From the task's kind and its metadata (complexity, quality_threshold, max_latency_ms, max_cost_per_call);
        the quality threshold defaults to the configured one (OH_LSP_QUALITY_THRESHOLD). The usage guide also puts
        a ``category`` in the metadata: the task's kind is the one that counts
        (docs/guide-compat.md#queuedtask-taskpriority-taskcategory-taskstatus)."""
        meta = task.metadata
        threshold = meta.get("quality_threshold")
        return cls(
            category=task.kind,
            complexity=meta.get("complexity") or "moderate",
            quality_threshold=config.quality_threshold if threshold is None else float(threshold),
            max_latency_ms=meta.get("max_latency_ms"),
            max_cost_per_call=meta.get("max_cost_per_call"),
        )

    def key(self) -> tuple[Any, ...]:
        """The requirements as a value (equal requirements, equal keys)."""
        return (
            self.category.value,
            self.complexity,
            self.quality_threshold,
            self.max_latency_ms,
            self.max_cost_per_call,
            self.min_context_tokens,
        )

    def describe(self) -> str:
        parts = [self.category.value, self.complexity]
        if self.quality_threshold:
            parts.append(f"quality >= {self.quality_threshold:g}")
        if self.max_latency_ms:
            parts.append(f"latency <= {self.max_latency_ms:g} ms")
        if self.max_cost_per_call is not None:
            parts.append(f"cost <= ${self.max_cost_per_call:g}/call")
        return ", ".join(parts)


@dataclass
class Selection:
    requirements: TaskRequirements | None
    ranked: list[ModelInfo]  # every model that qualifies, best first (the gateway rotates over these)
    chain: list[ModelInfo]  # `ranked` without the models that cannot take a call now
    excluded: dict[str, str] = field(default_factory=dict)
    why: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> ModelInfo:
        if not self.chain:
            raise NoModelError(_no_model_message(self.requirements, self.excluded, "available now"), self.excluded)
        return self.chain[0]

    def to_dict(self) -> dict[str, Any]:
        top = self.chain[0] if self.chain else None
        return {
            "model": top.name if top else None,
            "id": top.id if top else None,
            "why": self.why,
            "requirements": _requirements_dict(self.requirements),
            "chain": [{**m.to_dict(), "score": self.scores.get(m.name)} for m in self.chain],
            "excluded": self.excluded,
        }


class ModelSelector:
    """``ModelSelector().select_model(TaskRequirements(...))`` as in the usage guide.

    `catalog` is a `Catalog`, a catalog file path, or None for the configured endpoint's catalog. `store` supplies
    evidence and model health; by default it is the store of the project in the current directory.
    """

    def __init__(
        self,
        catalog: Catalog | str | Path | None = None,
        store: Any = None,
        *,
        config: Any = None,
        project_root: str | Path | None = None,
    ) -> None:
        if config is None:
            from oh_lsp.config import OpenHandsConfig

            config = OpenHandsConfig.from_env()
        self.config = config
        if catalog is None:
            catalog = load_catalog(config)
        elif isinstance(catalog, (str, Path)):
            catalog = Catalog.from_file(catalog)
        self.catalog = catalog
        self._store = store
        self._project_root = project_root

    @property
    def store(self) -> Any:
        if self._store is None:
            from oh_lsp.store import open_store

            self._store = open_store(self._project_root)
        return self._store

    # --- the usage guide's API (docs/guide-compat.md#modelselector-taskrequirements) -------------------------
    def select_model(self, requirements: TaskRequirements) -> ModelInfo:
        """The best model that meets `requirements` and can take a call now. Raises `NoModelError`."""
        return self.explain(requirements).model

    def select_chain(self, requirements: TaskRequirements) -> list[ModelInfo]:
        """The ranked fallback chain (models cooling down or with an open breaker left out)."""
        selection = self.explain(requirements)
        _ = selection.model  # raises NoModelError when nothing is available
        return selection.chain

    # --- details -----------------------------------------------------------------------------------------------
    def explain(
        self,
        requirements: TaskRequirements | None,
        *,
        pinned: str | None = None,
        now: float | None = None,
        states: dict[str, ModelState] | None = None,
    ) -> Selection:
        """The whole decision: ranked models, the available chain, what was excluded and why. `states`: the models'
        states to judge availability by (default: the store's now)."""
        now = time.time() if now is None else now
        if pinned:
            model = self._with_evidence([self.catalog.resolve(pinned)])[0]
            return self._available(
                Selection(requirements, [model], [], {}, f"{model.name}: pinned by the task's metadata"), now, states
            )
        if requirements is None or not len(self.catalog):
            model = self.catalog.resolve(self.config.model)
            why = f"{model.name}: " + (
                "the configured model (OPENHANDS_MODEL)"
                if self.config.model_was_set
                else "the default model (no catalog for this endpoint; set OPENHANDS_MODEL)"
            )
            return self._available(Selection(requirements, [model], [], {}, why), now, states)
        candidates = self._with_evidence(list(self.catalog))
        excluded: dict[str, str] = {}
        qualified = []
        for model in candidates:
            reasons = _unmet(model, requirements)
            if reasons:
                excluded[model.name] = "; ".join(reasons)
            else:
                qualified.append(model)
        preferred_note = ""
        preferred = self._preferred()
        if preferred is not None and preferred.name not in {m.name for m in qualified}:
            reasons = _unmet(preferred, requirements)
            if reasons:
                excluded[preferred.name] = "; ".join(reasons)
                preferred_note = f" (the configured model {preferred.name} does not qualify: {'; '.join(reasons)})"
            else:
                qualified.append(preferred)
        if not qualified:
            raise NoModelError(_no_model_message(requirements, excluded, "meets the requirements"), excluded)
        scores = _scores(qualified, requirements.complexity, requirements.category.value)
        ranked = sorted(qualified, key=lambda m: -scores[m.name])
        why = _why(ranked, requirements, scores)
        if preferred is not None and not preferred_note:
            ranked.remove(next(m for m in ranked if m.name == preferred.name))
            ranked.insert(0, next(m for m in qualified if m.name == preferred.name))
            why = (
                f"{preferred.name}: the configured model (OPENHANDS_MODEL) meets the requirements, so it heads the"
                f" chain; the ranking's choice was {why}"
            )
        return self._available(Selection(requirements, ranked, [], excluded, why + preferred_note, scores), now, states)

    def list_models(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every catalog model with its state now (what `oh-lsp models list` and the editors' picker show)."""
        now = time.time() if now is None else now
        states = self.store.model_states()
        models = list(self.catalog)
        preferred = self._preferred()  # a configured model the catalog does not list is still offered
        if preferred is not None and all(m.name != preferred.name for m in models):
            models.insert(0, preferred)
        rows = []
        for model in self._with_evidence(models):
            state = states.get(model.name)
            rows.append(
                {
                    **model.to_dict(),
                    "state": (state.why_unavailable(now) if state else None) or "ready",
                    "breaker": state.breaker_view(now) if state else "closed",
                }
            )
        return rows

    def _preferred(self) -> ModelInfo | None:
        """The configured model heads the chain only when it was set explicitly, not left at the default
        (docs/models.md#selection)."""
        if not self.config.model_was_set:
            return None
        return self._with_evidence([self.catalog.resolve(self.config.model)])[0]

    def _with_evidence(self, models: list[ModelInfo]) -> list[ModelInfo]:
        stats = self.store.model_call_stats(time.time() - EVIDENCE_SECONDS)
        states: dict[str, ModelState] = self.store.model_states()
        out = []
        for model in models:
            seen = stats.get(model.name)
            if seen and seen["calls"] >= MIN_EVIDENCE:
                model = replace(
                    model,
                    success_rate=seen["ok"] / seen["calls"],
                    observed_calls=seen["calls"],
                    avg_latency_ms=seen["avg_latency_ms"] or model.avg_latency_ms,
                )
            state = states.get(model.name)
            if state is not None and state.tests_generated:
                model = replace(model, tests_observed=state.tests_generated, kept_share=state.kept_share)
            out.append(model)
        return out

    def _available(self, selection: Selection, now: float, states: dict[str, ModelState] | None) -> Selection:
        return self.available(selection, self.store.model_states() if states is None else states, now)

    def available(self, selection: Selection, states: dict[str, ModelState], now: float) -> Selection:
        """`selection` with its chain: the ranked models that can take a call now by `states` (a new `Selection`;
        the one given is not changed)."""
        selection = replace(selection, chain=[], excluded=dict(selection.excluded))
        provider = states.get(provider_key(self.config.base_url))
        for model in selection.ranked:
            state = states.get(model.name)
            reason = (provider.why_unavailable(now) if provider else None) or (
                state.why_unavailable(now) if state else None
            )
            if reason:
                selection.excluded[model.name] = reason
            else:
                selection.chain.append(model)
        return selection


def _unmet(model: ModelInfo, req: TaskRequirements) -> list[str]:
    """The constraints of `req` that `model` does not meet, in words."""
    reasons = []
    category = req.category.value
    if not model.suits(category):
        reasons.append(f"not suited to {category} (suits {', '.join(model.categories)})")
    if not model.qualifies(req.quality_threshold):
        reasons.append(
            f"quality {model.quality_score:g}/5 is below the threshold {req.quality_threshold:g}"
            f" (needs {req.quality_threshold * 5:.2f}/5)"
        )
    if req.max_latency_ms and model.avg_latency_ms and model.avg_latency_ms > req.max_latency_ms:
        reasons.append(f"latency {model.avg_latency_ms:.0f} ms exceeds max_latency_ms {req.max_latency_ms:g}")
    cost = model.cost(*TYPICAL_CALL_TOKENS)
    if req.max_cost_per_call is not None and cost is not None and cost > req.max_cost_per_call:
        reasons.append(f"about ${cost:.5f} per call exceeds max_cost_per_call ${req.max_cost_per_call:g}")
    if req.min_context_tokens and model.context_length and model.context_length < req.min_context_tokens:
        reasons.append(f"context {model.context_length} tokens is below the {req.min_context_tokens} needed")
    return reasons


def ranking_quality(model: ModelInfo, category: str) -> float | None:
    """The quality (0-5) a model ranks with: for unit tests, once `MIN_TEST_EVIDENCE` of its tests were judged, 5 x the
    share the value gate kept; otherwise the catalog's (None: unknown)."""
    if category == "unit_test" and model.kept_share is not None and model.tests_observed >= MIN_TEST_EVIDENCE:
        return round(5.0 * model.kept_share, 3)
    return model.quality_score


def _scores(models: list[ModelInfo], complexity: str, category: str = "") -> dict[str, float]:
    """Quality counts for, cost and latency against, each relative to the worst candidate. A model that often fails
    costs more and takes longer per good answer, so cost and latency are divided by its success rate."""
    w_quality, w_cost, w_latency = WEIGHTS[complexity]
    reliable = {m.name: max(m.success_rate, 0.05) for m in models}
    cost = {m.name: (m.cost(*TYPICAL_CALL_TOKENS) or 0.0) / reliable[m.name] for m in models}
    latency = {m.name: (m.avg_latency_ms or UNKNOWN_LATENCY_MS) / reliable[m.name] for m in models}
    worst_cost, worst_latency = max(cost.values()) or 1.0, max(latency.values()) or 1.0
    scores = {}
    for m in models:
        known = ranking_quality(m, category)
        quality = (known if known is not None else UNKNOWN_QUALITY) / 5.0
        scores[m.name] = round(
            w_quality * quality * m.success_rate
            - w_cost * cost[m.name] / worst_cost
            - w_latency * latency[m.name] / worst_latency,
            6,
        )
    return scores


def _why(ranked: list[ModelInfo], req: TaskRequirements, scores: dict[str, float]) -> str:
    top = ranked[0]
    category = req.category.value
    if len(ranked) == 1:
        lead = "the only model that meets the requirements"
    else:
        facts = []
        costs = {m.name: m.cost(*TYPICAL_CALL_TOKENS) or 0.0 for m in ranked}
        if costs[top.name] == min(costs.values()):
            facts.append("cheapest")
        if (top.avg_latency_ms or UNKNOWN_LATENCY_MS) == min(m.avg_latency_ms or UNKNOWN_LATENCY_MS for m in ranked):
            facts.append("fastest")
        if top.quality_known and top.quality_score == max(m.quality_score or 0.0 for m in ranked):
            facts.append("highest quality")
        lead = (
            " and ".join(facts) if facts else "best balance of quality, cost and latency"
        ) + f" of {len(ranked)} qualifying models"
    learned = ranking_quality(top, category)
    if learned is not None and learned != top.quality_score:
        quality = f"{learned:g}/5 (learned: {top.kept_share:.0%} of its {top.tests_observed} tests kept)"
    else:
        quality = f"{top.quality_score:g}/5" if top.quality_known else "unknown"
    cost = top.cost(*TYPICAL_CALL_TOKENS)
    evidence = f"observed over {top.observed_calls} calls" if top.observed_calls else "catalog priors"
    return (
        f"{top.name}: {lead} for {category}/{req.complexity} ({WEIGHTING[req.complexity]}); quality {quality},"
        f" ~{top.avg_latency_ms or UNKNOWN_LATENCY_MS:.0f} ms, "
        + (f"~${cost:.5f}/call" if cost is not None else "price unknown")
        + f", {top.success_rate:.0%} success ({evidence})"
    )


def _no_model_message(req: TaskRequirements | None, excluded: dict[str, str], what: str) -> str:
    wanted = f" ({req.describe()})" if req else ""
    lines = "; ".join(f"{name}: {reason}" for name, reason in excluded.items()) or "the catalog is empty"
    return f"no model {what}{wanted}: {lines}"


def _requirements_dict(req: TaskRequirements | None) -> dict[str, Any] | None:
    if req is None:
        return None
    return {
        "category": req.category.value,
        "complexity": req.complexity,
        "quality_threshold": req.quality_threshold,
        "max_latency_ms": req.max_latency_ms,
        "max_cost_per_call": req.max_cost_per_call,
        "min_context_tokens": req.min_context_tokens,
    }
