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
    `min_obs` is the fewest bars shared by all symbols that a scan accepts.
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

    def take(self, rows: np.ndarray) -> _PairStats:
        """Select pairs by position."""
        return _PairStats(
            hedge_ratio=self.hedge_ratio[rows],
            intercept=self.intercept[rows],
            adf_stat=self.adf_stat[rows],
            lag=self.lag[rows],
            half_life_bars=self.half_life_bars[rows],
        )

    @staticmethod
    def concat(parts: Sequence[_PairStats]) -> _PairStats:
        """Stack chunks back into one set of arrays; no chunks gives empty arrays."""
        if not parts:
            empty = np.empty(0)
            return _PairStats(empty, empty, empty, np.empty(0, dtype=np.int64), empty)
        return _PairStats(
            hedge_ratio=np.concatenate([part.hedge_ratio for part in parts]),
            intercept=np.concatenate([part.intercept for part in parts]),
            adf_stat=np.concatenate([part.adf_stat for part in parts]),
            lag=np.concatenate([part.lag for part in parts]),
            half_life_bars=np.concatenate([part.half_life_bars for part in parts]),
        )


def default_max_lag(n_obs: int) -> int:
    """Largest ADF lag statsmodels searches for a residual of `n_obs` bars (Schwert's rule)."""
    return min(n_obs // 2 - 1, math.ceil(12.0 * (n_obs / 100.0) ** 0.25))


def scan_pairs(
    prices: pl.DataFrame,
    params: ScanParams,
    sectors: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One row per tested pair of the `symbol`/`bar_ts`/`close_px` panel, tested on log prices.

    Only bars where every symbol has a usable close enter the test, so all pairs
    share one sample and one `n_obs`; a gap in one symbol shortens the
    sample for all. See `scan_log_prices` for the statistics.
    """
    log_px, symbols = _aligned_log_prices(prices)
    return scan_log_prices(log_px, symbols, params, sectors)


def scan_log_prices(
    log_px: np.ndarray,
    symbols: Sequence[str],
    params: ScanParams,
    sectors: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One row per tested pair of the columns of a T×N log-price matrix.

    Matches `statsmodels.tsa.stattools.coint(log y, log x)` with its defaults:
    OLS of y on x with a constant, then an ADF test without deterministic
    terms on the residual, lags chosen by AIC over a common sample and the
    final regression re-run on the chosen lag's full sample. Pairs span
    every two symbols, or only two of one sector when
    `params.same_sector_only` (then `sectors` must map every symbol). Rows
    are ordered by the pair's symbols sorted alphabetically; `symbol_y` is
    the first of them unless `orientation="stronger"` chose the reverse.
    """
    matrix, names = _validated_panel(log_px, symbols, params)
    first, second = _pair_indices(names, sectors, params.same_sector_only)
    if params.orientation == "stronger":
        both_y = np.concatenate([first, second])
        both_x = np.concatenate([second, first])
        stats = _scan_oriented(matrix, both_y, both_x, params)
        keep_reversed = _reversed_is_stronger(stats.adf_stat, first.size)
        rows = np.arange(first.size) + first.size * keep_reversed
        stats = stats.take(rows)
        y_index = np.where(keep_reversed, second, first)
        x_index = np.where(keep_reversed, first, second)
    else:
        stats = _scan_oriented(matrix, first, second, params)
        y_index, x_index = first, second
    return _pair_frame(names, y_index, x_index, stats, matrix.shape[0], params)


def _aligned_log_prices(prices: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """T×N log prices on the bars where every symbol has a usable close, columns in symbol order.

    A null, non-finite or non-positive close has no log, so it counts as a missing bar.
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
    shared = panel.filter(pl.len().over("bar_ts") == len(symbols)).sort("symbol", "bar_ts")
    closes = shared.get_column("close_px").to_numpy().astype(np.float64)
    return np.log(closes.reshape(len(symbols), -1).T), symbols


def _validated_panel(
    log_px: np.ndarray, symbols: Sequence[str], params: ScanParams
) -> tuple[np.ndarray, list[str]]:
    """The panel as float64 with columns sorted by symbol, or a ValueError saying what is wrong."""
    matrix = np.asarray(log_px, dtype=np.float64)
    names = [str(symbol) for symbol in symbols]
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"log prices must be T×N with N={len(names)} symbols, got {matrix.shape}")
    if len(set(names)) != len(names):
        raise ValueError("symbols must be unique")
    n_bars = matrix.shape[0]
    if n_bars < params.min_obs:
        raise ValueError(
            f"pair scan needs at least {params.min_obs} bars shared by all symbols, got {n_bars}"
        )
    if params.max_lag is not None and params.max_lag > n_bars // 2 - 1:
        raise ValueError(f"max_lag {params.max_lag} exceeds {n_bars // 2 - 1} for {n_bars} bars")
    if not np.isfinite(matrix).all():
        raise ValueError("log prices must be finite")
    flat = [name for name, spread in zip(names, np.ptp(matrix, axis=0)) if spread == 0.0]
    if flat:
        raise ValueError(f"constant prices cannot be tested: {flat}")
    order = np.argsort(names, kind="stable")
    return matrix[:, order], [names[i] for i in order]


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
    matrix: np.ndarray, y_index: np.ndarray, x_index: np.ndarray, params: ScanParams
) -> _PairStats:
    """Engle–Granger statistics for each (y, x) column pair, chunked to bound memory."""
    n_bars = matrix.shape[0]
    max_lag = default_max_lag(n_bars) if params.max_lag is None else params.max_lag
    means = matrix.mean(axis=0)
    centered = (matrix - means).T.copy()
    with _pinned_blas():
        parts = [
            _scan_chunk(centered, means, y_index[rows], x_index[rows], max_lag)
            for rows in _chunks(y_index.size, params.pairs_per_chunk)
        ]
    return _PairStats.concat(parts)


def _scan_chunk(
    centered: np.ndarray,
    means: np.ndarray,
    y_index: np.ndarray,
    x_index: np.ndarray,
    max_lag: int,
) -> _PairStats:
    """All statistics for one chunk of pairs; `centered` is N×T demeaned log prices."""
    y, x = centered[y_index], centered[x_index]
    x_ss = np.einsum("pt,pt->p", x, x)
    xy = np.einsum("pt,pt->p", x, y)
    y_ss = np.einsum("pt,pt->p", y, y)
    hedge = xy / x_ss
    intercept = means[y_index] - hedge * means[x_index]
    spread = y - hedge[:, None] * x
    rsquared = xy * xy / (x_ss * y_ss)

    adf_stat = np.full(y_index.size, -np.inf)
    lag = np.full(y_index.size, -1, dtype=np.int64)
    testable = rsquared < _COLLINEAR_RSQUARED
    if testable.any():
        adf_stat[testable], lag[testable] = _residual_adf(spread[testable], max_lag)
    return _PairStats(
        hedge_ratio=hedge,
        intercept=intercept,
        adf_stat=adf_stat,
        lag=lag,
        half_life_bars=_half_life(spread),
    )


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
    n_bars: int,
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
            "n_obs": np.full(y_index.size, n_bars, dtype=np.int64),
            "is_cointegrated": is_cointegrated,
        },
        schema=PAIR_SCAN_SCHEMA,
    )
    return frame.with_columns(
        pl.col("adf_stat", "p_value", "half_life_bars").fill_nan(None),
        pl.when(pl.col("lag") >= 0).then(pl.col("lag")).alias("lag"),
    )
