"""The sample market: deterministic, window-independent, cointegrated where it says, with splits and bad ticks."""

from datetime import date, datetime, timezone

import numpy as np
import polars as pl
from statsmodels.tsa.stattools import coint

from assets.sources import BAR_SCHEMA, SampleSource


def _utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_same_seed_same_bars_whatever_the_window():
    source = SampleSource()
    wide = source.fetch_bars(source.symbols(), "1h", _utc(2025, 1, 2), _utc(2025, 6, 1))
    narrow = source.fetch_bars(source.symbols(), "1h", _utc(2025, 3, 3), _utc(2025, 3, 8))
    inside = wide.filter(pl.col("bar_ts").is_between(_utc(2025, 3, 3), _utc(2025, 3, 8), closed="left"))
    assert narrow.schema == BAR_SCHEMA
    assert narrow.equals(inside)
    other_seed = SampleSource(seed=8).fetch_bars(source.symbols(), "1h", _utc(2025, 3, 3), _utc(2025, 3, 8))
    assert not narrow.equals(other_seed)


def test_known_pairs_are_cointegrated_and_others_are_not():
    source = SampleSource()
    bars = source.fetch_bars(source.symbols(), "1h", _utc(2024, 1, 2), _utc(2024, 12, 31))
    wide = bars.pivot(on="symbol", index="bar_ts", values="close_px").drop_nulls().sort("bar_ts")

    def pvalue(y, x):
        return coint(np.log(wide[y].to_numpy()), np.log(wide[x].to_numpy()))[1]

    for y, x in source.cointegrated_pairs():
        assert pvalue(y, x) < 0.01, (y, x)
    assert pvalue("KO", "XOM") > 0.05
    assert pvalue("JPM", "AAPL") > 0.05


def test_splits_show_in_raw_prices():
    source = SampleSource()
    splits = source.fetch_splits(source.symbols(), date(2024, 1, 1), date(2026, 1, 1))
    assert ("AAPL", date(2025, 8, 4), 2.0) in splits.rows()
    around = source.fetch_bars(["AAPL"], "1d", _utc(2025, 7, 31), _utc(2025, 8, 6)).sort("bar_ts")
    jump = around["close_px"].to_numpy()
    assert 0.4 < jump[2] / jump[1] < 0.6  # Friday 2025-08-01 → Monday 2025-08-04, a 2-for-1 split


def test_bad_ticks_and_missing_bars_are_rare_and_bounded():
    source = SampleSource()
    bars = source.fetch_bars(source.symbols(), "1h", _utc(2024, 1, 2), _utc(2025, 1, 1))
    median = pl.col("close_px").median().over("symbol", pl.col("bar_ts").dt.date())
    bad = bars.filter(((pl.col("close_px") / median).log().abs() > 0.15))
    share = bad.height / bars.height
    assert 0 < share < 0.002
    per_symbol_day = bad.group_by("symbol", pl.col("bar_ts").dt.date()).len()
    assert per_symbol_day["len"].max() == 1
    expected_bars = 20 * (252 * 7 - 3 * 3)  # three half days in 2024
    assert 0.99 * expected_bars < bars.height < expected_bars
