"""Return and trade metrics for each pair and for the whole strategy, with the annualization stated."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = [
    "PerformanceMetrics",
    "drawdown",
    "equity_curve",
    "pair_performance",
    "performance_metrics",
    "strategy_performance",
    "strategy_returns",
]


_RETURN_METRICS = (
    "n_periods",
    "total_return_pct",
    "cagr_pct",
    "volatility_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown_pct",
    "calmar_ratio",
)
_TRADE_METRICS = ("trade_count", "open_trade_count", "win_rate_pct", "profit_factor", "avg_bars_held")


@dataclass(frozen=True)
class PerformanceMetrics:
    """Metrics of one return series; ``_pct`` values are fractions (0.1 is 10 %).

    Conventions match empyrical: Sharpe and volatility use ddof=1 and a zero
    risk-free rate; Sortino's downside deviation is the root mean square of
    ``min(r, 0)`` over all observations; equity starts at 1.0 and that
    starting capital counts as a peak for the drawdown; CAGR compounds over
    ``n_periods / periods_per_year`` years; Calmar is CAGR over
    ``|max_drawdown_pct|`` and NaN without a drawdown. Trade statistics count
    closed trades only and are NaN (counts 0) when no trades were given;
    exposure is the share of periods with a position held.
    """

    n_periods: int
    total_return_pct: float
    cagr_pct: float
    volatility_pct: float
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown_pct: float
    calmar_ratio: float
    trade_count: int = 0
    open_trade_count: int = 0
    win_rate_pct: float = math.nan
    profit_factor: float = math.nan
    avg_bars_held: float = math.nan
    exposure_pct: float = math.nan


def performance_metrics(
    returns: np.ndarray | pl.Series,
    periods_per_year: float,
    *,
    trades: pl.DataFrame | None = None,
    is_in_market: np.ndarray | pl.Series | None = None,
) -> PerformanceMetrics:
    """Metrics of simple per-period returns; null and NaN periods are skipped.

    ``periods_per_year`` sets every annualization: ``assets.calendar.HOURLY_BARS_PER_YEAR``
    (1764) for regular-session hourly bars, ``DAILY_BARS_PER_YEAR`` (252) for
    daily ones. ``trades`` (columns ``net_pnl_usd``, ``bars_held``, ``is_open``)
    adds trade statistics; ``is_in_market`` (one flag per period) adds exposure.
    """
    frame = pl.DataFrame({"return_pct": pl.Series(returns, dtype=pl.Float64)})
    values = frame.select(_return_metric_exprs("return_pct", periods_per_year)).row(0, named=True)
    if trades is not None:
        values |= trades.select(_trade_metric_exprs()).row(0, named=True)
    if is_in_market is not None:
        values["exposure_pct"] = (
            float(np.mean(np.asarray(is_in_market, dtype=bool))) if len(is_in_market) else math.nan
        )
    return PerformanceMetrics(**{name: _plain(value) for name, value in values.items()})


def pair_performance(
    pair_returns: pl.DataFrame, trades: pl.DataFrame, periods_per_year: float
) -> pl.DataFrame:
    """One row per pair_id: return metrics of the pair's bar returns, trade statistics and exposure.

    ``pair_returns`` is the per-pair, per-bar frame of ``backtest_trades``
    (``return_pct`` on the pair's own equity, ``is_in_market``); pairs without
    trades get a trade_count of 0 and NaN trade statistics.
    """
    by_pair = (
        pair_returns.sort("pair_id", "bar_ts")
        .group_by("pair_id", maintain_order=True)
        .agg(
            *_return_metric_exprs("return_pct", periods_per_year), exposure_pct=pl.col("is_in_market").mean()
        )
    )
    trade_stats = trades.group_by("pair_id").agg(_trade_metric_exprs())
    return (
        by_pair.join(trade_stats, on="pair_id", how="left", maintain_order="left")
        .with_columns(pl.col("trade_count", "open_trade_count").fill_null(0))
        .with_columns(pl.col("win_rate_pct", "profit_factor", "avg_bars_held").fill_null(math.nan))
        .select("pair_id", *_RETURN_METRICS, *_TRADE_METRICS, "exposure_pct")
    )


def strategy_returns(pair_returns: pl.DataFrame, initial_capital: float) -> pl.DataFrame:
    """One row per bar_ts: the book's net P&L summed across pairs and its return on the equity before the bar.

    Pair sizes are fractions of one shared capital (see ``BacktestParams``), so
    the book's equity is that capital plus every pair's cumulative net P&L.
    """
    return (
        pair_returns.group_by("bar_ts")
        .agg(pl.col("net_pnl_usd").sum(), is_in_market=pl.col("is_in_market").any())
        .sort("bar_ts")
        .with_columns(equity_usd=initial_capital + pl.col("net_pnl_usd").cum_sum())
        .with_columns(return_pct=pl.col("net_pnl_usd") / (pl.col("equity_usd") - pl.col("net_pnl_usd")))
        .select("bar_ts", "net_pnl_usd", "equity_usd", "return_pct", "is_in_market")
    )


def strategy_performance(
    pair_returns: pl.DataFrame, trades: pl.DataFrame, initial_capital: float, periods_per_year: float
) -> pl.DataFrame:
    """One row for the strategy: metrics of the book's returns across all pairs, trade statistics over all trades.

    Exposure is the share of bars in which at least one pair held a position.
    """
    book = strategy_returns(pair_returns, initial_capital)
    return pl.concat(
        [
            book.select(
                *_return_metric_exprs("return_pct", periods_per_year),
                exposure_pct=pl.col("is_in_market").mean(),
            ),
            trades.select(_trade_metric_exprs()),
        ],
        how="horizontal",
    ).select(*_RETURN_METRICS, *_TRADE_METRICS, "exposure_pct")


def as_published(metrics: pl.DataFrame) -> pl.DataFrame:
    """Metrics as the performance tables publish them: the period count as Int64, an undefined metric null, not NaN."""
    return metrics.with_columns(pl.col("n_periods").cast(pl.Int64), pl.col(pl.Float64).fill_nan(None))


def equity_curve(returns: pl.DataFrame | pl.Series | np.ndarray) -> pl.DataFrame:
    """One row per period: the return and the equity after it, starting from 1.0.

    A frame keeps its ``bar_ts`` and uses its ``return_pct``; a bare series is
    numbered by ``period`` from 0.
    """
    frame = _as_return_frame(returns)
    return frame.with_columns(equity=(1.0 + pl.col("return_pct")).cum_prod())


def drawdown(returns: pl.DataFrame | pl.Series | np.ndarray) -> pl.DataFrame:
    """One row per period: equity, its running peak (starting capital 1.0 included) and the drawdown from it."""
    return (
        equity_curve(returns)
        .with_columns(peak_equity=pl.max_horizontal(pl.col("equity").cum_max(), pl.lit(1.0)))
        .with_columns(drawdown_pct=pl.col("equity") / pl.col("peak_equity") - 1.0)
    )


def _as_return_frame(returns: pl.DataFrame | pl.Series | np.ndarray) -> pl.DataFrame:
    if isinstance(returns, pl.DataFrame):
        return returns.select("bar_ts", pl.col("return_pct").cast(pl.Float64))
    values = pl.Series("return_pct", returns, dtype=pl.Float64)
    return pl.DataFrame({"period": np.arange(values.len()), "return_pct": values})


def _return_metric_exprs(column: str, periods_per_year: float) -> list[pl.Expr]:
    """Return metrics as aggregations, so a single series and every pair share one definition."""
    returns = pl.col(column).filter(pl.col(column).is_not_null() & pl.col(column).is_not_nan())
    n_periods = returns.len()
    growth = (1.0 + returns).product()
    years = n_periods / periods_per_year
    cagr = (
        pl.when(n_periods == 0)
        .then(math.nan)
        .when(growth > 0.0)
        .then(growth.pow(1.0 / years) - 1.0)
        .otherwise(-1.0)
    )
    mean, std = returns.mean(), returns.std(ddof=1)
    downside = (returns.clip(upper_bound=0.0) ** 2).mean().sqrt()
    equity = (1.0 + returns).cum_prod()
    max_drawdown = (equity / pl.max_horizontal(equity.cum_max(), pl.lit(1.0)) - 1.0).min()
    return [
        n_periods.alias("n_periods"),
        (growth - 1.0).alias("total_return_pct"),
        cagr.alias("cagr_pct"),
        (std * math.sqrt(periods_per_year)).alias("volatility_pct"),
        (mean / std * math.sqrt(periods_per_year)).alias("sharpe_ratio"),
        (mean * math.sqrt(periods_per_year) / downside).alias("sortino_ratio"),
        max_drawdown.fill_null(math.nan).alias("max_drawdown_pct"),
        pl.when(max_drawdown < 0.0).then(cagr / -max_drawdown).otherwise(math.nan).alias("calmar_ratio"),
    ]


def _trade_metric_exprs() -> list[pl.Expr]:
    """Trade statistics over closed trades: count, win rate, profit factor, mean bars held."""
    closed = ~pl.col("is_open")
    net_pnl = pl.col("net_pnl_usd").filter(closed)
    n_closed = closed.sum()
    gains = net_pnl.filter(net_pnl > 0.0).sum()
    losses = -net_pnl.filter(net_pnl < 0.0).sum()
    return [
        n_closed.cast(pl.Int64).alias("trade_count"),
        pl.col("is_open").sum().cast(pl.Int64).alias("open_trade_count"),
        pl.when(n_closed > 0)
        .then((net_pnl > 0.0).sum() / n_closed)
        .otherwise(math.nan)
        .alias("win_rate_pct"),
        pl.when(losses > 0.0)
        .then(gains / losses)
        .when(gains > 0.0)
        .then(math.inf)
        .otherwise(math.nan)
        .alias("profit_factor"),
        pl.col("bars_held").filter(closed).mean().cast(pl.Float64).fill_null(math.nan).alias("avg_bars_held"),
    ]


def _plain(value: object) -> object:
    """Polars nulls as NaN so every metric is a plain float or int."""
    return math.nan if value is None else value
