"""Live trading performance from the ledger, with the same metrics as the backtest's `strategy_performance`."""

from __future__ import annotations

from typing import Any, Protocol

import polars as pl

from assets.calendar import HOURLY_BARS_PER_YEAR
from assets.model import asset

LIVE_MARK_SCHEMA = pl.Schema({
    "pair_trade_id": pl.String, "pair_id": pl.String, "bar_ts": pl.Datetime("us", "UTC"), "pnl": pl.Float64,
    "is_in_market": pl.Boolean, "is_open": pl.Boolean,
})


class LedgerBook(Protocol):
    """What this asset reads from the trading ledger, which the engine hands it as a market source is handed to bars."""

    def pair_trade_marks(self) -> list[dict[str, Any]]: ...
    def pair_trade_statuses(self) -> dict[str, str]: ...


def fetch_ledger_marks(ledger: LedgerBook, window) -> pl.DataFrame:
    """The ledger's pair-trade marks; the ledger is the outside world of this asset, as a market source is of bars."""
    return ledger_marks_frame(ledger.pair_trade_marks(), ledger.pair_trade_statuses())


def ledger_watermark(ledger: LedgerBook) -> str:
    """How far the ledger's book has moved: marks recorded and trade statuses, cheap to ask before every run."""
    import hashlib

    marks = ledger.pair_trade_marks()
    statuses = sorted(ledger.pair_trade_statuses().items())
    latest = max((str(m["bar_ts"]) for m in marks), default="")
    return hashlib.sha256(f"{len(marks)}|{latest}|{statuses}".encode()).hexdigest()[:16]


def ledger_marks_frame(marks: list[dict], trade_status: dict[str, str]) -> pl.DataFrame:
    """One row per pair trade and marked bar, with whether the trade is still open."""
    rows = [
        {"pair_trade_id": m["pair_trade_id"], "pair_id": m["pair_id"], "bar_ts": m["bar_ts"], "pnl": m["pnl"],
         "is_in_market": m["is_in_market"],
         "is_open": trade_status.get(m["pair_trade_id"]) in ("opening", "open", "closing")}
        for m in marks
    ]
    return pl.DataFrame(rows, schema=LIVE_MARK_SCHEMA)


@asset(
    contract="quality.contracts:StrategyPerformance",
    grain=(),
    tags=("trading", "performance"),
    fetch=fetch_ledger_marks,
    watermark=ledger_watermark,
    reads="ledger",
    params={"periods_per_year": HOURLY_BARS_PER_YEAR, "initial_capital": 1_000_000.0},
)
def live_performance(fetched: pl.DataFrame, *, periods_per_year: float, initial_capital: float) -> pl.DataFrame:
    """One row per strategy (the live pairs book): the same return and trade metrics as `strategy_performance`, from the ledger's marked pair trades.

    Each trade's marks carry its cumulative net P&L; the bar-to-bar change is the bar's
    P&L, so live and backtest books are measured by one definition.
    """
    from assets.backtests.performance import as_published, strategy_performance as per_strategy

    marks = fetched.sort("pair_trade_id", "bar_ts").with_columns(
        net_pnl_usd=pl.col("pnl").diff().over("pair_trade_id").fill_null(pl.col("pnl"))
    )
    pair_returns = marks.group_by("pair_id", "bar_ts").agg(pl.col("net_pnl_usd").sum(), pl.col("is_in_market").any())
    trades = marks.group_by("pair_trade_id").agg(
        net_pnl_usd=pl.col("pnl").last(), is_open=pl.col("is_open").last(),
        bars_held=pl.col("is_in_market").sum().cast(pl.Int32),
    )
    return as_published(per_strategy(pair_returns, trades, initial_capital, periods_per_year))
