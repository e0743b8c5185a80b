"""Market regime: realized volatility by hand, the median across symbols, both labelling methods, hourly input."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from assets.indicators.regime import RegimeParams, market_regime

SESSIONS = [date(2025, 3, 3) + timedelta(days=i) for i in range(12)]


def zigzag_closes(step: float, n: int) -> list[float]:
    """Closes whose log returns alternate +step, -step."""
    return list(100.0 * np.exp(np.array([step * (i % 2) for i in range(n)])))


def daily_bars(steps: dict[str, float], n: int = len(SESSIONS)) -> pl.DataFrame:
    return pl.concat(
        pl.DataFrame({"symbol": symbol, "session_date": SESSIONS[:n], "close_px": zigzag_closes(step, n)})
        for symbol, step in steps.items()
    )


def test_median_realized_volatility_by_hand():
    bars = daily_bars({"LOW": 0.01, "MID": 0.02, "HIGH": 0.03})
    out = market_regime(bars, RegimeParams(vol_window_sessions=4, vol_threshold_pct=0.25))

    assert out["session_date"].to_list() == SESSIONS
    # Four returns +-0.02 around a zero mean: sample std 0.02 * sqrt(4/3), annualized by sqrt(252).
    expected = 0.02 * math.sqrt(4 / 3) * math.sqrt(252)
    assert out["median_vol_pct"].to_list()[:4] == [None] * 4
    assert out["median_vol_pct"].to_list()[4:] == pytest.approx([expected] * 8, rel=1e-12)
    assert out["n_symbols"].to_list() == [0] * 4 + [3] * 8
    assert out["regime"].cast(pl.String).to_list() == [None] * 4 + ["volatile"] * 8


def test_threshold_is_configurable_and_min_symbols_blanks_thin_sessions():
    bars = daily_bars({"LOW": 0.01, "MID": 0.02, "HIGH": 0.03})
    calm = market_regime(bars, RegimeParams(vol_window_sessions=4, vol_threshold_pct=0.5))
    assert calm["regime"].cast(pl.String).to_list()[4:] == ["calm"] * 8
    assert not calm["is_volatile"].drop_nulls().any()
    thin = market_regime(bars, RegimeParams(vol_window_sessions=4, min_symbols=4))
    assert thin["median_vol_pct"].null_count() == thin.height


def test_percentile_method_compares_with_earlier_sessions_only():
    # Quiet +-1 % days, then +-4 % days from session 8. Medians exist from session 2
    # (two returns), so four earlier medians first exist at session 6.
    quiet = zigzag_closes(0.01, 8)
    loud = [quiet[-1] * math.exp(0.04 * ((i + 1) % 2)) for i in range(4)]
    bars = pl.DataFrame({"symbol": "A", "session_date": SESSIONS, "close_px": quiet + loud})
    params = RegimeParams(
        vol_window_sessions=2, method="percentile", percentile=0.8, percentile_window_sessions=4
    )
    out = market_regime(bars, params)

    median = out["median_vol_pct"].to_list()
    threshold = out["vol_threshold_pct"].to_list()
    assert threshold[:6] == [None] * 6
    for i in range(6, len(SESSIONS)):
        assert threshold[i] == pytest.approx(np.quantile(median[i - 4 : i], 0.8), rel=1e-12)
    # The jump is volatile until the loud level dominates the trailing window and becomes the norm.
    assert out["regime"].cast(pl.String).to_list()[6:] == [
        "calm",
        "calm",
        "volatile",
        "volatile",
        "volatile",
        "calm",
    ]


def test_hourly_bars_use_each_sessions_last_close_in_exchange_time():
    daily = daily_bars({"A": 0.01, "B": 0.02, "C": 0.05}, n=8)
    hourly = pl.concat(
        [
            # A morning bar whose close must be ignored, and the session's last bar;
            # 01:00 UTC the next day is still the previous New York date.
            daily.select(
                "symbol",
                bar_ts=pl.col("session_date").dt.combine(pl.time(14)),
                close_px=pl.col("close_px") * 3,
            ),
            daily.select(
                "symbol",
                bar_ts=pl.col("session_date").dt.combine(pl.time(1)) + pl.duration(days=1),
                close_px="close_px",
            ),
        ]
    ).with_columns(pl.col("bar_ts").dt.replace_time_zone("UTC"))
    params = RegimeParams(vol_window_sessions=3)
    assert market_regime(hourly.sample(fraction=1.0, shuffle=True, seed=1), params).equals(
        market_regime(daily, params)
    )


def test_rejects_unknown_method():
    with pytest.raises(ValueError):
        RegimeParams(method="median")  # type: ignore[arg-type]


def test_bar_ts_is_utc_datetime_input():
    bars = pl.DataFrame({"symbol": "A", "bar_ts": [datetime(2025, 3, 3, 20, tzinfo=UTC)], "close_px": [10.0]})
    out = market_regime(bars, RegimeParams())
    assert out["session_date"].to_list() == [date(2025, 3, 3)]


def test_a_sessions_row_is_the_same_bytes_whatever_history_is_read_with_it():
    """A batch reads further back than a lone partition; rolling sums would change the last bits."""
    rng = np.random.default_rng(4)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(120)]
    bars = pl.concat(
        pl.DataFrame({"symbol": symbol, "session_date": days, "close_px": 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, 120)))})
        for symbol in ("AAA", "BBB", "CCC", "DDD")
    )
    params = RegimeParams(vol_window_sessions=20)
    whole = market_regime(bars, params)
    for first in (40, 77, 99):
        tail = market_regime(bars.filter(pl.col("session_date") >= days[first - 21]), params)
        assert tail.filter(pl.col("session_date") >= days[first]).equals(whole.filter(pl.col("session_date") >= days[first]))
