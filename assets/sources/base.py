"""The source protocol every market-data connector implements, and the frame schemas it returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, Protocol, runtime_checkable

import polars as pl

Timeframe = Literal["1h", "1d"]

#: One row per symbol and bar start; prices as traded (not split-adjusted).
BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "bar_ts": pl.Datetime("us", "UTC"),
    "open_px": pl.Float64,
    "high_px": pl.Float64,
    "low_px": pl.Float64,
    "close_px": pl.Float64,
    "volume_qty": pl.Int64,
    "vwap_px": pl.Float64,
    "trade_count": pl.Int64,
}

#: One row per symbol and split ex-date; `split_ratio` is new shares per old share (2.0 for 2-for-1).
SPLIT_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "ex_date": pl.Date,
    "split_ratio": pl.Float64,
}


def ohlcv_aggregates() -> list[pl.Expr]:
    """How bars roll up into a longer bar (rows sorted by time): first open, extreme high and low,
    last close, summed volume and the volume-weighted VWAP."""
    return [
        pl.col("open_px").first(),
        pl.col("high_px").max(),
        pl.col("low_px").min(),
        pl.col("close_px").last(),
        pl.col("volume_qty").sum(),
        ((pl.col("vwap_px") * pl.col("volume_qty")).sum() / pl.col("volume_qty").sum()).alias("vwap_px"),
    ]


class SourceError(RuntimeError):
    """A provider could not deliver; the message names the provider and what to do."""


@runtime_checkable
class Source(Protocol):
    """Fetches bars and corporate actions for a universe of symbols."""

    name: str

    def identity(self) -> str:
        """What makes this source's data what it is (provider and settings, never secrets)."""
        ...

    def symbols(self) -> list[str]: ...

    def sectors(self) -> dict[str, str]: ...

    def fetch_bars(self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime) -> pl.DataFrame:
        """Bars with `start <= bar_ts < end`, in BAR_SCHEMA."""
        ...

    def fetch_splits(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        """Splits with ex-dates in [start, end], in SPLIT_SCHEMA."""
        ...


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)
