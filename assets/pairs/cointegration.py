"""Engle–Granger pair scan: every pair of a price panel tested for cointegration at once."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from statsmodels.tsa.adfvalues import mackinnonp

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pinning BLAS threads is a speed preference, never a requirement
    threadpool_limits = None

__all__ = [
    "PAIR_SCAN_SCHEMA",
    "Orientation",
    "ScanParams",
    "default_max_lag",
    "scan_log_prices",
    "scan_pairs",
]

Orientation = Literal["alphabetical", "stronger"]

# adf_stat is the Engle–Granger t-statistic (−inf for collinear legs, as in
# statsmodels), lag the number of lagged differences AIC chose (null when no
# ADF was run), n_obs the bars both legs were tested on.
PAIR_SCAN_SCHEMA = pl.Schema(
    {
        "symbol_y": pl.String,
        "symbol_x": pl.String,
        "hedge_ratio": pl.Float64,
        "intercept": pl.Float64,
        "adf_stat": pl.Float64,
        "p_value": pl.Float64,
        "lag": pl.Int64,
        "half_life_bars": pl.Float64,
        "n_obs": pl.Int64,
        "is_cointegrated": pl.Boolean,
    }
)

# statsmodels' coint skips the residual ADF and reports t = -inf when the
# first-stage R² reaches this bound; matching it keeps decisions identical.
_COLLINEAR_RSQUARED = 1.0 - 100.0 * math.sqrt(np.finfo(np.float64).eps)

# Fewer bars than this leave the lag search with no residual degrees of freedom.
_FEWEST_BARS = 20


@dataclass(frozen=True)
class ScanParams:
    """Thresholds and shape of a pair scan; the test itself follows statsmodels' `coint` defaults.

    A pair is kept (`is_cointegrated`) when p_value <= max_p_value and its
    spread half-life lies within [min_half_life_bars, max_half_life_bars].
    `min_obs` is the fewest common bars a pair needs to be tested.
    `orientation` decides which leg is regressed on which, because the
    Engle–Granger statistic is not symmetric: "alphabetical" regresses the
    symbol that sorts first on the other; "stronger" tests both directions and
    keeps the one with the more negative statistic (twice the work).
    `max_lag=None` uses statsmodels' default, see `default_max_lag`.
    """

    max_p_value: float = 0.05
    min_half_life_bars: float = 1.0
    max_half_life_bars: float = 500.0
    min_obs: int = 250
    same_sector_only: bool = False
    orientation: Orientation = "alphabetical"
    max_lag: int | None = None
    pairs_per_chunk: int = 128

    def __post_init__(self) -> None:
        if not 0.0 < self.max_p_value <= 1.0:
            raise ValueError(f"max_p_value must lie in (0, 1], got {self.max_p_value}")
        if not 0.0 <= self.min_half_life_bars <= self.max_half_life_bars:
            raise ValueError(
                "half-life bounds must satisfy 0 <= min <= max, got "
                f"{self.min_half_life_bars}..{self.max_half_life_bars}"
            )
        if self.min_obs < _FEWEST_BARS:
            raise ValueError(f"min_obs must be at least {_FEWEST_BARS}, got {self.min_obs}")
        if self.orientation not in ("alphabetical", "stronger"):
            raise ValueError(f"unknown orientation {self.orientation!r}")
        if self.max_lag is not None and self.max_lag < 0:
            raise ValueError(f"max_lag must be non-negative, got {self.max_lag}")
        if self.pairs_per_chunk < 1:
            raise ValueError(f"pairs_per_chunk must be positive, got {self.pairs_per_chunk}")


@dataclass(frozen=True)
class _PairStats:
    """Per-pair statistics as parallel arrays, in the order the pairs were given."""

    hedge_ratio: np.ndarray
    intercept: np.ndarray
    adf_stat: np.ndarray
    lag: np.ndarray
    half_life_bars: np.ndarray

    @staticmethod
    def untested(n_pairs: int) -> _PairStats:
        """Room for `n_pairs` pairs, every statistic undefined until a chunk puts its own."""
        return _PairStats(
            hedge_ratio=np.full(n_pairs, np.nan),
            intercept=np.full(n_pairs, np.nan),
            adf_stat=np.full(n_pairs, np.nan),
            lag=np.full(n_pairs, -1, dtype=np.int64),
            half_life_bars=np.full(n_pairs, np.nan),
        )

    def put(self, rows: np.ndarray, chunk: _PairStats) -> None:
        """Write one chunk's statistics at the pairs' positions."""
        self.hedge_ratio[rows] = chunk.hedge_ratio
        self.intercept[rows] = chunk.intercept
        self.adf_stat[rows] = chunk.adf_stat
        self.lag[rows] = chunk.lag
        self.half_life_bars[rows] = chunk.half_life_bars

    def take(self, rows: np.ndarray) -> _PairStats:
        """Select pairs by position."""
        return _PairStats(
            hedge_ratio=self.hedge_ratio[rows],
            intercept=self.intercept[rows],
            adf_stat=self.adf_stat[rows],
            lag=self.lag[rows],
            half_life_bars=self.half_life_bars[rows],
        )


def default_max_lag(n_obs: int) -> int:
    """Largest ADF lag statsmodels searches for a residual of `n_obs` bars (Schwert's rule)."""
    return min(n_obs // 2 - 1, math.ceil(12.0 * (n_obs / 100.0) ** 0.25))


def scan_pairs(
    prices: pl.DataFrame,
    params: ScanParams,
    sectors: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One row per pair of the `symbol`/`bar_ts`/`close_px` panel, tested on log prices.

    Each pair is tested on its own common bars: the bars where both of its symbols
    have a usable close, so a gap in one symbol shortens only that symbol's pairs.
    See `scan_log_prices` for the statistics.
    """
    log_px, symbols = panel_log_prices(prices)
    return scan_log_prices(log_px, symbols, params, sectors)


def scan_log_prices(
    log_px: np.ndarray,
    symbols: Sequence[str],
    params: ScanParams,
    sectors: Mapping[str, str] | None = None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> pl.DataFrame:
    """One row per pair of the columns of a T×N log-price matrix; NaN marks a bar a symbol lacks.

    Each pair is tested on the bars where both legs have a price, in time order, exactly
    as `statsmodels.tsa.stattools.coint(log y, log x)` with its defaults would test those
    two aligned series: OLS of y on x with a constant, then an ADF test without
    deterministic terms on the residual, lags chosen by AIC over a common sample and the
    final regression re-run on the chosen lag's full sample. A pair with fewer than
    `params.min_obs` common bars, or a leg constant over them, is reported untested
    (statistics null, `n_obs` its common bars). Pairs span every two symbols, those given
    as column-index arrays `pairs`, or only two of one sector when
    `params.same_sector_only` (then `sectors` must map every symbol). Rows are ordered by
    the pair's symbols sorted alphabetically; `symbol_y` is the first of them unless
    `orientation="stronger"` chose the reverse.
    """
    matrix, names, order = _validated_panel(log_px, symbols, params)
    if pairs is None:
        first, second = _pair_indices(names, sectors, params.same_sector_only)
    else:
        first, second = _sorted_pairs(pairs, order)
    n_obs = _common_bar_counts(matrix, first, second)
    if params.orientation == "stronger":
        both_y = np.concatenate([first, second])
        both_x = np.concatenate([second, first])
        stats = _scan_oriented(matrix, both_y, both_x, np.concatenate([n_obs, n_obs]), params)
        keep_reversed = _reversed_is_stronger(stats.adf_stat, first.size)
        rows = np.arange(first.size) + first.size * keep_reversed
        stats = stats.take(rows)
        y_index = np.where(keep_reversed, second, first)
        x_index = np.where(keep_reversed, first, second)
    else:
        stats = _scan_oriented(matrix, first, second, n_obs, params)
        y_index, x_index = first, second
    return _pair_frame(names, y_index, x_index, stats, n_obs, params)


def panel_log_prices(prices: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """T×N log closes over every bar any symbol has, NaN where a symbol lacks a usable close.

    Columns are in symbol order, rows in `bar_ts` order. A null, non-finite or
    non-positive close has no log, so it counts as a missing bar.
    """
    missing = {"symbol", "bar_ts", "close_px"} - set(prices.columns)
    if missing:
        raise ValueError(f"price panel lacks columns {sorted(missing)}")
    panel = prices.select("symbol", "bar_ts", "close_px").filter(
        pl.col("close_px").is_finite() & (pl.col("close_px") > 0.0)
    )
    if panel.select(pl.struct("symbol", "bar_ts").is_duplicated().any()).item():
        raise ValueError("price panel has more than one close_px per (symbol, bar_ts)")
    symbols = prices.get_column("symbol").drop_nulls().unique().sort().to_list()
    bars = panel.get_column("bar_ts").unique().sort()
    matrix = np.full((bars.len(), len(symbols)), np.nan)
    if panel.height:
        row = bars.search_sorted(panel.get_column("bar_ts")).to_numpy()
        column = panel.get_column("symbol").replace_strict(
            symbols, list(range(len(symbols))), return_dtype=pl.Int64
        ).to_numpy()
        matrix[row, column] = np.log(panel.get_column("close_px").to_numpy().astype(np.float64))
    return matrix, symbols


def _validated_panel(
    log_px: np.ndarray, symbols: Sequence[str], params: ScanParams
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The panel as float64 with columns sorted by symbol (and the sort order), or a ValueError saying what is wrong."""
    matrix = np.asarray(log_px, dtype=np.float64)
    names = [str(symbol) for symbol in symbols]
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"log prices must be T×N with N={len(names)} symbols, got {matrix.shape}")
    if len(set(names)) != len(names):
        raise ValueError("symbols must be unique")
    if np.isinf(matrix).any():
        raise ValueError("log prices must be finite (NaN marks a missing bar)")
    order = np.argsort(names, kind="stable")
    return matrix[:, order], [names[i] for i in order], order


def _pair_indices(
    names: Sequence[str], sectors: Mapping[str, str] | None, same_sector_only: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Column indices (i, j), i < j, of the pairs to test, in row-major order."""
    first, second = np.triu_indices(len(names), k=1)
    if not same_sector_only:
        return first, second
    if sectors is None:
        raise ValueError("same_sector_only needs a symbol → sector mapping")
    unmapped = [name for name in names if name not in sectors]
    if unmapped:
        raise ValueError(f"symbols without a sector: {unmapped}")
    sector_of = np.array([sectors[name] for name in names], dtype=object)
    same = sector_of[first] == sector_of[second]
    return first[same], second[same]


def _sorted_pairs(pairs: tuple[np.ndarray, np.ndarray], order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Given column-index pairs mapped to the sorted columns, smaller index first, in row-major order."""
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    a = position[np.asarray(pairs[0], dtype=np.int64)]
    b = position[np.asarray(pairs[1], dtype=np.int64)]
    if (a == b).any():
        raise ValueError("a pair needs two different symbols")
    first, second = np.minimum(a, b), np.maximum(a, b)
    unique = np.unique(first * order.size + second)
    return unique // order.size, unique % order.size


def _common_bar_counts(matrix: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pair, the bars where both legs have a price."""
    present = np.isfinite(matrix).astype(np.float64)
    if first.size > matrix.shape[1]:
        shared = present.T @ present
        return np.rint(shared[first, second]).astype(np.int64)
    return np.einsum("tp,tp->p", present[:, first], present[:, second]).astype(np.int64)


def _reversed_is_stronger(adf_stat: np.ndarray, n_pairs: int) -> np.ndarray:
    """Per pair, whether x-on-y beats y-on-x: a strictly lower statistic; NaN never wins."""
    forward, reverse = adf_stat[:n_pairs], adf_stat[n_pairs:]
    return (reverse < forward) | (np.isnan(forward) & ~np.isnan(reverse))


def _pinned_blas() -> contextlib.AbstractContextManager:
    """One BLAS thread: these regressions are tiny, so threading costs more than it saves."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _chunks(n_items: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most `size` items covering `range(n_items)`."""
    for start in range(0, n_items, size):
        yield slice(start, min(start + size, n_items))


def _scan_oriented(
    matrix: np.ndarray, y_index: np.ndarray, x_index: np.ndarray, n_obs: np.ndarray, params: ScanParams
) -> _PairStats:
    """Engle–Granger statistics for each (y, x) column pair on its own common bars.

    Pairs with the same number of common bars share one lag search, so they are
    tested together in chunks that bound memory; each chunk gathers its pairs'
    aligned rows (the bars both legs have) into P×n arrays.
    """
    stats = _PairStats.untested(y_index.size)
    testable = n_obs >= params.min_obs
    with _pinned_blas():
        for n in np.unique(n_obs[testable]):
            max_lag = default_max_lag(int(n)) if params.max_lag is None else params.max_lag
            if max_lag > n // 2 - 1:
                continue
            group = np.flatnonzero(n_obs == n)
            for rows in _chunks(group.size, params.pairs_per_chunk):
                members = group[rows]
                y, x = _aligned_pairs(matrix, y_index[members], x_index[members], int(n))
                stats.put(members, _scan_chunk(y, x, max_lag))
    return stats


def _aligned_pairs(matrix: np.ndarray, y_index: np.ndarray, x_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """P×n arrays of each pair's legs on the bars both have, in time order."""
    y_columns, x_columns = matrix[:, y_index].T, matrix[:, x_index].T
    shared = np.isfinite(y_columns) & np.isfinite(x_columns)
    return y_columns[shared].reshape(-1, n), x_columns[shared].reshape(-1, n)


def _scan_chunk(y: np.ndarray, x: np.ndarray, max_lag: int) -> _PairStats:
    """All statistics for one chunk of pairs given their aligned P×n log prices.

    A pair whose leg does not move over its bars cannot be regressed: it stays untested.
    """
    y_mean, x_mean = y.mean(axis=1), x.mean(axis=1)
    y, x = y - y_mean[:, None], x - x_mean[:, None]
    x_ss = np.einsum("pt,pt->p", x, x)
    xy = np.einsum("pt,pt->p", x, y)
    y_ss = np.einsum("pt,pt->p", y, y)
    moving = (x_ss > 0.0) & (y_ss > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        hedge = np.where(moving, xy / x_ss, np.nan)
        rsquared = xy * xy / (x_ss * y_ss)
    intercept = y_mean - hedge * x_mean
    spread = y - np.where(moving, hedge, 0.0)[:, None] * x

    adf_stat = np.where(moving, -np.inf, np.nan)
    lag = np.full(y.shape[0], -1, dtype=np.int64)
    testable = moving & (rsquared < _COLLINEAR_RSQUARED)
    if testable.any():
        adf_stat[testable], lag[testable] = _residual_adf(spread[testable], max_lag)
    half_life = np.where(moving, _half_life(spread), np.nan)
    return _PairStats(hedge_ratio=hedge, intercept=intercept, adf_stat=adf_stat, lag=lag, half_life_bars=half_life)


def _residual_adf(spread: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """ADF t-statistic without deterministic terms and its AIC-chosen lag, per spread row.

    Mirrors statsmodels' `adfuller(regression="n", autolag="aic")`: every lag
    0..max_lag is fitted on the rows the longest lag leaves, AIC picks the
    lag (ties to the shorter), and the chosen lag is re-fitted on all the
    rows it leaves. Pairs whose regression is singular get NaN and lag -1.
    """
    diffs = np.diff(spread, axis=1)
    gram = _lag_gram(spread, diffs, max_lag)
    n_rows = diffs.shape[1] - max_lag
    ssr = _nested_ssr(gram)
    n_params = np.arange(1, max_lag + 2)
    aic = n_rows * (math.log(2 * math.pi) + np.log(ssr / n_rows) + 1.0) + 2.0 * n_params
    solvable = np.isfinite(aic).all(axis=1)
    lag = np.where(solvable, np.argmin(np.where(np.isfinite(aic), aic, np.inf), axis=1), -1)

    adf_stat = np.full(spread.shape[0], np.nan)
    for chosen in np.unique(lag[lag >= 0]):
        rows = np.flatnonzero(lag == chosen)
        full_gram = _extend_gram(gram[rows], spread[rows], diffs[rows], int(chosen), max_lag)
        adf_stat[rows] = _level_tstat(full_gram, n_rows=diffs.shape[1] - int(chosen))
    return adf_stat, lag


def _lag_gram(levels: np.ndarray, diffs: np.ndarray, max_lag: int) -> np.ndarray:
    """Cross-products of [e_t, Δe_{t-1}, …, Δe_{t-max_lag}, Δe_t] over t = max_lag…T-2.

    Built from `max_lag+1` autocovariance-style dot products per pair rather
    than a T×K design: each lagged-difference product Σ Δe_{t-i}Δe_{t-i-h}
    is the i = 0 window sum shifted by i, which only adds and drops the
    window's edge terms.
    """
    n_pairs, n_diffs = diffs.shape
    n_rows = n_diffs - max_lag
    # by_lag[:, j] is the column Δe_{t-j} over the sample rows, j = 0..max_lag
    by_lag = sliding_window_view(diffs, n_rows, axis=1)[:, ::-1]
    target = diffs[:, max_lag:]
    level = levels[:, max_lag : max_lag + n_rows]

    base = np.einsum("pn,phn->ph", target, by_lag)
    shift, gap = np.meshgrid(np.arange(1, max_lag + 1), np.arange(max_lag + 1), indexing="ij")
    inside = shift + gap <= max_lag
    head = np.clip(max_lag - shift, 0, None)
    tail = n_diffs - shift
    entering = diffs[:, head] * diffs[:, np.clip(head - gap, 0, None)]
    leaving = diffs[:, tail] * diffs[:, tail - gap]
    steps = np.where(inside, entering - leaving, 0.0)
    # windowed[:, i, h] = Σ_t Δe_{t-i} Δe_{t-i-h}
    windowed = np.concatenate(
        [base[:, None, :], base[:, None, :] + np.cumsum(steps, axis=1)], axis=1
    )
    lags = np.arange(max_lag + 1)
    diff_gram = windowed[:, np.minimum.outer(lags, lags), np.abs(np.subtract.outer(lags, lags))]

    order = np.r_[np.arange(1, max_lag + 1), 0]
    gram = np.empty((n_pairs, max_lag + 2, max_lag + 2))
    gram[:, 1:, 1:] = diff_gram[:, order[:, None], order[None, :]]
    level_cross = np.einsum("pn,phn->ph", level, by_lag)[:, order]
    gram[:, 0, 1:] = level_cross
    gram[:, 1:, 0] = level_cross
    gram[:, 0, 0] = np.einsum("pn,pn->p", level, level)
    return gram


def _extend_gram(
    gram: np.ndarray, levels: np.ndarray, diffs: np.ndarray, lag: int, max_lag: int
) -> np.ndarray:
    """Cross-products for `lag` lags on its own sample, t = lag…T-2, from the common-sample ones.

    The chosen lag's sample starts `max_lag - lag` rows earlier; those rows'
    outer products are added to the matching block of the common-sample Gram.
    Columns come back as [Δe_{t-1}, …, Δe_{t-lag}, e_t, Δe_t] so the level's
    coefficient is the last regressor.
    """
    keep = np.r_[np.arange(1, lag + 1), 0, max_lag + 1]
    extra_t = np.arange(lag, max_lag)
    lagged = diffs[:, extra_t[:, None] - np.arange(1, lag + 1)]
    extra_rows = np.concatenate(
        [lagged, levels[:, extra_t, None], diffs[:, extra_t, None]], axis=2
    )
    return gram[:, keep[:, None], keep[None, :]] + np.einsum("prk,prl->pkl", extra_rows, extra_rows)


def _scaled_cholesky(gram: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of unit-diagonal-scaled Grams; NaN where a Gram is not positive definite.

    Scaling to unit diagonal keeps the factorisation accurate when the level
    and difference columns differ by orders of magnitude.
    """
    scale = np.sqrt(np.einsum("pkk->pk", gram))
    scaled = gram / (scale[:, :, None] * scale[:, None, :])
    try:
        return np.linalg.cholesky(scaled)
    except np.linalg.LinAlgError:
        return np.stack([_cholesky_or_nan(one) for one in scaled])


def _cholesky_or_nan(matrix: np.ndarray) -> np.ndarray:
    """Cholesky factor of one matrix, or NaN when it is singular (degenerate pairs only)."""
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return np.full_like(matrix, np.nan)


def _nested_ssr(gram: np.ndarray) -> np.ndarray:
    """Residual sums of squares of the last column on the first 1, 2, … columns before it.

    With G = LLᵀ for the Gram of [X, y], the SSR of y on the first k columns
    of X is Σ_{i≥k} L[-1, i]²: one factorisation serves every nested model.
    """
    factor = _scaled_cholesky(gram)
    last_row = factor[:, -1, :] ** 2
    tails = np.cumsum(last_row[:, ::-1], axis=1)[:, ::-1]
    return tails[:, 1:] * gram[:, -1, -1][:, None]


def _level_tstat(gram: np.ndarray, n_rows: int) -> np.ndarray:
    """OLS t-statistic of the last regressor, from the Gram of [X, y] over `n_rows` rows.

    With G = LLᵀ, β_last = L[-1,-2]/L[-2,-2], its standard error is
    s/L[-2,-2] and s = L[-1,-1]/√(n−k), so t = L[-1,-2]·√(n−k)/L[-1,-1].
    """
    factor = _scaled_cholesky(gram)
    n_regressors = gram.shape[1] - 1
    return factor[:, -1, -2] * math.sqrt(n_rows - n_regressors) / factor[:, -1, -1]


def _half_life(spread: np.ndarray) -> np.ndarray:
    """Bars for the spread to halve, from the AR(1) fit Δs_t = a + b·s_{t−1} + ε_t.

    half-life = −ln 2 / ln(1 + b); NaN when b ≥ 0 (no mean reversion) or
    b ≤ −1 (the spread overshoots every bar, so halving is undefined).
    """
    previous = spread[:, :-1] - spread[:, :-1].mean(axis=1, keepdims=True)
    change = np.diff(spread, axis=1)
    change = change - change.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.einsum("pt,pt->p", previous, change) / np.einsum("pt,pt->p", previous, previous)
        reverting = (slope < 0.0) & (slope > -1.0)
        return np.where(reverting, -math.log(2.0) / np.log1p(np.where(reverting, slope, 0.0)), np.nan)


def _p_values(adf_stat: np.ndarray) -> np.ndarray:
    """MacKinnon (1994) p-values for a two-variable Engle–Granger test with a constant.

    statsmodels' `mackinnonp` takes one statistic at a time; it is a table
    lookup, so calling it per pair costs little next to the regressions and
    keeps the p-values exactly those `coint` reports.
    """
    return np.array(
        [
            mackinnonp(stat, regression="c", N=2) if not math.isnan(stat) else math.nan
            for stat in adf_stat.tolist()
        ],
        dtype=np.float64,
    )


def _pair_frame(
    names: Sequence[str],
    y_index: np.ndarray,
    x_index: np.ndarray,
    stats: _PairStats,
    n_obs: np.ndarray,
    params: ScanParams,
) -> pl.DataFrame:
    """The scan's output frame, nulls where a statistic is undefined."""
    p_value = _p_values(stats.adf_stat)
    half_life = stats.half_life_bars
    with np.errstate(invalid="ignore"):
        is_cointegrated = (
            (p_value <= params.max_p_value)
            & (half_life >= params.min_half_life_bars)
            & (half_life <= params.max_half_life_bars)
        )
    symbol = np.array(names, dtype=object)
    frame = pl.DataFrame(
        {
            "symbol_y": symbol[y_index].tolist(),
            "symbol_x": symbol[x_index].tolist(),
            "hedge_ratio": stats.hedge_ratio,
            "intercept": stats.intercept,
            "adf_stat": stats.adf_stat,
            "p_value": p_value,
            "lag": stats.lag,
            "half_life_bars": half_life,
            "n_obs": n_obs.astype(np.int64),
            "is_cointegrated": is_cointegrated,
        },
        schema=PAIR_SCAN_SCHEMA,
    )
    return frame.with_columns(
        pl.col("hedge_ratio", "intercept", "adf_stat", "p_value", "half_life_bars").fill_nan(None),
        pl.when(pl.col("lag") >= 0).then(pl.col("lag")).alias("lag"),
    )
