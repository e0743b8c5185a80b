"""Market regime per session: cross-sectional median realized volatility, labelled calm or volatile."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import polars as pl

from assets.indicators.windows import window_mean_std
from assets.calendar import DAILY_BARS_PER_YEAR, EXCHANGE_TIMEZONE

__all__ = ["REGIME_DTYPE", "RegimeParams", "market_regime"]

REGIME_DTYPE = pl.Enum(["calm", "volatile"])


@dataclass(frozen=True)
class RegimeParams:
    """How volatility is measured and where calm ends.

    ``method="threshold"``: volatile when the median annualized volatility
    exceeds ``vol_threshold_pct`` (a fraction: 0.25 is 25 % a year).
    ``method="percentile"``: volatile when it exceeds the ``percentile``
    quantile (linear interpolation) of its own values over the previous
    ``percentile_window_sessions`` sessions, today excluded; the label stays
    null until that many earlier values exist.
    """

    vol_window_sessions: int = 20
    periods_per_year: float = DAILY_BARS_PER_YEAR
    method: Literal["threshold", "percentile"] = "threshold"
    vol_threshold_pct: float = 0.25
    percentile: float = 0.8
    percentile_window_sessions: int = 252
    min_symbols: int = 1
    session_time_zone: str = EXCHANGE_TIMEZONE

    def __post_init__(self) -> None:
        if self.vol_window_sessions < 2 or self.percentile_window_sessions < 1 or self.min_symbols < 1:
            raise ValueError(f"windows and min_symbols too small: {self}")
        if self.method not in ("threshold", "percentile") or not 0.0 < self.percentile < 1.0:
            raise ValueError(f"unknown method or percentile outside (0, 1): {self}")


def market_regime(bars: pl.DataFrame, params: RegimeParams) -> pl.DataFrame:
    """One row per session_date: median across symbols of annualized realized volatility, and the regime.

    Each symbol's volatility is the sample std (ddof=1) of its last
    ``vol_window_sessions`` daily log returns times ``sqrt(periods_per_year)``,
    null until the window is full, and computed from that window alone, so a
    session's value does not depend on how many earlier sessions were read with
    it. Daily bars come with a ``session_date``; hourly bars (``bar_ts`` in UTC) are reduced to each session's last close,
    the session date taken in ``session_time_zone``. A session's row uses its
    own close, so it is known after that close: trade on it from the next
    session. Sessions with fewer than ``min_symbols`` volatilities get nulls.
    """
    closes = _session_closes(bars, params.session_time_zone).sort("symbol", "session_date")
    # each symbol's first return is null, so no window reaches back into the previous symbol
    log_return = closes.select(pl.col("close_px").log().diff().over("symbol")).to_series().to_numpy()
    _, deviation = window_mean_std(log_return, params.vol_window_sessions, ddof=1)
    volatility = closes.with_columns(
        realized_vol_pct=pl.Series(deviation * math.sqrt(params.periods_per_year), nan_to_null=True)
    )
    by_session = (
        volatility.group_by("session_date")
        .agg(
            median_vol_pct=pl.col("realized_vol_pct").median(),
            n_symbols=pl.col("realized_vol_pct").count().cast(pl.Int64),
        )
        .sort("session_date")
        .with_columns(
            median_vol_pct=pl.when(pl.col("n_symbols") >= params.min_symbols).then(pl.col("median_vol_pct"))
        )
    )
    labelled = by_session.with_columns(vol_threshold_pct=_threshold(params)).with_columns(
        is_volatile=pl.col("median_vol_pct") > pl.col("vol_threshold_pct")
    )
    return labelled.with_columns(
        regime=pl.when(pl.col("is_volatile"))
        .then(pl.lit("volatile"))
        .when(~pl.col("is_volatile"))
        .then(pl.lit("calm"))
        .cast(REGIME_DTYPE)
    ).select("session_date", "median_vol_pct", "n_symbols", "vol_threshold_pct", "is_volatile", "regime")


def _threshold(params: RegimeParams) -> pl.Expr:
    """The volatility level each session is compared with."""
    if params.method == "threshold":
        return pl.lit(params.vol_threshold_pct, dtype=pl.Float64)
    return (
        pl.col("median_vol_pct")
        .shift(1)
        .rolling_quantile(
            params.percentile,
            interpolation="linear",
            window_size=params.percentile_window_sessions,
            min_samples=params.percentile_window_sessions,
        )
    )


def _session_closes(bars: pl.DataFrame, session_time_zone: str) -> pl.DataFrame:
    """One row per symbol and session_date with the session's last close."""
    if "session_date" in bars.columns:
        dated = bars.select("symbol", "session_date", "close_px", order=pl.col("session_date"))
    else:
        dated = bars.select(
            "symbol",
            session_date=pl.col("bar_ts").dt.convert_time_zone(session_time_zone).dt.date(),
            close_px="close_px",
            order=pl.col("bar_ts"),
        )
    return (
        dated.filter(pl.col("close_px").is_finite() & (pl.col("close_px") > 0.0))
        .sort("symbol", "order")
        .group_by("symbol", "session_date", maintain_order=True)
        .agg(pl.col("close_px").last())
    )
