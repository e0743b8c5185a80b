"""Alpaca's trading API (paper endpoint unless overridden) through alpaca-py, every retry Quarry's own."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone

from loguru import logger

from assets.retrying import RetryPolicy
from assets.sources.registry import AlpacaKeys
from pipelines.settings import BrokerConfig
from pipelines.brokers.base import (
    BrokerAccount, BrokerAuthError, BrokerError, BrokerMalformed, BrokerOrder, BrokerPosition,
    BrokerUnavailable, MarketClock, OrderRejected, OrderRequest,
)

_ALPACA_STATUS = {
    "new": "accepted", "accepted": "accepted", "pending_new": "accepted", "accepted_for_bidding": "accepted",
    "held": "accepted", "done_for_day": "accepted", "calculated": "accepted", "stopped": "accepted",
    "suspended": "accepted", "pending_replace": "accepted", "partially_filled": "partially_filled",
    "filled": "filled", "canceled": "cancelled", "pending_cancel": "pending_cancel", "expired": "expired",
    "rejected": "rejected", "replaced": "cancelled",
}
CHECK_KEYS = "check ALPACA_API_KEY and ALPACA_SECRET_KEY (paper keys for the paper endpoint)"
CHECK_URL = "check that QUARRY_ALPACA_TRADING_URL (if set) points at Alpaca's trading API"
CHECK_BROKER = ("check Alpaca's status and the network; an order whose outcome is unknown is looked up by its "
                "client order id on the next cycle")
MAX_WAIT_SECONDS = 30.0


class _RateLimited(BrokerUnavailable):
    """Alpaca's 429: the request was refused before it was read, so it certainly placed nothing."""


class _DuplicateClientOrderId(Exception):
    """Alpaca's 422 "client_order_id must be unique": an earlier attempt reached it, whatever we were told."""


class _NotPlaced(Exception):
    """A submit failed and the lookup by client order id does not find the order: posting it again is safe."""

    def __init__(self, cause: BrokerError):
        super().__init__(str(cause))
        self.cause = cause


def _is_unavailable(error: BaseException) -> bool:
    return isinstance(error, BrokerUnavailable)


def _is_not_placed(error: BaseException) -> bool:
    return isinstance(error, _NotPlaced)


class AlpacaBroker:
    """Alpaca's trading API through alpaca-py's `TradingClient` (paper endpoint unless overridden).

    Quarry owns every retry: alpaca-py's own loop is off (`_retry = 0`), reads are retried here
    with backoff, and a submit whose outcome is ambiguous (timeout, lost connection, 5xx, a
    malformed answer, 422 duplicate client order id) is looked up by its client order id before
    anything else, so it is adopted when Alpaca has it and never sent twice.
    """

    name = "alpaca"

    def __init__(self, settings: BrokerConfig, keys: AlpacaKeys):
        from alpaca.trading.client import TradingClient
        from requests.adapters import HTTPAdapter

        if keys.api_key is None or keys.secret_key is None:
            raise BrokerAuthError("the alpaca broker needs ALPACA_API_KEY and ALPACA_SECRET_KEY in the environment")
        self.settings = settings
        self.client = TradingClient(
            keys.api_key.get_secret_value(), keys.secret_key.get_secret_value(),
            paper=True, url_override=settings.alpaca_url,
        )
        self.client._retry = 0  # one HTTP request per call: every retry is Quarry's, below
        timeout = settings.http_timeout_seconds

        class TimeoutAdapter(HTTPAdapter):
            def send(self, request, **kwargs):
                kwargs["timeout"] = kwargs.get("timeout") or timeout
                return super().send(request, **kwargs)

        for prefix in ("https://", "http://"):
            self.client._session.mount(prefix, TimeoutAdapter())
        #: Reads are retried while Alpaca is rate-limiting or not answering; backoff doubles, capped, without jitter.
        self.read_retry = RetryPolicy(settings.request_attempts, _is_unavailable,
                                      first_wait_s=settings.retry_wait_seconds, max_wait_s=MAX_WAIT_SECONDS)
        #: A submit is posted again only once Alpaca is known not to have it.
        self.submit_retry = replace(self.read_retry, retry_on=_is_not_placed)

    # ---- one call, classified -----------------------------------------------------------

    def _once(self, endpoint: str, call, *, refusal: type[BrokerError] = BrokerError):
        """One alpaca-py call whose every failure leaves as a BrokerError naming the endpoint and what to check."""
        import requests
        from alpaca.common.exceptions import APIError

        try:
            return call()
        except APIError as error:
            status, said = error.status_code, _api_message(error)
            if status == 401 or status == 403 and refusal is BrokerError:
                raise BrokerAuthError(f"alpaca {endpoint}: HTTP {status} ({said}): {CHECK_KEYS}") from None
            if status == 422 and "client_order_id" in said and "unique" in said:
                raise _DuplicateClientOrderId(said) from None
            if status == 429:
                raise _RateLimited(f"alpaca {endpoint}: HTTP 429 ({said}): {CHECK_BROKER}") from None
            if status is None or status >= 500:
                raise BrokerUnavailable(f"alpaca {endpoint}: HTTP {status} ({said}): {CHECK_BROKER}") from None
            raise refusal(f"alpaca {endpoint}: HTTP {status}: {said}") from None
        except requests.exceptions.JSONDecodeError as error:
            raise BrokerMalformed(f"alpaca {endpoint}: the answer is not JSON ({error}): {CHECK_URL}") from None
        except requests.RequestException as error:
            raise BrokerUnavailable(f"alpaca {endpoint}: {type(error).__name__}: {CHECK_BROKER}") from None
        except (ValueError, TypeError, KeyError, AttributeError) as error:  # pydantic's ValidationError included
            detail = " ".join(str(error).split())[:200]
            raise BrokerMalformed(f"alpaca {endpoint}: malformed answer ({detail}): {CHECK_URL}") from None

    def _read(self, endpoint: str, call):
        """A call that changes nothing, retried with backoff while Alpaca is rate-limiting or not answering."""
        return self.read_retry.call(lambda: self._once(endpoint, call))

    # ---- the Broker protocol ------------------------------------------------------------

    def clock(self, now: datetime) -> MarketClock:
        return self._read("GET /v2/clock", lambda: _clock(self.client.get_clock()))

    def account(self) -> BrokerAccount:
        return self._read("GET /v2/account", lambda: _account(self.client.get_account()))

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Alpaca's order for this client order id, whether this call or an earlier one placed it.

        A 429 is retried (Alpaca refused it before looking at it); any ambiguous outcome is
        followed by a lookup, and only when Alpaca does not know the id is it posted again.
        Raises OrderRejected when refused, BrokerUnavailable when the outcome is still unknown.
        """
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        order = MarketOrderRequest(
            symbol=request.symbol, qty=request.qty, side=OrderSide.BUY if request.side == "buy" else OrderSide.SELL,
            time_in_force=TimeInForce.DAY, client_order_id=request.client_order_id,
        )
        endpoint = f"POST /v2/orders ({request.client_order_id})"

        def attempt() -> BrokerOrder:
            try:
                return self._once(endpoint, lambda: _alpaca_order(self.client.submit_order(order)),
                                  refusal=OrderRejected)
            except _DuplicateClientOrderId:
                failure: BrokerError = BrokerUnavailable(
                    f"alpaca {endpoint}: HTTP 422 client_order_id must be unique, "
                    f"yet the lookup does not find it: {CHECK_BROKER}")
            except _RateLimited as error:
                raise _NotPlaced(error) from None  # refused unread: nothing to look up
            except (BrokerUnavailable, BrokerMalformed) as error:
                failure = error
            found = self.get_order(request.client_order_id)  # its own failure ends the submit, unretried
            if found is not None:
                return found
            raise _NotPlaced(failure)

        try:
            return self.submit_retry.call(attempt)
        except _NotPlaced as error:
            raise BrokerUnavailable(
                f"{error.cause} (gave up after {self.settings.request_attempts} attempts)") from None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        endpoint = f"GET /v2/orders:by_client_order_id ({client_order_id})"
        try:
            return self._read(endpoint, lambda: _alpaca_order(self.client.get_order_by_client_id(client_order_id)))
        except BrokerError as error:
            if "HTTP 404" in str(error):
                return None
            raise

    def orders(self) -> list[BrokerOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)
        return self._read("GET /v2/orders", lambda: [_alpaca_order(o) for o in self.client.get_orders(request)])

    def cancel_order(self, client_order_id: str) -> BrokerOrder | None:
        """Ask once; whatever the answer, the order's state is what a lookup says afterwards."""
        found = self.get_order(client_order_id)
        if found is None or found.is_terminal:
            return found
        try:
            self._once(f"DELETE /v2/orders/{found.broker_order_id}",
                       lambda: self.client.cancel_order_by_id(found.broker_order_id))
        except (BrokerUnavailable, BrokerMalformed, _DuplicateClientOrderId) as error:
            logger.warning("cancel of {} unconfirmed: {}", client_order_id, error)
        except BrokerError as error:
            if isinstance(error, BrokerAuthError):
                raise
            logger.warning("cancel of {} refused: {}", client_order_id, error)
        return self.get_order(client_order_id)

    def positions(self) -> list[BrokerPosition]:
        return self._read("GET /v2/positions", lambda: [_position(p) for p in self.client.get_all_positions()])

    def close_position(self, symbol: str) -> BrokerOrder | None:
        return self._once(f"DELETE /v2/positions/{symbol}", lambda: _alpaca_order(self.client.close_position(symbol)))


def _api_message(error) -> str:
    try:
        return str(error.message)
    except Exception:
        return " ".join(str(error).split())[:200]


def _clock(clock) -> MarketClock:
    if not isinstance(clock.is_open, bool) or clock.timestamp is None:
        raise ValueError(f"clock without is_open/timestamp: {clock!r}")
    return MarketClock(clock.is_open, clock.timestamp, clock.next_open, clock.next_close)


def _account(account) -> BrokerAccount:
    return BrokerAccount(_number(account.equity, "equity"), _number(account.cash, "cash"),
                         _number(account.buying_power, "buying_power"))


def _position(position) -> BrokerPosition:
    return BrokerPosition(
        _text(position.symbol, "symbol"), _number(position.qty, "qty"),
        _number(position.avg_entry_price, "avg_entry_price"),
        _number(position.current_price, "current_price") if position.current_price is not None else None,
    )


def _alpaca_order(order) -> BrokerOrder:
    """Alpaca's order as Quarry's; a field that is missing or not what Alpaca documents is a ValueError."""
    status = getattr(order.status, "value", order.status)
    side = getattr(order.side, "value", order.side)
    if status not in _ALPACA_STATUS:
        raise ValueError(f"order status {status!r}")
    if side not in ("buy", "sell"):
        raise ValueError(f"order side {side!r}")
    return BrokerOrder(
        client_order_id=_text(order.client_order_id, "client_order_id"), broker_order_id=_text(order.id, "id"),
        symbol=_text(order.symbol, "symbol"), side=side, qty=_number(order.qty or 0, "qty"),
        filled_qty=_number(order.filled_qty or 0, "filled_qty"),
        avg_fill_px=_number(order.filled_avg_price, "filled_avg_price") if order.filled_avg_price is not None else None,
        status=_ALPACA_STATUS[status],
        submitted_at=order.submitted_at.astimezone(timezone.utc) if order.submitted_at else None,
    )


def _number(value, field_name: str) -> float:
    """A finite number from Alpaca's numeric strings; anything else names the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field_name} = {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{field_name} = {value!r} is not a finite number")
    return number


def _text(value, field_name: str) -> str:
    if value is None or str(value) == "":
        raise ValueError(f"{field_name} is missing")
    return str(value)
