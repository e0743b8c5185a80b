"""Pandera contracts (Polars backend) that every published asset version must satisfy."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.typing.polars import Series  # noqa: F401  (annotations below are resolved by pandera)

UTC_TS = pl.Datetime("us", "UTC")


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
        unique = ["symbol", "bar_ts"]
        strict = False

    @pa.dataframe_check(error="low <= open, close <= high")
    def ohlc_consistent(cls, data: PolarsData) -> pl.LazyFrame:
        return _ohlc_consistent(data)


class BarsHourly(BarsRaw):
    """Clean regular-session hourly bars, split-adjusted."""

    session_date: pl.Date = pa.Field()
    is_repaired: bool = pa.Field()

    class Config:
        unique = ["symbol", "bar_ts"]
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
        unique = ["symbol", "session_date"]
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
        unique = ["symbol", "ex_date"]
        strict = True


class PairCandidates(pa.DataFrameModel):
    """A weekly cointegration scan: one row per week and screened pair, statistics where the window allowed a test."""

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
        unique = ["week_end_date", "symbol_y", "symbol_x"]
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
        unique = ["pair_id", "bar_ts"]
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
        unique = ["pair_id", "bar_ts"]
        strict = True

    @pa.dataframe_check(error="only a stream break's row (at the first bar of a session the pair missed) lacks a spread")
    def spread_only_missing_on_breaks(cls, data: PolarsData) -> pl.LazyFrame:
        is_break_row = pl.col("zscore").is_null() & pl.col("signal").is_in(["dropped", "gap", "none"])
        return data.lazyframe.select(pl.col("spread").is_not_null() | is_break_row)

    @pa.dataframe_check(error="a flat pair holds nothing; a position comes from an entry or a hold")
    def position_matches_signal(cls, data: PolarsData) -> pl.LazyFrame:
        entering = pl.col("signal").is_in(["enter_long", "enter_short", "hold"])
        return data.lazyframe.select((pl.col("position") != 0) == entering)


class MarketRegime(pa.DataFrameModel):
    """The daily market regime label from cross-sectional realized volatility."""

    session_date: pl.Date = pa.Field(unique=True)
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
    atr: float = pa.Field(nullable=True, ge=0)
    volatility: float = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(error="Bollinger bands are ordered: lower <= middle <= upper")
    def bands_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("bb_upper_px").is_null()
            | ((pl.col("bb_lower_px") <= pl.col("bb_middle_px") + 1e-9) & (pl.col("bb_middle_px") <= pl.col("bb_upper_px") + 1e-9))
        )


class IndicatorsHourly(_Indicators):
    bar_ts: UTC_TS = pa.Field()

    class Config:
        unique = ["symbol", "bar_ts"]
        strict = True


class IndicatorsDaily(_Indicators):
    session_date: pl.Date = pa.Field()

    class Config:
        unique = ["symbol", "session_date"]
        strict = True


class BacktestTrades(pa.DataFrameModel):
    """Simulated round trips: one per pair and trade, the last one possibly still open."""

    pair_id: str = pa.Field(str_contains="/")
    trade_id: int = pa.Field(ge=0)
    side: str = pa.Field(isin=["long_spread", "short_spread"])
    entry_ts: UTC_TS = pa.Field()
    exit_ts: UTC_TS = pa.Field(nullable=True)
    entry_notional: float = pa.Field(ge=0)
    cost: float = pa.Field(ge=0)
    net_pnl: float = pa.Field()
    bars_held: pl.Int32 = pa.Field(ge=0)
    exit_reason: str = pa.Field(isin=["exit", "stop", "max_hold", "dropped", "gap", "open"])
    is_open: bool = pa.Field()

    class Config:
        unique = ["pair_id", "trade_id"]
        strict = False

    @pa.dataframe_check(error="a closed trade exits after it enters; an open one has no exit")
    def exits_after_entry(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.when(pl.col("is_open")).then(pl.col("exit_ts").is_null()).otherwise(pl.col("exit_ts") > pl.col("entry_ts"))
        )


class TradeAnalysis(pa.DataFrameModel):
    """Closed backtest trades summarized per pair, entry hour, holding time, regime and exit reason."""

    dimension: str = pa.Field(isin=["pair", "entry_hour", "holding_bars", "regime", "exit_reason"])
    bucket: str = pa.Field()
    n_trades: int = pa.Field(gt=0)
    win_rate_pct: float = pa.Field(ge=0, le=1)
    avg_net_pnl: float = pa.Field()
    median_net_pnl: float = pa.Field()
    total_net_pnl: float = pa.Field()
    profit_factor: float = pa.Field(nullable=True, ge=0)
    avg_bars_held: float = pa.Field(ge=0)

    class Config:
        unique = ["dimension", "bucket"]
        strict = True

    @pa.dataframe_check(error="every dimension counts the same closed trades")
    def dimensions_cover_the_same_trades(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("n_trades").sum().over("dimension") == pl.col("n_trades").sum().over("dimension").max())
        )


class BacktestEquity(pa.DataFrameModel):
    """Per pair and bar: position, net P&L, equity and return of the backtest."""

    pair_id: str = pa.Field(str_contains="/")
    bar_ts: UTC_TS = pa.Field()
    position: pl.Int8 = pa.Field(isin=[-1, 0, 1])
    is_in_market: bool = pa.Field()
    net_pnl: float = pa.Field()
    equity: float = pa.Field(gt=0)
    return_pct: float = pa.Field(nullable=True)

    class Config:
        unique = ["pair_id", "bar_ts"]
        strict = False


class _Performance(pa.DataFrameModel):
    n_periods: int = pa.Field(ge=0)
    total_return_pct: float = pa.Field(nullable=True, ge=-1)
    cagr_pct: float = pa.Field(nullable=True)
    volatility_pct: float = pa.Field(nullable=True)
    sharpe_ratio: float = pa.Field(nullable=True)
    sortino_ratio: float = pa.Field(nullable=True)
    max_drawdown_pct: float = pa.Field(nullable=True, le=0, ge=-1)
    calmar_ratio: float = pa.Field(nullable=True)
    trade_count: int = pa.Field(ge=0)
    win_rate_pct: float = pa.Field(nullable=True)
    profit_factor: float = pa.Field(nullable=True)
    exposure_pct: float = pa.Field(nullable=True, ge=0, le=1)

    class Config:
        strict = False


class PairPerformance(_Performance):
    pair_id: str = pa.Field(unique=True)


class StrategyPerformance(_Performance):
    """Exactly one row: the strategy as a whole."""

    @pa.dataframe_check(error="exactly one row")
    def one_row(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.len() == 1)
