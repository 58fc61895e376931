"""Unit level: reading rate-limit headers, the error table's classification, and the breaker's transitions."""

from __future__ import annotations

import email.utils

import pytest

from oh_lsp.llm import breaker
from oh_lsp.llm.breaker import BreakerPolicy
from oh_lsp.llm.errors import ErrorKind, classify_body_error, classify_status, parse_reset, parse_retry_after
from oh_lsp.records import CLOSED, HALF_OPEN, OPEN, ModelState

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1800000090", 1_800_000_090.0),  # epoch seconds (above 10^9)
        ("1800000090000", 1_800_000_090.0),  # epoch milliseconds (above 10^12)
        ("90", NOW + 90),  # seconds from now
        ("0", NOW),
        ("-5", NOW),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_reset_header_is_read_as_the_contract_says(value, expected) -> None:
    assert parse_reset(value, now=NOW) == expected


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert parse_retry_after("2", now=NOW) == 2.0
    assert parse_retry_after("2.5", now=NOW) == 2.5
    assert parse_retry_after(email.utils.formatdate(NOW + 120, usegmt=True), now=NOW) == pytest.approx(120, abs=1)
    assert parse_retry_after(email.utils.formatdate(NOW - 120, usegmt=True), now=NOW) == 0.0
    assert parse_retry_after("tomorrow", now=NOW) is None and parse_retry_after(None) is None


def err(message: str) -> dict:
    return {"error": {"message": message}}


@pytest.mark.parametrize(
    "status, headers, body, kind, fatal",
    [
        (429, {"retry-after": "2"}, err("Rate limit exceeded"), ErrorKind.RATE_LIMIT, False),
        (429, {"x-ratelimit-reset": str(int((NOW + 30) * 1000))}, err("slow down"), ErrorKind.RATE_LIMIT, False),
        (429, {}, err("Rate limit exceeded"), ErrorKind.RATE_LIMIT, False),  # no header: the 30 s default applies
        (
            429,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int((NOW + 7200) * 1000))},
            err("limit"),
            ErrorKind.DAILY_CAP,
            False,
        ),
        (429, {}, err("Rate limit exceeded: free-models-per-day"), ErrorKind.DAILY_CAP, False),
        (429, {"retry-after": "3600"}, err("slow down"), ErrorKind.DAILY_CAP, False),  # "soon" is at most 60 s
        (402, {}, err("Insufficient credits"), ErrorKind.CREDITS, True),
        (401, {}, err("No auth credentials found"), ErrorKind.AUTH, True),
        (403, {}, err("Forbidden"), ErrorKind.AUTH, True),
        (408, {}, err("timeout"), ErrorKind.TRANSIENT, False),
        (500, {}, err("internal"), ErrorKind.TRANSIENT, False),
        (503, {"retry-after": "4"}, err("overloaded"), ErrorKind.TRANSIENT, False),
        (400, {}, err("This model's maximum context length is 32768 tokens"), ErrorKind.CONTEXT_LENGTH, False),
        (404, {}, err("No endpoints found for x/y"), ErrorKind.MODEL_UNAVAILABLE, False),
        (400, {}, err("messages: field required"), ErrorKind.BAD_REQUEST, True),
    ],
)
def test_classifier_table(status, headers, body, kind, fatal) -> None:
    error = classify_status(status, headers, body, model="m", now=NOW)
    assert error.kind is kind and error.fatal is fatal and error.status == status


def test_classified_waits_and_messages() -> None:
    per_minute = classify_status(429, {"retry-after": "2"}, err("x"), now=NOW)
    assert per_minute.retry_after == 2 and per_minute.reset_at == NOW + 2
    daily = classify_status(
        429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW + 7200))}, err("x"), now=NOW
    )
    assert daily.reset_at == NOW + 7200 and daily.retry_after == 7200 and "daily" in daily.message
    assert classify_status(503, {"retry-after": "4"}, err("x"), now=NOW).retry_after == 4
    assert "OPENROUTER_API_KEY" in str(classify_status(401, {}, err("bad key")))
    assert "credits" in str(classify_status(402, {}, err("Insufficient credits")))


@pytest.mark.parametrize(
    "code, kind",
    [
        (502, ErrorKind.TRANSIENT),
        (None, ErrorKind.TRANSIENT),
        (429, ErrorKind.RATE_LIMIT),
        (401, ErrorKind.AUTH),
        (402, ErrorKind.CREDITS),
    ],
)
def test_error_inside_a_200_body_or_stream_is_classified(code, kind) -> None:
    body = {"error": {"message": "provider said no", **({"code": code} if code else {})}}
    error = classify_body_error(body, model="m", where="stream")
    assert error.kind is kind and "provider said no" in error.message


POLICY = BreakerPolicy(failures=3, window_seconds=10, open_seconds=5, probes=2, probe_lease_seconds=60)


def test_breaker_opens_after_n_failures_within_the_window_only() -> None:
    state = ModelState("m")
    assert breaker.on_failure(state, 0, POLICY) is None
    assert breaker.on_failure(state, 11, POLICY) is None  # the first one has left the window
    assert breaker.on_failure(state, 12, POLICY) is None and state.breaker == CLOSED
    transition = breaker.on_failure(state, 13, POLICY)
    assert state.breaker == OPEN and "closed -> open after 3 failures" in transition
    assert breaker.admit(state, 17.9, POLICY) == (False, None)


def test_breaker_half_open_admits_one_probe_and_closes_after_the_probes_succeed() -> None:
    state = ModelState("m")
    for t in (0, 1, 2):
        breaker.on_failure(state, t, POLICY)
    allowed, transition = breaker.admit(state, 7.5, POLICY)
    assert allowed and state.breaker == HALF_OPEN and "open -> half_open" in transition
    assert breaker.admit(state, 7.6, POLICY) == (False, None)  # one probe at a time
    assert breaker.on_success(state, 8, POLICY) is None and state.breaker == HALF_OPEN  # 2 probes needed
    assert breaker.admit(state, 8.1, POLICY)[0]
    assert "half_open -> closed" in breaker.on_success(state, 9, POLICY)
    assert state.breaker == CLOSED and state.failures == []


def test_a_failed_probe_opens_the_breaker_again() -> None:
    state = ModelState("m")
    for t in (0, 1, 2):
        breaker.on_failure(state, t, POLICY)
    breaker.admit(state, 8, POLICY)
    assert "half_open -> open" in breaker.on_failure(state, 8.5, POLICY)
    assert state.breaker == OPEN and state.breaker_retry_at == 13.5


def test_a_disabled_breaker_never_opens() -> None:
    off = BreakerPolicy(enabled=False, failures=1)
    state = ModelState("m")
    for t in range(10):
        assert breaker.on_failure(state, t, off) is None
    assert state.breaker == CLOSED and breaker.admit(state, 10, off) == (True, None)
