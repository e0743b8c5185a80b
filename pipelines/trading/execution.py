"""Order placement that can be retried: deterministic client order ids, looked up before any submit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from loguru import logger

from pipelines.brokers import Broker, BrokerError, BrokerOrder, OrderRejected, OrderRequest
from warehouse.ledger import Ledger

__all__ = ["OrderIntent", "client_order_id", "place_order", "sync_order"]


def client_order_id(cycle_id: str, subject: str, leg: str, action: str) -> str:
    """The one id an order of (cycle, pair, leg, action) can have, so a re-run finds it instead of doubling it."""
    clean = re.sub(r"[^A-Za-z0-9]+", ".", subject)
    return f"q-{cycle_id}-{clean}-{leg}-{action}"[:128]


@dataclass(frozen=True)
class OrderIntent:
    """An order the strategy wants, with what the ledger files it under."""

    cycle_id: str
    strategy: str
    subject: str
    leg: str
    action: str
    symbol: str
    side: str
    qty: float
    pair_trade_id: str | None = None

    @property
    def client_order_id(self) -> str:
        return client_order_id(self.cycle_id, self.subject, self.leg, self.action)


def place_order(ledger: Ledger, broker: Broker, intent: OrderIntent, now: datetime) -> dict:
    """Submit an order at most once, whatever crashed or timed out before.

    The ledger row is written first (status `new`), then the broker is asked for the client
    order id, and only when it has never seen it is the order submitted. A crash or an
    unknown outcome anywhere leaves a `new` row: the retried cycle resolves it the same way,
    and a later cycle resolves it by lookup (`lifecycle.resolve_unknown_orders`).
    """
    cid = intent.client_order_id
    row = ledger.order(cid)
    if row is not None and row["status"] != "new":
        return row
    if row is None:
        ledger.insert_order(dict(
            client_order_id=cid, cycle_id=intent.cycle_id, strategy=intent.strategy, pair_id=intent.subject,
            pair_trade_id=intent.pair_trade_id, leg=intent.leg, action=intent.action, symbol=intent.symbol,
            side=intent.side, qty=intent.qty, filled_qty=0.0, status="new", created_at=now, updated_at=now,
        ))
    existing = broker.get_order(cid)
    if existing is None:
        try:
            existing = broker.submit_order(OrderRequest(cid, intent.symbol, intent.side, intent.qty))  # type: ignore[arg-type]
        except OrderRejected as rejected:
            ledger.update_order(cid, status="rejected", reason=str(rejected), updated_at=now)
            logger.warning("order {} rejected: {}", cid, rejected)
            return ledger.order(cid)
        except BrokerError as unknown:
            ledger.update_order(cid, reason=f"submit outcome unknown: {unknown}", updated_at=now)
            raise
    return sync_order(ledger, existing, now)


def sync_order(ledger: Ledger, order: BrokerOrder, now: datetime) -> dict:
    """Bring the ledger's order and fills up to the broker's view; fills are recorded once each."""
    row = ledger.order(order.client_order_id)
    if row is None:
        raise KeyError(f"order {order.client_order_id} is not in the ledger")
    new_fill = order.filled_qty - row["filled_qty"]
    if new_fill > 1e-9 and order.avg_fill_px is not None:
        previous_cost = row["filled_qty"] * (row["avg_fill_px"] or 0.0)
        fill_px = (order.filled_qty * order.avg_fill_px - previous_cost) / new_fill
        ledger.record_fill(
            client_order_id=order.client_order_id, fill_key=f"{order.client_order_id}@{order.filled_qty:g}",
            symbol=order.symbol, side=order.side, qty=new_fill, px=fill_px, filled_at=now,
        )
    ledger.update_order(
        order.client_order_id, broker_order_id=order.broker_order_id, status=order.status,
        filled_qty=order.filled_qty, avg_fill_px=order.avg_fill_px, reason=order.reason or row["reason"],
        submitted_at=row["submitted_at"] or order.submitted_at or now, updated_at=now,
    )
    return ledger.order(order.client_order_id)
