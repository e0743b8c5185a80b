"""The shared retry policy: which failures retry, when it stops, how long it waits, and what surfaces."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.retrying import Retry, RetryPolicy


class Flaky(Exception):
    """A failure the policies below retry."""

    def __init__(self, asked_s: float | None = None):
        super().__init__("flaky")
        self.asked_s = asked_s


class Broken(Exception):
    """A failure no retry can fix."""


def policy(attempts: int = 4, *, first: float = 0.5, cap: float = 4.0, jitter=(1.0, 1.0)) -> RetryPolicy:
    return RetryPolicy(attempts, lambda error: isinstance(error, Flaky), first_wait_s=first, max_wait_s=cap,
                       jitter=jitter, asked_wait=lambda error: getattr(error, "asked_s", None))


def scripted(outcomes: list):
    """A call that raises or returns the next outcome each time, and the list of calls made."""
    calls: list[int] = []

    def work():
        calls.append(len(calls) + 1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return work, calls


def test_a_retryable_failure_is_retried_until_it_succeeds():
    work, calls = scripted([Flaky(), Flaky(), "done"])
    sleeps: list[float] = []
    heard: list[Retry] = []
    assert policy().call(work, sleep=sleeps.append, on_retry=heard.append) == "done"
    assert calls == [1, 2, 3] and sleeps == [0.5, 1.0]
    assert [(r.attempt, type(r.error), r.wait_s) for r in heard] == [(1, Flaky, 0.5), (2, Flaky, 1.0)]


def test_it_stops_after_the_attempts_and_the_last_failure_surfaces_unchanged():
    last = Flaky()
    work, calls = scripted([Flaky(), Flaky(), last, "never reached"])
    sleeps: list[float] = []
    with pytest.raises(Flaky) as raised:
        policy(attempts=3).call(work, sleep=sleeps.append)
    assert raised.value is last and calls == [1, 2, 3] and sleeps == [0.5, 1.0]


def test_a_failure_it_does_not_retry_surfaces_at_once():
    broken = Broken("disk full")
    work, calls = scripted([broken, "never reached"])
    sleeps: list[float] = []
    with pytest.raises(Broken) as raised:
        policy().call(work, sleep=sleeps.append)
    assert raised.value is broken and calls == [1] and sleeps == []


def test_a_non_retryable_failure_after_retries_ends_them():
    work, calls = scripted([Flaky(), Broken("refused"), "never reached"])
    sleeps: list[float] = []
    with pytest.raises(Broken):
        policy().call(work, sleep=sleeps.append)
    assert calls == [1, 2] and sleeps == [0.5]


def test_the_wait_asked_for_wins_over_the_backoff_and_is_capped():
    work, _ = scripted([Flaky(asked_s=3.0), Flaky(asked_s=120.0), Flaky(asked_s=-5.0), Flaky(), "done"])
    sleeps: list[float] = []
    assert policy(attempts=5, first=0.5, cap=4.0).call(work, sleep=sleeps.append) == "done"
    assert sleeps == [3.0, 4.0, 0.0, 4.0]  # the fourth wait is the backoff again: 0.5 * 2**3, capped at 4


def test_one_attempt_means_no_retry_and_zero_attempts_is_refused():
    work, calls = scripted([Flaky()])
    with pytest.raises(Flaky):
        policy(attempts=1).call(work, sleep=pytest.fail)
    assert calls == [1]
    with pytest.raises(ValueError, match="at least one attempt"):
        policy(attempts=0)


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 30),
    first=st.floats(0.001, 10.0),
    cap=st.floats(0.001, 60.0),
    jitter=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)).map(sorted),
    seed=st.integers(0, 2**32),
)
def test_the_backoff_doubles_up_to_the_cap_within_the_jitter(attempt, first, cap, jitter, seed):
    low, high = jitter
    ceiling = min(first * 2 ** (attempt - 1), cap)
    wait = policy(first=first, cap=cap, jitter=(low, high)).wait_s(attempt, Flaky(), random.Random(seed))
    assert ceiling * low - 1e-9 <= wait <= ceiling * high + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(1, 6),
    script=st.lists(st.sampled_from(["flaky", "broken", "ok"]), min_size=6, max_size=6),
)
def test_any_failure_script_calls_as_often_as_the_rules_say(attempts, script):
    outcomes = [Flaky() if s == "flaky" else Broken() if s == "broken" else s for s in script]
    work, calls = scripted(outcomes)
    sleeps: list[float] = []
    first_final = next((i for i, s in enumerate(script) if s != "flaky"), len(script))
    expected_calls = min(first_final + 1, attempts)
    ends_with = script[expected_calls - 1]

    if ends_with == "ok":
        assert policy(attempts).call(work, sleep=sleeps.append) == "ok"
    else:
        with pytest.raises(Flaky if ends_with == "flaky" else Broken):
            policy(attempts).call(work, sleep=sleeps.append)
    assert len(calls) == expected_calls and len(sleeps) == expected_calls - 1


def test_jitter_spreads_the_waits_and_a_seeded_generator_repeats_them():
    jittery = policy(attempts=6, first=1.0, cap=100.0, jitter=(0.5, 1.5))
    runs = []
    for _ in range(2):
        work, _ = scripted([Flaky()] * 5 + ["done"])
        sleeps: list[float] = []
        jittery.call(work, sleep=sleeps.append, rng=random.Random(42))
        runs.append(sleeps)
    assert runs[0] == runs[1] and len(set(s / 2 ** i for i, s in enumerate(runs[0]))) > 1
