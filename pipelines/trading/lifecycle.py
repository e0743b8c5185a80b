"""After the orders: their lifecycle, half-filled pairs, positions and P&L, and reconciliation with the broker."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from loguru import logger

from pipelines.trading.brokers import Broker, BrokerUnavailable, _apply_fill
from pipelines.trading.execution import OrderIntent, place_order, sync_order
from warehouse import ledger as tables
from warehouse.ledger import TERMINAL_ORDER_STATUSES, Ledger

__all__ = [
    "Holding",
    "ReconcileReport",
    "holdings_from_fills",
    "manage_orders",
    "reconcile_trades",
    "settle_pair_trade",
    "update_positions",
]

HalfFillRule = Literal["unwind", "complete"]


@dataclass(frozen=True)
class Holding:
    strategy: str
    symbol: str
    qty: float
    avg_cost_px: float
    realized_pnl: float


def holdings_from_fills(ledger: Ledger) -> dict[tuple[str, str], Holding]:
    """Per (strategy, symbol): quantity, average cost and realized P&L, replayed from the recorded fills."""
    query = (
        sa.select(tables.orders.c.strategy, tables.fills.c.symbol, tables.fills.c.side, tables.fills.c.qty,
                  tables.fills.c.px)
        .join(tables.orders, tables.orders.c.client_order_id == tables.fills.c.client_order_id)
        .order_by(tables.fills.c.fill_id)
    )
    book: dict[tuple[str, str], tuple[float, float, float]] = {}
    with ledger.engine.connect() as connection:
        for strategy, symbol, side, qty, px in connection.execute(query):
            held, avg, realized = book.get((strategy, symbol), (0.0, 0.0, 0.0))
            held, avg, gained = _apply_fill(held, avg, qty if side == "buy" else -qty, px)
            book[(strategy, symbol)] = (held, avg, realized + gained)
    return {key: Holding(key[0], key[1], *value) for key, value in book.items()}


def settle_pair_trade(ledger: Ledger, pair_trade_id: str, now: datetime) -> dict:
    """Move a pair trade on once its orders are final: opening → open, closing → closed with its P&L."""
    trade = ledger.pair_trade(pair_trade_id)
    legs = ledger.orders_of_trade(pair_trade_id)
    if trade["status"] == "opening":
        opening = [o for o in legs if o["action"] in ("open", "complete")]
        if opening and all(o["status"] in TERMINAL_ORDER_STATUSES for o in opening):
            y_qty = _signed_filled(o for o in opening if o["leg"] == "y")
            x_qty = _signed_filled(o for o in opening if o["leg"] == "x")
            if abs(y_qty - trade["target_y_qty"]) < 1e-9 and abs(x_qty - trade["target_x_qty"]) < 1e-9:
                ledger.update_pair_trade(pair_trade_id, status="open", y_qty=y_qty, x_qty=x_qty,
                                         entry_y_px=_avg_px(o for o in opening if o["leg"] == "y"),
                                         entry_x_px=_avg_px(o for o in opening if o["leg"] == "x"))
    elif trade["status"] == "closing":
        closing = [o for o in legs if o["action"] in ("close", "unwind")]
        if closing and all(o["status"] == "filled" for o in closing):
            pnl = sum(_cash_flow(o) for o in legs if o["filled_qty"] > 0)
            exit_y = _avg_px(o for o in closing if o["leg"] == "y")
            exit_x = _avg_px(o for o in closing if o["leg"] == "x")
            status = "unwound" if any(o["action"] == "unwind" for o in closing) else "closed"
            ledger.update_pair_trade(pair_trade_id, status=status, realized_pnl=pnl, exit_y_px=exit_y,
                                     exit_x_px=exit_x, exit_ts=trade["exit_ts"] or now)
    return ledger.pair_trade(pair_trade_id)


def _signed_filled(orders) -> float:
    return sum(o["filled_qty"] if o["side"] == "buy" else -o["filled_qty"] for o in orders)


def _avg_px(orders) -> float | None:
    filled = [(o["filled_qty"], o["avg_fill_px"]) for o in orders if o["filled_qty"] > 0]
    qty = sum(q for q, _ in filled)
    return sum(q * p for q, p in filled) / qty if qty else None


def _cash_flow(order: dict) -> float:
    sign = -1.0 if order["side"] == "buy" else 1.0
    return sign * order["filled_qty"] * (order["avg_fill_px"] or 0.0)


def manage_orders(ledger: Ledger, broker: Broker, now: datetime, *, timeout: timedelta = timedelta(minutes=30),
                  half_fill_rule: HalfFillRule = "unwind", cycle_id: str | None = None) -> dict[str, int]:
    """Refresh every live order from the broker, cancel the rest of timed-out ones, then settle pair trades.

    A pair whose opening legs ended unequally filled is either unwound (the filled
    quantities are sold back, the trade ends `unwound`) or completed (the missing
    quantity of each leg is ordered again), by `half_fill_rule`.
    """
    counts: dict[str, int] = defaultdict(int)
    cycle_id = cycle_id or f"manage-{now:%Y%m%dT%H%M}"
    for row in ledger.active_orders():
        try:
            found = broker.get_order(row["client_order_id"])
            if found is None:
                if row["status"] == "new":
                    counts["unknown"] += 1  # a submit whose outcome the next cycle resolves
                    continue
                ledger.update_order(row["client_order_id"], status="expired", reason="unknown to the broker",
                                    updated_at=now)
                counts["expired"] += 1
                continue
            if not found.is_terminal and now - (row["submitted_at"] or row["created_at"]) >= timeout:
                found = broker.cancel_order(row["client_order_id"]) or found
                counts["cancelled_on_timeout"] += 1
            sync_order(ledger, found, now)
            counts[found.status] += 1
        except BrokerUnavailable as error:
            logger.warning("manage_orders: {} unavailable: {}", row["client_order_id"], error)
            counts["unavailable"] += 1
    for trade in ledger.live_pair_trades():
        settled = settle_pair_trade(ledger, trade["pair_trade_id"], now)
        if settled["status"] == "opening":
            _repair_half_fill(ledger, broker, settled, now, half_fill_rule, cycle_id, counts)
    return dict(counts)


def _repair_half_fill(ledger, broker, trade, now, rule, cycle_id, counts) -> None:
    legs = [o for o in ledger.orders_of_trade(trade["pair_trade_id"]) if o["action"] in ("open", "complete")]
    if not legs or any(o["status"] not in TERMINAL_ORDER_STATUSES for o in legs):
        return
    filled = {"y": _signed_filled(o for o in legs if o["leg"] == "y"),
              "x": _signed_filled(o for o in legs if o["leg"] == "x")}
    targets = {"y": trade["target_y_qty"], "x": trade["target_x_qty"]}
    symbols = {"y": trade["symbol_y"], "x": trade["symbol_x"]}
    ledger.raise_alert(at=now, level="warning", source="manage-orders", subject=trade["pair_id"],
                       message=f"pair trade {trade['pair_trade_id']} half filled (y {filled['y']:g}/{targets['y']:g}, "
                               f"x {filled['x']:g}/{targets['x']:g}): {rule}")
    if rule == "complete" and not any(o["action"] == "complete" for o in legs):
        for leg in ("y", "x"):
            missing = targets[leg] - filled[leg]
            if abs(missing) >= 1:
                place_order(ledger, broker, OrderIntent(
                    cycle_id, trade["strategy"], trade["pair_id"], leg, "complete", symbols[leg],
                    "buy" if missing > 0 else "sell", abs(missing), trade["pair_trade_id"]), now)
        counts["completed"] += 1
        settle_pair_trade(ledger, trade["pair_trade_id"], now)
        return
    ledger.update_pair_trade(trade["pair_trade_id"], status="closing", exit_reason="unwind", exit_ts=now,
                             y_qty=filled["y"], x_qty=filled["x"], closed_cycle_id=cycle_id)
    for leg in ("y", "x"):
        if abs(filled[leg]) > 1e-9:
            place_order(ledger, broker, OrderIntent(
                cycle_id, trade["strategy"], trade["pair_id"], leg, "unwind", symbols[leg],
                "sell" if filled[leg] > 0 else "buy", abs(filled[leg]), trade["pair_trade_id"]), now)
    if all(abs(v) <= 1e-9 for v in filled.values()):
        ledger.update_pair_trade(trade["pair_trade_id"], status="unwound", realized_pnl=0.0)
    else:
        settle_pair_trade(ledger, trade["pair_trade_id"], now)
    counts["unwound"] += 1


def update_positions(ledger: Ledger, prices: dict[str, float], now: datetime, bar_ts: datetime | None = None,
                     cash: float | None = None) -> list[dict]:
    """Positions replayed from fills and marked at validated prices; each live pair trade marked too."""
    rows = []
    for holding in holdings_from_fills(ledger).values():
        px = prices.get(holding.symbol)
        rows.append(dict(
            strategy=holding.strategy, symbol=holding.symbol, qty=holding.qty, avg_cost_px=holding.avg_cost_px,
            realized_pnl=holding.realized_pnl, market_px=px, updated_at=now,
            unrealized_pnl=None if px is None else holding.qty * (px - holding.avg_cost_px),
        ))
    ledger.replace_positions(rows)
    mark_ts = bar_ts or now
    for trade in ledger.rows(tables.pair_trades):
        legs = [o for o in ledger.orders_of_trade(trade["pair_trade_id"]) if o["filled_qty"] > 0]
        if not legs:
            continue
        held_y, held_x = _signed_filled(o for o in legs if o["leg"] == "y"), _signed_filled(o for o in legs if o["leg"] == "x")
        px_y, px_x = prices.get(trade["symbol_y"]), prices.get(trade["symbol_x"])
        if (held_y and px_y is None) or (held_x and px_x is None):
            continue
        pnl = sum(_cash_flow(o) for o in legs) + held_y * (px_y or 0.0) + held_x * (px_x or 0.0)
        is_live = trade["status"] in ("opening", "open", "closing")
        last = ledger.rows(tables.pair_marks, tables.pair_marks.c.pair_trade_id == trade["pair_trade_id"],
                           order_by=tables.pair_marks.c.bar_ts.desc())
        if is_live or not last or last[0]["is_in_market"]:
            ledger.upsert_pair_mark(pair_trade_id=trade["pair_trade_id"], strategy=trade["strategy"],
                                    pair_id=trade["pair_id"], bar_ts=mark_ts,
                                    pnl=trade["realized_pnl"] if not is_live and trade["realized_pnl"] is not None else pnl,
                                    is_in_market=is_live)
    if cash is not None:
        value = sum(r["qty"] * (r["market_px"] or r["avg_cost_px"]) for r in rows)
        gross = sum(abs(r["qty"] * (r["market_px"] or r["avg_cost_px"])) for r in rows)
        ledger.upsert_account_mark(marked_at=mark_ts, equity=cash + value, cash=cash, gross_exposure=gross,
                                   net_exposure=value)
    return rows


@dataclass
class ReconcileReport:
    discrepancies: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)


def reconcile_trades(ledger: Ledger, broker: Broker, now: datetime) -> ReconcileReport:
    """Compare the ledger's orders and positions with the broker's; record and alert every difference.

    Safe repairs: an order whose status or fills lag the broker takes the broker's view;
    an order the broker holds under one of our client ids but the ledger lacks is adopted.
    Position differences are only reported: a person decides.
    """
    report = ReconcileReport()
    known = {row["client_order_id"]: row for row in ledger.rows(tables.orders)}
    for order in broker.orders():
        row = known.get(order.client_order_id)
        if row is None:
            if order.client_order_id.startswith("q-"):
                ledger.insert_order(dict(
                    client_order_id=order.client_order_id, cycle_id="reconcile", strategy="unknown", leg="?",
                    action="adopted", symbol=order.symbol, side=order.side, qty=order.qty, filled_qty=0.0,
                    status="new", created_at=now, updated_at=now))
                sync_order(ledger, order, now)
                _discrepancy(ledger, report, now, "order_missing_in_ledger", order.symbol,
                             f"broker order {order.client_order_id} was not in the ledger: adopted", repaired=True)
            continue
        if row["status"] != order.status or abs(row["filled_qty"] - order.filled_qty) > 1e-9:
            sync_order(ledger, order, now)
            _discrepancy(ledger, report, now, "order_state", order.symbol,
                         f"order {order.client_order_id}: ledger {row['status']} {row['filled_qty']:g} filled, "
                         f"broker {order.status} {order.filled_qty:g}: took the broker's", repaired=True)
    ours: dict[str, float] = defaultdict(float)
    for holding in holdings_from_fills(ledger).values():
        ours[holding.symbol] += holding.qty
    theirs = {p.symbol: p.qty for p in broker.positions()}
    for symbol in sorted(set(ours) | set(theirs)):
        mine, broker_qty = ours.get(symbol, 0.0), theirs.get(symbol, 0.0)
        if abs(mine - broker_qty) > 1e-9:
            _discrepancy(ledger, report, now, "position", symbol,
                         f"{symbol}: ledger holds {mine:g}, broker holds {broker_qty:g}", repaired=False)
    return report


def _discrepancy(ledger, report, now, rule, symbol, message, *, repaired: bool) -> None:
    report.discrepancies.append(message)
    if repaired:
        report.repaired.append(message)
    ledger.record_risk_event(at=now, rule=f"reconcile_{rule}", verdict="repaired" if repaired else "discrepancy",
                             reason=message, symbol=symbol)
    ledger.raise_alert(at=now, level="warning" if repaired else "critical", source="reconcile-trades",
                       subject=symbol, message=message)
