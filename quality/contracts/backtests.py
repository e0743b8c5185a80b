"""Contracts of the backtests domain: trades, equity, trade analysis and performance."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.typing.polars import Series  # noqa: F401  (annotations below are resolved by pandera)

from quality.contracts.types import UTC_TS


class BacktestTrades(pa.DataFrameModel):
    """Simulated round trips: one per pair and trade, the last one possibly still open (its exit fields null)."""

    pair_id: str = pa.Field(str_contains="/")
    trade_id: int = pa.Field(ge=0)
    side: str = pa.Field(isin=["long_spread", "short_spread"])
    signal_ts: UTC_TS = pa.Field()
    entry_ts: UTC_TS = pa.Field()
    exit_ts: UTC_TS = pa.Field(nullable=True)
    entry_y_px: float = pa.Field(gt=0)
    entry_x_px: float = pa.Field(gt=0)
    exit_y_px: float = pa.Field(nullable=True, gt=0)
    exit_x_px: float = pa.Field(nullable=True, gt=0)
    hedge_ratio: float = pa.Field()
    intercept: float = pa.Field()
    entry_spread: float = pa.Field()
    exit_spread: float = pa.Field(nullable=True)
    entry_zscore: float = pa.Field()
    exit_zscore: float = pa.Field(nullable=True)
    y_qty: float = pa.Field()
    x_qty: float = pa.Field()
    kelly_weight_pct: float = pa.Field(ge=0)
    weight_pct: float = pa.Field(ge=0)
    entry_notional_usd: float = pa.Field(ge=0)
    gross_pnl_usd: float = pa.Field()
    cost_usd: float = pa.Field(ge=0)
    net_pnl_usd: float = pa.Field()
    return_pct: float = pa.Field()
    bars_held: pl.Int32 = pa.Field(ge=0)
    exit_reason: str = pa.Field(isin=["exit", "stop", "max_hold", "dropped", "gap", "open"])
    is_open: bool = pa.Field()

    class Config:
        strict = True

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
    avg_net_pnl_usd: float = pa.Field()
    median_net_pnl_usd: float = pa.Field()
    total_net_pnl_usd: float = pa.Field()
    profit_factor: float = pa.Field(nullable=True, ge=0)
    avg_bars_held: float = pa.Field(ge=0)

    class Config:
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
    net_pnl_usd: float = pa.Field()
    equity_usd: float = pa.Field(gt=0)
    return_pct: float = pa.Field(nullable=True)

    class Config:
        strict = True


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
    pair_id: str = pa.Field()


class StrategyPerformance(_Performance):
    """Exactly one row: the strategy as a whole."""

    @pa.dataframe_check(error="exactly one row")
    def one_row(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.len() == 1)
