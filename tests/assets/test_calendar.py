"""The exchange calendar: holidays, half days and clock-aligned hourly bars."""

from datetime import date, datetime, timezone

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from assets.calendar import hourly_bar_starts, last_completed_session, session_dates, session_of, sessions, sessions_of


def test_holidays_are_not_sessions():
    days = session_dates(date(2025, 12, 22), date(2026, 1, 2))
    assert date(2025, 12, 25) not in days and date(2026, 1, 1) not in days
    assert date(2025, 12, 24) in days


def test_half_days_have_four_hourly_bars():
    frame = sessions(date(2025, 11, 26), date(2025, 11, 28))
    assert frame["is_half_day"].to_list() == [False, True]
    bars = hourly_bar_starts(frame)
    per_day = dict(bars.group_by("session_date").len().iter_rows())
    assert per_day == {date(2025, 11, 26): 7, date(2025, 11, 28): 4}


def test_bars_are_clock_aligned_in_summer_and_winter():
    summer = hourly_bar_starts(sessions(date(2025, 7, 1), date(2025, 7, 1)))["bar_ts"]
    winter = hourly_bar_starts(sessions(date(2025, 1, 6), date(2025, 1, 6)))["bar_ts"]
    assert summer[0] == datetime(2025, 7, 1, 13, tzinfo=timezone.utc)
    assert winter[0] == datetime(2025, 1, 6, 14, tzinfo=timezone.utc)


def test_last_completed_session():
    """Daylight saving started on 2025-03-09, so that Monday closed at 20:00 UTC."""
    assert last_completed_session(datetime(2025, 3, 10, 19, 59, tzinfo=timezone.utc)) == date(2025, 3, 7)
    assert last_completed_session(datetime(2025, 3, 10, 20, tzinfo=timezone.utc)) == date(2025, 3, 10)


@given(
    st.lists(
        st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(timezone.utc)),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_sessions_of_a_column_match_converting_every_bar(stamps, repeats):
    """Converting each distinct timestamp once gives every bar the date converting it alone would, DST edges included."""
    bar_ts = pl.Series("bar_ts", stamps * repeats, dtype=pl.Datetime("us", "UTC"))
    expected = bar_ts.to_frame().select(session_of(pl.col("bar_ts")))["bar_ts"]
    got = sessions_of(bar_ts)
    assert got.dtype == pl.Date
    assert got.to_list() == expected.to_list()
