"""The trading operations the flows and the CLI both call: one function per flow, over an open runtime."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from loguru import logger

from pipelines.brokers import BrokerError
from pipelines.trading.lifecycle import ReconcileReport, manage_orders, reconcile_trades, update_positions
from pipelines.trading.risk import Breach, monitor_portfolio_risk, record_breaches
from pipelines.trading.runtime import TradingRuntime
from pipelines.trading.strategy import CycleReport, book_state, cycle_id_at
from warehouse import ledger as tables
from warehouse.ledger import Ledger
from warehouse.validated import UnusableAssetError

__all__ = [
    "fail_cycle",
    "relay_alerts",
    "run_generate_risk_alerts",
    "run_manage_orders",
    "run_monitor_portfolio_risk",
    "run_pairs_cycle",
    "run_reconcile",
    "run_strategy_cycle",
    "run_update_positions",
]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run_pairs_cycle(runtime: TradingRuntime, now: datetime, dry_run: bool = False,
                    check_market: bool | None = None) -> CycleReport:
    """One pairs cycle: first the orders earlier cycles left unknown or half done, then the cycle, then
    (when it traded) the order lifecycle and positions of the same moment. A broker failure ends it
    as a `failed` cycle with one alert."""
    strategy = runtime.pairs(check_market)
    if dry_run:
        return strategy.run_cycle(now, dry_run=True)
    cycle_id = cycle_id_at(strategy.name, now)
    with runtime.ledger.exclusive(cycle_id) as held:
        if not held:  # the same hour started twice (a retry racing the scheduled run): one trades, one leaves
            logger.warning("cycle {} is running in another process; this one places nothing", cycle_id)
            return CycleReport(cycle_id, strategy.name, "skipped", "running in another process")
        try:
            run_manage_orders(runtime, now, skip_cycle=cycle_id)
            report = strategy.run_cycle(now)
            if report.status == "done":
                run_manage_orders(runtime, now)
                run_update_positions(runtime, now)
        except BrokerError as error:
            return fail_cycle(runtime.ledger, cycle_id, strategy.name, now, error)
    return report


def run_strategy_cycle(runtime: TradingRuntime, strategy: str, now: datetime, dry_run: bool = False) -> CycleReport:
    if strategy != "momentum":
        return run_pairs_cycle(runtime, now, dry_run)
    momentum = runtime.momentum()
    if dry_run:
        return momentum.run_cycle(now, dry_run=True)
    cycle_id = cycle_id_at(momentum.name, now, timedelta(days=1))
    try:
        run_manage_orders(runtime, now, skip_cycle=cycle_id)
        return momentum.run_cycle(now)
    except BrokerError as error:
        return fail_cycle(runtime.ledger, cycle_id, momentum.name, now, error)


def fail_cycle(ledger: Ledger, cycle_id: str, strategy: str, now: datetime, error: BrokerError) -> CycleReport:
    """A cycle the broker stopped: its row `failed` with the reason, one critical alert, no traceback.

    Orders it left with an unknown outcome stay `new`; the next cycle resolves them by client order id.
    """
    reason = str(error)
    logger.error("cycle {} failed: {}", cycle_id, reason)
    ledger.start_cycle(cycle_id, strategy, now, False)
    ledger.finish_cycle(cycle_id, "failed", reason, [], now)
    ledger.raise_alert(at=now, level="critical", source=f"{strategy}-cycle", subject=cycle_id,
                       message=f"cycle {cycle_id} failed: {reason}", cycle_id=cycle_id)
    return CycleReport(cycle_id, strategy, "failed", reason)


def run_manage_orders(runtime: TradingRuntime, now: datetime, skip_cycle: str | None = None) -> dict[str, int]:
    """Resolve orders whose outcome is unknown, refresh live ones, settle and repair pair trades."""
    prices, _ = _prices_or_last(runtime, now)
    return manage_orders(runtime.ledger, runtime.broker(prices, now), now,
                         timeout=timedelta(minutes=runtime.trading.order_timeout_minutes),
                         half_fill_rule=runtime.trading.half_fill_rule,  # type: ignore[arg-type]
                         grace=timedelta(minutes=runtime.trading.unknown_order_grace_minutes), skip_cycle=skip_cycle)


def run_update_positions(runtime: TradingRuntime, now: datetime) -> list[dict]:
    """Positions marked at validated prices; with unusable prices nothing is marked and an alert says why."""
    try:
        prices, bar_ts = runtime.validated_prices(now)
    except UnusableAssetError as unusable:
        runtime.ledger.raise_alert(at=now, level="warning", source="update-positions", subject=unusable.asset,
                                   message=f"positions not marked: {unusable}")
        return []
    broker = runtime.broker(prices, now)
    return update_positions(runtime.ledger, prices, now, bar_ts, cash=broker.account().cash)


def run_reconcile(runtime: TradingRuntime, now: datetime) -> ReconcileReport:
    """Ledger against broker both ways: orders, pair trades and positions; every difference alerted."""
    prices, _ = _prices_or_last(runtime, now)
    return reconcile_trades(runtime.ledger, runtime.broker(prices, now), now,
                            half_fill_rule=runtime.trading.half_fill_rule,  # type: ignore[arg-type]
                            grace=timedelta(minutes=runtime.trading.unknown_order_grace_minutes))


def run_monitor_portfolio_risk(runtime: TradingRuntime, now: datetime) -> list[Breach]:
    """Book-level limits as the book stands; every breach is a risk event and an alert."""
    prices, _ = _prices_or_last(runtime, now)
    state = book_state(runtime.ledger, runtime.broker(prices, now), prices, now)
    breaches = monitor_portfolio_risk(state, runtime.limits())
    record_breaches(runtime.ledger, breaches, at=now, verdict="breach", source="monitor-portfolio-risk")
    return breaches


def run_generate_risk_alerts(runtime: TradingRuntime, now: datetime, notifier=None) -> list[dict]:
    """Email every new fill and unacknowledged ledger alert (see `relay_alerts`); returns the alerts, newest first."""
    return relay_alerts(runtime.ledger, notifier or runtime.relay_notifier())[::-1]


#: The ledger control holding the last fill already emailed.
FILLS_EMAILED_THROUGH = "alerts_fills_emailed_through"


def relay_alerts(ledger, notifier) -> list[dict]:
    """Email what the desk must hear about, once: each new fill, then each unacknowledged ledger alert
    (risk breaches, blocked cycles, kill-switch changes, discrepancies), oldest first.

    A fill or alert is marked done only after the notifier has taken it: sent, queued for a
    retry while the relay is down, or held back as a repeat. A crash in between re-offers it,
    and the notifier's dedupe key makes the second offer a repeat, not a second email.
    """
    from pipelines.notify import ledger_alert, trade_alert

    emailed = ledger.rows(tables.controls, tables.controls.c.name == FILLS_EMAILED_THROUGH)
    through = int(emailed[0]["value"]) if emailed else 0
    for fill in ledger.rows(tables.fills, tables.fills.c.fill_id > through, order_by=tables.fills.c.fill_id):
        order = ledger.rows(tables.orders, tables.orders.c.client_order_id == fill["client_order_id"])
        notifier.send(trade_alert(fill["symbol"], fill["side"], fill["qty"], fill["px"], fill["client_order_id"],
                                  order[0]["strategy"] if order else "?", fill_key=fill["fill_key"]))
        with ledger.engine.begin() as connection:
            connection.execute(tables.controls.delete().where(tables.controls.c.name == FILLS_EMAILED_THROUGH))
            connection.execute(tables.controls.insert().values(
                name=FILLS_EMAILED_THROUGH, value=str(fill["fill_id"]), updated_at=utc_now()))
    pending = ledger.rows(tables.alerts, tables.alerts.c.is_acknowledged.is_(False), order_by=tables.alerts.c.alert_id)
    for alert in pending:
        logger.warning("[{}] {}: {}", alert["level"], alert["source"], alert["message"])
        if not alert["source"].startswith("notify:"):  # the notifier recorded those rows itself, after emailing
            notifier.send(ledger_alert(alert))
        with ledger.engine.begin() as connection:
            connection.execute(tables.alerts.update().where(tables.alerts.c.alert_id == alert["alert_id"])
                               .values(is_acknowledged=True))
    return pending


def _prices_or_last(runtime: TradingRuntime, now: datetime) -> tuple[dict[str, float], object]:
    """Validated prices when usable; otherwise the ledger's last marks (order status needs no fresh price)."""
    try:
        return runtime.validated_prices(now)
    except UnusableAssetError:
        marks = runtime.ledger.rows(tables.positions)
        return {m["symbol"]: m["market_px"] for m in marks if m["market_px"] is not None}, None


def cycle_rows(report: CycleReport) -> list[dict]:
    """A cycle's decisions as plain rows for a table or an artifact."""
    return [
        {"pair": d.pair_id, "signal": d.signal, "zscore": d.zscore, "action": d.action, "verdict": d.verdict,
         "reason": d.reason, "legs": ", ".join(f"{leg.symbol} {leg.signed_qty:+g} @ {leg.px:.2f}" for leg in d.legs),
         "weight_pct": d.weight_pct}
        for d in report.decisions
    ]


def versions_text(report: CycleReport) -> str:
    return ", ".join(f"{v['asset']}[{v['partition_key']}]={v['version_id']}" for v in report.versions)

