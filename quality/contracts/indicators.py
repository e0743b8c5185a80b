"""Contracts of the indicators domain: hourly and daily indicators, and the market regime."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.typing.polars import Series  # noqa: F401  (annotations below are resolved by pandera)

from quality.contracts.types import UTC_TS


class MarketRegime(pa.DataFrameModel):
    """The daily market regime label from cross-sectional realized volatility."""

    session_date: pl.Date = pa.Field()
    median_vol_pct: float = pa.Field(nullable=True, ge=0)
    n_symbols: int = pa.Field(ge=0)
    vol_threshold_pct: float = pa.Field(nullable=True, gt=0)
    is_volatile: bool = pa.Field(nullable=True)
    regime: str = pa.Field(nullable=True, isin=["calm", "volatile"])

    class Config:
        strict = True


class _Indicators(pa.DataFrameModel):
    """Indicator columns shared by the hourly and daily tables; warm-up rows are null."""

    symbol: str = pa.Field()
    close_px: float = pa.Field(gt=0)
    return_pct: float = pa.Field(nullable=True)
    log_return: float = pa.Field(nullable=True)
    sma: float = pa.Field(nullable=True, gt=0)
    ema: float = pa.Field(nullable=True, gt=0)
    rsi: float = pa.Field(nullable=True, ge=0, le=100)
    macd_line: float = pa.Field(nullable=True)
    macd_signal: float = pa.Field(nullable=True)
    macd_hist: float = pa.Field(nullable=True)
    bb_upper_px: float = pa.Field(nullable=True)
    bb_middle_px: float = pa.Field(nullable=True)
    bb_lower_px: float = pa.Field(nullable=True)
    atr_px: float = pa.Field(nullable=True, ge=0)
    volatility_pct: float = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(error="Bollinger bands are ordered: lower <= middle <= upper")
    def bands_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("bb_upper_px").is_null()
            | ((pl.col("bb_lower_px") <= pl.col("bb_middle_px") + 1e-9) & (pl.col("bb_middle_px") <= pl.col("bb_upper_px") + 1e-9))
        )


class IndicatorsHourly(_Indicators):
    bar_ts: UTC_TS = pa.Field()

    class Config:
        strict = True


class IndicatorsDaily(_Indicators):
    session_date: pl.Date = pa.Field()

    class Config:
        strict = True
