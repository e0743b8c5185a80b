"""Pairs research: weekly cointegration scan, hourly spreads and z-scores, and the signal state machine."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from assets.model import asset
from quality.contracts import PairCandidates, PairSignals, PairSpreads

SCAN_LOOKBACK_SESSIONS = 120
ZSCORE_WINDOW_BARS = 500
ZSCORE_LOOKBACK_SESSIONS = 75  # 500 hourly bars at 7 a session, with room for half days


@asset(
    partitions="weekly",
    contract=PairCandidates,
    grain=("week_end_date", "symbol_y", "symbol_x"),
    time_column="week_end_date",
    tags=("weekly", "pairs"),
    lookback={"bars_hourly": SCAN_LOOKBACK_SESSIONS},
    params={"lookback_sessions": SCAN_LOOKBACK_SESSIONS, "max_p_value": 0.01, "min_half_life_bars": 1.0,
            "max_half_life_bars": 500.0, "min_obs": 250},
    freshness=timedelta(days=10),
)
def pair_candidates(
    bars_hourly: pl.DataFrame, partition_keys: list[str], *, lookback_sessions: int, max_p_value: float,
    min_half_life_bars: float, max_half_life_bars: float, min_obs: int,
) -> pl.DataFrame:
    """One row per week and tested pair: Engle–Granger statistic, p-value, OLS hedge ratio on log prices and AR(1) half-life over the last `lookback_sessions` sessions; partitioned by the week's last session (`week_end_date`).

    `is_cointegrated` marks the pairs that pass the thresholds; a week with too little
    history to test reports every pair with `n_obs` and no statistics.
    """
    from assets.analytics.cointegration import PAIR_SCAN_SCHEMA, ScanParams

    params = ScanParams(max_p_value=max_p_value, min_half_life_bars=min_half_life_bars,
                        max_half_life_bars=max_half_life_bars, min_obs=min_obs)
    session_list = sorted(bars_hourly["session_date"].unique().to_list())
    weeks = []
    for key in partition_keys:
        week_end = pl.Series([key]).str.to_date()[0]
        window = [s for s in session_list if s <= week_end][-lookback_sessions:]
        panel = bars_hourly.filter(pl.col("session_date").is_in(window)).select("symbol", "bar_ts", "close_px")
        weeks.append(_scan_week(panel, params).with_columns(
            week_end_date=pl.lit(week_end), window_start_date=pl.lit(window[0] if window else week_end)
        ))
    if not weeks:
        return pl.DataFrame(schema={"week_end_date": pl.Date, "window_start_date": pl.Date, **PAIR_SCAN_SCHEMA})
    return pl.concat(weeks).select("week_end_date", "window_start_date", *PAIR_SCAN_SCHEMA.keys())


def _scan_week(panel: pl.DataFrame, params) -> pl.DataFrame:
    """The scan, or every pair untested when the window is too short to test."""
    from assets.analytics.cointegration import PAIR_SCAN_SCHEMA, scan_pairs

    try:
        return scan_pairs(panel, params)
    except ValueError:
        symbols = sorted(panel["symbol"].unique().to_list())
        untested = [(y, x) for i, y in enumerate(symbols) for x in symbols[i + 1:]]
        aligned = panel.pivot(on="symbol", index="bar_ts", values="close_px").drop_nulls().height
        return pl.DataFrame(
            {"symbol_y": [y for y, _ in untested], "symbol_x": [x for _, x in untested]}, schema_overrides={}
        ).with_columns(
            *(pl.lit(None, dtype).alias(name) for name, dtype in PAIR_SCAN_SCHEMA.items()
              if name not in ("symbol_y", "symbol_x", "n_obs", "is_cointegrated")),
            n_obs=pl.lit(aligned, pl.Int64),
            is_cointegrated=pl.lit(False),
        ).select(PAIR_SCAN_SCHEMA.keys())


@asset(
    partitions="daily",
    contract=PairSpreads,
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
    """One row per active pair and regular-session hour: the log spread with the hedge ratio of the latest completed weekly scan, and its z-score over the last `window` bars; partitioned by session date.

    A day uses the candidates of the week before it, never its own week, so the hedge
    ratio and the pair list are known before the first bar they apply to.
    """
    from assets.analytics.spreads import pair_spreads as spreads_of

    days = pl.Series("day", partition_keys).str.to_date()
    session_list = sorted(bars_hourly["session_date"].unique().to_list())
    weeks = pair_candidates["week_end_date"].unique().sort()
    day_to_week = pl.DataFrame({"day": days}).join_asof(
        pl.DataFrame({"week_end_date": weeks, "week": weeks}).sort("week"), left_on="day", right_on="week",
        strategy="backward", allow_exact_matches=False,
    )
    frames = []
    for (week_end,), group in day_to_week.drop_nulls("week_end_date").group_by("week_end_date", maintain_order=True):
        active = pair_candidates.filter((pl.col("week_end_date") == week_end) & pl.col("is_cointegrated"))
        if active.is_empty():
            continue
        first_day, last_day = group["day"].min(), group["day"].max()
        warm_up = [s for s in session_list if s < first_day][-lookback_sessions:]
        history = bars_hourly.filter(pl.col("session_date").is_between(warm_up[0] if warm_up else first_day, last_day))
        spread = spreads_of(history, active, window=window)
        session_of_bar = pl.col("bar_ts").dt.convert_time_zone("America/New_York").dt.date()
        frames.append(
            spread.filter(session_of_bar.is_in(group["day"].implode())).with_columns(hedge_week_end_date=pl.lit(week_end))
        )
    if not frames:
        return _empty_spreads()
    return pl.concat(frames).sort("pair_id", "bar_ts")


def _empty_spreads() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "pair_id": pl.String, "symbol_y": pl.String, "symbol_x": pl.String, "bar_ts": pl.Datetime("us", "UTC"),
        "spread": pl.Float64, "spread_mean": pl.Float64, "spread_std": pl.Float64, "zscore": pl.Float64,
        "hedge_week_end_date": pl.Date,
    })


@asset(
    partitions="daily",
    contract=PairSignals,
    grain=("pair_id", "bar_ts"),
    time_column="bar_ts",
    tags=("hourly", "pairs", "trading"),
    params={"entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0, "max_holding_bars": 70},
    freshness=timedelta(days=4),
)
def pair_signals(
    pair_spreads: pl.DataFrame, previous: pl.DataFrame | None, *, entry_z: float, exit_z: float, stop_z: float,
    max_holding_bars: int,
) -> pl.DataFrame:
    """One row per active pair and hour: the pair's position after that bar (−1 short spread, 0 flat, +1 long spread) and the signal that set it, from a per-pair state machine resumed from the previous session; partitioned by session date.

    The trading flows read this asset only.
    """
    from assets.analytics.spreads import SignalParams, pair_signals as run_signals, signal_state

    params = SignalParams(entry_z=entry_z, exit_z=exit_z, stop_z=stop_z, max_holding_bars=max_holding_bars)
    state = signal_state(previous) if previous is not None and previous.height else None
    if pair_spreads.is_empty():
        return _empty_signals()
    signals = run_signals(pair_spreads, params, state=state)
    legs = pair_spreads.select("pair_id", "bar_ts", "symbol_y", "symbol_x", "spread")
    return (
        signals.join(legs, on=["pair_id", "bar_ts"], how="left")
        .with_columns(pl.col("signal").cast(pl.String))
        .select("pair_id", "symbol_y", "symbol_x", "bar_ts", "spread", "zscore", "position", "signal", "bars_held",
                "is_stop_locked")
        .sort("pair_id", "bar_ts")
    )


def _empty_signals() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "pair_id": pl.String, "symbol_y": pl.String, "symbol_x": pl.String, "bar_ts": pl.Datetime("us", "UTC"),
        "spread": pl.Float64, "zscore": pl.Float64, "position": pl.Int8, "signal": pl.String, "bars_held": pl.Int32,
        "is_stop_locked": pl.Boolean,
    })
