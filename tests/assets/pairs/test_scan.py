"""The weekly universe scan against independent references: statsmodels' coint and multipletests, pandas' corr."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.stattools import adfuller, coint

from assets.pairs.cointegration import ScanParams
from assets.pairs.scan import (
    PARALLEL_MIN_PAIR_WEEKS,
    PARALLEL_MIN_WEEKS,
    PricePanel,
    ScreenParams,
    SelectParams,
    WeekWindow,
    benjamini_hochberg,
    column_medians,
    pair_return_correlations,
    return_correlations,
    scan_week,
    scan_weeks,
    usable_processes,
)
from assets.model import conformed
from assets.sources import SampleSource
from quality.contracts import PairCandidates

LOOKBACK_SESSIONS = 120
EVERY_PAIR = ScreenParams(min_return_corr=-1.0, same_sector_only=False)


@pytest.fixture(scope="module")
def market() -> tuple[PricePanel, SampleSource]:
    """Nine months of a 40-symbol sample market with 1 % of bars missing, as a panel (no bad ticks: bars_hourly repairs those)."""
    source = SampleSource(n_symbols=40, missing_bar_rate=0.01, bad_tick_rate=0.0)
    bars = source.fetch_bars(
        source.symbols(), "1h", datetime(2025, 1, 2, tzinfo=timezone.utc), datetime(2025, 10, 1, tzinfo=timezone.utc)
    ).with_columns(session_date=pl.col("bar_ts").dt.convert_time_zone("America/New_York").dt.date())
    return PricePanel.of(bars), source


def weeks_of(panel: PricePanel, week_ends: list[date], members: np.ndarray | None = None) -> list[WeekWindow]:
    """Each week's last 120 sessions as panel rows, every symbol a member unless told otherwise."""
    session_list = np.unique(panel.session_date)
    weeks = []
    for week_end in week_ends:
        window = session_list[session_list <= np.datetime64(week_end)][-LOOKBACK_SESSIONS:]
        weeks.append(WeekWindow(
            week_end, window[0].astype(object), int(np.searchsorted(panel.session_date, window[0], "left")),
            int(np.searchsorted(panel.session_date, np.datetime64(week_end), "right")),
            np.ones(len(panel.symbols), dtype=bool) if members is None else members,
        ))
    return weeks


def fridays(first: date, count: int) -> list[date]:
    return [first + timedelta(weeks=k) for k in range(count)]


@pytest.mark.slow
def test_every_tested_pair_matches_coint_on_its_own_common_bars(market):
    """A random sample of weeks and pairs, each checked against statsmodels on the pair's own aligned bars."""
    panel, _ = market
    rng = np.random.default_rng(5)
    week_ends = sorted(rng.choice(fridays(date(2025, 6, 6), 16), size=3, replace=False).tolist())
    result = scan_weeks(panel, weeks_of(panel, week_ends), {}, ScanParams(), EVERY_PAIR, SelectParams())
    assert result.height == 3 * 40 * 39 // 2
    assert result.get_column("n_tested").unique().to_list() == [780]
    sample = result.sample(45, seed=3)
    column = dict(zip(panel.symbols, panel.log_px.T))
    checked_short = 0
    for row in sample.iter_rows(named=True):
        rows = (panel.session_date >= np.datetime64(row["window_start_date"])) & (
            panel.session_date <= np.datetime64(row["week_end_date"])
        )
        y, x = column[row["symbol_y"]][rows], column[row["symbol_x"]][rows]
        shared = np.isfinite(y) & np.isfinite(x)
        checked_short += shared.sum() < rows.sum()
        stat, p_value, _ = coint(y[shared], x[shared])
        spread = sm.OLS(y[shared], sm.add_constant(x[shared])).fit().resid
        lag = adfuller(spread, regression="n", autolag="aic", result_object=True).lags
        assert row["n_obs"] == shared.sum()
        assert row["adf_stat"] == pytest.approx(stat, abs=1e-9, rel=0)
        assert row["p_value"] == pytest.approx(p_value, abs=1e-9, rel=0)
        assert row["lag"] == lag
    assert checked_short == len(sample)  # every sampled pair had bars of its own missing


def test_planted_pairs_are_traded_and_the_screen_tests_few_pairs(market):
    panel, source = market
    result = scan_weeks(panel, weeks_of(panel, [date(2025, 9, 26)]), source.sectors(), ScanParams(),
                        ScreenParams(), SelectParams())
    traded = set(result.filter("is_traded").select("symbol_y", "symbol_x").rows())
    planted = {tuple(sorted(pair)) for pair in source.cointegrated_pairs()}
    assert planted <= traded
    assert result.height < 40 * 39 // 2 // 10  # the screen tested a small share of the pairs
    assert result.get_column("return_corr").min() >= 0.5


def test_return_correlations_match_pandas_pairwise_complete(market):
    panel, _ = market
    window = panel.log_px[:900, :12]
    expected = pd.DataFrame(np.diff(window, axis=0)).corr(min_periods=3).to_numpy()
    np.testing.assert_allclose(return_correlations(window), expected, rtol=0, atol=1e-9)
    first, second = np.triu_indices(12, k=1)
    for picked in (slice(None), slice(0, 5)):  # all pairs (the N×N products) and a few (summed per pair)
        np.testing.assert_allclose(pair_return_correlations(window, first[picked], second[picked]),
                                   expected[first[picked], second[picked]], rtol=0, atol=1e-9)


def test_column_medians_match_numpy_nanmedian():
    values = np.random.default_rng(2).lognormal(12.0, 1.0, (41, 7))
    values[np.random.default_rng(3).random(values.shape) < 0.3] = np.nan
    values[:, 4] = np.nan
    values[:40, 5] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(values, axis=0)
    np.testing.assert_array_equal(column_medians(values), expected)
    np.testing.assert_array_equal(column_medians(values[:40]), np.r_[np.nanmedian(values[:40, :4], axis=0), np.nan,
                                                                     np.nan, np.nanmedian(values[:40, 6])])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), min_size=1, max_size=60))
def test_benjamini_hochberg_matches_statsmodels(p_values):
    p = np.array(p_values)
    q = benjamini_hochberg(p)
    tested = ~np.isnan(p)
    assert np.array_equal(np.isnan(q), ~tested)
    if tested.any():
        expected = multipletests(p[tested], method="fdr_bh")[1]
        np.testing.assert_allclose(q[tested], expected, rtol=1e-12, atol=1e-15)


def test_cointegrated_means_bh_significant_and_traded_is_the_top_by_score(market):
    panel, _ = market
    select = SelectParams(fdr_q=0.2, max_traded_pairs=3)
    result = scan_weeks(panel, weeks_of(panel, [date(2025, 9, 26)]), {}, ScanParams(), EVERY_PAIR, select)
    q = multipletests(result["p_value"].to_numpy(), method="fdr_bh")[1]
    half_life_ok = result["half_life_bars"].is_between(1.0, 500.0).fill_null(False).to_numpy()
    assert np.array_equal(result["is_cointegrated"].to_numpy(), (q <= 0.2) & half_life_ok)
    cointegrated = result.filter("is_cointegrated").sort("adf_stat")
    assert cointegrated.height > 3
    assert set(result.filter("is_traded").select("symbol_y", "symbol_x").rows()) == set(
        cointegrated.head(3).select("symbol_y", "symbol_x").rows()
    )
    assert cointegrated["selection_rank"].to_list() == list(range(1, cointegrated.height + 1))


def test_screen_respects_sectors_liquidity_and_membership(market):
    panel, _ = market
    window = weeks_of(panel, [date(2025, 9, 26)])[0]
    rows = slice(window.first_row, window.stop_row)
    n = len(panel.symbols)
    sector_codes = np.array([i % 3 if i < 30 else -1 for i in range(n)])  # the last ten sectors unknown
    members = np.ones(n, dtype=bool)
    members[5] = False
    dollar_volume = panel.dollar_volume[rows].copy()
    dollar_volume[:, 7] = 10.0
    out = scan_week(panel.log_px[rows], dollar_volume, panel.symbols, sector_codes, members, ScanParams(),
                    ScreenParams(min_return_corr=-1.0, min_median_dollar_volume=1000.0), SelectParams())
    index = {s: i for i, s in enumerate(panel.symbols)}
    pairs = [(index[y], index[x]) for y, x in out.select("symbol_y", "symbol_x").iter_rows()]
    assert pairs and not any({5, 7} & {i, j} for i, j in pairs)
    assert all(sector_codes[i] == sector_codes[j] or min(sector_codes[i], sector_codes[j]) < 0 for i, j in pairs)
    assert any(sector_codes[i] < 0 or sector_codes[j] < 0 for i, j in pairs)
    expected = sum(1 for i in range(n) for j in range(i + 1, n) if not {5, 7} & {i, j}
                   and (sector_codes[i] == sector_codes[j] or min(sector_codes[i], sector_codes[j]) < 0))
    assert len(pairs) == expected


def test_weeks_in_worker_processes_equal_one_process(market):
    panel, source = market
    weeks = weeks_of(panel, fridays(date(2025, 4, 4), PARALLEL_MIN_WEEKS + 1))
    args = (panel, weeks, source.sectors(), ScanParams(), ScreenParams(min_return_corr=0.3), SelectParams())
    serial = scan_weeks(*args, processes=1)
    parallel = scan_weeks(*args, processes=2)
    assert sorted(serial.columns) == sorted(PairCandidates.to_schema().columns)
    PairCandidates.validate(conformed(serial, "quality.contracts:PairCandidates"))
    assert serial.get_column("week_end_date").n_unique() == PARALLEL_MIN_WEEKS + 1
    assert parallel.equals(serial)


def test_a_small_scan_stays_in_this_process_and_a_large_one_uses_every_core(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert usable_processes(PARALLEL_MIN_PAIR_WEEKS - 1) == 1  # 20 symbols over two years: 190 pairs × ~100 weeks
    assert usable_processes(PARALLEL_MIN_PAIR_WEEKS) == 3


def test_a_week_before_any_bar_gives_no_rows(market):
    panel, _ = market
    early = WeekWindow(date(2024, 12, 27), date(2024, 12, 27), 0, 0, np.ones(len(panel.symbols), dtype=bool))
    result = scan_weeks(panel, [early], {}, ScanParams(), EVERY_PAIR, SelectParams())
    assert result.is_empty()
    assert conformed(result, "quality.contracts:PairCandidates").schema == PairCandidates.empty().schema
