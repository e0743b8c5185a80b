"""The Broker protocol, its order, position and account types and errors, and what a fill does to a position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from warehouse.ledger import TERMINAL_ORDER_STATUSES

Side = Literal["buy", "sell"]
Quote = Callable[[str], "float | None"]


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


def apply_fill(qty: float, avg_px: float, signed_qty: float, px: float) -> tuple[float, float, float]:
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
