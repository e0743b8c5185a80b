"""Cross-row checks of the market domain on bars: each returns the failing rows, carrying `partition_key`, or an empty frame."""

from __future__ import annotations

from datetime import date

import polars as pl

from assets.calendar import hourly_bar_starts, sessions


def _session_bounds(frame: pl.DataFrame) -> tuple[date, date]:
    keys = frame["partition_key"].str.to_date()
    return keys.min(), keys.max()


def missing_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Hourly bars the calendar expects for a symbol seen in the partition but the data lacks."""
    if frame.is_empty():
        return frame.select("partition_key", "symbol", "bar_ts")
    start, end = _session_bounds(frame)
    expected = hourly_bar_starts(sessions(start, end)).with_columns(
        partition_key=pl.col("session_date").cast(pl.String)
    )
    symbols = frame.select("partition_key", "symbol").unique()
    wanted = symbols.join(expected.select("partition_key", "bar_ts"), on="partition_key")
    return wanted.join(frame.select("symbol", "bar_ts"), on=["symbol", "bar_ts"], how="anti").sort(
        "partition_key", "symbol", "bar_ts"
    )


def bars_outside_session(frame: pl.DataFrame) -> pl.DataFrame:
    """Bars whose start is not a regular-session hour of the exchange calendar."""
    if frame.is_empty():
        return frame
    start, end = _session_bounds(frame)
    allowed = hourly_bar_starts(sessions(start, end)).select("bar_ts")
    return frame.join(allowed, on="bar_ts", how="anti")


def price_jumps(frame: pl.DataFrame, threshold: float = 0.10) -> pl.DataFrame:
    """Bar-to-bar close moves larger than `threshold` in log terms, within one symbol and session."""
    move = (pl.col("close_px") / pl.col("close_px").shift(1)).log().over("symbol", "partition_key", order_by="bar_ts")
    return (
        frame.with_columns(log_move=move)
        .filter(pl.col("log_move").abs() > threshold)
        .select("partition_key", "symbol", "bar_ts", "close_px", "log_move")
    )


def repaired_bad_ticks(frame: pl.DataFrame) -> pl.DataFrame:
    """Bars that arrived as bad ticks and were replaced by the session's median price."""
    return frame.filter(pl.col("is_repaired")).select("partition_key", "symbol", "bar_ts", "close_px")


def bad_ticks_beyond_tolerance(
    frame: pl.DataFrame, max_per_symbol_session: int = 1, max_share: float = 0.05
) -> pl.DataFrame:
    """Repairs beyond tolerance: more than one per symbol and session, or more than 5% of a partition."""
    per_symbol = pl.col("is_repaired").sum().over("symbol", "partition_key")
    share = pl.col("is_repaired").mean().over("partition_key")
    return frame.filter(
        pl.col("is_repaired") & ((per_symbol > max_per_symbol_session) | (share > max_share))
    ).select("partition_key", "symbol", "bar_ts", "close_px")

