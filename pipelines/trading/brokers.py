"""Brokers behind one small protocol: the embedded `paper` broker and Alpaca's paper trading API."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, Protocol

import sqlalchemy as sa
from loguru import logger
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import IntegrityError

from assets.calendar import sessions
from assets.retrying import RetryPolicy
from warehouse.ledger import TERMINAL_ORDER_STATUSES, UtcDateTime

__all__ = [
    "AlpacaBroker",
    "BrokerAccount",
    "BrokerAuthError",
    "BrokerError",
    "BrokerMalformed",
    "BrokerOrder",
    "BrokerPosition",
    "BrokerSettings",
    "BrokerUnavailable",
    "MarketClock",
    "OrderRejected",
    "OrderRequest",
    "PaperBroker",
    "make_broker",
]

Side = Literal["buy", "sell"]
Quote = Callable[[str], "float | None"]


class BrokerSettings(BaseSettings):
    """Which broker trades, and how the paper broker fills; env prefix QUARRY_BROKER_."""

    model_config = SettingsConfigDict(env_prefix="QUARRY_BROKER_", env_file=".env", extra="ignore")

    name: Literal["paper", "alpaca"] = "paper"
    paper_url: str = Field("sqlite:///data/paper_broker.sqlite", description="Where the paper broker keeps its book.")
    initial_cash: float = 1_000_000.0
    slippage_bps: float = Field(2.0, ge=0)
    partial_fill_pct: float = Field(0.0, ge=0, le=1, description="Share of orders that fill only partly.")
    partial_fill_ratio: float = Field(0.5, gt=0, lt=1)
    reject_pct: float = Field(0.0, ge=0, le=1, description="Share of orders the paper broker rejects.")
    seed: int = 7
    alpaca_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_API_KEY", "QUARRY_BROKER_ALPACA_API_KEY", "alpaca_api_key")
    )
    alpaca_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_SECRET_KEY", "QUARRY_BROKER_ALPACA_SECRET_KEY", "alpaca_secret_key")
    )
    alpaca_url: str | None = Field(
        None,
        validation_alias=AliasChoices("QUARRY_ALPACA_TRADING_URL", "QUARRY_BROKER_ALPACA_URL", "alpaca_url"),
        description="Override of the Alpaca paper endpoint (a proxy or a stand-in).",
    )
    http_timeout_seconds: float = Field(10.0, gt=0)
    request_attempts: int = Field(4, ge=1, description="Attempts per broker call before the cycle gives up.")
    retry_wait_seconds: float = Field(1.0, ge=0, description="First backoff between attempts; doubles, capped at 30 s.")


class BrokerError(RuntimeError):
    """The broker refused or failed an operation; the message names the call and what to check."""


class OrderRejected(BrokerError):
    """The broker answered and refused the order: final, never retried."""


class BrokerUnavailable(BrokerError):
    """The broker did not answer (timeout, connection, 429, 5xx): the order's fate is unknown until looked up."""


class BrokerAuthError(BrokerError):
    """The broker refused Quarry's keys (401/403): nothing works until they are fixed."""


class BrokerMalformed(BrokerError):
    """The broker answered something that is not its documented payload."""


@dataclass(frozen=True)
class OrderRequest:
    """A market day order for whole shares, keyed by its deterministic client order id."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order; `status` is one of Quarry's order statuses."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: float
    filled_qty: float
    avg_fill_px: float | None
    status: str
    submitted_at: datetime | None = None
    reason: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_ORDER_STATUSES


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    qty: float
    avg_entry_px: float
    market_px: float | None


@dataclass(frozen=True)
class BrokerAccount:
    equity: float
    cash: float
    buying_power: float


@dataclass(frozen=True)
class MarketClock:
    is_open: bool
    at: datetime
    next_open: datetime | None
    next_close: datetime | None


class Broker(Protocol):
    """What the trading flows need from a broker."""

    name: str

    def clock(self, now: datetime) -> MarketClock: ...
    def account(self) -> BrokerAccount: ...
    def submit_order(self, request: OrderRequest) -> BrokerOrder: ...
    def get_order(self, client_order_id: str) -> BrokerOrder | None: ...
    def cancel_order(self, client_order_id: str) -> BrokerOrder | None: ...
    def orders(self) -> list[BrokerOrder]: ...
    def positions(self) -> list[BrokerPosition]: ...
    def close_position(self, symbol: str) -> BrokerOrder | None: ...


# ---- paper ---------------------------------------------------------------------------------

_paper_metadata = sa.MetaData()
paper_orders = sa.Table(
    "paper_orders", _paper_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_order_id", sa.String(128), nullable=False, unique=True),
    sa.Column("symbol", sa.String(16), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", sa.Float, nullable=False),
    sa.Column("filled_qty", sa.Float, nullable=False),
    sa.Column("avg_fill_px", sa.Float),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
)


def paper_engine(url: str) -> sa.Engine:
    """The paper broker's own database, apart from the ledger it is reconciled against."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)
    _paper_metadata.create_all(engine)
    return engine


class PaperBroker:
    """Fills market orders at once against the latest validated bar, with slippage, partial fills and rejects.

    Each order's fate is drawn from a generator seeded by (seed, client order id), so a
    session replays identically whatever order the orders arrive in. The book lives in
    its own database, so it survives the process like a real broker does.
    """

    name = "paper"

    def __init__(self, engine: sa.Engine, quote: Quote, now: datetime, settings: BrokerSettings | None = None):
        self.engine, self.quote, self.now = engine, quote, now
        self.settings = settings or BrokerSettings()

    def clock(self, now: datetime) -> MarketClock:
        upcoming = sessions(now.date() - timedelta(days=1), now.date() + timedelta(days=10))
        is_open = bool(upcoming.filter((upcoming["open_ts"] <= now) & (upcoming["close_ts"] > now)).height)
        later_open = upcoming.filter(upcoming["open_ts"] > now)["open_ts"]
        later_close = upcoming.filter(upcoming["close_ts"] > now)["close_ts"]
        return MarketClock(is_open, now, later_open.min() if later_open.len() else None,
                           later_close.min() if later_close.len() else None)

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        rng = random.Random(f"{self.settings.seed}:{request.client_order_id}")
        px = self.quote(request.symbol)
        status, filled, fill_px, reason = "filled", request.qty, None, None
        if px is None or not math.isfinite(px):
            status, filled, reason = "rejected", 0.0, f"no validated price for {request.symbol}"
        elif rng.random() < self.settings.reject_pct:
            status, filled, reason = "rejected", 0.0, "rejected by the paper broker's reject rate"
        else:
            if rng.random() < self.settings.partial_fill_pct:
                filled = float(math.floor(request.qty * self.settings.partial_fill_ratio))
                status = "partially_filled" if filled > 0 else "accepted"
            sign = 1.0 if request.side == "buy" else -1.0
            fill_px = px * (1.0 + sign * self.settings.slippage_bps / 10_000.0) if filled > 0 else None
        row = dict(client_order_id=request.client_order_id, symbol=request.symbol, side=request.side,
                   qty=request.qty, filled_qty=filled, avg_fill_px=fill_px, status=status, reason=reason,
                   submitted_at=self.now)
        try:
            with self.engine.begin() as connection:
                connection.execute(paper_orders.insert().values(**row))
        except IntegrityError:
            pass  # an earlier attempt placed it: the book's order is the answer, as after Alpaca's 422
        found = self.get_order(request.client_order_id)
        if found.status == "rejected":
            raise OrderRejected(found.reason or "rejected")
        return found

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(paper_orders).where(paper_orders.c.client_order_id == client_order_id)).first()
        return None if row is None else _paper_order(row._mapping)

    def orders(self) -> list[BrokerOrder]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(paper_orders).order_by(paper_orders.c.seq)).all()
        return [_paper_order(row._mapping) for row in rows]

    def cancel_order(self, client_order_id: str) -> BrokerOrder | None:
        with self.engine.begin() as connection:
            connection.execute(paper_orders.update().where(
                (paper_orders.c.client_order_id == client_order_id)
                & paper_orders.c.status.in_(["accepted", "partially_filled", "new"])
            ).values(status="cancelled"))
        return self.get_order(client_order_id)

    def positions(self) -> list[BrokerPosition]:
        book: dict[str, tuple[float, float]] = {}
        for order in self.orders():
            if order.filled_qty <= 0:
                continue
            qty, cost = book.get(order.symbol, (0.0, 0.0))
            signed = order.filled_qty if order.side == "buy" else -order.filled_qty
            book[order.symbol] = _apply_fill(qty, cost, signed, order.avg_fill_px or 0.0)[:2]
        return [
            BrokerPosition(symbol, qty, avg, self.quote(symbol))
            for symbol, (qty, avg) in sorted(book.items()) if abs(qty) > 1e-9
        ]

    def account(self) -> BrokerAccount:
        cash = self.settings.initial_cash
        for order in self.orders():
            if order.filled_qty > 0:
                sign = -1.0 if order.side == "buy" else 1.0
                cash += sign * order.filled_qty * (order.avg_fill_px or 0.0)
        value = sum(p.qty * (p.market_px if p.market_px is not None else p.avg_entry_px) for p in self.positions())
        return BrokerAccount(equity=cash + value, cash=cash, buying_power=max(0.0, cash + value))

    def close_position(self, symbol: str) -> BrokerOrder | None:
        held = {p.symbol: p for p in self.positions()}.get(symbol)
        if held is None:
            return None
        side: Side = "sell" if held.qty > 0 else "buy"
        client_order_id = f"close-{symbol}-{self.now:%Y%m%dT%H%M%S}"
        return self.submit_order(OrderRequest(client_order_id, symbol, side, abs(held.qty)))


def _apply_fill(qty: float, avg_px: float, signed_qty: float, px: float) -> tuple[float, float, float]:
    """Position after a fill: new quantity, new average cost, and the P&L the fill realized."""
    if qty == 0 or (qty > 0) == (signed_qty > 0):
        new_qty = qty + signed_qty
        return new_qty, (avg_px * qty + px * signed_qty) / new_qty, 0.0
    closing = min(abs(signed_qty), abs(qty)) * (1 if signed_qty < 0 else -1)
    realized = -closing * (px - avg_px)
    new_qty = qty + signed_qty
    if abs(new_qty) < 1e-9:
        return 0.0, 0.0, realized
    if (new_qty > 0) == (qty > 0):
        return new_qty, avg_px, realized
    return new_qty, px, realized


def _paper_order(row) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=row["client_order_id"], broker_order_id=f"paper-{row['seq']}", symbol=row["symbol"],
        side=row["side"], qty=row["qty"], filled_qty=row["filled_qty"], avg_fill_px=row["avg_fill_px"],
        status=row["status"], submitted_at=row["submitted_at"], reason=row["reason"],
    )


# ---- alpaca --------------------------------------------------------------------------------

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

    def __init__(self, settings: BrokerSettings):
        from alpaca.trading.client import TradingClient
        from requests.adapters import HTTPAdapter

        if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
            raise BrokerAuthError("the alpaca broker needs ALPACA_API_KEY and ALPACA_SECRET_KEY in the environment")
        self.settings = settings
        self.client = TradingClient(
            settings.alpaca_api_key.get_secret_value(), settings.alpaca_secret_key.get_secret_value(),
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


def make_broker(settings: BrokerSettings, quote: Quote, now: datetime) -> Broker:
    """The configured broker; `paper` needs nothing but the validated prices of the cycle."""
    if settings.name == "alpaca":
        return AlpacaBroker(settings)
    return PaperBroker(paper_engine(settings.paper_url), quote, now, settings)
