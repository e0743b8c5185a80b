"""Quarry-owned retries, timeouts and rate limits around every provider request, with secrets kept out of messages."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

import requests
import urllib3
from loguru import logger

from assets.retrying import Retry, RetryPolicy
from assets.sources.base import SourceError

#: Statuses a later attempt can fix: rate limits and server trouble.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: What a person should do about a status that retrying cannot fix.
STATUS_HINTS = {
    400: "the request was refused as malformed; check the symbol, timeframe and window",
    401: "the API key was rejected; check the key variables for this provider",
    403: "the key is not allowed this data; check the key, its plan and the configured feed",
    404: "the provider does not know this symbol or endpoint; check the symbol and the configured URL",
    422: "the provider rejected the parameters; check the symbol and the window",
}
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.Timeout,
    requests.ConnectionError,
    urllib3.exceptions.TimeoutError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.MaxRetryError,
    ConnectionError,
    TimeoutError,
)


class ProviderError(SourceError):
    """A provider request failed for good; the message names provider, symbol, status and what to do."""

    def __init__(self, message: str, *, provider: str, status: int | None = None, symbol: str | None = None):
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.symbol = symbol


class Redactor:
    """Replaces secret values in any text; it never shows the secrets in its own repr."""

    def __init__(self, secrets: Iterable[str]):
        self._secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


class RetryableStatus(Exception):
    """A response whose status a later attempt can fix, with the wait the provider asked for (Retry-After)."""

    def __init__(self, response: Any, status: int, retry_after_s: float | None):
        super().__init__(f"HTTP {status}")
        self.response = response
        self.status = status
        self.retry_after_s = retry_after_s


def is_transient(error: BaseException) -> bool:
    """A failure another attempt can fix: a timeout, a lost connection, a rate limit or server trouble."""
    return isinstance(error, (*TRANSIENT_ERRORS, RetryableStatus))


def asked_wait(error: BaseException) -> float | None:
    """The provider's Retry-After, when it sent one."""
    return error.retry_after_s if isinstance(error, RetryableStatus) else None


@dataclass(frozen=True)
class RequestPolicy:
    """Attempts, backoff and timeout of one provider request.

    The backoff doubles from `base_delay_s` up to `max_delay_s` with jitter (each wait drawn
    between half the ceiling and the ceiling); a Retry-After header wins when the provider sends one.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 30.0

    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, is_transient, first_wait_s=self.base_delay_s,
                           max_wait_s=self.max_delay_s, jitter=(0.5, 1.0), asked_wait=asked_wait)


class RateLimiter:
    """At most `per_minute` requests a minute, spaced evenly, shared by every thread using one provider."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval_s = 60.0 / per_minute if per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_at = 0.0

    def acquire(self) -> float:
        """Wait for the next slot; returns how long it waited."""
        with self._lock:
            now = self._clock()
            wait = max(0.0, self._next_at - now)
            self._next_at = max(now, self._next_at) + self.interval_s
        if wait:
            self._sleep(wait)
        return wait


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError):
        return None


@dataclass
class Guard:
    """Runs one provider request at a time through the rate limit, the timeout and the retry policy.

    The provider's own client is configured not to retry, so every retry happens here, once,
    with backoff and jitter, and every failure leaves with a message a person can act on.
    """

    provider: str
    policy: RequestPolicy
    limiter: RateLimiter
    redact: Redactor
    hints: dict[int, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    requests_sent: int = 0

    def __repr__(self) -> str:
        return f"Guard({self.provider!r}, {self.policy!r})"

    def send(self, attempt: Callable[[], Any], status_of: Callable[[Any], int],
             header_of: Callable[[Any, str], str | None], body_of: Callable[[Any], str], *, what: str,
             raise_client_errors: bool = True) -> Any:
        """The first response with a status retrying cannot improve; raises ProviderError when it is an error.

        With `raise_client_errors=False` a 4xx retrying cannot fix is returned for the client to
        interpret (yfinance reads Yahoo's 404s itself); exhausted retries always raise.
        """

        def once() -> Any:
            self.limiter.acquire()
            self.requests_sent += 1
            response = attempt()
            status = status_of(response)
            if status in RETRYABLE_STATUSES:
                raise RetryableStatus(response, status, retry_after_seconds(header_of(response, "Retry-After")))
            return response

        def log(retry: Retry) -> None:
            why = str(retry.error) if isinstance(retry.error, RetryableStatus) else type(retry.error).__name__
            logger.warning("{}: {} for {}; retry {} of {} in {:.2f}s", self.provider, why, self.redact(what),
                           retry.attempt, self.policy.max_attempts - 1, retry.wait_s)

        try:
            response = self.policy.retry().call(once, on_retry=log, sleep=self.sleep, rng=self.rng)
        except RetryableStatus as error:
            raise self.failure(error.status, body_of(error.response), what) from None
        except TRANSIENT_ERRORS as error:
            raise self.failure(None, f"{type(error).__name__}: {error}", what) from None
        status = status_of(response)
        if status < 400 or not raise_client_errors:
            return response
        raise self.failure(status, body_of(response), what)

    def failure(self, status: int | None, detail: str, what: str) -> ProviderError:
        """The error for a request that failed for good, secrets removed."""
        if status is None:
            hint = f"the provider did not answer after {self.policy.max_attempts} attempts; try again later"
        elif status in RETRYABLE_STATUSES:
            hint = f"still failing after {self.policy.max_attempts} attempts; try again later or lower the request rate"
        else:
            hint = self.hints.get(status) or STATUS_HINTS.get(status) or "the provider refused the request"
        code = f"HTTP {status}" if status is not None else "no response"
        message = f"{self.provider}: {what} failed ({code}): {hint}. Provider said: {short(detail)}"
        return ProviderError(self.redact(message), provider=self.provider, status=status)

    def malformed(self, what: str, detail: str) -> ProviderError:
        return ProviderError(
            self.redact(f"{self.provider}: {what} returned a malformed body ({short(detail)}); "
                        "the provider's API may have changed or the configured URL is not the provider"),
            provider=self.provider,
        )


def short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


class GuardedSession(requests.Session):
    """A requests session whose every request goes through a Guard, with a default timeout.

    Handed to clients that accept a session (alpaca-py keeps one as `_session`, yfinance takes
    one), so pagination inside the client retries one page, never the whole download.
    """

    def __init__(self, guard: Guard, *, raise_client_errors: bool = True):
        super().__init__()
        self.guard = guard
        self.raise_client_errors = raise_client_errors

    def __repr__(self) -> str:
        return f"GuardedSession({self.guard.provider!r})"

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - requests' signature
        kwargs.setdefault("timeout", self.guard.policy.timeout_s)
        what = f"{method} {_path_of(url)}"
        return self.guard.send(
            lambda: super(GuardedSession, self).request(method, url, *args, **kwargs),
            lambda r: r.status_code, lambda r, h: r.headers.get(h), lambda r: r.text, what=what,
            raise_client_errors=self.raise_client_errors,
        )


class GuardedPool:
    """Stands in for a urllib3 PoolManager (massive's `client` attribute): guarded requests, JSON bodies checked."""

    def __init__(self, pool: urllib3.PoolManager, guard: Guard, **request_kw: Any):
        self._pool = pool
        self.guard = guard
        self._request_kw = request_kw

    def __repr__(self) -> str:
        return f"GuardedPool({self.guard.provider!r})"

    def request(self, method: str, url: str, **kwargs):
        what = f"{method} {_path_of(url)}"
        response = self.guard.send(
            lambda: self._pool.request(method, url, **{**self._request_kw, **kwargs}),
            lambda r: r.status, lambda r, h: r.headers.get(h), lambda r: r.data.decode("utf-8", "replace"),
            what=what,
        )
        try:
            json.loads(response.data.decode("utf-8"))
        except ValueError as error:
            raise self.guard.malformed(what, f"{error}: {response.data[:80]!r}") from None
        return response


def _path_of(url: str) -> str:
    """The path of a URL without its query string, which may carry a key."""
    return urllib3.util.parse_url(url).path or "/"
