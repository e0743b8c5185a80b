"""Contracts of the pairs domain: the weekly scan, hourly spreads and signals."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.typing.polars import Series  # noqa: F401  (annotations below are resolved by pandera)

from quality.contracts.types import UTC_TS


class PairCandidates(pa.DataFrameModel):
    """A weekly cointegration scan: one row per week and screened pair, statistics where the window allowed a test."""

    # return_corr is the screen's statistic; n_tested the week's number of Engle–Granger tests (the
    # family Benjamini–Hochberg controls); q_value the BH-adjusted p-value; selection_rank the pair's
    # place among the week's cointegrated pairs by score (null for the others).

    week_end_date: pl.Date = pa.Field()
    window_start_date: pl.Date = pa.Field()
    symbol_y: str = pa.Field()
    symbol_x: str = pa.Field()
    return_corr: float = pa.Field(ge=-1, le=1)
    hedge_ratio: float = pa.Field(nullable=True)
    intercept: float = pa.Field(nullable=True)
    adf_stat: float = pa.Field(nullable=True)
    p_value: float = pa.Field(nullable=True, ge=0, le=1)
    lag: int = pa.Field(nullable=True, ge=0)
    half_life_bars: float = pa.Field(nullable=True, gt=0)
    n_obs: int = pa.Field(ge=0)
    n_tested: int = pa.Field(ge=0)
    q_value: float = pa.Field(nullable=True, ge=0, le=1)
    selection_rank: int = pa.Field(nullable=True, ge=1)
    is_cointegrated: bool = pa.Field()
    is_traded: bool = pa.Field()

    class Config:
        strict = True

    @pa.dataframe_check(error="a cointegrated pair has a hedge ratio, a q-value, a half-life and a rank")
    def kept_pairs_are_complete(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            ~pl.col("is_cointegrated")
            | (pl.col("hedge_ratio").is_not_null() & pl.col("q_value").is_not_null()
               & pl.col("half_life_bars").is_not_null() & pl.col("selection_rank").is_not_null())
        )

    @pa.dataframe_check(error="only a cointegrated pair is traded")
    def traded_pairs_are_cointegrated(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(~pl.col("is_traded") | pl.col("is_cointegrated"))


class PairSpreads(pa.DataFrameModel):
    """Hourly log spreads of active pairs and their rolling z-scores."""

    pair_id: str = pa.Field(str_contains="/")
    symbol_y: str = pa.Field()
    symbol_x: str = pa.Field()
    bar_ts: UTC_TS = pa.Field()
    spread: float = pa.Field()
    spread_mean: float = pa.Field(nullable=True)
    spread_std: float = pa.Field(nullable=True, ge=0)
    zscore: float = pa.Field(nullable=True)
    hedge_ratio: float = pa.Field()
    intercept: float = pa.Field()
    hedge_week_end_date: pl.Date = pa.Field()

    class Config:
        strict = True


class PairSignals(pa.DataFrameModel):
    """Positions and signals of the pairs state machine, one row per pair and hour."""

    pair_id: str = pa.Field(str_contains="/")
    symbol_y: str = pa.Field()
    symbol_x: str = pa.Field()
    bar_ts: UTC_TS = pa.Field()
    spread: float = pa.Field(nullable=True)
    zscore: float = pa.Field(nullable=True)
    hedge_ratio: float = pa.Field()
    intercept: float = pa.Field()
    position: pl.Int8 = pa.Field(isin=[-1, 0, 1])
    signal: str = pa.Field(isin=["none", "hold", "enter_long", "enter_short", "exit", "stop", "max_hold", "dropped", "gap"])
    bars_held: pl.Int32 = pa.Field(ge=0)
    is_stop_locked: bool = pa.Field()

    class Config:
        strict = True

    @pa.dataframe_check(error="only a stream break's row (at the first bar of a session the pair missed) lacks a spread")
    def spread_only_missing_on_breaks(cls, data: PolarsData) -> pl.LazyFrame:
        is_break_row = pl.col("zscore").is_null() & pl.col("signal").is_in(["dropped", "gap", "none"])
        return data.lazyframe.select(pl.col("spread").is_not_null() | is_break_row)

    @pa.dataframe_check(error="a flat pair holds nothing; a position comes from an entry or a hold")
    def position_matches_signal(cls, data: PolarsData) -> pl.LazyFrame:
        entering = pl.col("signal").is_in(["enter_long", "enter_short", "hold"])
        return data.lazyframe.select((pl.col("position") != 0) == entering)
