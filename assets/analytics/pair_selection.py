"""The weekly pair scan over a universe: screen, test, control false discoveries, cap the traded pairs."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import polars as pl

from assets.analytics.cointegration import PAIR_SCAN_SCHEMA, ScanParams, scan_log_prices

__all__ = [
    "WEEKLY_SCAN_SCHEMA",
    "PricePanel",
    "ScreenParams",
    "SelectParams",
    "WeekWindow",
    "benjamini_hochberg",
    "return_correlations",
    "scan_week",
    "scan_weeks",
    "usable_processes",
]

#: Weeks below which a scan stays in one process: starting workers costs more than it saves.
PARALLEL_MIN_WEEKS = 16

# One row per week and screened pair. return_corr is the screen's statistic; n_tested
# the week's number of Engle–Granger tests (the family Benjamini–Hochberg controls);
# q_value the BH-adjusted p-value; selection_rank the pair's place among the week's
# cointegrated pairs by score (null for the others).
WEEKLY_SCAN_SCHEMA = pl.Schema(
    {
        "week_end_date": pl.Date,
        "window_start_date": pl.Date,
        "symbol_y": pl.String,
        "symbol_x": pl.String,
        "return_corr": pl.Float64,
        **{name: dtype for name, dtype in PAIR_SCAN_SCHEMA.items() if name not in ("symbol_y", "symbol_x", "is_cointegrated")},
        "n_tested": pl.Int64,
        "q_value": pl.Float64,
        "selection_rank": pl.Int64,
        "is_cointegrated": pl.Boolean,
        "is_traded": pl.Boolean,
    }
)


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


def usable_processes() -> int:
    """Cores this process may use for a scan; one inside a daemonic worker (a Dask worker), which cannot fork."""
    if multiprocessing.current_process().daemon:
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
    index = {name: i for i, name in enumerate(symbols)}
    y_index = np.array([index[name] for name in tested.get_column("symbol_y").to_list()], dtype=np.int64)
    x_index = np.array([index[name] for name in tested.get_column("symbol_x").to_list()], dtype=np.int64)
    return _selected(tested.with_columns(return_corr=pl.Series(correlation[y_index, x_index])), select)


def _screened_pairs(
    log_px: np.ndarray, dollar_volume: np.ndarray, sector_codes: np.ndarray, members: np.ndarray, screen: ScreenParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column pairs (i < j) that pass the screen, and the return correlations of all columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no bar in the window: a NaN median, screened out
        liquidity = np.nanmedian(dollar_volume, axis=0) if dollar_volume.shape[0] else np.full(members.size, np.nan)
    taking_part = members & (liquidity >= screen.min_median_dollar_volume)
    first, second = np.triu_indices(log_px.shape[1], k=1)
    keep = taking_part[first] & taking_part[second]
    if screen.same_sector_only:
        a, b = sector_codes[first], sector_codes[second]
        keep &= (a < 0) | (b < 0) | (a == b)
    first, second = first[keep], second[keep]
    correlation = return_correlations(log_px) if first.size else np.full((log_px.shape[1],) * 2, np.nan)
    with np.errstate(invalid="ignore"):
        correlated = correlation[first, second] >= screen.min_return_corr
    return first[correlated], second[correlated], correlation


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
    """One row per week and screened pair, weeks in the order given.

    Every week is computed from its own window alone, so splitting the weeks over
    `processes` worker processes (contiguous blocks, each shipped only the rows it
    reads) gives exactly the rows a single process gives.
    """
    codes = _sector_codes(panel.symbols, sectors)
    blocks = _blocks(len(weeks), processes if len(weeks) >= PARALLEL_MIN_WEEKS else 1)
    jobs = [_block_job(panel, [weeks[i] for i in block], codes, scan, screen, select) for block in blocks]
    if len(jobs) <= 1:
        frames = [_scan_block(job) for job in jobs]
    else:
        spawn = multiprocessing.get_context("spawn")  # no fork in a threaded process
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=spawn) as pool:
            frames = list(pool.map(_scan_block, jobs))
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return pl.DataFrame(schema=WEEKLY_SCAN_SCHEMA)
    return pl.concat(frames).select(WEEKLY_SCAN_SCHEMA.keys())


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


def _block_job(panel, weeks, codes, scan, screen, select) -> tuple:
    """What one process needs for a block of weeks: only the panel rows those weeks read."""
    if not weeks:
        return (panel.symbols, np.empty((0, len(panel.symbols))), np.empty((0, len(panel.symbols))), [], codes,
                scan, screen, select)
    start = min(week.first_row for week in weeks)
    stop = max(week.stop_row for week in weeks)
    shifted = [replace(week, first_row=week.first_row - start, stop_row=week.stop_row - start) for week in weeks]
    return (panel.symbols, panel.log_px[start:stop], panel.dollar_volume[start:stop], shifted, codes, scan, screen,
            select)


def _scan_block(job: tuple) -> pl.DataFrame:
    """Scan a block of weeks; runs in a worker process or in this one."""
    symbols, log_px, dollar_volume, weeks, codes, scan, screen, select = job
    frames = []
    for week in weeks:
        rows = slice(week.first_row, week.stop_row)
        frame = scan_week(log_px[rows], dollar_volume[rows], symbols, codes, week.members, scan, screen, select)
        frames.append(frame.with_columns(
            week_end_date=pl.lit(week.week_end_date, pl.Date), window_start_date=pl.lit(week.window_start_date, pl.Date)
        ))
    if not frames:
        return pl.DataFrame(schema=WEEKLY_SCAN_SCHEMA)
    return pl.concat(frames, how="vertical_relaxed").select(WEEKLY_SCAN_SCHEMA.keys()).cast(WEEKLY_SCAN_SCHEMA)
