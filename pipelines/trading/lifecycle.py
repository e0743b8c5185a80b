"""After the orders: their lifecycle, half-filled pairs, positions and P&L, and reconciliation with the broker."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from loguru import logger

from pipelines.brokers import Broker, BrokerUnavailable, apply_fill
from pipelines.trading.execution import OrderIntent, client_order_id, place_order, sync_order
from warehouse import ledger as tables
from warehouse.ledger import ACTIVE_ORDER_STATUSES, TERMINAL_ORDER_STATUSES, Ledger

__all__ = [
    "Holding",
    "ReconcileReport",
    "holdings_from_fills",
    "manage_orders",
    "owned_quantities",
    "reconcile_trades",
    "resolve_unknown_orders",
    "settle_live_trades",
    "settle_pair_trade",
    "update_positions",
]

HalfFillRule = Literal["unwind", "complete"]
#: How long an order may stay unknown to the broker before it counts as never submitted.
UNKNOWN_GRACE = timedelta(minutes=5)


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
            held, avg, gained = apply_fill(held, avg, qty if side == "buy" else -qty, px)
            book[(strategy, symbol)] = (held, avg, realized + gained)
    return {key: Holding(key[0], key[1], *value) for key, value in book.items()}


def settle_pair_trade(ledger: Ledger, pair_trade_id: str, now: datetime) -> dict:
    """Move a pair trade on from its legs once none is live; settled again whenever a leg's state changes.

    Without exit orders: both legs at target → `open`; nothing filled → `cancelled` (the pair
    is free again); anything between stays `opening` for `manage_orders` to unwind or complete.
    With exit orders: flat → `closed` (or `unwound`) with its P&L. A trade settled earlier whose
    legs now leave shares held (the broker filled what the ledger had given up on) goes back
    to `open` or `closing`, with a critical alert, so nothing stays held without a live trade.
    """
    trade = ledger.pair_trade(pair_trade_id)
    legs = ledger.orders_of_trade(pair_trade_id)
    if trade is None or not legs or any(o["status"] not in TERMINAL_ORDER_STATUSES for o in legs):
        return trade
    held_y = _signed_filled(o for o in legs if o["leg"] == "y")
    held_x = _signed_filled(o for o in legs if o["leg"] == "x")
    exits = [o for o in legs if o["action"] in ("close", "unwind")]
    was = trade["status"]
    if not exits:
        if abs(held_y - trade["target_y_qty"]) < 1e-9 and abs(held_x - trade["target_x_qty"]) < 1e-9:
            if was != "open":
                ledger.update_pair_trade(pair_trade_id, status="open", y_qty=held_y, x_qty=held_x,
                                         entry_y_px=_avg_px(o for o in legs if o["leg"] == "y"),
                                         entry_x_px=_avg_px(o for o in legs if o["leg"] == "x"))
        elif abs(held_y) < 1e-9 and abs(held_x) < 1e-9:
            if was != "cancelled":
                ledger.update_pair_trade(pair_trade_id, status="cancelled", exit_reason="not_filled",
                                         realized_pnl=0.0, exit_ts=trade["exit_ts"] or now)
                logger.info("pair trade {} released: no leg filled ({})", pair_trade_id,
                            ", ".join(f"{o['leg']} {o['status']}" for o in legs))
        elif was != "opening":
            ledger.update_pair_trade(pair_trade_id, status="opening")
        _alert_if_revived(ledger, trade, was, held_y, held_x, now)
        return ledger.pair_trade(pair_trade_id)
    if abs(held_y) < 1e-9 and abs(held_x) < 1e-9:
        status = "unwound" if any(o["action"] == "unwind" for o in exits) else "closed"
        if was != status:
            ledger.update_pair_trade(pair_trade_id, status=status, realized_pnl=sum(_cash_flow(o) for o in legs),
                                     exit_y_px=_avg_px(o for o in exits if o["leg"] == "y"),
                                     exit_x_px=_avg_px(o for o in exits if o["leg"] == "x"),
                                     exit_ts=trade["exit_ts"] or now)
    elif was not in ("open", "closing"):
        ledger.update_pair_trade(pair_trade_id, status="closing", exit_reason="unwind", y_qty=held_y, x_qty=held_x)
        _alert_if_revived(ledger, trade, was, held_y, held_x, now)
    return ledger.pair_trade(pair_trade_id)


def _alert_if_revived(ledger: Ledger, trade: dict, was: str, held_y: float, held_x: float, now: datetime) -> None:
    """A trade given up on (cancelled, unwound, closed) that the broker's fills bring back is news for a person."""
    if was in ("cancelled", "unwound", "closed") and (abs(held_y) > 1e-9 or abs(held_x) > 1e-9):
        ledger.raise_alert(at=now, level="critical", source="order-lifecycle", subject=trade["pair_id"],
                           message=f"pair trade {trade['pair_trade_id']} was {was} but the broker filled its legs "
                                   f"(y {held_y:+g}, x {held_x:+g}): settled again")


def _signed_filled(orders) -> float:
    return sum(o["filled_qty"] if o["side"] == "buy" else -o["filled_qty"] for o in orders)


def _avg_px(orders) -> float | None:
    filled = [(o["filled_qty"], o["avg_fill_px"]) for o in orders if o["filled_qty"] > 0]
    qty = sum(q for q, _ in filled)
    return sum(q * p for q, p in filled) / qty if qty else None


def _cash_flow(order: dict) -> float:
    sign = -1.0 if order["side"] == "buy" else 1.0
    return sign * order["filled_qty"] * (order["avg_fill_px"] or 0.0)


def resolve_unknown_orders(ledger: Ledger, broker: Broker, now: datetime, *, grace: timedelta = UNKNOWN_GRACE,
                           skip_cycle: str | None = None) -> dict[str, int]:
    """Give every order whose submit outcome is unknown (`new`) a known state, by client order id.

    Found at the broker → adopted with its fills. Still unknown to the broker `grace` after it
    was written → `not_submitted` (final; its pair trade is then re-settled and, with no leg
    filled, released). Orders of `skip_cycle` belong to a cycle that is resuming them itself.
    """
    counts: dict[str, int] = defaultdict(int)
    for row in ledger.rows(tables.orders, tables.orders.c.status == "new", order_by=tables.orders.c.order_id):
        cid = row["client_order_id"]
        if skip_cycle is not None and row["cycle_id"] == skip_cycle:
            continue
        try:
            found = broker.get_order(cid)
        except BrokerUnavailable as error:
            logger.warning("order {} still unknown: {}", cid, error)
            counts["unknown"] += 1
            continue
        if found is not None:
            sync_order(ledger, found, now)
            counts["adopted"] += 1
        elif now - row["created_at"] >= grace:
            reason = f"not found at the broker by client order id {grace.total_seconds() / 60:g} min after it was sent"
            ledger.update_order(cid, status="not_submitted", reason=f"{reason} ({row['reason'] or 'no answer'})",
                                updated_at=now)
            ledger.raise_alert(at=now, level="warning", source="order-lifecycle",
                               subject=row["pair_id"] or row["symbol"],
                               message=f"order {cid} ({row['side']} {row['qty']:g} {row['symbol']}) never reached "
                                       f"the broker: marked not_submitted", cycle_id=row["cycle_id"])
            counts["not_submitted"] += 1
        else:
            counts["unknown"] += 1
            continue
        if row["pair_trade_id"]:
            settle_pair_trade(ledger, row["pair_trade_id"], now)
    return dict(counts)


def manage_orders(ledger: Ledger, broker: Broker, now: datetime, *, timeout: timedelta = timedelta(minutes=30),
                  half_fill_rule: HalfFillRule = "unwind", cycle_id: str | None = None,
                  grace: timedelta = UNKNOWN_GRACE, skip_cycle: str | None = None) -> dict[str, int]:
    """Resolve unknown orders, refresh every live order from the broker, cancel the rest of timed-out
    ones, then settle pair trades and repair the half-filled ones.

    A pair whose opening legs ended unequally filled is either unwound (the filled
    quantities are sold back, the trade ends `unwound`) or completed (the missing
    quantity of each leg is ordered again), by `half_fill_rule`. Orders and trades of
    `skip_cycle` (the cycle about to resume them) are left to it.
    """
    counts: dict[str, int] = defaultdict(int, resolve_unknown_orders(ledger, broker, now, grace=grace,
                                                                      skip_cycle=skip_cycle))
    cycle_id = cycle_id or f"manage-{now:%Y%m%dT%H%M}"
    for row in ledger.active_orders():
        if row["status"] == "new":
            continue  # resolved above, or its outcome is still unknown
        try:
            found = broker.get_order(row["client_order_id"])
            if found is None:
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
    settle_live_trades(ledger, broker, now, half_fill_rule=half_fill_rule, cycle_id=cycle_id, counts=counts,
                       skip_cycle=skip_cycle)
    return dict(counts)


def settle_live_trades(ledger: Ledger, broker: Broker, now: datetime, *, half_fill_rule: HalfFillRule, cycle_id: str,
                       counts: dict[str, int], skip_cycle: str | None = None) -> None:
    """Settle every live pair trade; unwind or complete the half-filled, dispose of what a failed exit left."""
    for trade in ledger.live_pair_trades():
        if skip_cycle is not None and skip_cycle in (trade["opened_cycle_id"], trade["closed_cycle_id"]):
            continue
        settled = settle_pair_trade(ledger, trade["pair_trade_id"], now)
        if settled["status"] == "opening":
            _repair_half_fill(ledger, broker, settled, now, half_fill_rule, cycle_id, counts)
        elif settled["status"] == "closing":
            _repair_failed_exit(ledger, broker, settled, now, cycle_id, counts)


def _repair_failed_exit(ledger, broker, trade, now, cycle_id, counts) -> None:
    """Exit orders all final yet shares still held: a plain close goes back to `open` (the next cycle
    decides again); an unwind orders the rest away."""
    legs = ledger.orders_of_trade(trade["pair_trade_id"])
    if not legs or any(o["status"] not in TERMINAL_ORDER_STATUSES for o in legs):
        return
    held = {"y": _signed_filled(o for o in legs if o["leg"] == "y"),
            "x": _signed_filled(o for o in legs if o["leg"] == "x")}
    if all(abs(v) <= 1e-9 for v in held.values()):
        return
    if trade["exit_reason"] != "unwind":
        ledger.update_pair_trade(trade["pair_trade_id"], status="open", y_qty=held["y"], x_qty=held["x"],
                                 closed_cycle_id=None)
        ledger.raise_alert(at=now, level="warning", source="manage-orders", subject=trade["pair_id"],
                           message=f"pair trade {trade['pair_trade_id']} did not close (y {held['y']:+g}, "
                                   f"x {held['x']:+g} still held): open again")
        counts["reopened"] += 1
        return
    ledger.raise_alert(at=now, level="warning", source="manage-orders", subject=trade["pair_id"],
                       message=f"pair trade {trade['pair_trade_id']} still holds y {held['y']:+g}, x {held['x']:+g}: "
                               f"unwinding the rest")
    symbols = {"y": trade["symbol_y"], "x": trade["symbol_x"]}
    for leg, qty in held.items():
        if abs(qty) > 1e-9:
            place_order(ledger, broker, OrderIntent(
                cycle_id, trade["strategy"], trade["pair_id"], leg, "unwind", symbols[leg],
                "sell" if qty > 0 else "buy", abs(qty), trade["pair_trade_id"]), now)
    settle_pair_trade(ledger, trade["pair_trade_id"], now)
    counts["unwound"] += 1


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


def reconcile_trades(ledger: Ledger, broker: Broker, now: datetime, *, half_fill_rule: HalfFillRule = "unwind",
                     grace: timedelta = UNKNOWN_GRACE, lookback: timedelta = timedelta(days=7)) -> ReconcileReport:
    """Compare the ledger with the broker both ways; record and alert every difference, repair the safe ones.

    Orders: unknown (`new`) ones are resolved by client order id; broker orders under our ids
    that the ledger lacks are adopted (filed under their pair trade when the id names one); a
    ledger order whose state lags the broker takes the broker's; a live ledger order the broker
    does not know is reported. Each pair trade whose legs changed is settled again (and a
    half-filled one unwound or completed). Positions: per symbol, the ledger's fills against the
    broker's book, and every broker position not held by a live pair trade or a single-leg
    strategy is a critical alert, raised again on every run until it is closed or adopted.
    """
    report = ReconcileReport()
    touched: set[str] = set()
    resolved = resolve_unknown_orders(ledger, broker, now, grace=grace)
    for verdict, count in resolved.items():
        if verdict in ("adopted", "not_submitted"):
            _discrepancy(ledger, report, now, f"order_{verdict}", None,
                         f"{count} order(s) whose submit outcome was unknown: {verdict.replace('_', ' ')}", repaired=True)
    known = {row["client_order_id"]: row for row in ledger.rows(tables.orders)}
    at_broker = broker.orders()
    for order in at_broker:
        row = known.get(order.client_order_id)
        if row is None:
            if order.client_order_id.startswith("q-"):
                trade, cycle, leg, action = _trade_named_by(ledger, order.client_order_id)
                ledger.insert_order(dict(
                    client_order_id=order.client_order_id, cycle_id=cycle,
                    strategy=trade["strategy"] if trade else "unknown", pair_id=trade["pair_id"] if trade else None,
                    pair_trade_id=trade["pair_trade_id"] if trade else None, leg=leg, action=action or "adopted",
                    symbol=order.symbol, side=order.side, qty=order.qty, filled_qty=0.0, status="new",
                    created_at=now, updated_at=now))
                sync_order(ledger, order, now)
                if trade:
                    touched.add(trade["pair_trade_id"])
                filed = f"under pair trade {trade['pair_trade_id']}" if trade else "under no pair trade"
                _discrepancy(ledger, report, now, "order_missing_in_ledger", order.symbol,
                             f"broker order {order.client_order_id} was not in the ledger: adopted {filed}",
                             repaired=True)
            continue
        if row["status"] != order.status or abs(row["filled_qty"] - order.filled_qty) > 1e-9:
            sync_order(ledger, order, now)
            if row["pair_trade_id"]:
                touched.add(row["pair_trade_id"])
            _discrepancy(ledger, report, now, "order_state", order.symbol,
                         f"order {order.client_order_id}: ledger {row['status']} {row['filled_qty']:g} filled, "
                         f"broker {order.status} {order.filled_qty:g}: took the broker's", repaired=True)
    listed = {order.client_order_id for order in at_broker}
    for row in ledger.rows(tables.orders, tables.orders.c.status.in_(sorted(ACTIVE_ORDER_STATUSES - {"new"})),
                           tables.orders.c.created_at >= now - lookback):
        if row["client_order_id"] not in listed and broker.get_order(row["client_order_id"]) is None:
            ledger.update_order(row["client_order_id"], status="expired", reason="unknown to the broker", updated_at=now)
            if row["pair_trade_id"]:
                touched.add(row["pair_trade_id"])
            _discrepancy(ledger, report, now, "order_missing_at_broker", row["symbol"],
                         f"ledger order {row['client_order_id']} ({row['status']}) is unknown to the broker: expired",
                         repaired=False)
    for pair_trade_id in sorted(touched):
        settle_pair_trade(ledger, pair_trade_id, now)
    settle_live_trades(ledger, broker, now, half_fill_rule=half_fill_rule, cycle_id=f"reconcile-{now:%Y%m%dT%H%M}",
                       counts=defaultdict(int))
    _reconcile_positions(ledger, broker, now, report)
    return report


def _reconcile_positions(ledger: Ledger, broker: Broker, now: datetime, report: ReconcileReport) -> None:
    ours: dict[str, float] = defaultdict(float)
    for holding in holdings_from_fills(ledger).values():
        ours[holding.symbol] += holding.qty
    theirs = {p.symbol: p.qty for p in broker.positions()}
    for symbol in sorted(set(ours) | set(theirs)):
        mine, broker_qty = ours.get(symbol, 0.0), theirs.get(symbol, 0.0)
        if abs(mine - broker_qty) > 1e-9:
            _discrepancy(ledger, report, now, "position", symbol,
                         f"{symbol}: ledger holds {mine:g}, broker holds {broker_qty:g}", repaired=False)
    owned = owned_quantities(ledger)
    for symbol, broker_qty in sorted(theirs.items()):
        unowned = broker_qty - owned.get(symbol, 0.0)
        if abs(unowned) > 1e-9:
            _discrepancy(ledger, report, now, "position_unowned", symbol,
                         f"{symbol}: the broker holds {broker_qty:g}, of which {unowned:+g} belongs to no live pair "
                         f"trade; close it at the broker or adopt it", repaired=False)


def owned_quantities(ledger: Ledger) -> dict[str, float]:
    """Shares per symbol a live trade accounts for: the legs of open, opening and closing pair trades,
    plus single-leg strategies' holdings (orders filed under no pair trade by a known strategy)."""
    owned: dict[str, float] = defaultdict(float)
    for trade in ledger.live_pair_trades():
        for order in ledger.orders_of_trade(trade["pair_trade_id"]):
            owned[order["symbol"]] += order["filled_qty"] if order["side"] == "buy" else -order["filled_qty"]
    single = sa.select(tables.orders.c.symbol, tables.orders.c.side, tables.orders.c.filled_qty).where(
        tables.orders.c.pair_trade_id.is_(None), tables.orders.c.strategy != "unknown")
    with ledger.engine.connect() as connection:
        for symbol, side, filled in connection.execute(single):
            owned[symbol] += (filled or 0.0) if side == "buy" else -(filled or 0.0)
    return dict(owned)


def _trade_named_by(ledger: Ledger, cid: str) -> tuple[dict | None, str, str, str | None]:
    """The pair trade, leg and action a client order id names, when it is one of ours (`q-<cycle>-<pair>-<leg>-<action>`)."""
    for trade in ledger.rows(tables.pair_trades):
        for cycle in {trade["opened_cycle_id"], trade["closed_cycle_id"]} - {None}:
            for leg in ("y", "x"):
                for action in ("open", "close"):
                    if client_order_id(cycle, trade["pair_id"], leg, action) == cid:
                        return trade, cycle, leg, action
    return None, "reconcile", "?", None


def _discrepancy(ledger, report, now, rule, symbol, message, *, repaired: bool) -> None:
    report.discrepancies.append(message)
    if repaired:
        report.repaired.append(message)
    ledger.record_risk_event(at=now, rule=f"reconcile_{rule}", verdict="repaired" if repaired else "discrepancy",
                             reason=message, symbol=symbol)
    ledger.raise_alert(at=now, level="warning" if repaired else "critical", source="reconcile-trades",
                       subject=symbol, message=message)
