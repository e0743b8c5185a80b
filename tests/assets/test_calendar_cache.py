"""The session calendar cache: what a planning run reads instead of building exchange-calendars' schedule."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from assets.calendar import CACHE_HORIZON, _sessions_from_exchange_calendars, load_session_table


def test_the_cache_holds_exchange_calendars_sessions_and_a_stale_one_is_rebuilt(tmp_path):
    built = load_session_table(tmp_path)
    (cached,) = tmp_path.glob("XNYS-*.parquet")
    assert pl.read_parquet(cached).equals(built)
    assert built.equals(_sessions_from_exchange_calendars())
    assert built["session_date"].max() >= date.today() + CACHE_HORIZON
    # known sessions: a half day, a holiday skipped, a weekend skipped
    days = built.filter(pl.col("session_date").is_between(date(2025, 11, 26), date(2025, 12, 1)))
    assert days.select("session_date", "is_half_day").rows() == [
        (date(2025, 11, 26), False), (date(2025, 11, 28), True), (date(2025, 12, 1), False),
    ]

    stale = built.filter(pl.col("session_date") < date.today() + CACHE_HORIZON - timedelta(days=1))
    stale.write_parquet(cached)
    assert load_session_table(tmp_path).equals(built)
    assert pl.read_parquet(cached).equals(built)
