"""The pairs backtest and its performance: trades, per-bar equity, per-pair and strategy metrics."""

from __future__ import annotations

import polars as pl

from assets.calendar import HOURLY_BARS_PER_YEAR
from assets.model import AssetOut, asset, multi_asset

BACKTEST_PARAMS = {
    "initial_capital": 1_000_000.0, "commission_bps": 1.0, "slippage_bps": 2.0, "kelly_fraction": 0.25,
    "min_trades_for_kelly": 20, "default_weight_pct": 0.02, "max_pair_weight_pct": 0.10,
    "max_gross_exposure_pct": 1.0, "fill_lag_bars": 1,
}
BARS_PER_YEAR = {"periods_per_year": HOURLY_BARS_PER_YEAR}


UTC_TS = pl.Datetime("us", "UTC")
EMPTY_TRADES = pl.Schema({
    "pair_id": pl.String, "trade_id": pl.Int64, "side": pl.String, "signal_ts": UTC_TS, "entry_ts": UTC_TS,
    "exit_ts": UTC_TS, "entry_y_px": pl.Float64, "entry_x_px": pl.Float64, "exit_y_px": pl.Float64,
    "exit_x_px": pl.Float64, "hedge_ratio": pl.Float64, "intercept": pl.Float64,
    "entry_spread": pl.Float64, "exit_spread": pl.Float64, "entry_zscore": pl.Float64, "exit_zscore": pl.Float64,
    "y_qty": pl.Float64, "x_qty": pl.Float64, "kelly_weight_pct": pl.Float64, "weight_pct": pl.Float64,
    "entry_notional": pl.Float64, "gross_pnl": pl.Float64, "cost": pl.Float64, "net_pnl": pl.Float64,
    "return_pct": pl.Float64, "bars_held": pl.Int32, "exit_reason": pl.String, "is_open": pl.Boolean,
})
EMPTY_EQUITY = pl.Schema({
    "pair_id": pl.String, "bar_ts": UTC_TS, "position": pl.Int8, "is_in_market": pl.Boolean,
    "net_pnl": pl.Float64, "equity": pl.Float64, "return_pct": pl.Float64,
})


def run_backtest(pair_signals: pl.DataFrame, bars_hourly: pl.DataFrame, **params):
    """The simulation both backtest assets publish a side of; pure, so running it twice gives the same frames.

    Each trade uses the hedge ratio carried on the signal row that opened it, never a later scan.
    With no signalled pair there is nothing to simulate: both sides come back empty.
    """
    from assets.backtests.simulation import BacktestParams, BacktestResult, backtest_trades as simulate

    if pair_signals.is_empty():
        return BacktestResult(pl.DataFrame(schema=EMPTY_TRADES), pl.DataFrame(schema=EMPTY_EQUITY))
    return simulate(pair_signals, bars_hourly, BacktestParams(**params))


@multi_asset(
    outputs={
        "backtest_trades": AssetOut(
            "One row per simulated round trip of a pair (open trades marked to the last bar), with fills one bar "
            "after the signal, the hedge ratio in force at entry, fractional-Kelly size, costs, P&L and the exit reason.",
            contract="quality.contracts:BacktestTrades", grain=("pair_id", "trade_id"),
        ),
        "backtest_equity": AssetOut(
            "One row per pair and hourly bar of the backtest: position held, net P&L after costs, equity and return.",
            contract="quality.contracts:BacktestEquity", grain=("pair_id", "bar_ts"),
        ),
    },
    tags=("backtest",),
    params=BACKTEST_PARAMS,
)
def backtest(pair_signals: pl.DataFrame, bars_hourly: pl.DataFrame, **params) -> dict[str, pl.DataFrame]:
    """The pairs book simulated once: its round trips and its per-bar equity are two tables of one run."""
    result = run_backtest(pair_signals, bars_hourly, **params)
    return {
        "backtest_trades": result.trades.with_columns(pl.col("side", "exit_reason").cast(pl.String)),
        "backtest_equity": result.returns,
    }


backtest_trades, backtest_equity = backtest


@asset(contract="quality.contracts:PairPerformance", grain=("pair_id",), tags=("backtest", "performance"), params=BARS_PER_YEAR)
def pair_performance(backtest_equity: pl.DataFrame, backtest_trades: pl.DataFrame, *, periods_per_year: float) -> pl.DataFrame:
    """One row per pair: total and annualized return, Sharpe, Sortino, max drawdown, Calmar, win rate, profit factor, holding time, exposure and trade count (empyrical definitions, annualized by 252 × 7 hourly bars)."""
    from assets.backtests.performance import pair_performance as per_pair

    return per_pair(backtest_equity, backtest_trades, periods_per_year).with_columns(
        pl.col("n_periods").cast(pl.Int64), pl.col(pl.Float64).fill_nan(None)
    )


@asset(
    contract="quality.contracts:StrategyPerformance", grain=(), tags=("backtest", "performance"),
    params={**BARS_PER_YEAR, "initial_capital": BACKTEST_PARAMS["initial_capital"]},
)
def strategy_performance(
    backtest_equity: pl.DataFrame, backtest_trades: pl.DataFrame, *, periods_per_year: float, initial_capital: float
) -> pl.DataFrame:
    """One row per strategy (the pairs book as a whole): the book's return metrics across all pairs and trade statistics over all trades."""
    from assets.backtests.performance import strategy_performance as per_strategy

    return per_strategy(backtest_equity, backtest_trades, initial_capital, periods_per_year).with_columns(
        pl.col("n_periods").cast(pl.Int64), pl.col(pl.Float64).fill_nan(None)  # undefined metrics are null, not NaN
    )


@asset(contract="quality.contracts:TradeAnalysis", grain=("dimension", "bucket"), tags=("backtest", "performance"))
def trade_analysis(backtest_trades: pl.DataFrame, market_regime: pl.DataFrame) -> pl.DataFrame:
    """One row per dimension and bucket of the backtest's closed trades (per pair, entry hour, holding time, market regime at entry and exit reason): count, win rate, average and median net P&L, profit factor and average bars held."""
    from assets.backtests.trade_analysis import trade_analysis as analyse

    return analyse(backtest_trades, market_regime)
