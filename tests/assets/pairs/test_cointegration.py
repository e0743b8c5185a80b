"""Pair scan round trip: batched Engle–Granger statistics against statsmodels' coint, pair by pair."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import CollinearityWarning
from statsmodels.tsa.stattools import adfuller, coint

from assets.pairs.cointegration import (
    PAIR_SCAN_SCHEMA,
    ScanParams,
    default_max_lag,
    scan_log_prices,
    scan_pairs,
)

N_BARS = 600
# Seed 32 gives independent walks that no pair of which passes at p <= 0.05,
# so the planted pairs are exactly the expected survivors.
PANEL_SEED = 32
WALKS = [f"W{i}" for i in range(9)]
PLANTED = {("W0", "Y0"), ("W1", "Y1"), ("W2", "Y2")}


def make_panel(n_bars: int = N_BARS, seed: int = PANEL_SEED) -> tuple[np.ndarray, list[str]]:
    """Log prices of nine independent random walks and three legs cointegrated with W0, W1, W2.

    Each planted leg is y = a + b·x + u with u an AR(1) of coefficient φ,
    so its spread half-life is −ln 2 / ln φ bars.
    """
    rng = np.random.default_rng(seed)
    start = np.log(rng.uniform(20.0, 200.0, len(WALKS)))
    walks = start + np.cumsum(rng.normal(0.0, 0.01, (n_bars, len(WALKS))), axis=0)
    legs = []
    for leg, (phi, beta, alpha) in enumerate([(0.6, 1.3, 0.2), (0.85, 0.7, -0.5), (0.95, 1.0, 0.1)]):
        shock = rng.normal(0.0, 0.004, n_bars)
        noise = np.zeros(n_bars)
        for t in range(1, n_bars):
            noise[t] = phi * noise[t - 1] + shock[t]
        legs.append(alpha + beta * walks[:, leg] + noise)
    return np.column_stack([walks, *legs]), [*WALKS, "Y0", "Y1", "Y2"]


def long_frame(log_px: np.ndarray, symbols: list[str]) -> pl.DataFrame:
    """The panel as `symbol`/`bar_ts`/`close_px` rows, one per symbol and bar."""
    n_bars = log_px.shape[0]
    return pl.DataFrame(
        {
            "symbol": np.repeat(symbols, n_bars),
            "bar_ts": np.tile(np.arange(n_bars), len(symbols)),
            "close_px": np.exp(log_px.T.ravel()),
        }
    ).with_columns(pl.from_epoch("bar_ts", time_unit="s"))


@dataclass(frozen=True)
class Reference:
    """statsmodels' answer for one (y, x) pair."""

    adf_stat: float
    p_value: float
    lag: int | None
    hedge_ratio: float
    intercept: float
    half_life_bars: float | None


def reference(y: np.ndarray, x: np.ndarray) -> Reference:
    """coint(y, x) with defaults, its residual ADF's chosen lag, and OLS hedge and AR(1) half-life."""
    coint_t, p_value, _ = coint(y, x)
    first_stage = sm.OLS(y, sm.add_constant(x)).fit()
    spread = first_stage.resid
    lag = None
    if math.isfinite(coint_t):
        lag = adfuller(spread, regression="n", autolag="aic", result_object=True).lags
    ar1 = sm.OLS(np.diff(spread), sm.add_constant(spread[:-1])).fit()
    slope = ar1.params[1]
    half_life = -math.log(2.0) / math.log1p(slope) if -1.0 < slope < 0.0 else None
    return Reference(
        adf_stat=coint_t,
        p_value=p_value,
        lag=lag,
        hedge_ratio=first_stage.params[1],
        intercept=first_stage.params[0],
        half_life_bars=half_life,
    )


def assert_same_tests(result: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Same pairs, lags and decisions, and statistics equal up to exp/log round-off."""
    identity = ["symbol_y", "symbol_x", "lag", "is_cointegrated"]
    assert result.select(identity).equals(expected.select(identity))
    for column in ("hedge_ratio", "adf_stat", "p_value", "half_life_bars"):
        np.testing.assert_allclose(
            result.get_column(column).to_numpy(), expected.get_column(column).to_numpy(), rtol=1e-9
        )


def passes(ref: Reference, params: ScanParams) -> bool:
    """The keep/reject rule applied to statsmodels' numbers."""
    return (
        ref.p_value <= params.max_p_value
        and ref.half_life_bars is not None
        and params.min_half_life_bars <= ref.half_life_bars <= params.max_half_life_bars
    )


@pytest.fixture(scope="module")
def panel() -> tuple[np.ndarray, list[str]]:
    return make_panel()


@pytest.fixture(scope="module")
def scanned(panel) -> pl.DataFrame:
    log_px, symbols = panel
    return scan_log_prices(log_px, symbols, ScanParams())


@pytest.fixture(scope="module")
def references(panel, scanned) -> dict[tuple[str, str], Reference]:
    log_px, symbols = panel
    column = {symbol: log_px[:, i] for i, symbol in enumerate(symbols)}
    return {
        (y, x): reference(column[y], column[x])
        for y, x in scanned.select("symbol_y", "symbol_x").iter_rows()
    }


def test_every_pair_is_tested_once_in_alphabetical_order(scanned):
    pairs = scanned.select("symbol_y", "symbol_x").rows()
    assert len(pairs) == 12 * 11 // 2
    assert pairs == sorted(pairs)
    assert all(y < x for y, x in pairs)
    assert scanned.schema == PAIR_SCAN_SCHEMA
    assert scanned.get_column("n_obs").unique().to_list() == [N_BARS]


@pytest.mark.slow
def test_statistics_match_statsmodels_coint(scanned, references):
    for row in scanned.iter_rows(named=True):
        ref = references[(row["symbol_y"], row["symbol_x"])]
        assert row["adf_stat"] == pytest.approx(ref.adf_stat, abs=1e-8, rel=0)
        assert row["p_value"] == pytest.approx(ref.p_value, abs=1e-8, rel=0)
        assert row["lag"] == ref.lag


def test_hedge_ratio_and_half_life_match_ols(scanned, references):
    for row in scanned.iter_rows(named=True):
        ref = references[(row["symbol_y"], row["symbol_x"])]
        assert row["hedge_ratio"] == pytest.approx(ref.hedge_ratio, rel=1e-10)
        assert row["intercept"] == pytest.approx(ref.intercept, rel=1e-10, abs=1e-12)
        if ref.half_life_bars is None:
            assert row["half_life_bars"] is None
        else:
            assert row["half_life_bars"] == pytest.approx(ref.half_life_bars, rel=1e-9)


def test_keep_reject_decisions_match_statsmodels(scanned, references):
    params = ScanParams()
    for row in scanned.iter_rows(named=True):
        ref = references[(row["symbol_y"], row["symbol_x"])]
        assert (row["p_value"] <= params.max_p_value) == (ref.p_value <= params.max_p_value)
        assert row["is_cointegrated"] == passes(ref, params)


def test_planted_pairs_pass_and_independent_walks_do_not(scanned):
    kept = set(scanned.filter("is_cointegrated").select("symbol_y", "symbol_x").rows())
    assert kept == PLANTED


def test_planted_half_lives_are_near_their_ar1_coefficient(scanned):
    half_life = {
        (y, x): value
        for y, x, value in scanned.select("symbol_y", "symbol_x", "half_life_bars").iter_rows()
    }
    for pair, phi in zip(sorted(PLANTED), (0.6, 0.85, 0.95)):
        assert half_life[pair] == pytest.approx(-math.log(2.0) / math.log(phi), rel=0.35)


def test_chunking_does_not_change_the_result(panel, scanned):
    log_px, symbols = panel
    chunked = scan_log_prices(log_px, symbols, ScanParams(pairs_per_chunk=5))
    assert chunked.equals(scanned)


def test_input_column_order_does_not_change_the_result(panel, scanned):
    log_px, symbols = panel
    order = np.random.default_rng(0).permutation(len(symbols))
    shuffled = scan_log_prices(log_px[:, order], [symbols[i] for i in order], ScanParams())
    assert shuffled.equals(scanned)


def test_polars_panel_matches_the_array_scan(panel, scanned):
    log_px, symbols = panel
    prices = long_frame(log_px, symbols).sample(fraction=1.0, shuffle=True, seed=1)
    assert_same_tests(scan_pairs(prices, ScanParams()), scanned)


def test_a_bar_missing_for_one_symbol_shortens_only_its_own_pairs(panel):
    log_px, symbols = panel
    prices = long_frame(log_px[:, :3], symbols[:3])
    gappy = prices.filter(~((pl.col("symbol") == "W1") & (pl.col("bar_ts") == pl.col("bar_ts").max())))
    result = scan_pairs(gappy, ScanParams())
    n_obs = {(y, x): n for y, x, n in result.select("symbol_y", "symbol_x", "n_obs").iter_rows()}
    assert n_obs == {("W0", "W1"): N_BARS - 1, ("W0", "W2"): N_BARS, ("W1", "W2"): N_BARS - 1}
    whole = scan_log_prices(log_px[:, :3], symbols[:3], ScanParams())
    shortened = scan_log_prices(log_px[:-1, :3], symbols[:3], ScanParams())
    assert_same_tests(result.filter(pl.col("symbol_y").eq("W0") & pl.col("symbol_x").eq("W2")),
                      whole.filter(pl.col("symbol_y").eq("W0") & pl.col("symbol_x").eq("W2")))
    with_w1 = pl.col("symbol_y").eq("W1") | pl.col("symbol_x").eq("W1")
    assert_same_tests(result.filter(with_w1), shortened.filter(with_w1))


@pytest.mark.parametrize("bad_close", [0.0, -1.0, float("nan"), float("inf"), None])
def test_an_unusable_close_counts_as_a_missing_bar(panel, bad_close):
    log_px, symbols = panel
    prices = long_frame(log_px[:, :3], symbols[:3])
    first_bar = pl.col("bar_ts") == pl.col("bar_ts").min()
    spoiled = prices.with_columns(
        close_px=pl.when((pl.col("symbol") == "W2") & first_bar)
        .then(pl.lit(bad_close, dtype=pl.Float64))
        .otherwise("close_px")
    )
    with_w2 = pl.col("symbol_y").eq("W2") | pl.col("symbol_x").eq("W2")
    result = scan_pairs(spoiled, ScanParams()).filter(with_w2)
    assert result.get_column("n_obs").unique().to_list() == [N_BARS - 1]
    assert_same_tests(result, scan_log_prices(log_px[1:, :3], symbols[:3], ScanParams()).filter(with_w2))


@pytest.mark.slow
def test_each_pair_matches_coint_on_its_own_common_bars(panel):
    log_px, symbols = panel
    rng = np.random.default_rng(11)
    holed = log_px.copy()
    holed[rng.random(holed.shape) < 0.02] = np.nan
    result = scan_log_prices(holed, symbols, ScanParams())
    column = dict(zip(symbols, holed.T))
    for row in result.iter_rows(named=True):
        y, x = column[row["symbol_y"]], column[row["symbol_x"]]
        shared = np.isfinite(y) & np.isfinite(x)
        ref = reference(y[shared], x[shared])
        assert row["n_obs"] == shared.sum()
        assert row["adf_stat"] == pytest.approx(ref.adf_stat, abs=1e-9, rel=0)
        assert row["p_value"] == pytest.approx(ref.p_value, abs=1e-9, rel=0)
        assert row["lag"] == ref.lag


def test_given_pairs_are_the_only_ones_tested(panel, scanned):
    log_px, symbols = panel
    picked = scan_log_prices(log_px, symbols, ScanParams(), pairs=(np.array([9, 0, 3]), np.array([0, 1, 3 + 1])))
    assert picked.select("symbol_y", "symbol_x").rows() == [("W0", "W1"), ("W0", "Y0"), ("W3", "W4")]
    assert_same_tests(picked, scanned.join(picked.select("symbol_y", "symbol_x"), on=["symbol_y", "symbol_x"], maintain_order="left"))


def test_sector_filter_keeps_only_same_sector_pairs(panel):
    log_px, symbols = panel
    sectors = {symbol: ("energy" if symbol[-1] in "0246" else "banks") for symbol in symbols}
    result = scan_log_prices(log_px, symbols, ScanParams(same_sector_only=True), sectors)
    pairs = result.select("symbol_y", "symbol_x").rows()
    assert pairs and all(sectors[y] == sectors[x] for y, x in pairs)
    n_energy = sum(sector == "energy" for sector in sectors.values())
    n_banks = len(symbols) - n_energy
    assert len(pairs) == n_energy * (n_energy - 1) // 2 + n_banks * (n_banks - 1) // 2


def test_sectors_are_ignored_when_the_filter_is_off(panel, scanned):
    log_px, symbols = panel
    sectors = {symbol: symbol for symbol in symbols}
    assert scan_log_prices(log_px, symbols, ScanParams(), sectors).equals(scanned)


@pytest.mark.parametrize(
    ("sectors", "message"),
    [(None, "needs a symbol → sector mapping"), ({"W0": "energy"}, "symbols without a sector")],
)
def test_sector_filter_without_a_full_mapping_is_refused(panel, sectors, message):
    log_px, symbols = panel
    with pytest.raises(ValueError, match=message):
        scan_log_prices(log_px, symbols, ScanParams(same_sector_only=True), sectors)


def test_stronger_orientation_keeps_the_more_negative_statistic(panel):
    log_px, symbols = panel
    picked = scan_log_prices(log_px[:, [0, 5, 9]], ["W0", "W5", "Y0"], ScanParams(orientation="stronger"))
    column = {"W0": log_px[:, 0], "W5": log_px[:, 5], "Y0": log_px[:, 9]}
    for row in picked.iter_rows(named=True):
        y, x = row["symbol_y"], row["symbol_x"]
        chosen = coint(column[y], column[x])[0]
        other = coint(column[x], column[y])[0]
        assert row["adf_stat"] == pytest.approx(chosen, abs=1e-8, rel=0)
        assert chosen <= other
    assert sorted(tuple(sorted(pair)) for pair in picked.select("symbol_y", "symbol_x").rows()) == [
        ("W0", "W5"),
        ("W0", "Y0"),
        ("W5", "Y0"),
    ]


def test_collinear_pair_gets_minus_infinity_like_statsmodels():
    rng = np.random.default_rng(3)
    x = 4.0 + np.cumsum(rng.normal(0.0, 0.01, 300))
    y = x + rng.normal(0.0, 1e-10, 300)
    with pytest.warns(CollinearityWarning):
        expected_t, expected_p, _ = coint(y, x)
    row = scan_log_prices(np.column_stack([x, y]), ["X", "Y"], ScanParams()).row(0, named=True)
    assert row["adf_stat"] == expected_t == -math.inf
    assert row["p_value"] == expected_p == 0.0
    assert row["lag"] is None


def test_explosive_spread_has_no_half_life_and_is_not_kept():
    rng = np.random.default_rng(4)
    x = 4.0 + np.cumsum(rng.normal(0.0, 0.01, 400))
    spread = np.zeros(400)
    for t in range(1, 400):
        spread[t] = 1.01 * spread[t - 1] + rng.normal(0.0, 0.01)
    row = scan_log_prices(np.column_stack([x, x + spread]), ["X", "Y"], ScanParams()).row(0, named=True)
    assert row["half_life_bars"] is None
    assert row["is_cointegrated"] is False


def test_max_lag_override_matches_coint_with_the_same_maxlag(panel):
    log_px, symbols = panel
    row = scan_log_prices(log_px[:, [0, 9]], ["W0", "Y0"], ScanParams(max_lag=3)).row(0, named=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected_t, expected_p, _ = coint(log_px[:, 0], log_px[:, 9], maxlag=3)
    assert row["adf_stat"] == pytest.approx(expected_t, abs=1e-8, rel=0)
    assert row["p_value"] == pytest.approx(expected_p, abs=1e-8, rel=0)
    assert row["lag"] <= 3


def test_default_max_lag_is_schwerts_rule():
    assert [default_max_lag(n) for n in (20, 100, 600, 2000)] == [9, 12, 19, 26]


def test_too_short_a_panel_leaves_its_pairs_untested_with_the_bar_count(panel):
    log_px, symbols = panel
    result = scan_log_prices(log_px[:200], symbols, ScanParams())
    assert result.height == 66 and result.get_column("n_obs").unique().to_list() == [200]
    assert result.select("adf_stat", "p_value", "lag", "hedge_ratio").null_count().row(0) == (66, 66, 66, 66)
    assert not result.get_column("is_cointegrated").any()


def test_pairs_without_shared_bars_are_untested():
    prices = pl.DataFrame(
        {"symbol": ["A", "A", "B"], "bar_ts": [1, 2, 3], "close_px": [10.0, 11.0, 12.0]}
    )
    row = scan_pairs(prices, ScanParams()).row(0, named=True)
    assert row["n_obs"] == 0 and row["adf_stat"] is None and row["is_cointegrated"] is False


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        (
            pl.DataFrame({"symbol": ["A", "A"], "bar_ts": [1, 1], "close_px": [1.0, 2.0]}),
            "more than one close_px",
        ),
        (pl.DataFrame({"symbol": ["A"], "close_px": [1.0]}), "lacks columns"),
    ],
)
def test_malformed_panels_are_refused(prices, message):
    with pytest.raises(ValueError, match=message):
        scan_pairs(prices, ScanParams())


def test_a_constant_leg_leaves_its_pair_untested():
    flat = np.column_stack([np.full(300, 4.0), np.linspace(4.0, 5.0, 300)])
    row = scan_log_prices(flat, ["A", "B"], ScanParams()).row(0, named=True)
    assert row["n_obs"] == 300 and row["hedge_ratio"] is None and row["adf_stat"] is None


@pytest.mark.parametrize(
    "overrides",
    [{"max_p_value": 0.0}, {"min_half_life_bars": 10.0, "max_half_life_bars": 5.0}, {"min_obs": 5}],
)
def test_incoherent_params_are_refused(overrides):
    with pytest.raises(ValueError):
        ScanParams(**overrides)


def test_single_symbol_gives_an_empty_frame_with_the_schema():
    result = scan_log_prices(np.linspace(1.0, 2.0, 300)[:, None], ["A"], ScanParams())
    assert result.is_empty()
    assert result.schema == PAIR_SCAN_SCHEMA
