"""Pairs research: weekly cointegration scan, hourly spreads and z-scores, and the signal state machine."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import polars as pl

from assets.calendar import session_of
from assets.model import asset, conformed, empty_frame

if TYPE_CHECKING:
    import numpy as np

    from assets.pairs.scan import PricePanel, WeekWindow

SCAN_LOOKBACK_SESSIONS = 120
ZSCORE_WINDOW_BARS = 500
ZSCORE_LOOKBACK_SESSIONS = 75  # 500 hourly bars at 7 a session, with room for half days
CANDIDATES_CONTRACT = "quality.contracts:PairCandidates"
SPREADS_CONTRACT = "quality.contracts:PairSpreads"
SIGNALS_CONTRACT = "quality.contracts:PairSignals"


#: The weekly scan's settings: the screen before Engle–Granger, the false-discovery control and the cap.
SCAN_PARAMS = {
    "lookback_sessions": SCAN_LOOKBACK_SESSIONS, "min_obs": 250,
    "min_return_corr": 0.5, "same_sector_only": True, "min_median_dollar_volume": 1_000_000.0,
    "fdr_q": 0.05, "max_traded_pairs": 50, "min_half_life_bars": 1.0, "max_half_life_bars": 500.0,
}


@asset(
    partitions="weekly",
    contract=CANDIDATES_CONTRACT,
    grain=("week_end_date", "symbol_y", "symbol_x"),
    time_column="week_end_date",
    tags=("weekly", "pairs"),
    lookback={"bars_hourly": SCAN_LOOKBACK_SESSIONS},
    params=SCAN_PARAMS,
    freshness=timedelta(days=10),
)
def pair_candidates(
    bars_hourly: pl.DataFrame, universe: pl.DataFrame, partition_keys: list[str], *, lookback_sessions: int,
    min_obs: int, min_return_corr: float, same_sector_only: bool, min_median_dollar_volume: float, fdr_q: float,
    max_traded_pairs: int, min_half_life_bars: float, max_half_life_bars: float,
) -> pl.DataFrame:
    """One row per week and screened pair: return correlation, Engle–Granger statistic, p-value and lag, OLS hedge ratio on log prices, AR(1) half-life, Benjamini–Hochberg q-value and rank over the last `lookback_sessions` sessions; partitioned by the week's last session (`week_end_date`).

    A pair is screened in when both symbols are universe members that week, liquid
    (median hourly dollar volume ≥ `min_median_dollar_volume`), in one sector when
    `same_sector_only` and both sectors are known, and their log returns correlate at
    ≥ `min_return_corr`. Each screened pair is tested on its own common bars (untested,
    statistics null, below `min_obs`). `is_cointegrated`: q-value ≤ `fdr_q` over the
    week's `n_tested` tests and half-life within bounds; `is_traded`: among the first
    `max_traded_pairs` of those by score (most negative statistic, then shortest half-life).
    """
    from assets.pairs.cointegration import ScanParams
    from assets.pairs.scan import PricePanel, ScreenParams, SelectParams, scan_weeks, usable_processes

    panel = PricePanel.of(bars_hourly)
    weeks = _week_windows(panel, universe, partition_keys, lookback_sessions)
    scanned = scan_weeks(
        panel, weeks, _sectors(universe), ScanParams(min_obs=min_obs),
        ScreenParams(min_return_corr=min_return_corr, same_sector_only=same_sector_only,
                     min_median_dollar_volume=min_median_dollar_volume),
        SelectParams(fdr_q=fdr_q, max_traded_pairs=max_traded_pairs, min_half_life_bars=min_half_life_bars,
                     max_half_life_bars=max_half_life_bars),
        processes=usable_processes(len(weeks) * len(panel.symbols) * (len(panel.symbols) - 1) // 2),
    )
    return conformed(scanned, CANDIDATES_CONTRACT)


def _week_windows(
    panel: PricePanel, universe: pl.DataFrame, partition_keys: list[str], lookback_sessions: int
) -> list[WeekWindow]:
    """Each week's rows of the panel (its last `lookback_sessions` sessions) and the symbols that were members then."""
    import numpy as np

    from assets.pairs.scan import WeekWindow

    session_list = np.unique(panel.session_date)
    weeks = []
    for key in partition_keys:
        week_end = pl.Series([key]).str.to_date()[0]
        window = session_list[session_list <= np.datetime64(week_end)][-lookback_sessions:]
        start = window[0] if window.size else np.datetime64(week_end)
        weeks.append(WeekWindow(
            week_end_date=week_end,
            window_start_date=start.astype(object),
            first_row=int(np.searchsorted(panel.session_date, start, "left")),
            stop_row=int(np.searchsorted(panel.session_date, np.datetime64(week_end), "right")),
            members=_members(panel.symbols, universe, week_end),
        ))
    return weeks


def _members(symbols: list[str], universe: pl.DataFrame, on: date) -> np.ndarray:
    """Which symbols may be paired on a date: members of the universe then, or not listed in it at all."""
    import numpy as np

    listed = set(universe["symbol"].to_list())
    active = set(universe.filter(
        (pl.col("active_from").is_null() | (pl.col("active_from") <= on))
        & (pl.col("active_to").is_null() | (pl.col("active_to") >= on))
    )["symbol"].to_list())
    return np.array([symbol in active or symbol not in listed for symbol in symbols], dtype=bool)


def _sectors(universe: pl.DataFrame) -> dict[str, str]:
    """Each listed symbol's sector (its latest listing's)."""
    latest = universe.drop_nulls("sector").sort("active_from", nulls_last=False).group_by("symbol").last()
    return dict(latest.select("symbol", "sector").iter_rows())


@asset(
    partitions="daily",
    contract=SPREADS_CONTRACT,
    grain=("pair_id", "bar_ts"),
    time_column="bar_ts",
    tags=("hourly", "pairs"),
    lookback={"bars_hourly": ZSCORE_LOOKBACK_SESSIONS},
    params={"window": ZSCORE_WINDOW_BARS, "lookback_sessions": ZSCORE_LOOKBACK_SESSIONS},
    freshness=timedelta(days=4),
)
def pair_spreads(
    bars_hourly: pl.DataFrame, pair_candidates: pl.DataFrame, partition_keys: list[str], *, window: int,
    lookback_sessions: int,
) -> pl.DataFrame:
    """One row per active pair and regular-session hour: the log spread with the hedge ratio (and intercept, both carried on the row) of the latest completed weekly scan, and its z-score over the last `window` bars; partitioned by session date.

    A day uses the candidates of the week before it, never its own week, so the hedge
    ratio and the pair list are known before the first bar they apply to.
    """
    from assets.pairs.spreads import pair_spreads as spreads_of

    days = pl.Series("day", partition_keys).str.to_date()
    session_list = sorted(bars_hourly["session_date"].unique().to_list())
    weeks = pair_candidates["week_end_date"].unique().sort()
    day_to_week = pl.DataFrame({"day": days}).join_asof(
        pl.DataFrame({"week_end_date": weeks, "week": weeks}).sort("week"), left_on="day", right_on="week",
        strategy="backward", allow_exact_matches=False,
    )
    frames = []
    for (week_end,), group in day_to_week.drop_nulls("week_end_date").group_by("week_end_date", maintain_order=True):
        active = pair_candidates.filter((pl.col("week_end_date") == week_end) & pl.col("is_traded"))
        if active.is_empty():
            continue
        first_day, last_day = group["day"].min(), group["day"].max()
        warm_up = [s for s in session_list if s < first_day][-lookback_sessions:]
        history = bars_hourly.filter(pl.col("session_date").is_between(warm_up[0] if warm_up else first_day, last_day))
        spread = spreads_of(history, active, window=window)
        session_of_bar = session_of(pl.col("bar_ts"))
        frames.append(
            spread.filter(session_of_bar.is_in(group["day"].implode())).with_columns(hedge_week_end_date=pl.lit(week_end))
        )
    if not frames:
        return empty_frame(SPREADS_CONTRACT)
    return pl.concat(frames).sort("pair_id", "bar_ts")


@asset(
    partitions="daily",
    contract=SIGNALS_CONTRACT,
    grain=("pair_id", "bar_ts"),
    time_column="bar_ts",
    tags=("hourly", "pairs", "trading"),
    params={"entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0, "max_holding_bars": 70},
    freshness=timedelta(days=4),
)
def pair_signals(
    pair_spreads: pl.DataFrame, pair_candidates: pl.DataFrame, previous: pl.DataFrame | None,
    partition_keys: list[str], *, entry_z: float, exit_z: float, stop_z: float, max_holding_bars: int,
) -> pl.DataFrame:
    """One row per active pair and hour: the pair's position after that bar (−1 short spread, 0 flat, +1 long spread), the signal that set it and the hedge ratio of its spread, from a per-pair state machine on the pair's own sessions, resumed from the previous session; partitioned by session date.

    A position ends on an added row at the first bar of a session its pair has no spread
    in (`dropped` from the candidates, or a `gap` in its stream), so no position spans a
    session without rows. The trading flows read this asset only.
    """
    from assets.pairs.spreads import SignalParams, pair_signals as run_signals, signal_state

    params = SignalParams(entry_z=entry_z, exit_z=exit_z, stop_z=stop_z, max_holding_bars=max_holding_bars)
    state = signal_state(previous) if previous is not None and previous.height else None
    sessions = pl.Series(partition_keys).str.to_date().sort().to_list()
    spreads = pair_spreads.select("pair_id", "symbol_y", "symbol_x", "bar_ts", "spread", "zscore", "hedge_ratio", "intercept")
    signals = run_signals(
        spreads, params, state=state, through=sessions[-1], candidates=pair_candidates, partitions=sessions
    )
    published = empty_frame(SIGNALS_CONTRACT)
    if signals.is_empty():
        return published
    return signals.with_columns(pl.col("signal").cast(pl.String)).select(published.columns).sort("pair_id", "bar_ts")
