"""The weekly pair scan over a universe: screen, test, control false discoveries, cap the traded pairs."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import polars as pl

from assets.pairs.cointegration import ScanParams, scan_log_prices

__all__ = [
    "PricePanel",
    "ScreenParams",
    "SelectParams",
    "WeekWindow",
    "benjamini_hochberg",
    "column_medians",
    "pair_return_correlations",
    "return_correlations",
    "scan_week",
    "scan_weeks",
    "usable_processes",
]

#: Weeks below which a scan stays in one process: starting workers costs more than it saves.
PARALLEL_MIN_WEEKS = 16
#: Pairs × weeks below which the asset scans in its own process: a spawned worker imports NumPy, Polars
#: and the scan (about a CPU-second) before it computes anything, more than 20 symbols' weeks take.
PARALLEL_MIN_PAIR_WEEKS = 200_000
# Pairs whose return correlations are summed at once: bounds the temporary T×P arrays.
_PAIRS_PER_CHUNK = 2048

@dataclass(frozen=True)
class ScreenParams:
    """The cheap pre-filter a pair passes before its Engle–Granger test.

    A symbol takes part in a week when its median hourly dollar volume (close × volume)
    over the window is at least `min_median_dollar_volume`. A pair is tested when both
    legs take part, share a sector if `same_sector_only` and both sectors are known, and
    the correlation of their log returns over the window is at least `min_return_corr`.
    """

    min_return_corr: float = 0.5
    same_sector_only: bool = True
    min_median_dollar_volume: float = 0.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_return_corr <= 1.0:
            raise ValueError(f"min_return_corr must lie in [-1, 1], got {self.min_return_corr}")
        if self.min_median_dollar_volume < 0.0:
            raise ValueError(f"min_median_dollar_volume must be non-negative, got {self.min_median_dollar_volume}")


@dataclass(frozen=True)
class SelectParams:
    """Which tested pairs count as cointegrated and which of those are traded.

    A pair is cointegrated when its Benjamini–Hochberg q-value over the week's tests is
    at most `fdr_q` (so about `fdr_q` of the week's cointegrated pairs are expected to be
    false discoveries) and its half-life lies within the bounds. The week's cointegrated
    pairs are ranked by score: the more negative Engle–Granger statistic first, then the
    shorter half-life, then the symbols; the first `max_traded_pairs` are traded.
    """

    fdr_q: float = 0.05
    max_traded_pairs: int = 50
    min_half_life_bars: float = 1.0
    max_half_life_bars: float = 500.0

    def __post_init__(self) -> None:
        if not 0.0 < self.fdr_q <= 1.0:
            raise ValueError(f"fdr_q must lie in (0, 1], got {self.fdr_q}")
        if self.max_traded_pairs < 0:
            raise ValueError(f"max_traded_pairs must be non-negative, got {self.max_traded_pairs}")
        if not 0.0 <= self.min_half_life_bars <= self.max_half_life_bars:
            raise ValueError(
                f"half-life bounds must satisfy 0 <= min <= max, got {self.min_half_life_bars}..{self.max_half_life_bars}"
            )


@dataclass(frozen=True)
class WeekWindow:
    """One week's scan window as rows [first_row, stop_row) of a panel, and which symbols are members."""

    week_end_date: date
    window_start_date: date
    first_row: int
    stop_row: int
    members: np.ndarray


@dataclass(frozen=True)
class PricePanel:
    """T×N log closes and dollar volumes on every bar any symbol has (NaN where a symbol lacks one), symbols sorted."""

    symbols: list[str]
    session_date: np.ndarray
    log_px: np.ndarray
    dollar_volume: np.ndarray

    @staticmethod
    def of(bars: pl.DataFrame) -> PricePanel:
        """From `symbol`/`bar_ts`/`session_date`/`close_px`/`volume_qty` rows; an unusable close is a missing bar."""
        symbols = bars.get_column("symbol").unique().sort().to_list()
        usable = bars.filter(pl.col("close_px").is_finite() & (pl.col("close_px") > 0.0))
        grid = bars.select("bar_ts", "session_date").unique("bar_ts").sort("bar_ts")
        log_px = np.full((grid.height, len(symbols)), np.nan)
        dollar_volume = np.full((grid.height, len(symbols)), np.nan)
        if usable.height:
            row = grid.get_column("bar_ts").search_sorted(usable.get_column("bar_ts")).to_numpy()
            column = usable.get_column("symbol").replace_strict(
                symbols, list(range(len(symbols))), return_dtype=pl.Int64
            ).to_numpy()
            close = usable.get_column("close_px").to_numpy().astype(np.float64)
            log_px[row, column] = np.log(close)
            dollar_volume[row, column] = close * usable.get_column("volume_qty").to_numpy().astype(np.float64)
        return PricePanel(symbols, grid.get_column("session_date").to_numpy(), log_px, dollar_volume)


def usable_processes(pair_weeks: int) -> int:
    """Cores this process may use for a scan of `pair_weeks` (pairs × weeks); one for a small scan, which a
    worker process's start would cost more CPU than it saves, and inside a daemonic worker (a Dask worker),
    which cannot start processes."""
    if pair_weeks < PARALLEL_MIN_PAIR_WEEKS or multiprocessing.current_process().daemon:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def return_correlations(log_px: np.ndarray) -> np.ndarray:
    """N×N Pearson correlations of bar-to-bar log returns, each pair over the bars where both have a return.

    A return needs the bar and the one before it; the pairwise-complete sums come from
    four matrix products, so screening every pair costs one pass over the window.
    NaN where a pair shares fewer than three returns or a leg's returns do not vary.
    """
    returns = np.diff(log_px, axis=0)
    present = np.isfinite(returns).astype(np.float64)
    filled = np.where(present > 0.0, returns, 0.0)
    count = present.T @ present
    sums = filled.T @ present  # sums[i, j]: Σ r_i over the returns i shares with j
    squares = (filled * filled).T @ present
    cross = filled.T @ filled
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = cross - sums * sums.T / count
        variance = squares - sums * sums / count
        correlation = covariance / np.sqrt(variance * variance.T)
    return np.where((count >= 3) & (variance > 0.0) & (variance.T > 0.0), correlation, np.nan)


def column_medians(values: np.ndarray) -> np.ndarray:
    """`np.nanmedian(values, axis=0)` without its per-column Python loop: NaN for a column with no value."""
    ordered = np.sort(values, axis=0)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(values), axis=0)
    columns = np.arange(values.shape[1])
    low = ordered[np.maximum((count - 1) // 2, 0), columns] if values.shape[0] else np.full(columns.size, np.nan)
    high = ordered[np.minimum(count // 2, max(values.shape[0] - 1, 0)), columns] if values.shape[0] else low
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def pair_return_correlations(log_px: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """`return_correlations` for the given column pairs only.

    When the pairs are a small share of all pairs (a sector screen leaves about one in
    N/10), summing over just those pairs costs far less than the N×N products.
    """
    n_symbols = log_px.shape[1]
    if first.size * 8 >= n_symbols * n_symbols:
        return return_correlations(log_px)[first, second]
    returns = np.diff(log_px, axis=0).T.copy()  # one symbol per row: gathering a pair's legs copies rows
    present = np.isfinite(returns)
    filled = np.where(present, returns, 0.0)
    correlation = np.empty(first.size)
    for rows in (slice(k, k + _PAIRS_PER_CHUNK) for k in range(0, first.size, _PAIRS_PER_CHUNK)):
        a, b = first[rows], second[rows]
        shared = present[a] & present[b]
        x, y = np.where(shared, filled[a], 0.0), np.where(shared, filled[b], 0.0)
        count = shared.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sum_x, sum_y = x.sum(axis=1), y.sum(axis=1)
            covariance = np.einsum("pt,pt->p", x, y) - sum_x * sum_y / count
            variance_x = np.einsum("pt,pt->p", x, x) - sum_x * sum_x / count
            variance_y = np.einsum("pt,pt->p", y, y) - sum_y * sum_y / count
            value = covariance / np.sqrt(variance_x * variance_y)
        correlation[rows] = np.where((count >= 3) & (variance_x > 0.0) & (variance_y > 0.0), value, np.nan)
    return correlation


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) over the non-NaN entries; NaN stays NaN.

    q_(i) = min over k ≥ i of m·p_(k)/k, capped at 1, for the m p-values sorted ascending:
    rejecting every q ≤ α keeps the expected share of false discoveries at most α.
    """
    q_values = np.full(p_values.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p_values))
    if tested.size == 0:
        return q_values
    order = np.argsort(p_values[tested], kind="stable")
    ranked = p_values[tested][order] * tested.size / np.arange(1, tested.size + 1)
    adjusted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    q_values[tested[order]] = adjusted
    return q_values


def scan_week(
    log_px: np.ndarray,
    dollar_volume: np.ndarray,
    symbols: Sequence[str],
    sector_codes: np.ndarray,
    members: np.ndarray,
    scan: ScanParams,
    screen: ScreenParams,
    select: SelectParams,
) -> pl.DataFrame:
    """One row per pair that passed the screen in one window of a panel (columns sorted by symbol).

    The screened pairs are tested as `scan_log_prices` tests them (each on its own common
    bars, statistics exactly those of `statsmodels.coint`); Benjamini–Hochberg runs over
    the p-values of the pairs actually tested.
    """
    first, second, correlation = _screened_pairs(log_px, dollar_volume, sector_codes, members, screen)
    tested = scan_log_prices(log_px, symbols, replace(scan, max_p_value=1.0), pairs=(first, second))
    names = np.array(symbols, dtype=object)
    screened = pl.DataFrame({"symbol_y": names[first].tolist(), "symbol_x": names[second].tolist(),
                             "return_corr": correlation}, schema_overrides={"symbol_y": pl.String, "symbol_x": pl.String})
    return _selected(tested.join(screened, on=["symbol_y", "symbol_x"], how="left", maintain_order="left"), select)


def _screened_pairs(
    log_px: np.ndarray, dollar_volume: np.ndarray, sector_codes: np.ndarray, members: np.ndarray, screen: ScreenParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column pairs (i < j) that pass the screen, and their return correlations."""
    liquidity = column_medians(dollar_volume)
    with np.errstate(invalid="ignore"):
            taking_part = members & (liquidity >= screen.min_median_dollar_volume)
    first, second = np.triu_indices(log_px.shape[1], k=1)
    keep = taking_part[first] & taking_part[second]
    if screen.same_sector_only:
        a, b = sector_codes[first], sector_codes[second]
        keep &= (a < 0) | (b < 0) | (a == b)
    first, second = first[keep], second[keep]
    correlation = pair_return_correlations(log_px, first, second)
    with np.errstate(invalid="ignore"):
        correlated = correlation >= screen.min_return_corr
    return first[correlated], second[correlated], correlation[correlated]


def _selected(tested: pl.DataFrame, select: SelectParams) -> pl.DataFrame:
    """Add the week's family size, BH q-values, the cointegrated flag, the score rank and the traded flag."""
    p_values = tested.get_column("p_value").fill_null(np.nan).to_numpy()
    q_values = benjamini_hochberg(p_values)
    half_life = pl.col("half_life_bars")
    cointegrated = (
        (pl.col("q_value") <= select.fdr_q)
        & half_life.is_between(select.min_half_life_bars, select.max_half_life_bars)
    ).fill_null(False)
    ranked = tested.with_columns(
        n_tested=pl.lit(int(np.count_nonzero(~np.isnan(p_values))), pl.Int64),
        q_value=pl.Series(q_values).fill_nan(None),
    ).with_columns(is_cointegrated=cointegrated)
    order = ranked.with_row_index("row").filter("is_cointegrated").sort(
        "adf_stat", "half_life_bars", "symbol_y", "symbol_x"
    ).with_row_index("selection_rank", offset=1).select("row", pl.col("selection_rank").cast(pl.Int64))
    return (
        ranked.with_row_index("row")
        .join(order, on="row", how="left")
        .sort("row")
        .with_columns(is_traded=(pl.col("selection_rank") <= select.max_traded_pairs).fill_null(False))
        .drop("row")
    )


def scan_weeks(
    panel: PricePanel,
    weeks: Sequence[WeekWindow],
    sectors: Mapping[str, str],
    scan: ScanParams,
    screen: ScreenParams,
    select: SelectParams,
    processes: int = 1,
) -> pl.DataFrame:
    """One row per week and screened pair, weeks in the order given, under the columns of `PairCandidates`.

    The asset puts them in the contract's order and dtypes; a scan without rows has no
    columns either. Every week is computed from its own window alone, so splitting the
    weeks over `processes` worker processes (contiguous blocks, each shipped only the rows
    it reads) gives exactly the rows a single process gives.
    """
    codes = _sector_codes(panel.symbols, sectors)
    blocks = [
        _WeekBlock.of(panel, [weeks[i] for i in block], codes, scan, screen, select)
        for block in _blocks(len(weeks), processes if len(weeks) >= PARALLEL_MIN_WEEKS else 1)
    ]
    if len(blocks) <= 1:
        frames = [block.scan() for block in blocks]
    else:
        spawn = multiprocessing.get_context("spawn")  # never fork a threaded process
        with ProcessPoolExecutor(max_workers=len(blocks) - 1, mp_context=spawn) as pool:
            elsewhere = [pool.submit(_WeekBlock.scan, block) for block in blocks[1:]]
            frames = [blocks[0].scan(), *(future.result() for future in elsewhere)]  # this process takes the first
    frames = [frame for frame in frames if frame.height]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def _sector_codes(symbols: Sequence[str], sectors: Mapping[str, str]) -> np.ndarray:
    """Each symbol's sector as an integer code; −1 where the sector is unknown."""
    known = sorted({sector for sector in sectors.values() if sector})
    code = {sector: i for i, sector in enumerate(known)}
    return np.array([code.get(sectors.get(symbol) or "", -1) for symbol in symbols], dtype=np.int64)


def _blocks(n_weeks: int, processes: int) -> list[range]:
    """Contiguous, nearly equal blocks of week positions, one per process."""
    parts = max(1, min(processes, n_weeks))
    bounds = [round(k * n_weeks / parts) for k in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


@dataclass(frozen=True)
class _WeekBlock:
    """A block of consecutive weeks and only the panel rows they read: what one process is sent."""

    symbols: list[str]
    log_px: np.ndarray
    dollar_volume: np.ndarray
    weeks: list[WeekWindow]
    sector_codes: np.ndarray
    scan_params: ScanParams
    screen: ScreenParams
    select: SelectParams

    @staticmethod
    def of(panel: PricePanel, weeks: list[WeekWindow], codes: np.ndarray, scan: ScanParams, screen: ScreenParams,
           select: SelectParams) -> _WeekBlock:
        start = min(week.first_row for week in weeks)
        stop = max(week.stop_row for week in weeks)
        shifted = [replace(week, first_row=week.first_row - start, stop_row=week.stop_row - start) for week in weeks]
        return _WeekBlock(panel.symbols, panel.log_px[start:stop], panel.dollar_volume[start:stop], shifted, codes,
                          scan, screen, select)

    def scan(self) -> pl.DataFrame:
        """Each week of the block from its own window."""
        frames = []
        for week in self.weeks:
            rows = slice(week.first_row, week.stop_row)
            frame = scan_week(self.log_px[rows], self.dollar_volume[rows], self.symbols, self.sector_codes,
                              week.members, self.scan_params, self.screen, self.select)
            frames.append(frame.with_columns(week_end_date=pl.lit(week.week_end_date, pl.Date),
                                             window_start_date=pl.lit(week.window_start_date, pl.Date)))
        return pl.concat(frames, how="vertical_relaxed")
