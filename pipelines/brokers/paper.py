"""The embedded `paper` broker: fills at the latest validated price, its book in its own SQL database."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from assets.calendar import sessions
from pipelines.settings import BrokerConfig
from pipelines.brokers.base import (
    BrokerAccount, BrokerOrder, BrokerPosition, MarketClock, OrderRejected, OrderRequest, Quote, Side,
    apply_fill,
)
from warehouse.ledger import PAPER_BOOK_HISTORY, UtcDateTime, upgrade

#: The book's shape as the code reads it; its schema is made and changed by the numbered
#: migrations in `warehouse/migrations/paper_book/`.
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
    """The paper broker's own database, apart from the ledger it is reconciled against, migrated to this code's schema."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)
    upgrade(engine, history=PAPER_BOOK_HISTORY)
    return engine


class PaperBroker:
    """Fills market orders at once against the latest validated bar, with slippage, partial fills and rejects.

    Each order's fate is drawn from a generator seeded by (seed, client order id), so a
    session replays identically whatever order the orders arrive in. The book lives in
    its own database, so it survives the process like a real broker does.
    """

    name = "paper"

    def __init__(self, engine: sa.Engine, quote: Quote, now: datetime, settings: BrokerConfig = BrokerConfig()):
        self.engine, self.quote, self.now = engine, quote, now
        self.settings = settings

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
            book[order.symbol] = apply_fill(qty, cost, signed, order.avg_fill_px or 0.0)[:2]
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


def _paper_order(row) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=row["client_order_id"], broker_order_id=f"paper-{row['seq']}", symbol=row["symbol"],
        side=row["side"], qty=row["qty"], filled_qty=row["filled_qty"], avg_fill_px=row["avg_fill_px"],
        status=row["status"], submitted_at=row["submitted_at"], reason=row["reason"],
    )
