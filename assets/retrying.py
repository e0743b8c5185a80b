"""One retry policy, on tenacity, for catalog commits, provider requests, broker calls and alert emails."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """A retry about to happen: the attempt that failed (counted from 1), its error, and the wait before the next."""

    attempt: int
    error: BaseException
    wait_s: float


def no_asked_wait(error: BaseException) -> float | None:
    """The other side never says how long to wait."""
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures another attempt can fix, how many attempts in all, and how long to wait between them.

    The wait before retry n is `first_wait_s * 2**(n - 1)` capped at `max_wait_s`, times a factor
    drawn uniformly from `jitter` so concurrent callers spread out. A wait the other side asked
    for (`asked_wait`, e.g. an HTTP Retry-After) wins over the backoff, capped at `max_wait_s` too.
    A failure `retry_on` refuses, and the last attempt's failure, surface unchanged at once.
    """

    attempts: int
    retry_on: Callable[[BaseException], bool]
    first_wait_s: float
    max_wait_s: float
    jitter: tuple[float, float] = (1.0, 1.0)
    asked_wait: Callable[[BaseException], float | None] = no_asked_wait

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least one attempt, not {self.attempts}")

    def wait_s(self, attempt: int, error: BaseException, rng: random.Random) -> float:
        """Seconds to wait after attempt `attempt` (counted from 1) failed with `error`."""
        asked = self.asked_wait(error)
        if asked is not None:
            return min(max(asked, 0.0), self.max_wait_s)
        ceiling = min(self.first_wait_s * 2 ** (attempt - 1), self.max_wait_s)
        low, high = self.jitter
        return ceiling * (low if low == high else rng.uniform(low, high))

    def call(self, work: Callable[[], T], *, on_retry: Callable[[Retry], None] | None = None,
             sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> T:
        """`work()`'s result, calling it again after each failure the policy retries, up to `attempts` calls.

        `on_retry` hears of each retry before its wait (to log it); `sleep` and `rng` are the
        seams a test replaces to run without waiting and with a known jitter.
        """
        draw = rng or random.Random()

        def wait(state: tenacity.RetryCallState) -> float:
            return self.wait_s(state.attempt_number, state.outcome.exception(), draw)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                on_retry(Retry(state.attempt_number, state.outcome.exception(), state.upcoming_sleep))

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(self.retry_on),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )
        return retrying(work)
