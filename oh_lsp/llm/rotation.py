"""`Rotation`: one request's walk along the fallback chain, following docs/models.md#the-error-table-request-layer.

The gateway's single retry loop asks it which model to call next (`next_model`) and, after an error, what to do
(`failed`): it cools models down, counts breaker failures, and sets `wait` when the loop should try again after that
many seconds. `wait` stays None when the error must go to the task layer (fatal, or nothing fits in the time left).

- 429 per-minute: cool the model down until Retry-After (30 s with jitter when there is none); rotate at once if
  another model is ready, else wait for the first one that is.
- 429 daily cap: cool down until the reset; rotate; with no model left, the task is re-queued until the earliest reset.
- 402: the provider is cooled down until midnight; fatal. 401/403 and other 4xx: fatal.
- 408, 5xx, timeouts, truncated streams, error events and bodies: retry the same model (at most twice, with
  backoff), then rotate. These count toward the model's circuit breaker.
- context length exceeded (a 400, an HTTP-200 error body or an error event in the stream): never resent as it was;
  retry once with a smaller request (`PromptFit.shrink` makes it), then only models with a larger context; failed,
  with the figures, when none fits. Not a fault of the model: no count toward its breaker.

Each pick starts again from the head of the chain, so the chain wraps around and the preferred model is used again as
soon as its cooldown ends.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime

from oh_lsp.llm.catalog import ModelInfo
from oh_lsp.llm.errors import SOON_SECONDS, ErrorKind, ModelCallError
from oh_lsp.llm.health import ModelHealth
from oh_lsp.records import ModelState, next_local_midnight

TRANSIENT_RETRIES = 2  # same-model retries after a transient failure, then rotate
DEFAULT_COOLDOWN_SECONDS = 30.0  # a 429 with neither Retry-After nor a reset header
DAILY_COOLDOWN_SECONDS = 3600.0  # a daily cap without a reset header: look again in an hour
BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS = 0.5, 8.0


def jitter(seconds: float) -> float:
    """A little random extra, so that several workers do not come back at the same instant."""
    return random.uniform(0.0, min(max(0.1 * seconds, 0.05), 5.0))


def backoff(failures: int) -> float:
    return min(BACKOFF_BASE_SECONDS * 2.0 ** (failures - 1), BACKOFF_MAX_SECONDS) * random.uniform(1.0, 1.25)


@dataclass
class Pick:
    model: ModelInfo
    why: str
    rotated_from: str | None = None  # the model this request left for this one


class Rotation:
    def __init__(self, chain: list[ModelInfo], health: ModelHealth, *, deadline: float, why: str) -> None:
        self.chain = chain
        self.health = health
        self.deadline = deadline  # time.monotonic() by which the request layer gives up
        self.first_why = why
        self.tries: dict[str, int] = {}  # transient failures per model in this request
        self.dropped: dict[str, str] = {}  # models given up on for this request, and why
        self.again: ModelInfo | None = None  # the same model is retried next
        self.again_why = ""
        self.shrunk: set[str] = set()  # models already retried with a smaller request
        self.too_long: dict[str, str] = {}  # models whose context the prompt did not fit, with the figures
        self.previous: ModelInfo | None = None
        self.reason = ""  # why the request left `previous`
        self.wait: float | None = None  # retry after this many seconds; None: give the error to the task layer

    @property
    def max_attempts(self) -> int:
        """A safety bound for the retry loop (each model: its tries, a context retry, and waits in between)."""
        return 4 * (TRANSIENT_RETRIES + 3) * max(len(self.chain), 1)

    def fits(self, seconds: float) -> bool:
        return time.monotonic() + seconds <= self.deadline

    # --- choosing --------------------------------------------------------------------------------------------------
    async def next_model(self) -> Pick:
        """The model to call now. Raises a `ModelCallError` (with `wait` set when it is worth waiting) when none is
        ready."""
        self.wait = None
        now = time.time()
        provider = (await self.health.states()).get(self.health.provider)
        if provider is not None and provider.cooling(now):
            until = datetime.fromtimestamp(provider.cooldown_until).strftime("%Y-%m-%d %H:%M")
            raise ModelCallError(
                ErrorKind.CREDITS,
                f"{provider.cooldown_reason}; no call goes to this endpoint until"
                f" {until}. After adding credits, run `oh-lsp models reset`",
                model=self.chain[0].name if self.chain else None,
            )
        if self.again is not None:
            model, self.again = self.again, None
            allowed, _state = await self.health.admit(model.name, now)
            if allowed:
                return Pick(model, self.again_why)
            self.dropped.setdefault(model.name, "its circuit breaker opened")
        blocked: dict[str, ModelState] = {}
        for model in self.chain:
            if model.name in self.dropped:
                continue
            allowed, state = await self.health.admit(model.name, now)
            if allowed:
                return await self._picked(model, blocked, now)
            blocked[model.name] = state
        raise self._nothing_ready(blocked, now)

    async def _picked(self, model: ModelInfo, blocked: dict[str, ModelState], now: float) -> Pick:
        previous, self.previous = self.previous, model
        if previous is not None and previous.name != model.name:
            await self.health.rotated(previous.name, model.name, self.reason)
            return Pick(model, f"rotated from {previous.name}: {self.reason}", rotated_from=previous.name)
        if previous is None and blocked:
            skipped = "; ".join(f"{name} is {s.why_unavailable(now) or 'busy'}" for name, s in blocked.items())
            return Pick(model, f"{model.name}: next in the chain ({skipped})")
        return Pick(model, self.first_why)

    def _nothing_ready(self, blocked: dict[str, ModelState], now: float) -> ModelCallError:
        if not blocked:
            details = "; ".join(f"{name}: {why}" for name, why in self.dropped.items())
            return ModelCallError(
                ErrorKind.TRANSIENT,
                f"every model in the chain failed: {details}",
                model=self.chain[0].name if self.chain else None,
            )
        ready = {name: state.ready_at(now) or now for name, state in blocked.items()}
        first = min(ready, key=ready.__getitem__)
        wait = max(ready[first] - now, 0.0) + 0.05
        reasons = "; ".join(f"{name} {state.why_unavailable(now) or 'is busy'}" for name, state in blocked.items())
        at = datetime.fromtimestamp(ready[first]).strftime("%H:%M:%S")
        cooling = blocked[first].cooling(now)
        if cooling and wait > SOON_SECONDS:
            kind, hint = ErrorKind.DAILY_CAP, f"waiting for rate-limit reset at {at} ({first})"
        elif cooling:
            kind, hint = ErrorKind.RATE_LIMIT, f"next model ready at {at} ({first})"
        else:
            kind, hint = ErrorKind.TRANSIENT, f"next probe at {at} ({first})"
        if kind is not ErrorKind.DAILY_CAP and self.fits(wait):
            self.wait = wait  # a reset soon is waited for here; a later one re-queues the task until then
        return ModelCallError(
            kind,
            f"no model can take a call now: {reasons}; {hint}",
            model=first,
            retry_after=wait,
            reset_at=ready[first],
        )

    # --- after an error ----------------------------------------------------------------------------------------
    async def failed(self, model: ModelInfo, error: ModelCallError, *, smaller: bool = False) -> ModelCallError:
        """Record `error` and decide what follows. Returns the error to raise (`wait` set: try again). `smaller`:
        after a context-length error, a smaller request to the same model could fit."""
        self.wait = None
        now = time.time()
        await self.health.failed(model.name, error, now)
        kind = error.kind
        if kind is ErrorKind.CREDITS:
            await self.health.cool_down(
                self.health.provider,
                next_local_midnight(now),
                f"the account is out of credits (HTTP 402 from {model.name})",
            )
            return error
        if error.fatal:
            return error
        if kind in (ErrorKind.RATE_LIMIT, ErrorKind.DAILY_CAP):
            return await self._rate_limited(model, error, now)
        if kind is ErrorKind.TRANSIENT:
            return await self._transient(model, error)
        if kind is ErrorKind.CONTEXT_LENGTH:
            return self._too_long(model, error, smaller)
        self.dropped[model.name] = error.message  # e.g. the model does not exist on this endpoint
        self.reason = error.message
        return self._elsewhere(error)

    async def _rate_limited(self, model: ModelInfo, error: ModelCallError, now: float) -> ModelCallError:
        daily = error.kind is ErrorKind.DAILY_CAP
        if error.retry_after is not None:
            seconds, source = error.retry_after, "retry after"
        elif error.reset_at and error.reset_at > now:
            seconds, source = error.reset_at - now, "reset in"
        else:
            seconds = DAILY_COOLDOWN_SECONDS if daily else DEFAULT_COOLDOWN_SECONDS
            source = "no reset header"
        reason = f"{'daily rate limit' if daily else 'rate limited'}: HTTP 429, {source} {seconds:.0f}s"
        await self.health.cool_down(model.name, now + seconds + jitter(seconds), reason)
        self.reason = reason
        return self._elsewhere(error)

    async def _transient(self, model: ModelInfo, error: ModelCallError) -> ModelCallError:
        failures = self.tries[model.name] = self.tries.get(model.name, 0) + 1
        if failures <= TRANSIENT_RETRIES and not await self.health.is_open(model.name):
            wait = error.retry_after + jitter(error.retry_after) if error.retry_after is not None else backoff(failures)
            if self.fits(wait):
                self.again, self.wait = model, wait
                self.again_why = f"retry {failures} of {TRANSIENT_RETRIES} on {model.name} after: {error.message}"
            return error
        times = "once" if failures == 1 else f"{failures} times"
        self.dropped[model.name] = f"failed {times}, last: {error.message}"
        self.reason = f"{failures} failure{'' if failures == 1 else 's'}, last: {error.message}"
        return self._elsewhere(error)

    def _too_long(self, model: ModelInfo, error: ModelCallError, smaller: bool) -> ModelCallError:
        figures = error.figures
        self.too_long[model.name] = str(figures) if figures else error.message
        if smaller and model.name not in self.shrunk:
            self.shrunk.add(model.name)
            self.again, self.wait = model, 0.0
            self.again_why = f"retry on {model.name} with a smaller prompt ({self.too_long[model.name]})"
            return error
        limit = (figures.limit if figures else None) or model.context_length or 0
        self.dropped[model.name] = f"the prompt does not fit its context ({self.too_long[model.name]})"
        for other in self.chain:
            if other.name not in self.dropped and other.context_length is not None and other.context_length <= limit:
                self.dropped[other.name] = f"its context ({other.context_length}) is not larger than {model.name}'s"
        if all(m.name in self.dropped for m in self.chain):
            tried = "; ".join(f"{name}: {why}" for name, why in self.dropped.items())
            return ModelCallError(
                ErrorKind.CONTEXT_LENGTH,
                f"the prompt does not fit the context of any model in the chain ({tried}). Make the target"
                " smaller, start the local server with a larger context (llama.cpp: --ctx-size / --n_ctx), or add a"
                " model with a larger context",
                status=error.status,
                model=model.name,
                fatal=True,
                figures=figures,
            )
        self.reason = f"the prompt does not fit its context ({self.too_long[model.name]})"
        return self._elsewhere(error)

    def _elsewhere(self, error: ModelCallError) -> ModelCallError:
        """Rotate: the next pick starts again from the head of the chain (or waits for the first ready model)."""
        if all(m.name in self.dropped for m in self.chain):
            return self._nothing_ready({}, time.time())
        self.wait = 0.0
        return error
