"""Quarry's retry, backoff, rate-limit and redaction rules, on a real session against a local server."""

from __future__ import annotations

import random
import time

import pytest
from werkzeug import Response

from assets.sources.resilience import (
    Guard, GuardedSession, ProviderError, RateLimiter, Redactor, RequestPolicy, RetryableStatus, retry_after_seconds,
)


def guard(sleeps: list[float], *, attempts=4, timeout=5.0, per_minute=60_000.0, secrets=()) -> Guard:
    return Guard("acme", RequestPolicy(max_attempts=attempts, base_delay_s=0.5, max_delay_s=4.0, timeout_s=timeout),
                 RateLimiter(per_minute), Redactor(secrets), sleep=sleeps.append, rng=random.Random(1))


@pytest.mark.parametrize("attempt, low, high", [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (6, 2.0, 4.0)])
def test_backoff_doubles_with_jitter_and_a_cap(attempt, low, high):
    policy = RequestPolicy(base_delay_s=0.5, max_delay_s=4.0).retry()
    delays = {policy.wait_s(attempt, ConnectionError(), random.Random(seed)) for seed in range(20)}
    assert all(low <= d <= high for d in delays) and len(delays) > 1


def test_retry_after_wins_and_is_capped():
    policy = RequestPolicy(max_delay_s=4.0).retry()
    assert policy.wait_s(1, RetryableStatus(None, 429, 3.0), random.Random()) == 3.0
    assert policy.wait_s(1, RetryableStatus(None, 429, 120.0), random.Random()) == 4.0
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") < 0 and retry_after_seconds(None) is None


def test_429_with_retry_after_then_success(httpserver):
    httpserver.expect_ordered_request("/x").respond_with_response(Response("slow down", 429, headers={"Retry-After": "2"}))
    httpserver.expect_ordered_request("/x").respond_with_data("ok")
    sleeps: list[float] = []
    assert GuardedSession(guard(sleeps)).get(httpserver.url_for("/x")).text == "ok"
    assert sleeps == [2.0]


def test_5xx_burst_backs_off_then_gives_up_with_a_message(httpserver):
    httpserver.expect_request("/x").respond_with_data("down", status=503)
    sleeps: list[float] = []
    g = guard(sleeps)
    with pytest.raises(ProviderError) as error:
        GuardedSession(g).get(httpserver.url_for("/x"))
    assert g.requests_sent == 4 and len(sleeps) == 3 and sleeps[0] < sleeps[2]
    assert str(error.value).startswith("acme: GET /x failed (HTTP 503): still failing after 4 attempts")


def test_unfixable_4xx_fails_on_the_first_attempt(httpserver):
    httpserver.expect_request("/x").respond_with_data("no such symbol", status=404)
    sleeps: list[float] = []
    g = guard(sleeps)
    with pytest.raises(ProviderError, match="HTTP 404.*does not know this symbol.*no such symbol") as error:
        GuardedSession(g).get(httpserver.url_for("/x"))
    assert g.requests_sent == 1 and sleeps == [] and error.value.status == 404


def test_a_timeout_is_retried(httpserver):
    calls = []

    def slow_once(request):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)
        return Response("ok")

    httpserver.expect_request("/x").respond_with_handler(slow_once)
    waited: list[float] = []
    g = guard([], timeout=0.1)
    g.sleep = lambda seconds: (waited.append(seconds), time.sleep(0.4))  # let the one-at-a-time server finish
    assert GuardedSession(g).get(httpserver.url_for("/x")).text == "ok"
    assert len(calls) == 2 and len(waited) == 1


def test_secrets_are_redacted_from_messages_and_reprs(httpserver):
    httpserver.expect_request("/x").respond_with_data("bad key sk-live-123 rejected", status=401)
    g = guard([], secrets=["sk-live-123"])
    with pytest.raises(ProviderError) as error:
        GuardedSession(g).get(httpserver.url_for("/x"), params={"apiKey": "sk-live-123"})
    assert "sk-live-123" not in str(error.value) and "***" in str(error.value)
    assert "sk-live-123" not in repr(g) + repr(g.redact) + repr(GuardedSession(g))


def test_rate_limiter_spaces_requests_evenly():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert waits == [0.5, 0.5, 0.5]
