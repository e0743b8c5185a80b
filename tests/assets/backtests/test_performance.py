"""Performance metrics: a hand-computed equity series, agreement with empyrical and quantstats, pair and strategy rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from assets.backtests.performance import (
    drawdown,
    equity_curve,
    pair_performance,
    performance_metrics,
    strategy_performance,
    strategy_returns,
)
from assets.calendar import DAILY_BARS_PER_YEAR, HOURLY_BARS_PER_YEAR

START = datetime(2025, 3, 3, 14, tzinfo=UTC)
TOLERANCE = 1e-10


def hours(n: int) -> list[datetime]:
    return [START + timedelta(hours=i) for i in range(n)]


def close_to(value: float, expected: float) -> bool:
    return abs(value - expected) <= TOLERANCE * max(1.0, abs(expected))


def test_annualization_factors():
    assert HOURLY_BARS_PER_YEAR == 1764 and DAILY_BARS_PER_YEAR == 252


def test_tiny_equity_series_by_hand():
    # Equity 1.0 -> 1.1 -> 0.88 -> 0.924 over one "year" of three periods.
    # Deviations from the mean -1/60 are 7/60, -11/60, 4/60: sample variance 93/3600.
    metrics = performance_metrics(np.array([0.10, -0.20, 0.05]), periods_per_year=3)
    assert metrics.n_periods == 3
    assert metrics.total_return_pct == pytest.approx(-0.076, abs=1e-15)
    assert metrics.cagr_pct == pytest.approx(-0.076, abs=1e-15)
    assert metrics.volatility_pct == pytest.approx(math.sqrt(93) / 60 * math.sqrt(3), rel=1e-14)
    assert metrics.sharpe_ratio == pytest.approx(-1 / math.sqrt(31), rel=1e-14)
    # Downside deviation sqrt((0 + 0.04 + 0) / 3) over all three periods.
    assert metrics.sortino_ratio == pytest.approx(-0.25, rel=1e-14)
    assert metrics.max_drawdown_pct == pytest.approx(-0.2, abs=1e-15)
    assert metrics.calmar_ratio == pytest.approx(-0.38, rel=1e-14)


def test_starting_capital_counts_as_a_peak():
    assert performance_metrics(np.array([-0.1, 0.05]), 252).max_drawdown_pct == pytest.approx(-0.1)
    rising = performance_metrics(np.array([0.01, 0.02]), 252)
    assert rising.max_drawdown_pct == 0.0 and math.isnan(rising.calmar_ratio)


def test_empty_and_missing_returns():
    empty = performance_metrics(np.array([]), 252)
    assert empty.n_periods == 0 and math.isnan(empty.cagr_pct) and math.isnan(empty.max_drawdown_pct)
    with_gaps = performance_metrics(pl.Series([0.01, None, float("nan"), -0.02]), 252)
    without_gaps = performance_metrics(np.array([0.01, -0.02]), 252)
    assert (with_gaps.n_periods, with_gaps.sharpe_ratio, with_gaps.max_drawdown_pct) == (
        2,
        without_gaps.sharpe_ratio,
        without_gaps.max_drawdown_pct,
    )


@pytest.mark.parametrize("periods_per_year", [DAILY_BARS_PER_YEAR, HOURLY_BARS_PER_YEAR])
@pytest.mark.parametrize(
    "seed, n, drift", [(0, 60, 0.0005), (1, 2000, 0.0002), (2, 1000, -0.0003), (3, 5000, 0.0)]
)
def test_agrees_with_empyrical(periods_per_year, seed, n, drift):
    import empyrical

    returns = np.random.default_rng(seed).normal(drift, 0.01, n)
    metrics = performance_metrics(returns, periods_per_year)
    ann = {"annualization": periods_per_year}
    assert close_to(metrics.sharpe_ratio, empyrical.sharpe_ratio(returns, **ann))
    assert close_to(metrics.sortino_ratio, empyrical.sortino_ratio(returns, **ann))
    assert close_to(metrics.max_drawdown_pct, empyrical.max_drawdown(returns))
    assert close_to(metrics.calmar_ratio, empyrical.calmar_ratio(returns, **ann))
    assert close_to(metrics.cagr_pct, empyrical.annual_return(returns, **ann))
    assert close_to(metrics.volatility_pct, empyrical.annual_volatility(returns, **ann))
    assert close_to(metrics.total_return_pct, empyrical.cum_returns_final(returns))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_quantstats(seed):
    import quantstats

    returns = np.random.default_rng(seed).normal(0.0003, 0.01, 1500)
    series = pd.Series(returns, index=pd.date_range("2020-01-01", periods=returns.size, freq="D"))
    metrics = performance_metrics(returns, HOURLY_BARS_PER_YEAR)
    periods = int(HOURLY_BARS_PER_YEAR)
    assert close_to(metrics.sharpe_ratio, quantstats.stats.sharpe(series, periods=periods))
    assert close_to(metrics.sortino_ratio, quantstats.stats.sortino(series, periods=periods))
    assert close_to(metrics.volatility_pct, quantstats.stats.volatility(series, periods=periods))


def make_trades(rows: list[tuple[str, float, int, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"pair_id": pl.String, "net_pnl_usd": pl.Float64, "bars_held": pl.Int32, "is_open": pl.Boolean},
        orient="row",
    )


def test_trade_statistics():
    trades = make_trades(
        [("A", 100.0, 4, False), ("A", -50.0, 2, False), ("A", 30.0, 3, False), ("A", -999.0, 7, True)]
    )
    metrics = performance_metrics(
        np.array([0.01, 0.0]), 252, trades=trades, is_in_market=np.array([True, False])
    )
    assert (metrics.trade_count, metrics.open_trade_count) == (3, 1)
    assert metrics.win_rate_pct == pytest.approx(2 / 3)
    assert metrics.profit_factor == pytest.approx(130 / 50)
    assert metrics.avg_bars_held == pytest.approx(3.0)
    assert metrics.exposure_pct == 0.5
    unbeaten = performance_metrics(np.array([0.01]), 252, trades=make_trades([("A", 5.0, 1, False)]))
    assert unbeaten.profit_factor == math.inf


def pair_returns_frame() -> pl.DataFrame:
    rng = np.random.default_rng(4)
    frames = []
    for pair_id, n in (("A/B", 300), ("C/D", 250)):
        net_pnl_usd = rng.normal(10.0, 200.0, n)
        equity = 1_000_000.0 + np.cumsum(net_pnl_usd)
        frames.append(
            pl.DataFrame(
                {
                    "pair_id": pair_id,
                    "bar_ts": hours(n),
                    "is_in_market": rng.random(n) < 0.4,
                    "net_pnl_usd": net_pnl_usd,
                    "equity_usd": equity,
                    "return_pct": net_pnl_usd / (equity - net_pnl_usd),
                }
            )
        )
    return pl.concat(frames)


def test_pair_performance_is_performance_metrics_per_pair():
    returns = pair_returns_frame()
    trades = make_trades([("A/B", 120.0, 5, False), ("A/B", -20.0, 3, False), ("A/B", 7.0, 2, True)])
    table = pair_performance(returns, trades, HOURLY_BARS_PER_YEAR)

    assert table["pair_id"].to_list() == ["A/B", "C/D"]
    for row in table.iter_rows(named=True):
        rows = returns.filter(pl.col("pair_id") == row["pair_id"])
        expected = performance_metrics(
            rows["return_pct"],
            HOURLY_BARS_PER_YEAR,
            trades=trades.filter(pl.col("pair_id") == row["pair_id"]),
            is_in_market=rows["is_in_market"],
        )
        for name, value in expected.__dict__.items():
            assert row[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    assert table.filter(pl.col("pair_id") == "C/D")["trade_count"].item() == 0


def test_strategy_returns_compound_the_book_on_shared_capital():
    returns = pl.DataFrame(
        {
            "pair_id": ["A", "A", "B", "B"],
            "bar_ts": hours(2) * 2,
            "net_pnl_usd": [10.0, -5.0, 0.0, 20.0],
            "is_in_market": [True, False, False, False],
        }
    )
    book = strategy_returns(returns, initial_capital=100.0)
    assert book["net_pnl_usd"].to_list() == [10.0, 15.0]
    assert book["equity_usd"].to_list() == [110.0, 125.0]
    assert book["return_pct"].to_list() == pytest.approx([0.1, 15 / 110])
    assert book["is_in_market"].to_list() == [True, False]


def test_strategy_performance_is_performance_metrics_of_the_book():
    returns = pair_returns_frame()
    trades = make_trades([("A/B", 120.0, 5, False), ("C/D", -20.0, 3, False)])
    row = strategy_performance(returns, trades, 1_000_000.0, HOURLY_BARS_PER_YEAR).row(0, named=True)
    book = strategy_returns(returns, 1_000_000.0)
    expected = performance_metrics(
        book["return_pct"], HOURLY_BARS_PER_YEAR, trades=trades, is_in_market=book["is_in_market"]
    )
    for name, value in expected.__dict__.items():
        assert row[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    assert row["n_periods"] == 300 and row["trade_count"] == 2


def test_equity_curve_and_drawdown_frames():
    frame = pl.DataFrame({"bar_ts": hours(3), "return_pct": [0.10, -0.20, 0.05]})
    curve = drawdown(frame)
    assert curve.columns == ["bar_ts", "return_pct", "equity", "peak_equity", "drawdown_pct"]
    assert curve["equity"].to_list() == pytest.approx([1.1, 0.88, 0.924])
    assert curve["peak_equity"].to_list() == pytest.approx([1.1, 1.1, 1.1])
    assert curve["drawdown_pct"].to_list() == pytest.approx([0.0, -0.2, -0.16])
    falling = drawdown(np.array([-0.1, 0.05]))
    assert falling["period"].to_list() == [0, 1] and falling["drawdown_pct"].to_list() == pytest.approx(
        [-0.1, -0.055]
    )
    assert equity_curve(pl.Series([0.5]))["equity"].to_list() == [1.5]
