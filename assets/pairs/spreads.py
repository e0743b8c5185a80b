"""Pair log spreads with exact rolling z-scores, and the per-pair entry/exit state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from assets.calendar import session_of, sessions_of

__all__ = [
    "BREAK_SIGNALS",
    "EXIT_SIGNALS",
    "SIGNAL_DTYPE",
    "PairLayout",
    "SignalParams",
    "pair_signals",
    "pair_spreads",
    "signal_state",
    "sort_by_pair_and_time",
]


# Spreads are summed as integers in units of 2**-40 so that window sums are exact.
_FIXED_POINT_BITS = 40
_SPLIT_BITS = 23
_MAX_ABS_SPREAD = 64.0
_MAX_WINDOW = 2**16
# Spread cells computed at once when building spreads: bounds the temporary grid to ~160 MB.
_SPREAD_BLOCK_CELLS = 20_000_000

_LEG_SPREAD_SCHEMA = pl.Schema(
    {
        "pair_id": pl.String,
        "symbol_y": pl.String,
        "symbol_x": pl.String,
        "bar_ts": pl.Datetime("us", "UTC"),
        "spread": pl.Float64,
        "hedge_ratio": pl.Float64,
        "intercept": pl.Float64,
    }
)
_SPREAD_COLUMNS = [
    "pair_id",
    "symbol_y",
    "symbol_x",
    "bar_ts",
    "spread",
    "spread_mean",
    "spread_std",
    "zscore",
    "hedge_ratio",
    "intercept",
]


def pair_spreads(
    bars_hourly: pl.DataFrame,
    candidates: pl.DataFrame,
    *,
    window: int = 500,
    min_periods: int | None = None,
) -> pl.DataFrame:
    """One row per cointegrated pair and bar_ts where both legs have a bar, with the hedge ratio and intercept it used.

    ``spread = ln(y) - hedge_ratio * ln(x) - intercept``; ``spread_mean`` and
    ``spread_std`` (ddof=1) cover the pair's last ``window`` spreads including
    the current one and stay null until ``min_periods`` (default ``window``)
    spreads exist; ``zscore = (spread - spread_mean) / spread_std``.
    """
    min_periods = window if min_periods is None else min_periods
    if not 2 <= min_periods <= window <= _MAX_WINDOW:
        raise ValueError(f"need 2 <= min_periods <= window <= {_MAX_WINDOW}, got {min_periods=} {window=}")

    combined, layout = sort_by_pair_and_time(_leg_spreads(bars_hourly, candidates))
    spread = combined["spread"].to_numpy()
    mean, std = _rolling_moments(spread, layout.row_in_pair, window, min_periods)
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(std > 0.0, (spread - mean) / std, np.nan)

    return (
        combined.with_columns(
            spread_mean=pl.Series(mean).fill_nan(None),
            spread_std=pl.Series(std).fill_nan(None),
            zscore=pl.Series(zscore).fill_nan(None),
        )
        .select(_SPREAD_COLUMNS)
    )


def _leg_spreads(bars_hourly: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """Log spread of each cointegrated pair wherever both legs have a usable close, ordered by pair_id and bar_ts.

    Closes go into a (symbol, bar) grid of log prices; each pair's spread is a
    difference of two grid rows, taken for a block of pairs at a time to bound memory.
    """
    active = (
        candidates.filter(pl.col("is_cointegrated"))
        .select("symbol_y", "symbol_x", "hedge_ratio", "intercept")
        .with_columns(pair_id=pl.concat_str("symbol_y", pl.lit("/"), "symbol_x"))
        .sort("pair_id")
    )
    if active["pair_id"].is_duplicated().any():
        raise ValueError("candidates hold more than one cointegrated row for the same pair_id")
    symbols = pl.concat([active["symbol_y"], active["symbol_x"]]).unique(maintain_order=True)
    symbol_dtype = pl.Enum(symbols)
    closes = bars_hourly.select(
        pl.col("symbol"), pl.col("bar_ts").cast(pl.Datetime("us", "UTC")), pl.col("close_px").cast(pl.Float64)
    ).filter(
        pl.col("symbol").is_in(symbols.implode())
        & pl.col("close_px").is_finite()
        & (pl.col("close_px") > 0.0)
    )
    close_ts = closes["bar_ts"].to_physical().to_numpy()
    calendar = np.unique(close_ts)
    log_close = np.full((symbols.len(), calendar.size), np.nan)
    log_close[
        closes["symbol"].cast(symbol_dtype).to_physical().to_numpy(), np.searchsorted(calendar, close_ts)
    ] = np.log(closes["close_px"].to_numpy())

    y_leg = active["symbol_y"].cast(symbol_dtype).to_physical().to_numpy()
    x_leg = active["symbol_x"].cast(symbol_dtype).to_physical().to_numpy()
    hedge_ratio = active["hedge_ratio"].to_numpy().astype(np.float64)[:, None]
    intercept = active["intercept"].to_numpy().astype(np.float64)[:, None]
    block = max(1, _SPREAD_BLOCK_CELLS // max(calendar.size, 1))
    blocks = []
    for start in range(0, active.height, block):
        pairs = slice(start, start + block)
        spread = log_close[y_leg[pairs]] - hedge_ratio[pairs] * log_close[x_leg[pairs]] - intercept[pairs]
        pair_of_cell, bar_of_cell = np.nonzero(~np.isnan(spread))
        pair_of_cell += start
        blocks.append(
            pl.DataFrame(
                {
                    "pair_id": active["pair_id"].gather(pair_of_cell),
                    "symbol_y": active["symbol_y"].gather(pair_of_cell),
                    "symbol_x": active["symbol_x"].gather(pair_of_cell),
                    "bar_ts": pl.Series(calendar[bar_of_cell]).cast(pl.Datetime("us", "UTC")),
                    "spread": spread[pair_of_cell - start, bar_of_cell],
                    "hedge_ratio": hedge_ratio[pair_of_cell, 0],
                    "intercept": intercept[pair_of_cell, 0],
                }
            )
        )
    return pl.concat(blocks) if blocks else pl.DataFrame(schema=_LEG_SPREAD_SCHEMA)


def _rolling_moments(
    values: np.ndarray, row_in_group: np.ndarray, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std per group, each a function of its window's values alone.

    Values are rounded to multiples of 2**-40 and summed as integers, so a
    window sum taken as a difference of running sums is exact wherever the
    running sum started; that is what makes incremental runs agree bit for bit
    with a full recomputation. Squares are split into 23-bit halves to stay
    inside 64 bits. The variance is then formed in floating point; the spread
    is centred by its fitted intercept, so cancellation costs only
    ``eps * (1 + mean**2 / var)`` of relative precision.
    """
    if values.size and np.abs(values).max() >= _MAX_ABS_SPREAD:
        raise ValueError(f"|spread| must stay below {_MAX_ABS_SPREAD} for exact window sums")
    fixed = np.rint(values * 2.0**_FIXED_POINT_BITS).astype(np.int64)
    high = fixed >> _SPLIT_BITS
    low = fixed & (2**_SPLIT_BITS - 1)

    count = np.minimum(row_in_group + 1, window)
    starts = np.arange(values.size) + 1 - count
    running = np.zeros(values.size + 1, dtype=np.uint64)

    def window_sum(parts: np.ndarray) -> np.ndarray:
        # Unsigned running sums wrap modulo 2**64; their differences are still exact.
        np.cumsum(parts.view(np.uint64), out=running[1:])
        return (running[1:] - running[starts]).view(np.int64).astype(np.float64)

    n = count.astype(np.float64)
    total = window_sum(fixed)
    sum_of_squares = (
        window_sum(high * high) * 2.0 ** (2 * _SPLIT_BITS)
        + window_sum(high * low) * 2.0 ** (_SPLIT_BITS + 1)
        + window_sum(low * low)
    )
    scale = 2.0**_FIXED_POINT_BITS
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_fixed = total / n
        variance_fixed = np.maximum(sum_of_squares - total * mean_fixed, 0.0) / (n - 1.0)
    is_ready = count >= min_periods
    mean = np.where(is_ready, mean_fixed / scale, np.nan)
    std = np.where(is_ready, np.sqrt(variance_fixed) / scale, np.nan)
    return mean, std


@dataclass(frozen=True)
class SignalParams:
    """Z-score bands of the pair state machine; requires 0 <= exit_z < entry_z < stop_z."""

    entry_z: float = 2.0
    exit_z: float = 0.5
    stop_z: float = 4.0
    max_holding_bars: int = 70

    def __post_init__(self) -> None:
        if not 0.0 <= self.exit_z < self.entry_z < self.stop_z:
            raise ValueError(f"need 0 <= exit_z < entry_z < stop_z, got {self}")
        if self.max_holding_bars < 1:
            raise ValueError(f"max_holding_bars must be positive, got {self.max_holding_bars}")


# Machine states; only flat states distinguish the stop lock.
_FLAT, _FLAT_LOCKED, _LONG, _SHORT = 0, 1, 2, 3
_STATE_POSITION = np.array([0, 0, 1, -1], dtype=np.int8)
_STATE_IN_MARKET = np.array([0, 0, 1, 1], dtype=np.int32)

# Z-score zones in increasing z: (-inf, -stop] (-stop, -entry] (-entry, -exit) [-exit, exit]
# (exit, entry) [entry, stop) [stop, inf); then a bar without a z-score, no bar at all
# (padding after a pair's last bar, where the machine stands still), and the two stream
# breaks: the pair left the candidates, or its stream skipped a session while listed.
(
    _BELOW_STOP, _LONG_ENTRY, _LONG_HOLD, _EXIT_BAND, _SHORT_HOLD, _SHORT_ENTRY, _ABOVE_STOP, _NO_Z, _NO_BAR,
    _DROPPED_BAR, _GAP_BAR,
) = range(11)
_ZONES = 11

_NONE, _HOLD, _ENTER_LONG, _ENTER_SHORT, _EXIT, _STOP, _MAX_HOLD, _DROPPED, _GAP = range(9)
SIGNAL_DTYPE = pl.Enum(["none", "hold", "enter_long", "enter_short", "exit", "stop", "max_hold", "dropped", "gap"])
#: Signals that end a position, each naming why.
EXIT_SIGNALS = ("exit", "stop", "max_hold", "dropped", "gap")
#: Signals on the rows a stream break adds: the position ends at the first bar of the session the pair missed.
BREAK_SIGNALS = ("dropped", "gap")


def _transition_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Next state, signal, held-bar increment and "still holding" for every (state, zone)."""
    next_state = np.empty((4, _ZONES), dtype=np.int8)
    signal = np.full((4, _ZONES), _NONE, dtype=np.uint8)
    increment = np.zeros((4, _ZONES), dtype=np.int32)
    is_holding = np.zeros((4, _ZONES), dtype=bool)
    breaks = {_DROPPED_BAR: _DROPPED, _GAP_BAR: _GAP}
    for zone in range(_ZONES):
        inside_entry_band = zone in (_LONG_HOLD, _EXIT_BAND, _SHORT_HOLD)

        next_state[_FLAT, zone] = {_LONG_ENTRY: _LONG, _SHORT_ENTRY: _SHORT}.get(zone, _FLAT)
        signal[_FLAT, zone] = {_LONG_ENTRY: _ENTER_LONG, _SHORT_ENTRY: _ENTER_SHORT}.get(zone, _NONE)
        # a stream break forgets the stop lock: the pair starts afresh when it comes back
        next_state[_FLAT_LOCKED, zone] = _FLAT if inside_entry_band or zone in breaks else _FLAT_LOCKED

        for state, adverse, exits in (
            (_LONG, (_BELOW_STOP,), (_EXIT_BAND, _SHORT_HOLD, _SHORT_ENTRY, _ABOVE_STOP)),
            (_SHORT, (_ABOVE_STOP,), (_BELOW_STOP, _LONG_ENTRY, _LONG_HOLD, _EXIT_BAND)),
        ):
            if zone == _NO_BAR:
                next_state[state, zone], signal[state, zone] = state, _NONE
                continue
            increment[state, zone] = 1
            if zone in breaks:
                next_state[state, zone], signal[state, zone] = _FLAT, breaks[zone]
            elif zone in adverse:
                next_state[state, zone], signal[state, zone] = _FLAT_LOCKED, _STOP
            elif zone in exits:
                next_state[state, zone], signal[state, zone] = _FLAT, _EXIT
            else:
                next_state[state, zone], signal[state, zone] = state, _HOLD
                is_holding[state, zone] = True
    return next_state.ravel(), signal.ravel(), increment.ravel(), is_holding.ravel()


def pair_signals(
    spreads: pl.DataFrame,
    params: SignalParams,
    *,
    state: pl.DataFrame | None = None,
    through: date | None = None,
    candidates: pl.DataFrame | None = None,
    partitions: list[date] | None = None,
) -> pl.DataFrame:
    """One row per pair_id and bar_ts: the pair's position after that bar's close and the signal that set it.

    Each pair runs a state machine over its own bars in time order, one
    transition per bar:

    - flat -> short spread (``enter_short``) when ``entry_z <= z < stop_z``;
      flat -> long spread (``enter_long``) when ``-stop_z < z <= -entry_z``.
      No entry beyond the stop level: it would be stopped out at once.
    - short -> flat (``exit``) when ``z <= exit_z``; long -> flat when
      ``z >= -exit_z``. Overshooting through the band also exits; the opposite
      entry can follow on a later bar.
    - in position -> flat (``stop``) when ``z >= stop_z`` while short or
      ``z <= -stop_z`` while long; (``max_hold``) when the position would reach
      ``max_holding_bars`` of the pair's own bars held, so ``bars_held`` never exceeds it.
    - after a stop or max-hold the pair is locked: it re-enters only after a later
      bar with ``|z| < entry_z`` has released the lock, so a fresh crossing is needed.
    - a bar without a z-score (warm-up) keeps the position and counts towards
      the holding time, but triggers no z-based transition.
    - the machine runs on the pair's own clock of exchange sessions: when a
      pair has no row in a session after one it had rows in, an open position
      ends on an added row at that session's first bar (no spread, no z-score):
      ``dropped`` when the pair was not among the session's traded
      ``candidates`` (the latest weekly scan before it), ``gap`` otherwise. The
      break also releases a stop lock; the pair starts flat when it comes back.
      A position closed on the pair's last bar before a break also gets that
      row (signal ``none``), so a fill one bar after the signal has a bar.

    When ``partitions`` (the sessions the output may hold rows for) leaves out the
    session a break belongs to (its upstream was quarantined), the break moves to
    the next listed session: onto the pair's first row there (``gap``, that bar's
    z-score unused) when it has one, else as an added row at its first bar.

    Breaks are found between a pair's rows, between ``state`` (from
    ``signal_state``, which resumes each listed pair where an earlier run
    ended) and its first row, and after its last row when ``through`` (the
    last session the frame covers) is later. So splitting a history anywhere
    and resuming gives the rows of one pass.

    Columns: pair_id, symbol_y, symbol_x, bar_ts, spread, zscore, hedge_ratio, intercept
    (those of the spreads given, the columns the spreads lack are left out), ``position``
    (-1 short spread, 0 flat, +1 long spread), ``signal`` (``SIGNAL_DTYPE``),
    ``bars_held`` (0 on entry bars, then bars held including the closing bar) and ``is_stop_locked``.
    """
    carried = [c for c in _CARRIED_COLUMNS if c in spreads.columns]
    rows, _ = sort_by_pair_and_time(spreads.select("pair_id", "bar_ts", "zscore", *carried))
    frame, layout = sort_by_pair_and_time(_with_breaks(rows, state, through, candidates, partitions))
    initial_state, initial_held = _initial_state(layout.pair_ids, state)

    zones = _zones(frame["zscore"].to_numpy().astype(np.float64, copy=False), params)
    break_zone = frame["break_zone"].to_numpy()
    zones[break_zone > 0] = break_zone[break_zone > 0]
    # The machine steps through time, so it runs on (step, pair) grids: one contiguous row per step.
    states, signals, held = _run_state_machine(
        np.ascontiguousarray(layout.to_grid(zones, fill=_NO_BAR).T),
        initial_state,
        initial_held,
        params.max_holding_bars,
    )
    state_of_row = layout.from_grid(states.T)
    out = frame.with_columns(
        position=pl.Series(_STATE_POSITION[state_of_row]),
        signal=pl.Series(layout.from_grid(signals.T)).cat.to(SIGNAL_DTYPE),
        bars_held=pl.Series(layout.from_grid(held.T)),
        is_stop_locked=pl.Series(state_of_row == _FLAT_LOCKED),
    )
    if not out["is_added"].any():
        return out.drop("break_zone", "is_added")
    # A break that found the pair flat is kept only right after a position closed on the pair's
    # last bar before it: a fill one bar after that signal happens at the break's bar.
    closed_before_resuming = _closed_on_last_bar(out.select("pair_id"), state)
    previous_signal = pl.when(pl.col("pair_id") == pl.col("pair_id").shift(1)).then(pl.col("signal").shift(1))
    closed_just_before = previous_signal.is_in(_Z_EXIT_SIGNALS).fill_null(pl.col("closed_before_resuming"))
    is_kept = ~pl.col("is_added") | pl.col("signal").is_in(BREAK_SIGNALS) | closed_just_before
    return out.with_columns(closed_before_resuming).filter(is_kept).drop("break_zone", "is_added", "closed_before_resuming")


_Z_EXIT_SIGNALS = ("exit", "stop", "max_hold")


def _closed_on_last_bar(pairs: pl.DataFrame, state: pl.DataFrame | None) -> pl.Series:
    """Per row, whether the resumed state ended on a bar that closed a position on its z-score or holding time."""
    if state is None or "is_closed_on_last_bar" not in state.columns:
        return pl.repeat(False, pairs.height, dtype=pl.Boolean, eager=True).alias("closed_before_resuming")
    flags = pairs.join(state.select("pair_id", "is_closed_on_last_bar"), on="pair_id", how="left", maintain_order="left")
    return flags["is_closed_on_last_bar"].fill_null(False).alias("closed_before_resuming")


_CARRIED_COLUMNS = ("symbol_y", "symbol_x", "spread", "hedge_ratio", "intercept")
def _with_breaks(
    rows: pl.DataFrame,
    state: pl.DataFrame | None,
    through: date | None,
    candidates: pl.DataFrame | None,
    partitions: list[date] | None,
) -> pl.DataFrame:
    """The rows (ordered by pair_id and bar_ts) plus, per pair, one row at the first bar of every session its stream skipped.

    ``break_zone`` is 0 on rows that step the machine by their z-score and names the kind
    of break on the others; ``is_added`` marks the rows that are not spreads.
    """
    rows = rows.with_columns(
        pl.col("bar_ts").cast(pl.Datetime("us", "UTC")), break_zone=pl.lit(0, pl.Int8), is_added=pl.lit(False)
    )
    dated = rows.with_columns(sessions_of(rows["bar_ts"]))
    return _with_break_rows(dated, state, through, candidates, partitions).drop("session_date")


def _with_break_rows(
    rows: pl.DataFrame,
    state: pl.DataFrame | None,
    through: date | None,
    candidates: pl.DataFrame | None,
    partitions: list[date] | None,
) -> pl.DataFrame:
    """`_with_breaks` on rows that carry their ``session_date``."""
    from assets.calendar import sessions as exchange_sessions

    carried = [c for c in _CARRIED_COLUMNS if c in rows.columns]
    # one row per pair and session it had bars in: its last
    days = _last_row_per_session(rows.select("pair_id", *carried, "bar_ts", "session_date"))
    if state is not None and state.height:
        resumed = state.select(
            "pair_id",
            *(pl.col(c) if c in state.columns else pl.lit(None, rows.schema[c]).alias(c) for c in carried),
            pl.col("last_bar_ts").cast(pl.Datetime("us", "UTC")).alias("bar_ts"),
        ).with_columns(session_date=session_of(pl.col("bar_ts")))
        days = _last_row_per_session(pl.concat([resumed, days]).sort("pair_id", "bar_ts", maintain_order=True))
    if days.is_empty():
        return rows
    first = days["session_date"].min()
    last = max(days["session_date"].max(), through) if through is not None else days["session_date"].max()
    calendar = exchange_sessions(first, last).select("session_date", "open_ts").with_row_index("session_index")
    if calendar.is_empty():
        return rows
    # each day numbered on the exchange calendar (a day off the calendar counts as the session before it)
    index = np.searchsorted(calendar["session_date"].to_numpy(), days["session_date"].to_numpy(), side="right") - 1
    days = days.with_columns(session_index=pl.Series(index, dtype=pl.Int64)).with_columns(
        next_seen=pl.col("session_index").shift(-1).over("pair_id")
    )
    ends_early = (
        pl.col("next_seen").is_null() & (pl.col("session_index") < calendar.height - 1) if through is not None else pl.lit(False)
    )
    skipped = days.filter((pl.col("next_seen") > pl.col("session_index") + 1) | ends_early).with_columns(
        session_index=pl.col("session_index") + 1
    )
    if partitions is not None:
        skipped = _moved_to_partitions(skipped, calendar["session_date"], partitions)
    if skipped.is_empty():
        return rows
    if partitions is not None:
        # a break moved onto a session the pair has rows in ends the position on its first row there
        on_rows = skipped.filter(pl.col("session_index") == pl.col("next_seen")).select("pair_id", "session_index")
        skipped = skipped.filter(pl.col("session_index") != pl.col("next_seen").fill_null(-1))
        first_rows = (
            rows.join(calendar.select("session_date", pl.col("session_index").cast(pl.Int64)), on="session_date")
            .join(on_rows, on=["pair_id", "session_index"], how="semi")
            .group_by("pair_id", "session_index")
            .agg(pl.col("bar_ts").min())
            .with_columns(is_moved_break=pl.lit(True))
        )
        rows = (
            rows.join(first_rows.select("pair_id", "bar_ts", "is_moved_break"), on=["pair_id", "bar_ts"], how="left")
            .with_columns(
                break_zone=pl.when(pl.col("is_moved_break")).then(pl.lit(_GAP_BAR, pl.Int8)).otherwise(pl.col("break_zone"))
            )
            .drop("is_moved_break")
        )
        if skipped.is_empty():
            return rows
    breaks = (
        skipped.drop("session_date", "bar_ts", "next_seen")
        .join(calendar.with_columns(pl.col("session_index").cast(pl.Int64)), on="session_index")
        .with_columns(bar_ts=pl.col("open_ts").dt.truncate("1h"))
    )
    if candidates is None:  # nothing says the pair left the candidates: every break is a gap
        breaks = breaks.with_columns(is_listed=pl.lit(True))
    else:
        listed = _listed_pairs(candidates, breaks.select("session_date").unique())
        breaks = breaks.join(listed, on=["pair_id", "session_date"], how="left")
    breaks = breaks.with_columns(
        break_zone=pl.when(pl.col("is_listed").fill_null(False)).then(_GAP_BAR).otherwise(_DROPPED_BAR).cast(pl.Int8),
        zscore=pl.lit(None, pl.Float64),
        is_added=pl.lit(True),
    )
    if "spread" in carried:
        breaks = breaks.with_columns(spread=pl.lit(None, pl.Float64))
    return pl.concat([rows, breaks.select(rows.columns)], how="vertical_relaxed")


def _last_row_per_session(days: pl.DataFrame) -> pl.DataFrame:
    """The last row of each pair in each session, of rows ordered by pair_id and bar_ts."""
    is_last = (pl.col("pair_id") != pl.col("pair_id").shift(-1)) | (
        pl.col("session_date") != pl.col("session_date").shift(-1)
    )
    return days.filter(is_last.fill_null(True))


def _moved_to_partitions(skipped: pl.DataFrame, calendar: pl.Series, partitions: list[date]) -> pl.DataFrame:
    """Breaks moved to the first listed session at or after their own; those with none left are dropped."""
    is_listed = calendar.is_in(pl.Series(partitions, dtype=pl.Date).implode()).to_numpy()
    listed_at = np.flatnonzero(is_listed)
    at = np.searchsorted(listed_at, skipped["session_index"].to_numpy())
    moved = np.where(at < listed_at.size, listed_at[np.minimum(at, max(listed_at.size - 1, 0))], -1) if listed_at.size else np.full(at.size, -1)
    return skipped.with_columns(session_index=pl.Series(moved, dtype=pl.Int64)).filter(pl.col("session_index") >= 0)


def _listed_pairs(candidates: pl.DataFrame, days: pl.DataFrame) -> pl.DataFrame:
    """(pair_id, session_date, is_listed) for the pairs cointegrated in the latest scan before each day."""
    weeks = candidates.select(pl.col("week_end_date").unique().sort())
    in_force = days.sort("session_date").join_asof(
        weeks.with_columns(week=pl.col("week_end_date")), left_on="session_date", right_on="week",
        strategy="backward", allow_exact_matches=False,
    ).drop_nulls("week_end_date")
    # the pairs the spreads are computed for: the traded ones where the scan ranks them
    active = candidates.filter(pl.col("is_traded" if "is_traded" in candidates.columns else "is_cointegrated")).select(
        "week_end_date", pair_id=pl.concat_str("symbol_y", pl.lit("/"), "symbol_x")
    )
    return in_force.join(active, on="week_end_date").select("pair_id", "session_date", is_listed=pl.lit(True))


def signal_state(signals: pl.DataFrame) -> pl.DataFrame:
    """One row per pair_id: the machine state after its last bar, to resume ``pair_signals`` from."""
    carried = [c for c in _CARRIED_COLUMNS if c in signals.columns and c != "spread"]
    return (
        signals.sort("pair_id", "bar_ts")
        .group_by("pair_id", maintain_order=True)
        .agg(pl.col("bar_ts", "position", "bars_held", "is_stop_locked", "signal", *carried).last())
        .select(
            "pair_id",
            *carried,
            pl.col("bar_ts").alias("last_bar_ts"),
            "position",
            pl.when(pl.col("position") != 0).then(pl.col("bars_held")).otherwise(0).alias("bars_held"),
            "is_stop_locked",
            pl.col("signal").cast(pl.String).is_in(_Z_EXIT_SIGNALS).alias("is_closed_on_last_bar"),
        )
    )


def sort_by_pair_and_time(frame: pl.DataFrame) -> tuple[pl.DataFrame, PairLayout]:
    """The frame ordered by pair_id then bar_ts, with its layout; ordered frames are not re-sorted."""
    layout = PairLayout.of(frame)
    if layout.is_ordered(frame):
        return frame, layout
    ordered = frame.sort("pair_id", "bar_ts")
    return ordered, PairLayout.of(ordered)


@dataclass(frozen=True)
class PairLayout:
    """Where each row of a frame sorted by pair_id and bar_ts sits in a (pair, bar-within-pair) grid.

    Grids let a time loop step every pair at once and keep per-pair running
    totals free of other pairs' rounding; cells past a pair's last bar are padding.
    """

    pair_ids: pl.Series
    first_row: np.ndarray
    n_rows: np.ndarray
    n_steps: int
    is_dense: bool

    @classmethod
    def of(cls, frame: pl.DataFrame) -> PairLayout:
        is_first = frame["pair_id"].ne_missing(frame["pair_id"].shift(1))
        first_row = np.flatnonzero(is_first.to_numpy())
        n_rows = np.diff(np.append(first_row, frame.height))
        n_steps = int(n_rows.max()) if n_rows.size else 0
        return cls(
            pair_ids=frame["pair_id"].filter(is_first),
            first_row=first_row,
            n_rows=n_rows,
            n_steps=n_steps,
            is_dense=bool(np.all(n_rows == n_steps)),
        )

    def is_ordered(self, frame: pl.DataFrame) -> bool:
        """Whether each pair's rows are contiguous, pairs ascend and bar_ts strictly rises within a pair."""
        if self.pair_ids.n_unique() != self.pair_ids.len() or not self.pair_ids.is_sorted():
            return False
        bar_ts = frame["bar_ts"].to_physical().to_numpy()
        is_later = np.ones(bar_ts.size, dtype=bool)
        is_later[1:] = bar_ts[1:] > bar_ts[:-1]
        is_later[self.first_row] = True
        return bool(is_later.all())

    @property
    def pair_of_row(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_rows.size), self.n_rows)

    @property
    def row_in_pair(self) -> np.ndarray:
        return np.arange(int(self.n_rows.sum())) - np.repeat(self.first_row, self.n_rows)

    def _flat_index(self) -> np.ndarray:
        return self.pair_of_row * self.n_steps + self.row_in_pair

    def to_grid(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Row values as an (n_pairs, n_steps) grid, each pair's rows in one grid row, padded with ``fill``."""
        if self.is_dense:
            return values.reshape(self.n_rows.size, self.n_steps)
        grid = np.full((self.n_rows.size, self.n_steps), fill, dtype=values.dtype)
        grid.ravel()[self._flat_index()] = values
        return grid

    def from_grid(self, grid: np.ndarray) -> np.ndarray:
        """An (n_pairs, n_steps) grid back in frame row order, padding dropped."""
        cells = np.ascontiguousarray(grid).ravel()
        return cells if self.is_dense else cells[self._flat_index()]


def _initial_state(pair_ids: pl.Series, state: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Machine state and held bars each pair starts from: flat and unlocked unless resumed."""
    if state is None:
        return np.full(pair_ids.len(), _FLAT, dtype=np.int8), np.zeros(pair_ids.len(), dtype=np.int32)
    resumed = pl.DataFrame({"pair_id": pair_ids}).join(state, on="pair_id", how="left", maintain_order="left")
    position = resumed["position"].fill_null(0).to_numpy()
    is_locked = resumed["is_stop_locked"].fill_null(False).to_numpy()
    machine_state = np.select(
        [position > 0, position < 0, is_locked], [_LONG, _SHORT, _FLAT_LOCKED], default=_FLAT
    ).astype(np.int8)
    held = np.where(position != 0, resumed["bars_held"].fill_null(0).to_numpy(), 0).astype(np.int32)
    return machine_state, held


def _zones(zscore: np.ndarray, params: SignalParams) -> np.ndarray:
    """Zone of each z-score against the signal bands, with boundaries closed as the rules state."""
    edge_tests = (
        (np.greater, -params.stop_z),
        (np.greater, -params.entry_z),
        (np.greater_equal, -params.exit_z),
        (np.greater, params.exit_z),
        (np.greater_equal, params.entry_z),
        (np.greater_equal, params.stop_z),
    )
    # Each edge a z-score lies beyond adds one; NaN passes none and is then marked.
    zones = np.zeros(zscore.size, dtype=np.int8)
    passed = np.empty(zscore.size, dtype=bool)
    for compare, edge in edge_tests:
        compare(zscore, edge, out=passed)
        zones += passed.view(np.int8)
    zones[np.isnan(zscore, out=passed)] = _NO_Z
    return zones


def _run_state_machine(
    zones: np.ndarray, initial_state: np.ndarray, initial_held: np.ndarray, max_holding_bars: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step every pair's machine one bar at a time; each step is a handful of NumPy ops across pairs."""
    next_state_table, signal_table, increment_table, is_holding_table = _transition_tables()
    n_steps, n_pairs = zones.shape
    states = np.empty((n_steps, n_pairs), dtype=np.int8)
    signals = np.empty((n_steps, n_pairs), dtype=np.uint8)
    held_out = np.empty((n_steps, n_pairs), dtype=np.int32)
    state = initial_state.astype(np.intp)
    held = initial_held.astype(np.int32)
    for step in range(n_steps):
        key = state * _ZONES + zones[step]
        held = held + increment_table[key]
        next_state = next_state_table[key]
        signal = signal_table[key]
        timed_out = is_holding_table[key] & (held >= max_holding_bars)
        if timed_out.any():
            next_state[timed_out] = _FLAT_LOCKED
            signal[timed_out] = _MAX_HOLD
        states[step] = next_state
        signals[step] = signal
        held_out[step] = held
        state = next_state.astype(np.intp)
        held = held * _STATE_IN_MARKET[state]
    return states, signals, held_out
