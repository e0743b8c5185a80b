"""The US equity exchange calendar (XNYS): sessions, opens, closes, half days, as Polars frames."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import polars as pl

CALENDAR_NAME = "XNYS"
#: The exchange's own clock: a bar's session date is its start's date here.
EXCHANGE_TIMEZONE = "America/New_York"
#: Sessions in a trading year, the convention every annualization here uses.
DAILY_BARS_PER_YEAR = 252.0
#: Clock-aligned hourly bars of a 09:30-16:00 session: 09:00 (half hour), 10:00, ..., 15:00.
HOURLY_BARS_PER_SESSION = 7
HOURLY_BARS_PER_YEAR = DAILY_BARS_PER_YEAR * HOURLY_BARS_PER_SESSION
CALENDAR_START = date(2010, 1, 4)
SESSION_SCHEMA = {
    "session_date": pl.Date,
    "open_ts": pl.Datetime("us", "UTC"),
    "close_ts": pl.Datetime("us", "UTC"),
    "is_half_day": pl.Boolean,
}
#: A cached session table must reach this far past today, or it is rebuilt from exchange-calendars.
CACHE_HORIZON = timedelta(days=30)
SESSION_CACHE_DIR = Path.home() / ".cache" / "quarry"


def sessions(start: date, end: date) -> pl.DataFrame:
    """One row per trading session in [start, end], with its UTC open and close (half days included)."""
    if end < start:
        return pl.DataFrame(schema=SESSION_SCHEMA)
    return _session_table().filter(pl.col("session_date").is_between(start, end))


@lru_cache(maxsize=1)
def _session_table() -> pl.DataFrame:
    return load_session_table(SESSION_CACHE_DIR)


def load_session_table(cache_dir: Path) -> pl.DataFrame:
    """Every session exchange-calendars knows, read from a cache keyed by its version when one is current.

    Building the calendar imports pandas and parses years of holiday rules (about a CPU-second);
    a run that only plans reads the same sessions from a small Parquet file instead. A cache
    that no longer reaches `CACHE_HORIZON` past today is rebuilt.
    """
    cache = cache_dir / f"{CALENDAR_NAME}-{CALENDAR_START}-{_calendar_version()}.parquet"
    try:
        cached = pl.read_parquet(cache)
        if cached.schema == pl.Schema(SESSION_SCHEMA) and cached["session_date"].max() >= date.today() + CACHE_HORIZON:
            return cached
    except (OSError, pl.exceptions.PolarsError):
        pass
    table = _sessions_from_exchange_calendars()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        table.write_parquet(partial)
        partial.replace(cache)  # atomic: a concurrent reader sees the old file or the new one
    except OSError:
        pass  # a read-only home only costs the next run the same second
    return table


def _calendar_version() -> str:
    try:
        return version("exchange-calendars")
    except PackageNotFoundError:
        return "unknown"


def _sessions_from_exchange_calendars() -> pl.DataFrame:
    import exchange_calendars as xcals

    schedule = xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START.isoformat()).schedule
    frame = pl.DataFrame(
        {
            "session_date": [ts.date() for ts in schedule.index],
            "open_ts": schedule["open"].dt.tz_convert("UTC").tolist(),
            "close_ts": schedule["close"].dt.tz_convert("UTC").tolist(),
        }
    ).with_columns(pl.col("open_ts", "close_ts").cast(pl.Datetime("us", "UTC")))
    full_day = pl.duration(hours=6, minutes=30)
    return frame.with_columns(is_half_day=(pl.col("close_ts") - pl.col("open_ts")) < full_day)


def session_of(bar_ts: pl.Expr) -> pl.Expr:
    """The exchange session date a bar belongs to."""
    return bar_ts.dt.convert_time_zone(EXCHANGE_TIMEZONE).dt.date()


def sessions_of(bar_ts: pl.Series) -> pl.Series:
    """``session_of`` over a long column that repeats its timestamps, as a frame of many pairs or symbols does.

    Converting time zones costs about ten times a lookup, so each distinct timestamp is converted once.
    """
    if bar_ts.is_empty():  # replace_strict keeps an empty column's dtype
        return pl.Series("session_date", [], dtype=pl.Date)
    stamps = bar_ts.unique()
    session_dates = stamps.to_frame("bar_ts").select(session_of(pl.col("bar_ts")))["bar_ts"]
    return bar_ts.replace_strict(stamps, session_dates, return_dtype=pl.Date).alias("session_date")


def session_dates(start: date, end: date) -> list[date]:
    """The session dates in [start, end]; the partition keys of a daily asset."""
    return sessions(start, end)["session_date"].to_list()


def last_completed_session(now: datetime) -> date:
    """The latest session whose close is at or before `now`."""
    recent = sessions(now.date() - timedelta(days=10), now.date())
    done = recent.filter(pl.col("close_ts") <= now.astimezone(timezone.utc))
    return done["session_date"].max()


def hourly_bar_starts(session_frame: pl.DataFrame) -> pl.DataFrame:
    """One row per clock-aligned hourly bar of each session: 09:00 (covering 09:30–10:00 ET) to the last hour before the close."""
    return (
        session_frame.with_columns(
            bar_ts=pl.datetime_ranges(
                pl.col("open_ts").dt.truncate("1h"),
                pl.col("close_ts") - pl.duration(microseconds=1),
                interval="1h",
            )
        )
        .explode("bar_ts")
        .select("session_date", "bar_ts")
    )


def closed_bars(now: datetime) -> pl.DataFrame:
    """The hourly bars of the session in progress (or just closed) at `now` that have ended by `now`.

    A bar starting at `bar_ts` covers the hour up to `bar_ts + 1h` (the first one only from
    the open), so at 19:00 UTC the 18:00 bar is the newest one a reader may see.
    """
    now = now.astimezone(timezone.utc)
    today = sessions(now.date() - timedelta(days=1), now.date()).filter(
        (pl.col("open_ts") <= now) & (pl.col("session_date") == now.date())
    )
    bars = hourly_bar_starts(today)
    return bars.filter(pl.col("bar_ts") + pl.duration(hours=1) <= now)


def last_closed_bar(now: datetime) -> datetime | None:
    """The start of the newest bar of today's session that has closed by `now`; None before the first one ends or on a day without a session."""
    bars = closed_bars(now)
    return None if bars.is_empty() else bars["bar_ts"].max()


def session_through(now: datetime) -> tuple[date, datetime | None]:
    """The newest session with data at `now`, and the time its data is complete through.

    A session counts from the end of its first hourly bar; until its close it is partial
    and complete through the end of its last closed bar (None: the session is complete).
    """
    now = now.astimezone(timezone.utc)
    newest = last_closed_bar(now)
    completed = last_completed_session(now)
    if newest is None or newest.date() < now.date():
        return completed, None
    today = sessions(now.date(), now.date())
    if today["close_ts"][0] <= now:
        return today["session_date"][0], None
    return today["session_date"][0], newest + timedelta(hours=1)
