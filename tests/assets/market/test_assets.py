"""Bar transforms on tiny inline frames: dedupe, regular session, split adjustment, bad-tick repair."""

from datetime import date, datetime, timezone

import polars as pl
import pytest

from assets.market.assets import bars_daily, bars_hourly
from assets.calendar import sessions
from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA

DAY = date(2025, 3, 4)


def _bar(symbol, hour, close, volume=1000):
    return {
        "symbol": symbol, "bar_ts": datetime(2025, 3, 4, hour, tzinfo=timezone.utc),
        "open_px": close, "high_px": close + 1, "low_px": close - 1, "close_px": close,
        "volume_qty": volume, "vwap_px": close, "trade_count": 10,
    }


def _raw(rows):
    return pl.DataFrame(rows, schema=BAR_SCHEMA)


def _hourly(raw, splits=None):
    return bars_hourly.build(
        {
            "bars_raw": raw,
            "splits": splits if splits is not None else pl.DataFrame(schema=SPLIT_SCHEMA),
            "sessions": sessions(DAY, DAY),
        }
    )


def test_keeps_regular_session_and_deduplicates():
    raw = _raw([_bar("KO", 12, 60.0), _bar("KO", 14, 60.0), _bar("KO", 14, 61.0), _bar("KO", 15, 61.5), _bar("KO", 21, 62.0)])
    hourly = _hourly(raw)
    assert hourly["bar_ts"].dt.hour().to_list() == [14, 15]
    assert hourly["close_px"].to_list() == [61.0, 61.5]
    assert hourly["session_date"].to_list() == [DAY, DAY]


def test_split_adjusts_prices_before_the_ex_date():
    raw = _raw([_bar("AAPL", h, 200.0, volume=1000) for h in range(14, 21)])
    split = pl.DataFrame([("AAPL", date(2025, 3, 10), 2.0)], schema=SPLIT_SCHEMA, orient="row")
    hourly = _hourly(raw, split)
    assert hourly["close_px"].unique().to_list() == [100.0]
    assert hourly["volume_qty"].unique().to_list() == [2000]
    already_split = _hourly(raw, split.with_columns(ex_date=pl.lit(date(2025, 3, 4))))
    assert already_split["close_px"].unique().to_list() == [200.0]


def test_bad_tick_is_repaired_and_flagged():
    rows = [_bar("KO", h, 60.0 + 0.1 * h) for h in range(14, 21)]
    rows[3] = _bar("KO", 17, 95.0)
    hourly = _hourly(_raw(rows))
    repaired = hourly.filter(pl.col("is_repaired"))
    assert repaired["bar_ts"].dt.hour().to_list() == [17]
    assert repaired["close_px"][0] == pytest.approx(hourly.filter(~pl.col("is_repaired"))["close_px"].median(), rel=0.01)
    assert hourly.filter(~pl.col("is_repaired"))["close_px"].to_list() == [60.0 + 0.1 * h for h in (14, 15, 16, 18, 19, 20)]


def test_daily_aggregates_one_row_per_symbol_and_session():
    rows = [_bar("KO", h, 60.0 + h, volume=100 * h) for h in range(14, 21)]
    daily = bars_daily.build({"bars_hourly": _hourly(_raw(rows))})
    assert daily.rows(named=True) == [
        {
            "symbol": "KO", "session_date": DAY, "open_px": 74.0, "high_px": 81.0, "low_px": 73.0,
            "close_px": 80.0, "volume_qty": sum(100 * h for h in range(14, 21)),
            "vwap_px": pytest.approx(sum((60.0 + h) * 100 * h for h in range(14, 21)) / sum(100 * h for h in range(14, 21))),
            "bar_count": 7,
        }
    ]
