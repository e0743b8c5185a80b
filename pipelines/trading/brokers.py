"""Brokers behind one small protocol: the embedded `paper` broker and Alpaca's paper trading API."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, Protocol

import sqlalchemy as sa
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import IntegrityError

from assets.calendar import sessions
from warehouse.ledger import UtcDateTime

__all__ = [
    "AlpacaBroker",
    "BrokerAccount",
    "BrokerError",
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
TERMINAL = frozenset({"filled", "cancelled", "expired", "rejected"})


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
    retry_wait_seconds: int = Field(3, ge=0)


class BrokerError(RuntimeError):
    """The broker refused or failed an operation."""


class OrderRejected(BrokerError):
    """The broker answered and refused the order: final, never retried."""


class BrokerUnavailable(BrokerError):
    """The broker did not answer (timeout, connection, 5xx): the order's fate is unknown until looked up."""


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
        return self.status in TERMINAL


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
            raise OrderRejected(f"client order id {request.client_order_id} already exists") from None
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


class AlpacaBroker:
    """Alpaca's trading API through alpaca-py's `TradingClient` (paper endpoint unless overridden).

    alpaca-py sends requests with no timeout and sleeps a fixed 3 s between 429 retries; the
    session gets the configured timeout and the client the configured retry wait. A submit
    that times out may still have reached Alpaca, so it is looked up by client order id
    before anyone may submit it again.
    """

    name = "alpaca"

    def __init__(self, settings: BrokerSettings):
        from alpaca.trading.client import TradingClient
        from requests.adapters import HTTPAdapter

        if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
            raise BrokerError("the alpaca broker needs ALPACA_API_KEY and ALPACA_SECRET_KEY in the environment")
        self.client = TradingClient(
            settings.alpaca_api_key.get_secret_value(), settings.alpaca_secret_key.get_secret_value(),
            paper=True, url_override=settings.alpaca_url,
        )
        timeout = settings.http_timeout_seconds

        class TimeoutAdapter(HTTPAdapter):
            def send(self, request, **kwargs):
                kwargs["timeout"] = kwargs.get("timeout") or timeout
                return super().send(request, **kwargs)

        for prefix in ("https://", "http://"):
            self.client._session.mount(prefix, TimeoutAdapter())
        self.client._retry_wait = settings.retry_wait_seconds

    def _call(self, what: str, call):
        import requests
        from alpaca.common.exceptions import APIError

        try:
            return call()
        except APIError as error:
            status = error.status_code
            if status is not None and status >= 500 or status == 429:
                raise BrokerUnavailable(f"alpaca {what}: HTTP {status}: {error}") from error
            raise OrderRejected(f"alpaca {what}: HTTP {status}: {_api_message(error)}") from error
        except requests.RequestException as error:
            raise BrokerUnavailable(f"alpaca {what}: {type(error).__name__}: {error}") from error

    def clock(self, now: datetime) -> MarketClock:
        clock = self._call("clock", self.client.get_clock)
        return MarketClock(clock.is_open, clock.timestamp, clock.next_open, clock.next_close)

    def account(self) -> BrokerAccount:
        account = self._call("account", self.client.get_account)
        return BrokerAccount(float(account.equity), float(account.cash), float(account.buying_power))

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        order = MarketOrderRequest(
            symbol=request.symbol, qty=request.qty, side=OrderSide.BUY if request.side == "buy" else OrderSide.SELL,
            time_in_force=TimeInForce.DAY, client_order_id=request.client_order_id,
        )
        try:
            return _alpaca_order(self._call(f"submit {request.client_order_id}", lambda: self.client.submit_order(order)))
        except BrokerUnavailable:
            existing = self.get_order(request.client_order_id)
            if existing is not None:
                return existing
            raise

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        try:
            found = self._call(f"get {client_order_id}", lambda: self.client.get_order_by_client_id(client_order_id))
        except OrderRejected as error:
            if "HTTP 404" in str(error):
                return None
            raise
        return _alpaca_order(found)

    def orders(self) -> list[BrokerOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        found = self._call("orders", lambda: self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)))
        return [_alpaca_order(o) for o in found]

    def cancel_order(self, client_order_id: str) -> BrokerOrder | None:
        found = self.get_order(client_order_id)
        if found is None or found.is_terminal:
            return found
        self._call(f"cancel {client_order_id}", lambda: self.client.cancel_order_by_id(found.broker_order_id))
        return self.get_order(client_order_id)

    def positions(self) -> list[BrokerPosition]:
        found = self._call("positions", self.client.get_all_positions)
        return [
            BrokerPosition(p.symbol, float(p.qty), float(p.avg_entry_price),
                           float(p.current_price) if p.current_price is not None else None)
            for p in found
        ]

    def close_position(self, symbol: str) -> BrokerOrder | None:
        return _alpaca_order(self._call(f"close {symbol}", lambda: self.client.close_position(symbol)))


def _api_message(error) -> str:
    try:
        return error.message
    except Exception:
        return str(error)


def _alpaca_order(order) -> BrokerOrder:
    status = getattr(order.status, "value", str(order.status))
    side = getattr(order.side, "value", str(order.side))
    return BrokerOrder(
        client_order_id=order.client_order_id, broker_order_id=str(order.id), symbol=order.symbol, side=side,
        qty=float(order.qty or 0), filled_qty=float(order.filled_qty or 0),
        avg_fill_px=float(order.filled_avg_price) if order.filled_avg_price is not None else None,
        status=_ALPACA_STATUS.get(status, "accepted"),
        submitted_at=order.submitted_at.astimezone(timezone.utc) if order.submitted_at else None,
    )


def make_broker(settings: BrokerSettings, quote: Quote, now: datetime) -> Broker:
    """The configured broker; `paper` needs nothing but the validated prices of the cycle."""
    if settings.name == "alpaca":
        return AlpacaBroker(settings)
    return PaperBroker(paper_engine(settings.paper_url), quote, now, settings)
