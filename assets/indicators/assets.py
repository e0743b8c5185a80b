"""Technical indicators per symbol and bar (TA-Lib definitions), and the daily market regime."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from assets.model import asset

#: Sessions of bars read before each partition, and the window each partition is computed from.
#: Recursive indicators (EMA, Wilder RSI/ATR, MACD) forget their seed geometrically; after this
#: many bars what is left is far below 1e-9, so a day computed from its own window equals, to
#: that precision, the same day computed over the whole history.
HOURLY_LOOKBACK_SESSIONS = 60
DAILY_LOOKBACK_SESSIONS = 400
INDICATOR_PARAMS = {
    "sma_period": 20, "ema_period": 20, "rsi_period": 14, "macd_fast_period": 12, "macd_slow_period": 26,
    "macd_signal_period": 9, "bb_period": 20, "bb_num_std": 2.0, "atr_period": 14, "volatility_window": 20,
}


@asset(
    partitions="daily",
    contract="quality.contracts:IndicatorsHourly",
    grain=("symbol", "bar_ts"),
    time_column="bar_ts",
    tags=("hourly", "indicators"),
    lookback={"bars_hourly": HOURLY_LOOKBACK_SESSIONS},
    params={"lookback_sessions": HOURLY_LOOKBACK_SESSIONS, **INDICATOR_PARAMS},
    freshness=timedelta(days=4),
)
def indicators_hourly(
    bars_hourly: pl.DataFrame, partition_keys: list[str], *, lookback_sessions: int, **periods
) -> pl.DataFrame:
    """One row per symbol and regular-session hourly bar: returns, SMA, EMA, RSI, MACD, Bollinger bands, ATR and rolling volatility as TA-Lib defines them (warm-up rows null), each session computed from its own window (itself and the `lookback_sessions` sessions before it); partitioned by session date."""
    from assets.indicators.maths import IndicatorParams, compute_indicators

    bars = bars_hourly.select(
        "symbol", "bar_ts", "open_px", "high_px", "low_px", "close_px", "volume_qty",
        seed_ts=_window_start(pl.col("session_date"), partition_keys, lookback_sessions),
    )
    return compute_indicators(bars, IndicatorParams(**periods), seed_column="seed_ts")


@asset(
    partitions="daily",
    contract="quality.contracts:IndicatorsDaily",
    grain=("symbol", "session_date"),
    time_column="session_date",
    tags=("daily", "indicators"),
    lookback={"bars_daily": DAILY_LOOKBACK_SESSIONS},
    params={"lookback_sessions": DAILY_LOOKBACK_SESSIONS, **INDICATOR_PARAMS},
    freshness=timedelta(days=4),
)
def indicators_daily(
    bars_daily: pl.DataFrame, partition_keys: list[str], *, lookback_sessions: int, **periods
) -> pl.DataFrame:
    """One row per symbol and session: the same indicators over daily bars, each session computed from itself and the `lookback_sessions` sessions before it; partitioned by session date."""
    from assets.indicators.maths import IndicatorParams, compute_indicators

    bars = bars_daily.select(
        "symbol", pl.col("session_date").cast(pl.Datetime("us", "UTC")).alias("bar_ts"),
        "open_px", "high_px", "low_px", "close_px", "volume_qty",
        seed_ts=_window_start(pl.col("session_date"), partition_keys, lookback_sessions),
    )
    return (
        compute_indicators(bars, IndicatorParams(**periods), seed_column="seed_ts")
        .with_columns(session_date=pl.col("bar_ts").dt.date())
        .drop("bar_ts")
        .select("symbol", "session_date", pl.exclude("symbol", "session_date"))
    )


def _window_start(session_date: pl.Expr, partition_keys: list[str], lookback_sessions: int) -> pl.Expr:
    """Per bar of a partition's session, the start (UTC midnight) of the first session of that partition's window.

    A partition's window is its session and the `lookback_sessions` exchange sessions before
    it, exactly the sessions the planner has it read, so the partition's values depend on
    that window alone and not on which other partitions share its batch. Bars of sessions
    that are no partition of the batch (look-back only) get null.
    """
    from assets.calendar import sessions

    days = sorted(date.fromisoformat(key) for key in partition_keys)
    if not days:
        return pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    calendar = sessions(days[0] - timedelta(days=2 * lookback_sessions + 14), days[-1])["session_date"].to_list()
    at = {day: i for i, day in enumerate(calendar)}
    starts = {day: calendar[max(0, at[day] - lookback_sessions)] for day in days}
    return session_date.replace_strict(starts, default=None, return_dtype=pl.Date).cast(pl.Datetime("us", "UTC"))


@asset(
    partitions="daily",
    contract="quality.contracts:MarketRegime",
    grain=("session_date",),
    time_column="session_date",
    tags=("daily", "trading"),
    lookback={"bars_daily": 30},
    params={"vol_window_sessions": 20, "vol_threshold_pct": 0.25},
    freshness=timedelta(days=4),
)
def market_regime(bars_daily: pl.DataFrame, *, vol_window_sessions: int, vol_threshold_pct: float) -> pl.DataFrame:
    """One row per session: the median across symbols of 20-session annualized realized volatility and the regime label (`calm` or `volatile` above the threshold), known after that session's close; partitioned by session date."""
    from assets.indicators.regime import RegimeParams, market_regime as regime_of

    params = RegimeParams(vol_window_sessions=vol_window_sessions, vol_threshold_pct=vol_threshold_pct)
    return regime_of(bars_daily, params).with_columns(pl.col("regime").cast(pl.String))
