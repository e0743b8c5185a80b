"""Strategies that trade from validated assets: intraday pairs on `pair_signals`, daily momentum on `indicators_daily`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

import numpy as np
import polars as pl
from loguru import logger

from assets.backtests.simulation import fractional_kelly
from assets.pairs.spreads import EXIT_SIGNALS

from pipelines.brokers import Broker
from pipelines.trading.execution import OrderIntent, place_order
from pipelines.trading.lifecycle import holdings_from_fills, settle_pair_trade
from pipelines.trading.risk import Leg, PortfolioState, RiskLimits, TradeProposal, record_breaches, validate_risk_limits
from warehouse import ledger as tables
from warehouse.ledger import Ledger
from assets.calendar import last_closed_bar
from warehouse.validated import MissingAssetError, UnusableAssetError, ValidatedFrame, ValidatedReader

__all__ = [
    "CycleReport",
    "DailyMomentumStrategy",
    "PairDecision",
    "PairsParams",
    "PairsStrategy",
    "RegimeParams",
    "Strategy",
    "kelly_weight",
]

BAR = timedelta(hours=1)


@dataclass(frozen=True)
class RegimeParams:
    """How hard to trade in one market regime."""

    kelly_fraction: float
    max_pair_weight_pct: float
    min_abs_entry_z: float


@dataclass(frozen=True)
class PairsParams:
    """Sizing and regime switches of the pairs book: conservative when volatile, aggressive when calm."""

    calm: RegimeParams = RegimeParams(kelly_fraction=0.25, max_pair_weight_pct=0.10, min_abs_entry_z=2.0)
    volatile: RegimeParams = RegimeParams(kelly_fraction=0.10, max_pair_weight_pct=0.05, min_abs_entry_z=2.0)
    min_trades_for_kelly: int = 20
    default_weight_pct: float = 0.02
    max_total_weight_pct: float = 0.60

    def for_regime(self, regime: str | None) -> RegimeParams:
        return self.calm if regime == "calm" else self.volatile


@dataclass(frozen=True)
class PairDecision:
    """What one cycle decided for one pair, and why."""

    pair_id: str
    signal: str | None
    zscore: float | None
    action: str
    verdict: str
    reason: str
    legs: tuple[Leg, ...] = ()
    weight_pct: float | None = None


@dataclass
class CycleReport:
    """A cycle's outcome: its id, whether it traded, every decision and the asset versions it read."""

    cycle_id: str
    strategy: str
    status: str
    reason: str | None = None
    regime: str | None = None
    decisions: list[PairDecision] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)


class Strategy(Protocol):
    """A trading strategy: one cycle at `now`, fail-closed on its data, recorded in the ledger."""

    name: str

    def run_cycle(self, now: datetime, dry_run: bool = False) -> CycleReport: ...


def kelly_weight(trades: pl.DataFrame, params: PairsParams, regime: RegimeParams) -> float:
    """Capped fractional Kelly from the pair's closed backtest trades, by the backtest's own rule (`fractional_kelly`)."""
    closed = trades.filter(~pl.col("is_open"))["return_pct"].drop_nulls().to_numpy()
    wins, losses = closed[closed > 0], -closed[closed < 0]
    weight = fractional_kelly(
        np.array([closed.size]), np.array([wins.size]), np.array([losses.size]),
        np.array([wins.sum()]), np.array([losses.sum()]),
        kelly_fraction=regime.kelly_fraction, min_trades=params.min_trades_for_kelly,
        default_weight=params.default_weight_pct, cap=regime.max_pair_weight_pct,
    )
    return float(weight[0])


def cycle_id_at(strategy: str, now: datetime, period: timedelta = BAR) -> str:
    """Cycles are named by the period they trade in, so a retry in the same period is the same cycle."""
    start = datetime.fromtimestamp(now.timestamp() // period.total_seconds() * period.total_seconds(), timezone.utc)
    return f"{strategy}-{start:%Y%m%dT%H%M}"


def book_state(ledger: Ledger, broker: Broker, prices: dict[str, float], now: datetime) -> PortfolioState:
    """The book the risk limits measure: broker equity, ledger holdings at validated prices, open pairs, marks."""
    holdings: dict[str, tuple[float, float]] = {}
    for holding in holdings_from_fills(ledger).values():
        qty, _ = holdings.get(holding.symbol, (0.0, 0.0))
        holdings[holding.symbol] = (qty + holding.qty, prices.get(holding.symbol, holding.avg_cost_px))
    marks = ledger.rows(tables.account_marks, tables.account_marks.c.marked_at <= now,
                        order_by=tables.account_marks.c.marked_at)
    today = [m for m in marks if m["marked_at"].date() == now.date()]
    equity = broker.account().equity
    return PortfolioState(
        equity=equity, holdings={s: v for s, v in holdings.items() if abs(v[0]) > 1e-9},
        open_pairs=len(ledger.live_pair_trades()),
        day_start_equity=today[0]["equity"] if today else None,
        peak_equity=max([m["equity"] for m in marks] + [equity]) if marks else None,
    )


def known_at(frame: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Hourly rows whose bar has closed by `now`: no decision sees a bar before it ends."""
    return frame.filter(pl.col("bar_ts") + pl.duration(hours=1) <= now)


def require_last_hour(bars: ValidatedFrame, signals: ValidatedFrame, now: datetime) -> None:
    """In a session, the bar that closed last must be in the bars, and in the signals of every pair active today.

    Without it a cycle would trade on an older hour as if it were the newest: it fails closed instead.
    """
    hour = last_closed_bar(now)
    if hour is None or now - hour >= timedelta(hours=2):
        return  # before the first bar closed, or after the session
    key = hour.astimezone(timezone.utc).date().isoformat()
    for asset, read in (("bars_hourly", bars), ("pair_signals", signals)):
        if key not in {v.partition_key for v in read.versions}:
            raise MissingAssetError(asset, key, f"missing: today's partition is not published (the {hour:%H:%M} UTC bar is due)")
        today = read.frame.filter(pl.col("bar_ts").dt.convert_time_zone("UTC").dt.date() == hour.date())
        if asset == "pair_signals" and today.is_empty():
            continue  # no pair active today
        if today.filter(pl.col("bar_ts") == hour).is_empty():
            newest = today["bar_ts"].max()
            raise MissingAssetError(asset, key, f"missing the {hour:%Y-%m-%d %H:%M} UTC bar (newest: {newest or 'none'})")


@dataclass
class PairsStrategy:
    """The intraday pairs book: trade each active pair's validated signal, sized, risk-checked, both legs."""

    warehouse: object
    ledger: Ledger
    broker_factory: object
    limits: RiskLimits = RiskLimits()
    params: PairsParams = PairsParams()
    check_market: bool = True
    name: str = "pairs"

    def run_cycle(self, now: datetime, dry_run: bool = False) -> CycleReport:
        reader = ValidatedReader(self.warehouse, now)
        cycle_id = cycle_id_at(self.name, now)
        report = CycleReport(cycle_id, self.name, "running")
        try:
            signals_read, bars_read = reader.read_latest("pair_signals", 2), reader.read_latest("bars_hourly", 1)
            require_last_hour(bars_read, signals_read, now)
            signals, bars = known_at(signals_read.frame, now), known_at(bars_read.frame, now)
            regime_rows = reader.read_latest("market_regime", 2).frame.filter(pl.col("session_date") < now.date())
            backtest = reader.read("backtest_trades").frame
        except UnusableAssetError as unusable:
            return self._blocked(report, reader, now, dry_run, unusable)
        prices = {s: px for s, px in bars.sort("bar_ts").group_by("symbol").agg(pl.col("close_px").last()).iter_rows()}
        broker = self.broker_factory(prices, now)
        if self.check_market and not broker.clock(now).is_open:
            report.status, report.reason = "skipped", "market closed"
            return report
        if not dry_run:
            self.ledger.start_cycle(cycle_id, self.name, now, dry_run)
        labels = regime_rows.sort("session_date")["regime"].drop_nulls().to_list()
        report.regime = labels[-1] if labels else None  # no label yet (fewer sessions than the volatility window): volatile
        regime = self.params.for_regime(report.regime)
        report.versions = reader.versions_used()
        state = book_state(self.ledger, broker, prices, now)
        latest = signals.sort("bar_ts").group_by("pair_id").last().sort("pair_id")
        committed = sum(t["entry_notional"] or 0.0 for t in self.ledger.live_pair_trades(self.name))
        for row in latest.iter_rows(named=True):
            decision, trade = self._decide(row, backtest, prices, state, regime, committed, cycle_id)
            if decision.verdict == "rejected":
                breaches = validate_risk_limits(TradeProposal(row["pair_id"], decision.legs, True), state, self.limits).breaches
                if not dry_run:
                    record_breaches(self.ledger, breaches, at=now, verdict="rejected", source="intraday-pairs-trading",
                                    cycle_id=cycle_id, subject=row["pair_id"])
            if decision.verdict == "approved" and not dry_run:
                report.orders += self._execute(decision, trade, row, cycle_id, broker, now)
                state = book_state(self.ledger, broker, prices, now)
                if decision.action == "open":
                    committed += abs(decision.legs[0].notional) + abs(decision.legs[1].notional)
            report.decisions.append(decision)
            if not dry_run:
                self.ledger.record_decision(
                    at=now, cycle_id=cycle_id, strategy=self.name, subject=row["pair_id"], action=decision.action,
                    verdict=decision.verdict, versions=report.versions, signal=row["signal"], zscore=row["zscore"],
                    reason=decision.reason,
                    details={"legs": [leg.__dict__ for leg in decision.legs], "weight_pct": decision.weight_pct,
                             "regime": report.regime})
        report.status = "done"
        if not dry_run:
            self.ledger.finish_cycle(cycle_id, "done", None, report.versions, now)
        return report

    def _blocked(self, report, reader, now, dry_run, unusable: UnusableAssetError) -> CycleReport:
        """Fail closed: no order at all, the reason in the audit log and an alert."""
        report.status, report.reason = "blocked", str(unusable)
        report.versions = reader.versions_used()
        logger.error("cycle {} blocked: {}", report.cycle_id, unusable)
        if not dry_run:
            self.ledger.start_cycle(report.cycle_id, self.name, now, dry_run)
            self.ledger.record_decision(at=now, cycle_id=report.cycle_id, strategy=self.name, subject="*",
                                        action="none", verdict="blocked", versions=report.versions,
                                        reason=str(unusable))
            self.ledger.raise_alert(at=now, level="critical", source="intraday-pairs-trading", subject=unusable.asset,
                                    message=f"cycle {report.cycle_id} traded nothing: {unusable}",
                                    cycle_id=report.cycle_id)
            self.ledger.finish_cycle(report.cycle_id, "blocked", str(unusable), report.versions, now)
        return report

    def _decide(self, row, backtest, prices, state, regime, committed, cycle_id):
        pair_id, signal, z = row["pair_id"], row["signal"], row["zscore"]
        live = [t for t in self.ledger.live_pair_trades(self.name) if t["pair_id"] == pair_id]
        if live:
            trade = live[0]
            side = 1 if trade["side"] == "long_spread" else -1
            resuming = (trade["status"] == "opening" and trade["opened_cycle_id"] == cycle_id) or (
                trade["status"] == "closing" and trade["closed_cycle_id"] == cycle_id)
            if resuming:
                action = "open" if trade["status"] == "opening" else "close"
                legs = self._trade_legs(trade, prices, closing=action == "close")
                return PairDecision(pair_id, signal, z, action, "approved", "resuming this cycle's orders", legs), trade
            if trade["status"] != "open":
                return PairDecision(pair_id, signal, z, "hold", "approved", f"trade is {trade['status']}"), trade
            if row["position"] == 0 or row["position"] != side:
                legs = self._trade_legs(trade, prices, closing=True)
                return PairDecision(pair_id, signal, z, "close", "approved", f"signal {signal}", legs), trade
            return PairDecision(pair_id, signal, z, "hold", "approved", "in position"), trade
        if signal not in ("enter_long", "enter_short"):
            return PairDecision(pair_id, signal, z, "none", "approved", "no entry signal"), None
        if abs(z) < regime.min_abs_entry_z:
            return PairDecision(pair_id, signal, z, "none", "approved", f"|z| below {regime.min_abs_entry_z}"), None
        py, px = prices.get(row["symbol_y"]), prices.get(row["symbol_x"])
        if py is None or px is None:
            return PairDecision(pair_id, signal, z, "none", "approved", "no price for the pair"), None
        beta = float(row["hedge_ratio"])  # the hedge of the spread that fired the signal, as in the backtest
        weight = kelly_weight(backtest.filter(pl.col("pair_id") == pair_id), self.params, regime)
        room = max(0.0, self.params.max_total_weight_pct * state.equity - committed)
        notional = min(weight * state.equity, room)
        side = 1 if signal == "enter_long" else -1
        y_share = 1.0 / (1.0 + abs(beta))
        y_qty = side * math.floor(notional * y_share / py)
        x_qty = -side * math.floor(notional * y_share * abs(beta) / px) * (1 if beta >= 0 else -1)
        if y_qty == 0 or x_qty == 0:
            return PairDecision(pair_id, signal, z, "none", "approved", "size rounds to zero shares",
                                weight_pct=weight), None
        legs = (Leg(row["symbol_y"], float(y_qty), py), Leg(row["symbol_x"], float(x_qty), px))
        verdict = validate_risk_limits(TradeProposal(pair_id, legs, True), state, self.limits)
        trade = dict(pair_trade_id=f"{self.name}:{pair_id}:{cycle_id}", strategy=self.name, pair_id=pair_id,
                     side="long_spread" if side > 0 else "short_spread", status="opening",
                     symbol_y=row["symbol_y"], symbol_x=row["symbol_x"], hedge_ratio=beta, target_y_qty=float(y_qty),
                     target_x_qty=float(x_qty), entry_zscore=z, entry_ts=row["bar_ts"], kelly_weight_pct=weight,
                     weight_pct=notional / state.equity, entry_notional=abs(y_qty * py) + abs(x_qty * px),
                     opened_cycle_id=cycle_id)
        return PairDecision(pair_id, signal, z, "open", "approved" if verdict.approved else "rejected", verdict.reason,
                            legs, weight), trade

    @staticmethod
    def _trade_legs(trade: dict, prices: dict, closing: bool) -> tuple[Leg, ...]:
        if closing:
            return (Leg(trade["symbol_y"], -trade["y_qty"], prices.get(trade["symbol_y"], float("nan"))),
                    Leg(trade["symbol_x"], -trade["x_qty"], prices.get(trade["symbol_x"], float("nan"))))
        return (Leg(trade["symbol_y"], trade["target_y_qty"], prices.get(trade["symbol_y"], float("nan"))),
                Leg(trade["symbol_x"], trade["target_x_qty"], prices.get(trade["symbol_x"], float("nan"))))

    def _execute(self, decision: PairDecision, trade: dict, row: dict, cycle_id: str, broker: Broker,
                 now: datetime) -> list[dict]:
        """Both legs, each at most once; the pair trade row is written before any order."""
        if decision.action not in ("open", "close"):
            return []
        if decision.action == "open" and self.ledger.pair_trade(trade["pair_trade_id"]) is None:
            self.ledger.insert_pair_trade(trade)
        elif trade["status"] == "open":
            self.ledger.update_pair_trade(trade["pair_trade_id"], status="closing", closed_cycle_id=cycle_id,
                                          exit_zscore=row["zscore"], exit_ts=row["bar_ts"],
                                          exit_reason=row["signal"] if row["signal"] in EXIT_SIGNALS else "flip")
        placed = []
        for leg_name, leg in zip(("y", "x"), decision.legs):
            if abs(leg.signed_qty) < 1e-9:
                continue
            intent = OrderIntent(cycle_id, self.name, decision.pair_id, leg_name, decision.action, leg.symbol,
                                 "buy" if leg.signed_qty > 0 else "sell", abs(leg.signed_qty), trade["pair_trade_id"])
            placed.append(place_order(self.ledger, broker, intent, now))
        settle_pair_trade(self.ledger, trade["pair_trade_id"], now)
        return placed


@dataclass
class DailyMomentumStrategy:
    """Long the strongest symbols trading above their SMA with RSI below 70, once a session, equal weight."""

    warehouse: object
    ledger: Ledger
    broker_factory: object
    limits: RiskLimits = RiskLimits()
    max_positions: int = 3
    weight_pct: float = 0.02
    check_market: bool = True
    name: str = "momentum"

    def run_cycle(self, now: datetime, dry_run: bool = False) -> CycleReport:
        reader = ValidatedReader(self.warehouse, now)
        cycle_id = cycle_id_at(self.name, now, timedelta(days=1))
        report = CycleReport(cycle_id, self.name, "running")
        try:
            indicators = reader.read_latest("indicators_daily", 2).frame.filter(pl.col("session_date") < now.date())
        except UnusableAssetError as unusable:
            report.status, report.reason = "blocked", str(unusable)
            if not dry_run:
                self.ledger.raise_alert(at=now, level="critical", source=self.name, subject=unusable.asset,
                                        message=f"cycle {cycle_id} traded nothing: {unusable}", cycle_id=cycle_id)
            return report
        report.versions = reader.versions_used()
        last = indicators.filter(pl.col("session_date") == indicators["session_date"].max())
        ranked = last.filter((pl.col("close_px") > pl.col("sma")) & (pl.col("rsi") < 70)).with_columns(
            strength=pl.col("close_px") / pl.col("sma") - 1).sort("strength", descending=True)
        wanted = set(ranked["symbol"].head(self.max_positions).to_list())
        prices = dict(last.select("symbol", "close_px").iter_rows())
        broker = self.broker_factory(prices, now)
        if self.check_market and not broker.clock(now).is_open:
            report.status, report.reason = "skipped", "market closed"
            return report
        held = {h.symbol: h.qty for h in holdings_from_fills(self.ledger).values() if h.strategy == self.name and h.qty}
        if not dry_run:
            self.ledger.start_cycle(cycle_id, self.name, now, dry_run)
        state = book_state(self.ledger, broker, prices, now)
        for symbol in sorted(wanted | set(held)):
            px = prices.get(symbol)
            if symbol in held and symbol not in wanted:
                action, qty = "close", -held[symbol]
            elif symbol in wanted and symbol not in held and px:
                action, qty = "open", float(math.floor(self.weight_pct * state.equity / px))
            else:
                continue
            legs = (Leg(symbol, qty, px or float("nan")),)
            verdict = validate_risk_limits(TradeProposal(symbol, legs, action == "open"), state, self.limits)
            decision = PairDecision(symbol, None, None, action, "approved" if verdict.approved else "rejected",
                                    verdict.reason, legs, self.weight_pct)
            report.decisions.append(decision)
            if dry_run or qty == 0:
                continue
            if not verdict.approved:
                record_breaches(self.ledger, verdict.breaches, at=now, verdict="rejected", source=self.name,
                                cycle_id=cycle_id, subject=symbol)
            else:
                intent = OrderIntent(cycle_id, self.name, symbol, "s", action, symbol, "buy" if qty > 0 else "sell",
                                     abs(qty))
                report.orders.append(place_order(self.ledger, broker, intent, now))
            self.ledger.record_decision(at=now, cycle_id=cycle_id, strategy=self.name, subject=symbol, action=action,
                                        verdict=decision.verdict, versions=report.versions, reason=verdict.reason)
        report.status = "done"
        if not dry_run:
            self.ledger.finish_cycle(cycle_id, "done", None, report.versions, now)
        return report
