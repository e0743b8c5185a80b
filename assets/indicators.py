"""Technical indicators per symbol and bar (TA-Lib definitions), and the daily market regime."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from assets.model import asset

#: Sessions of bars read before each partition. Recursive indicators (EMA, Wilder RSI/ATR, MACD)
#: forget their seed geometrically; after this many bars what is left is far below 1e-9, so a day
#: computed from its look-back equals the same day computed over the whole history.
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
    params=INDICATOR_PARAMS,
    freshness=timedelta(days=4),
)
def indicators_hourly(bars_hourly: pl.DataFrame, **periods) -> pl.DataFrame:
    """One row per symbol and regular-session hourly bar: returns, SMA, EMA, RSI, MACD, Bollinger bands, ATR and rolling volatility as TA-Lib defines them (warm-up rows null); partitioned by session date."""
    from assets.analytics.indicators import IndicatorParams, compute_indicators

    bars = bars_hourly.select("symbol", "bar_ts", "open_px", "high_px", "low_px", "close_px", "volume_qty")
    return compute_indicators(bars, IndicatorParams(**periods))


@asset(
    partitions="daily",
    contract="quality.contracts:IndicatorsDaily",
    grain=("symbol", "session_date"),
    time_column="session_date",
    tags=("daily", "indicators"),
    lookback={"bars_daily": DAILY_LOOKBACK_SESSIONS},
    params=INDICATOR_PARAMS,
    freshness=timedelta(days=4),
)
def indicators_daily(bars_daily: pl.DataFrame, **periods) -> pl.DataFrame:
    """One row per symbol and session: the same indicators over daily bars; partitioned by session date."""
    from assets.analytics.indicators import IndicatorParams, compute_indicators

    bars = bars_daily.select(
        "symbol", pl.col("session_date").cast(pl.Datetime("us", "UTC")).alias("bar_ts"),
        "open_px", "high_px", "low_px", "close_px", "volume_qty",
    )
    return (
        compute_indicators(bars, IndicatorParams(**periods))
        .with_columns(session_date=pl.col("bar_ts").dt.date())
        .drop("bar_ts")
        .select("symbol", "session_date", pl.exclude("symbol", "session_date"))
    )


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
    from assets.analytics.regime import RegimeParams, market_regime as regime_of

    params = RegimeParams(vol_window_sessions=vol_window_sessions, vol_threshold_pct=vol_threshold_pct)
    return regime_of(bars_daily, params).with_columns(pl.col("regime").cast(pl.String))
