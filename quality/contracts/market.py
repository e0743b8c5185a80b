"""Contracts of the market domain: raw, hourly and daily bars, and splits."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.typing.polars import Series  # noqa: F401  (annotations below are resolved by pandera)

from quality.contracts.types import UTC_TS


def _ohlc_consistent(data: PolarsData) -> pl.LazyFrame:
    """Low is the lowest and high the highest price of the bar."""
    return data.lazyframe.select(
        (pl.col("low_px") <= pl.min_horizontal("open_px", "close_px"))
        & (pl.col("high_px") >= pl.max_horizontal("open_px", "close_px"))
    )


class BarsRaw(pa.DataFrameModel):
    """Bars as the source delivered them: sane prices, one bar per symbol and start time."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    bar_ts: UTC_TS = pa.Field()
    open_px: float = pa.Field(gt=0)
    high_px: float = pa.Field(gt=0)
    low_px: float = pa.Field(gt=0)
    close_px: float = pa.Field(gt=0)
    volume_qty: int = pa.Field(ge=0)
    vwap_px: float = pa.Field(gt=0, nullable=True)
    trade_count: int = pa.Field(ge=0, nullable=True)

    class Config:
        strict = False

    @pa.dataframe_check(error="low <= open, close <= high")
    def ohlc_consistent(cls, data: PolarsData) -> pl.LazyFrame:
        return _ohlc_consistent(data)


class BarsHourly(BarsRaw):
    """Clean regular-session hourly bars, split-adjusted."""

    session_date: pl.Date = pa.Field()
    is_repaired: bool = pa.Field()

    class Config:
        strict = True


class BarsDaily(pa.DataFrameModel):
    """One bar per symbol and session, aggregated from clean hourly bars."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    session_date: pl.Date = pa.Field()
    open_px: float = pa.Field(gt=0)
    high_px: float = pa.Field(gt=0)
    low_px: float = pa.Field(gt=0)
    close_px: float = pa.Field(gt=0)
    volume_qty: int = pa.Field(ge=0)
    vwap_px: float = pa.Field(gt=0, nullable=True)
    bar_count: int = pa.Field(ge=1, le=8)

    class Config:
        strict = True

    @pa.dataframe_check(error="low <= open, close <= high")
    def ohlc_consistent(cls, data: PolarsData) -> pl.LazyFrame:
        return _ohlc_consistent(data)


class Splits(pa.DataFrameModel):
    """Corporate splits: a positive ratio per symbol and ex-date."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    ex_date: pl.Date = pa.Field()
    split_ratio: float = pa.Field(gt=0)

    class Config:
        strict = True
