"""The circuit breaker of one model: closed -> open after N failures within a window, open -> half-open after a
timeout, half-open -> closed after successful probes (or back to open when a probe fails).

The functions change a `ModelState` in place and return a sentence describing the transition (for the log), or
None when the breaker did not change. The store applies them atomically, so several processes share one breaker.
`OPENHANDS_ENABLE_CIRCUIT_BREAKER=false` turns every function into a no-op that lets calls through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from oh_lsp.llm.state import CLOSED, HALF_OPEN, OPEN, ModelState

if TYPE_CHECKING:
    from oh_lsp.config import OpenHandsConfig


@dataclass(frozen=True)
class BreakerPolicy:
    enabled: bool = True
    failures: int = 5  # failures within `window_seconds` that open the breaker
    window_seconds: float = 60.0
    open_seconds: float = 30.0  # how long it stays open before a half-open probe
    probes: int = 1  # successful probes that close it again
    probe_lease_seconds: float = 300.0  # a probe that never reports back frees the slot after this long

    @classmethod
    def from_config(cls, config: OpenHandsConfig) -> BreakerPolicy:
        return cls(
            enabled=config.enable_circuit_breaker,
            failures=config.breaker_failures,
            window_seconds=config.breaker_window_seconds,
            open_seconds=config.breaker_open_seconds,
            probe_lease_seconds=float(config.timeout_seconds),
        )


def admit(state: ModelState, now: float, policy: BreakerPolicy) -> tuple[bool, str | None]:
    """May a call go to this model now? An open breaker past its timeout turns half-open and admits one probe."""
    if not policy.enabled or state.breaker == CLOSED:
        return True, None
    if state.breaker == OPEN:
        if now < state.breaker_retry_at:
            return False, None
        state.breaker, state.probe_successes, state.probe_until = HALF_OPEN, 0, now + policy.probe_lease_seconds
        return True, f"circuit breaker {state.model}: open -> half_open after {policy.open_seconds:g}s; sending a probe"
    if now < state.probe_until:  # half-open, another probe is in flight
        return False, None
    state.probe_until = now + policy.probe_lease_seconds
    return True, None


def on_failure(state: ModelState, now: float, policy: BreakerPolicy) -> str | None:
    if not policy.enabled:
        return None
    if state.breaker == HALF_OPEN:
        _open(state, now, policy)
        return (
            f"circuit breaker {state.model}: half_open -> open (the probe failed); next probe in "
            f"{policy.open_seconds:g}s"
        )
    state.failures = [t for t in state.failures if t > now - policy.window_seconds] + [now]
    if state.breaker == CLOSED and len(state.failures) >= policy.failures:
        count = len(state.failures)
        _open(state, now, policy)
        return (
            f"circuit breaker {state.model}: closed -> open after {count} failures within "
            f"{policy.window_seconds:g}s; calls skip it for {policy.open_seconds:g}s"
        )
    return None


def on_success(state: ModelState, now: float, policy: BreakerPolicy) -> str | None:
    if not policy.enabled or state.breaker != HALF_OPEN:
        return None
    state.probe_successes += 1
    state.probe_until = 0.0
    if state.probe_successes < policy.probes:
        return None
    state.breaker, state.failures, state.probe_successes = CLOSED, [], 0
    return f"circuit breaker {state.model}: half_open -> closed after {policy.probes} successful probe(s)"


def _open(state: ModelState, now: float, policy: BreakerPolicy) -> None:
    state.breaker, state.opened_at, state.breaker_retry_at = OPEN, now, now + policy.open_seconds
    state.failures, state.probe_until, state.probe_successes = [], 0.0, 0
