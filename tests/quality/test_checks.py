"""Each bars check on small frames, against expectations worked out by hand or recounted in plain Python."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from quality.checks import (
    bad_ticks_beyond_tolerance,
    bars_outside_session,
    missing_bars,
    price_jumps,
    repaired_bad_ticks,
)

MONDAY = "2025-03-03"  # a full session in winter time: 09:30–16:00 New York is 14:30–21:00 UTC
HALF_DAY = "2025-11-28"  # the day after Thanksgiving closes at 13:00 New York, 18:00 UTC
#: The clock-aligned hourly bar starts of each session, in UTC: the first covers the open's half hour.
BAR_HOURS = {MONDAY: range(14, 21), HALF_DAY: range(14, 18)}


def _at(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc)


def _bars(rows: list[tuple[str, str, int, float, bool]]) -> pl.DataFrame:
    """Bars from (partition_key, symbol, UTC hour, close, is_repaired)."""
    return pl.DataFrame(
        [(key, symbol, _at(key, hour), close, repaired) for key, symbol, hour, close, repaired in rows],
        schema={"partition_key": pl.String, "symbol": pl.String, "bar_ts": pl.Datetime("us", "UTC"),
                "close_px": pl.Float64, "is_repaired": pl.Boolean},
        orient="row",
    )


def _full_session(key: str, symbol: str, close: float = 50.0) -> list[tuple[str, str, int, float, bool]]:
    return [(key, symbol, hour, close, False) for hour in BAR_HOURS[key]]


def _keys(frame: pl.DataFrame) -> set[tuple[str, str, datetime]]:
    return set(frame.select("partition_key", "symbol", "bar_ts").iter_rows())


def test_missing_bars_are_the_calendar_hours_a_seen_symbol_lacks():
    rows = [r for r in _full_session(MONDAY, "KO") if r[2] != 16] + _full_session(MONDAY, "PEP")
    rows += [r for r in _full_session(HALF_DAY, "KO") if r[2] not in (14, 17)]

    missing = missing_bars(_bars(rows))

    # PEP is complete; XOM is not in the data at all, so it is not reported as missing
    assert _keys(missing) == {(MONDAY, "KO", _at(MONDAY, 16)), (HALF_DAY, "KO", _at(HALF_DAY, 14)),
                              (HALF_DAY, "KO", _at(HALF_DAY, 17))}


def test_complete_sessions_and_an_empty_frame_have_no_missing_bars():
    assert missing_bars(_bars(_full_session(MONDAY, "KO") + _full_session(HALF_DAY, "KO"))).is_empty()
    assert missing_bars(_bars([])).is_empty()


def test_bars_outside_session_are_those_before_the_open_hour_or_from_the_close_on():
    rows = _full_session(MONDAY, "KO") + [(MONDAY, "KO", 13, 50.0, False), (MONDAY, "KO", 21, 50.0, False),
                                          (HALF_DAY, "PEP", 17, 50.0, False), (HALF_DAY, "PEP", 18, 50.0, False)]

    outside = bars_outside_session(_bars(rows))

    assert _keys(outside) == {(MONDAY, "KO", _at(MONDAY, 13)), (MONDAY, "KO", _at(MONDAY, 21)),
                              (HALF_DAY, "PEP", _at(HALF_DAY, 18))}
    assert bars_outside_session(_bars([])).is_empty()


def test_price_jumps_are_moves_over_ten_percent_in_log_terms_within_a_symbol_and_session():
    closes = [100.0, 100.0, 112.0, 112.0, 100.0, 109.0, 109.0]  # log moves: 0, .113, 0, -.113, .086, 0
    rows = [(MONDAY, "KO", hour, close, False) for hour, close in zip(BAR_HOURS[MONDAY], closes)]
    # PEP's session starts far from KO's last close: symbols are never compared with each other
    rows += [(MONDAY, "PEP", hour, 300.0, False) for hour in BAR_HOURS[MONDAY]]
    # the next session opens 20% higher than MONDAY closed: sessions are never compared either
    rows += [(HALF_DAY, "KO", hour, 130.0, False) for hour in BAR_HOURS[HALF_DAY]]

    jumps = price_jumps(_bars(rows))

    assert _keys(jumps) == {(MONDAY, "KO", _at(MONDAY, 16)), (MONDAY, "KO", _at(MONDAY, 18))}
    assert sorted(round(m, 4) for m in jumps["log_move"]) == [round(math.log(100 / 112), 4), round(math.log(112 / 100), 4)]


def test_repaired_bad_ticks_are_every_repaired_bar():
    rows = _full_session(MONDAY, "KO")
    rows[2] = (MONDAY, "KO", rows[2][2], 51.0, True)

    assert _keys(repaired_bad_ticks(_bars(rows))) == {(MONDAY, "KO", _at(MONDAY, rows[2][2]))}
    assert repaired_bad_ticks(_bars(_full_session(MONDAY, "KO"))).is_empty()


def test_one_repair_in_a_large_partition_is_tolerated_two_for_one_symbol_are_not():
    symbols = [f"S{i:02d}" for i in range(3)]  # 21 bars: one repair is 4.8% of the partition
    one = [(MONDAY, s, h, 50.0, s == "S00" and h == 15) for s in symbols for h in BAR_HOURS[MONDAY]]
    assert bad_ticks_beyond_tolerance(_bars(one)).is_empty()

    two_for_one = [(k, s, h, c, repaired or (s == "S00" and h == 16)) for k, s, h, c, repaired in one]
    assert _keys(bad_ticks_beyond_tolerance(_bars(two_for_one))) == {(MONDAY, "S00", _at(MONDAY, 15)),
                                                                     (MONDAY, "S00", _at(MONDAY, 16))}


def test_one_repair_in_a_small_partition_is_over_five_percent():
    rows = _full_session(HALF_DAY, "KO")  # 4 bars: one repair is 25% of the partition
    rows[0] = (HALF_DAY, "KO", rows[0][2], 50.0, True)

    assert _keys(bad_ticks_beyond_tolerance(_bars(rows))) == {(HALF_DAY, "KO", _at(HALF_DAY, 14))}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1.0, 1000.0, allow_nan=False), min_size=len(BAR_HOURS[MONDAY]), max_size=len(BAR_HOURS[MONDAY])))
def test_price_jumps_match_a_recount_of_consecutive_log_moves(closes):
    rows = [(MONDAY, "KO", hour, close, False) for hour, close in zip(BAR_HOURS[MONDAY], closes)]
    hours = list(BAR_HOURS[MONDAY])
    expected = {(MONDAY, "KO", _at(MONDAY, hours[i])) for i in range(1, len(closes))
                if abs(math.log(closes[i] / closes[i - 1])) > 0.10}

    assert _keys(price_jumps(_bars(rows))) == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=3 * len(BAR_HOURS[MONDAY]), max_size=3 * len(BAR_HOURS[MONDAY])))
def test_bad_ticks_beyond_tolerance_match_a_recount_per_symbol_and_partition(flags):
    grid = [(s, h) for s in ("A", "B", "C") for h in BAR_HOURS[MONDAY]]
    rows = [(MONDAY, s, h, 50.0, flag) for (s, h), flag in zip(grid, flags)]
    per_symbol = {s: sum(flag for (sym, _), flag in zip(grid, flags) if sym == s) for s in ("A", "B", "C")}
    share = sum(flags) / len(flags)
    expected = {(MONDAY, s, _at(MONDAY, h)) for (s, h), flag in zip(grid, flags)
                if flag and (per_symbol[s] > 1 or share > 0.05)}

    assert _keys(bad_ticks_beyond_tolerance(_bars(rows))) == expected
