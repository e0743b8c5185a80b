"""The pairs backtest and its performance: trades, per-bar equity, per-pair and strategy metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from assets.calendar import HOURLY_BARS_PER_YEAR
from assets.model import AssetOut, asset, conformed, empty_frame, multi_asset

if TYPE_CHECKING:
    from assets.backtests.simulation import BacktestParams, BacktestResult

BACKTEST_PARAMS = {
    "initial_capital": 1_000_000.0, "commission_bps": 1.0, "slippage_bps": 2.0, "kelly_fraction": 0.25,
    "min_trades_for_kelly": 20, "default_weight_pct": 0.02, "max_pair_weight_pct": 0.10,
    "max_gross_exposure_pct": 1.0, "fill_lag_bars": 1,
}
BARS_PER_YEAR = {"periods_per_year": HOURLY_BARS_PER_YEAR}


TRADES_CONTRACT = "quality.contracts:BacktestTrades"
EQUITY_CONTRACT = "quality.contracts:BacktestEquity"
ANALYSIS_CONTRACT = "quality.contracts:TradeAnalysis"


def simulate_book(pair_signals: pl.DataFrame, bars_hourly: pl.DataFrame, params: BacktestParams) -> BacktestResult:
    """The simulation both backtest assets publish a side of, and the one `quarry backtest` reruns; pure, so running it twice gives the same frames.

    Each trade uses the hedge ratio carried on the signal row that opened it, never a later scan.
    With no signalled pair there is nothing to simulate: both sides come back empty, shaped by their contracts.
    """
    from assets.backtests.simulation import BacktestResult, backtest_trades as simulate

    if pair_signals.is_empty():
        return BacktestResult(empty_frame(TRADES_CONTRACT), empty_frame(EQUITY_CONTRACT))
    result = simulate(pair_signals, bars_hourly, params)
    return BacktestResult(result.trades.with_columns(pl.col("side", "exit_reason").cast(pl.String)), result.returns)


@multi_asset(
    outputs={
        "backtest_trades": AssetOut(
            "One row per simulated round trip of a pair (open trades marked to the last bar), with fills one bar "
            "after the signal, the hedge ratio in force at entry, fractional-Kelly size, costs, P&L and the exit reason.",
            contract=TRADES_CONTRACT, grain=("pair_id", "trade_id"),
        ),
        "backtest_equity": AssetOut(
            "One row per pair and hourly bar of the backtest: position held, net P&L after costs, equity and return.",
            contract=EQUITY_CONTRACT, grain=("pair_id", "bar_ts"),
        ),
    },
    tags=("backtest",),
    params=BACKTEST_PARAMS,
)
def backtest(pair_signals: pl.DataFrame, bars_hourly: pl.DataFrame, **params) -> dict[str, pl.DataFrame]:
    """The pairs book simulated once: its round trips and its per-bar equity are two tables of one run."""
    from assets.backtests.simulation import BacktestParams

    result = simulate_book(pair_signals, bars_hourly, BacktestParams(**params))
    return {"backtest_trades": result.trades, "backtest_equity": result.returns}


backtest_trades, backtest_equity = backtest


@asset(contract="quality.contracts:PairPerformance", grain=("pair_id",), tags=("backtest", "performance"), params=BARS_PER_YEAR)
def pair_performance(backtest_equity: pl.DataFrame, backtest_trades: pl.DataFrame, *, periods_per_year: float) -> pl.DataFrame:
    """One row per pair: total and annualized return, Sharpe, Sortino, max drawdown, Calmar, win rate, profit factor, holding time, exposure and trade count (empyrical definitions, annualized by 252 × 7 hourly bars)."""
    from assets.backtests.performance import as_published, pair_performance as per_pair

    return as_published(per_pair(backtest_equity, backtest_trades, periods_per_year))


@asset(
    contract="quality.contracts:StrategyPerformance", grain=(), tags=("backtest", "performance"),
    params={**BARS_PER_YEAR, "initial_capital": BACKTEST_PARAMS["initial_capital"]},
)
def strategy_performance(
    backtest_equity: pl.DataFrame, backtest_trades: pl.DataFrame, *, periods_per_year: float, initial_capital: float
) -> pl.DataFrame:
    """One row per strategy (the pairs book as a whole): the book's return metrics across all pairs and trade statistics over all trades."""
    from assets.backtests.performance import as_published, strategy_performance as per_strategy

    return as_published(per_strategy(backtest_equity, backtest_trades, initial_capital, periods_per_year))


@asset(contract=ANALYSIS_CONTRACT, grain=("dimension", "bucket"), tags=("backtest", "performance"))
def trade_analysis(backtest_trades: pl.DataFrame, market_regime: pl.DataFrame) -> pl.DataFrame:
    """One row per dimension and bucket of the backtest's closed trades (per pair, entry hour, holding time, market regime at entry and exit reason): count, win rate, average and median net P&L, profit factor and average bars held."""
    from assets.backtests.trade_analysis import trade_analysis as analyse

    return conformed(analyse(backtest_trades, market_regime), ANALYSIS_CONTRACT)
