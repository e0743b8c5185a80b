"""Where the pairs strategy wins and loses: closed trades grouped by pair, entry hour, holding time, regime and exit reason."""

from __future__ import annotations

import polars as pl

from assets.calendar import EXCHANGE_TIMEZONE

__all__ = ["HOLDING_BUCKETS", "trade_analysis"]

#: Upper bounds (bars held, inclusive) of the holding-time buckets; the last bucket is open-ended.
HOLDING_BUCKETS = (7, 21, 49)
DIMENSIONS = ("pair", "entry_hour", "holding_bars", "regime", "exit_reason")


def trade_analysis(trades: pl.DataFrame, regimes: pl.DataFrame) -> pl.DataFrame:
    """One row per dimension and bucket: count, win rate, mean and median net P&L, profit factor, mean bars held.

    Closed trades only (an open trade has no outcome yet). Dimensions: ``pair``;
    ``entry_hour`` (the exchange-local hour of the entry fill, ``09`` … ``15``);
    ``holding_bars`` (bars held: ``1-7``, ``8-21``, ``22-49``, ``50+``); ``regime`` (the
    market regime of the last session before the entry's, the one a live cycle would
    have read, ``unknown`` before the first label); ``exit_reason``. ``win_rate_pct``
    is the share of trades with positive net P&L; ``profit_factor`` is gross wins over
    gross losses (null without a losing trade).
    """
    closed = trades.filter(~pl.col("is_open"))
    local_entry = pl.col("entry_ts").dt.convert_time_zone(EXCHANGE_TIMEZONE)
    labelled = closed.with_columns(
        entry_session=local_entry.dt.date(),
        entry_hour=local_entry.dt.hour().cast(pl.String).str.zfill(2),
        holding_bars=_holding_bucket(pl.col("bars_held")),
    ).sort("entry_session")
    known_regime = regimes.select(
        pl.col("session_date").alias("regime_session"), pl.col("regime").fill_null("unknown")
    ).sort("regime_session")
    labelled = labelled.join_asof(
        known_regime, left_on="entry_session", right_on="regime_session", strategy="backward", allow_exact_matches=False
    ).with_columns(pl.col("regime").fill_null("unknown"), pair=pl.col("pair_id"))
    groups = [
        _summarize(labelled, dimension).with_columns(dimension=pl.lit(dimension))
        for dimension in DIMENSIONS
    ]
    return pl.concat(groups).select("dimension", pl.exclude("dimension"))


def _holding_bucket(bars_held: pl.Expr) -> pl.Expr:
    labels, low = [], 1
    expr = pl.when(pl.lit(False)).then(pl.lit(""))
    for high in HOLDING_BUCKETS:
        labels.append(f"{low}-{high}")
        expr = expr.when(bars_held <= high).then(pl.lit(f"{low}-{high}"))
        low = high + 1
    return expr.otherwise(pl.lit(f"{low}+"))


def _summarize(trades: pl.DataFrame, dimension: str) -> pl.DataFrame:
    pnl = pl.col("net_pnl_usd")
    wins, losses = pnl.filter(pnl > 0).sum(), -pnl.filter(pnl < 0).sum()
    return (
        trades.group_by(pl.col(dimension).cast(pl.String).alias("bucket"))
        .agg(
            n_trades=pl.len(),
            win_rate_pct=(pnl > 0).mean(),
            avg_net_pnl_usd=pnl.mean(),
            median_net_pnl_usd=pnl.median(),
            total_net_pnl_usd=pnl.sum(),
            profit_factor=pl.when(losses > 0).then(wins / losses).otherwise(None),
            avg_bars_held=pl.col("bars_held").mean(),
        )
        .sort("bucket")
    )
