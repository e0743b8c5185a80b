"""Market bars: raw bars from the source, clean split-adjusted hourly bars, and daily bars."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from assets.calendar import hourly_bar_starts
from assets.model import Check, asset
from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA, ohlcv_aggregates

BAD_TICK_LOG_DEVIATION = 0.15
#: Where the bars checks live; named by string (as contracts are) and imported when audited.
CHECKS = "quality.checks"
BARS_HOURLY_CHECKS = (
    Check("bars_outside_session", "error", f"{CHECKS}:bars_outside_session", "bar start outside the regular session"),
    Check("bad_ticks_beyond_tolerance", "error", f"{CHECKS}:bad_ticks_beyond_tolerance",
          "more than one bad tick per symbol and session, or over 5% of the partition"),
    Check("missing_bars", "warn", f"{CHECKS}:missing_bars", "bars the exchange calendar expects are missing"),
    Check("price_jumps", "warn", f"{CHECKS}:price_jumps", "close moved more than 10% between consecutive bars"),
    Check("repaired_bad_ticks", "warn", f"{CHECKS}:repaired_bad_ticks", "bad ticks replaced by the session median"),
)


def fetch_hourly_bars(source, window) -> pl.DataFrame:
    return source.fetch_bars(source.symbols(), "1h", window.start_ts, window.end_ts)


def fetch_splits(source, window) -> pl.DataFrame:
    return source.fetch_splits(source.symbols(), window.first_session, window.last_session + timedelta(days=400))


@asset(
    partitions="daily",
    contract="quality.contracts:BarsRaw",
    grain=("symbol", "bar_ts"),
    time_column="bar_ts",
    tags=("hourly", "daily", "source"),
    fetch=fetch_hourly_bars,
    freshness=timedelta(days=4),
)
def bars_raw(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol and hourly bar start, exactly as the source delivered it (prices as traded), partitioned by exchange session date."""
    return fetched.select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items())


@asset(
    contract="quality.contracts:Splits",
    grain=("symbol", "ex_date"),
    tags=("daily", "source"),
    fetch=fetch_splits,
)
def splits(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol and split ex-date known to the source; `split_ratio` is new shares per old share."""
    return fetched.select(pl.col(name).cast(dtype) for name, dtype in SPLIT_SCHEMA.items()).unique(
        ["symbol", "ex_date"], keep="last"
    )


@asset(
    partitions="daily",
    contract="quality.contracts:BarsHourly",
    checks=BARS_HOURLY_CHECKS,
    grain=("symbol", "bar_ts"),
    time_column="bar_ts",
    tags=("hourly",),
    freshness=timedelta(days=4),
    params={"bad_tick_log_deviation": BAD_TICK_LOG_DEVIATION},
)
def bars_hourly(
    bars_raw: pl.DataFrame, splits: pl.DataFrame, sessions: pl.DataFrame, *, bad_tick_log_deviation: float
) -> pl.DataFrame:
    """One row per symbol and regular-session hourly bar (UTC start, clock-aligned), deduplicated, split-adjusted, with bad ticks repaired; partitioned by session date.

    Every step works within one symbol and session, so a partition's rows never depend
    on which other partitions were built alongside it.
    """
    regular_hours = hourly_bar_starts(sessions)
    bars = (
        bars_raw.unique(["symbol", "bar_ts"], keep="last")
        .join(regular_hours, on="bar_ts", how="inner")
        .join(_split_factors(bars_raw, splits, regular_hours), on=["symbol", "session_date"], how="left")
        .with_columns(pl.col("split_factor").fill_null(1.0))
        .with_columns(
            (pl.col(c) / pl.col("split_factor")) for c in ("open_px", "high_px", "low_px", "close_px", "vwap_px")
        )
        .with_columns(
            (pl.col("volume_qty") * pl.col("split_factor")).round().cast(pl.Int64),
            session_median_px=pl.col("close_px").median().over("symbol", "session_date"),
        )
    )
    is_bad = (pl.col("close_px") / pl.col("session_median_px")).log().abs() > bad_tick_log_deviation
    repaired = bars.with_columns(is_repaired=is_bad).with_columns(
        (pl.when(pl.col("is_repaired")).then(pl.col("session_median_px")).otherwise(pl.col(c)).alias(c))
        for c in ("open_px", "high_px", "low_px", "close_px", "vwap_px")
    )
    return repaired.select(*BAR_SCHEMA.keys(), "session_date", "is_repaired").sort("symbol", "bar_ts")


def _split_factors(bars_raw: pl.DataFrame, splits: pl.DataFrame, regular_hours: pl.DataFrame) -> pl.DataFrame:
    """Per symbol and session, the product of split ratios with a later ex-date: what to divide prices by."""
    pairs = bars_raw.select("symbol").unique().join(regular_hours.select("session_date").unique(), how="cross")
    return (
        pairs.join(splits, on="symbol", how="inner")
        .filter(pl.col("ex_date") > pl.col("session_date"))
        .group_by("symbol", "session_date")
        .agg(split_factor=pl.col("split_ratio").product())
    )


@asset(
    partitions="daily",
    contract="quality.contracts:BarsDaily",
    grain=("symbol", "session_date"),
    time_column="session_date",
    tags=("daily",),
    freshness=timedelta(days=4),
)
def bars_daily(bars_hourly: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol and session, aggregated from clean hourly bars; partitioned by session date."""
    return (
        bars_hourly.sort("symbol", "bar_ts")
        .group_by("symbol", "session_date")
        .agg(*ohlcv_aggregates(), pl.len().cast(pl.Int64).alias("bar_count"))
        .sort("symbol", "session_date")
    )
