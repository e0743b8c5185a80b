"""Pair spreads and the signal state machine: exact rolling z-scores, hand-traced transitions, properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from assets.pairs.spreads import (
    SignalParams,
    pair_signals,
    pair_spreads,
    signal_state,
)
from tests.assets.pairs.signal_reference import next_bar

START = datetime(2025, 3, 3, 14, tzinfo=UTC)


def hours(n: int, offset: int = 0) -> list[datetime]:
    return [START + timedelta(hours=offset + i) for i in range(n)]


def make_bars(
    n_bars: int = 700, seed: int = 7, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC")
) -> pl.DataFrame:
    """Random-walk closes; BBB misses every 37th bar so pairs have different bar sets."""
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (len(symbols), n_bars)), axis=1))
    bars = pl.DataFrame(
        {
            "symbol": np.repeat(symbols, n_bars),
            "bar_ts": hours(n_bars) * len(symbols),
            "close_px": closes.ravel(),
        }
    )
    return bars.filter(~((pl.col("symbol") == "BBB") & (pl.int_range(pl.len()) % 37 == 5)))


def make_candidates(**overrides) -> pl.DataFrame:
    columns = {
        "symbol_y": ["AAA", "AAA", "BBB"],
        "symbol_x": ["BBB", "CCC", "CCC"],
        "hedge_ratio": [0.9, 1.1, 0.7],
        "intercept": [0.05, -0.02, 0.3],
        "half_life_bars": [20.0, 30.0, 25.0],
        "is_cointegrated": [True, True, False],
    }
    return pl.DataFrame(columns | overrides)


def spreads_frame(zscores: dict[str, list[float | None]]) -> pl.DataFrame:
    """A pair_spreads-shaped frame holding only what pair_signals reads; pair k starts k hours later."""
    frames = [
        pl.DataFrame(
            {"pair_id": pair_id, "bar_ts": hours(len(values), offset=k), "zscore": values},
            schema={"pair_id": pl.String, "bar_ts": pl.Datetime("us", "UTC"), "zscore": pl.Float64},
        )
        for k, (pair_id, values) in enumerate(zscores.items())
    ]
    return pl.concat(frames)


# --- spreads ----------------------------------------------------------------------------------------


def test_spread_is_log_y_minus_hedged_log_x_minus_intercept():
    bars = pl.DataFrame(
        {
            "symbol": ["Y", "Y", "Y", "X", "X"],
            "bar_ts": hours(3) + hours(2),
            "close_px": [100.0, 110.0, 120.0, 50.0, 55.0],
        }
    )
    candidates = make_candidates(
        symbol_y=["Y"],
        symbol_x=["X"],
        hedge_ratio=[1.2],
        intercept=[0.1],
        half_life_bars=[5.0],
        is_cointegrated=[True],
    )
    out = pair_spreads(bars, candidates, window=2)
    assert out["pair_id"].to_list() == ["Y/X", "Y/X"]  # the third hour has no X bar
    assert out["spread"].to_list() == pytest.approx(
        [math.log(100) - 1.2 * math.log(50) - 0.1, math.log(110) - 1.2 * math.log(55) - 0.1], rel=1e-15
    )
    spread = out["spread"].to_numpy()
    assert out["spread_mean"].to_list() == [None, pytest.approx(spread.mean(), abs=1e-12)]
    assert out["spread_std"][1] == pytest.approx(spread.std(ddof=1), rel=1e-9)
    assert out["zscore"][1] == pytest.approx((spread[1] - spread.mean()) / spread.std(ddof=1), rel=1e-9)


def test_only_cointegrated_pairs_and_shared_bars():
    out = pair_spreads(make_bars(100), make_candidates(), window=10)
    assert sorted(out["pair_id"].unique().to_list()) == ["AAA/BBB", "AAA/CCC"]
    counts = dict(out.group_by("pair_id").len().iter_rows())
    assert counts["AAA/CCC"] == 100 and counts["AAA/BBB"] == 100 - 3  # BBB misses bars 5, 42, 79
    assert out.select(pl.struct("pair_id", "bar_ts").is_unique().all()).item()


def test_no_cointegrated_pairs_give_an_empty_frame():
    out = pair_spreads(make_bars(30), make_candidates(is_cointegrated=[False, False, False]), window=10)
    assert out.is_empty()
    assert out.columns == [
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


@pytest.mark.parametrize("window, min_periods", [(50, None), (50, 10), (2, 2), (300, 299)])
def test_rolling_statistics_match_polars_rolling(window, min_periods):
    out = pair_spreads(make_bars(), make_candidates(), window=window, min_periods=min_periods)
    expected = out.with_columns(
        mean=pl.col("spread").rolling_mean(window, min_samples=min_periods or window).over("pair_id"),
        std=pl.col("spread").rolling_std(window, min_samples=min_periods or window).over("pair_id"),
    )
    assert expected["mean"].is_null().to_list() == out["spread_mean"].is_null().to_list()
    # Spreads are rounded to 2**-40 before summing: agreement is to ~1e-12, not to the last bit.
    assert_frame_equal(
        out.select(mean="spread_mean", std="spread_std"),
        expected.select("mean", "std"),
        check_exact=False,
        rel_tol=1e-9,
        abs_tol=1e-12,
    )
    assert_frame_equal(
        out.select("zscore"),
        expected.select(zscore=(pl.col("spread") - pl.col("mean")) / pl.col("std")),
        check_exact=False,
        rel_tol=1e-6,
        abs_tol=1e-8,
    )


@pytest.mark.parametrize("window, min_periods", [(1, None), (10, 1), (10, 11)])
def test_rejects_windows_that_cannot_give_a_sample_std(window, min_periods):
    with pytest.raises(ValueError):
        pair_spreads(make_bars(20), make_candidates(), window=window, min_periods=min_periods)


# --- signal state machine: hand-traced ---------------------------------------------------------------


def run_pair(zscores: list[float | None], params: SignalParams) -> pl.DataFrame:
    return pair_signals(spreads_frame({"Y/X": zscores}), params)


def test_enter_hold_exit_and_overshoot_exit():
    params = SignalParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, max_holding_bars=70)
    out = run_pair([0.0, 2.1, 1.0, 0.4, -2.5, -1.0, 3.0], params)
    assert out["signal"].cast(pl.String).to_list() == [
        "none",
        "enter_short",
        "hold",
        "exit",
        "enter_long",
        "hold",
        "exit",
    ]
    assert out["position"].to_list() == [0, -1, -1, 0, 1, 1, 0]
    assert out["bars_held"].to_list() == [0, 0, 1, 2, 0, 1, 2]


def test_band_edges_are_closed_as_documented():
    params = SignalParams(entry_z=2.0, exit_z=0.5, stop_z=4.0)
    # z == entry enters; z == exit exits; z == stop is both "no entry" and "stop".
    assert run_pair([2.0, 0.5], params)["signal"].cast(pl.String).to_list() == ["enter_short", "exit"]
    assert run_pair([-2.0, -0.5], params)["signal"].cast(pl.String).to_list() == ["enter_long", "exit"]
    assert run_pair([4.0, -4.0, 3.9], params)["signal"].cast(pl.String).to_list() == [
        "none",
        "none",
        "enter_short",
    ]
    assert run_pair([3.0, 4.0], params)["signal"].cast(pl.String).to_list() == ["enter_short", "stop"]


def test_stop_locks_until_z_is_back_inside_the_entry_band():
    params = SignalParams(entry_z=2.0, exit_z=0.5, stop_z=4.0)
    out = run_pair([2.5, 4.2, 3.0, 2.5, 1.9, 2.2, 2.1], params)
    assert out["signal"].cast(pl.String).to_list() == [
        "enter_short",
        "stop",
        "none",
        "none",
        "none",
        "enter_short",
        "hold",
    ]
    assert out["is_stop_locked"].to_list() == [False, True, True, True, False, False, False]


def test_holding_time_stop_and_missing_zscores_count_as_held_bars():
    params = SignalParams(entry_z=2.0, exit_z=0.5, stop_z=4.0, max_holding_bars=3)
    out = run_pair([None, -2.5, None, -1.5, -1.2, -1.0, -0.2], params)
    assert out["signal"].cast(pl.String).to_list() == [
        "none",
        "enter_long",
        "hold",
        "hold",
        "max_hold",
        "none",
        "none",
    ]
    assert out["bars_held"].to_list() == [0, 0, 1, 2, 3, 0, 0]
    assert out["is_stop_locked"].to_list() == [False, False, False, False, True, False, False]


def test_signal_params_reject_unordered_bands():
    with pytest.raises(ValueError):
        SignalParams(entry_z=2.0, exit_z=2.0, stop_z=4.0)
    with pytest.raises(ValueError):
        SignalParams(entry_z=2.0, exit_z=0.5, stop_z=1.5)


# --- signal state machine: properties ----------------------------------------------------------------


def reference_signals(
    zscores: list[float | None], params: SignalParams, state: str = "flat", held: int = 0
) -> list[tuple]:
    """The documented rules, one bar at a time: (position, signal, bars_held, is_stop_locked) per bar."""
    rows = []
    for z in zscores:
        signal, state, bars_held, held = next_bar(state, held, z, params)
        position = {"long": 1, "short": -1}.get(state, 0)
        rows.append((position, signal, bars_held, state == "locked"))
    return rows


@st.composite
def signal_cases(draw):
    exit_z = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    entry_z = exit_z + draw(st.sampled_from([0.5, 1.0, 1.75]))
    stop_z = entry_z + draw(st.sampled_from([0.5, 1.0, 2.0]))
    params = SignalParams(
        entry_z=entry_z, exit_z=exit_z, stop_z=stop_z, max_holding_bars=draw(st.integers(1, 12))
    )
    edges = [s * v for v in (exit_z, entry_z, stop_z) for s in (-1.0, 1.0)]
    value = st.one_of(
        st.floats(-7.0, 7.0, allow_nan=False), st.sampled_from(edges), st.none(), st.just(float("nan"))
    )
    n_pairs = draw(st.integers(1, 4))
    zscores = {f"P{k}/Q": draw(st.lists(value, min_size=1, max_size=60)) for k in range(n_pairs)}
    return params, zscores


def as_reference_input(values: list[float | None]) -> list[float | None]:
    return [None if v is None or math.isnan(v) else v for v in values]


@settings(max_examples=300, deadline=None)
@given(signal_cases())
def test_state_machine_matches_the_documented_rules(case):
    params, zscores = case
    out = pair_signals(spreads_frame(zscores), params)
    for pair_id, values in zscores.items():
        rows = out.filter(pl.col("pair_id") == pair_id)
        got = list(
            zip(rows["position"], rows["signal"].cast(pl.String), rows["bars_held"], rows["is_stop_locked"])
        )
        assert got == reference_signals(as_reference_input(values), params)


@settings(max_examples=300, deadline=None)
@given(signal_cases())
def test_state_machine_invariants(case):
    params, zscores = case
    out = pair_signals(spreads_frame(zscores), params)
    assert out.select(pl.struct("pair_id", "bar_ts").is_unique().all()).item()
    assert set(out["position"].unique().to_list()) <= {-1, 0, 1}
    assert out["bars_held"].max() <= params.max_holding_bars

    for pair_id in zscores:
        rows = out.filter(pl.col("pair_id") == pair_id).to_dicts()
        previous_position, locked, open_entries = 0, False, 0
        for row in rows:
            z, signal = row["zscore"], row["signal"]
            if signal in ("enter_long", "enter_short"):
                assert previous_position == 0 and not locked, "entry while in position or stop-locked"
                open_entries += 1
            if signal in ("exit", "stop", "max_hold"):
                assert previous_position != 0
                open_entries -= 1
            assert open_entries in (0, 1), "an entry without exactly one exit or stop"
            if z is not None and not math.isnan(z):
                is_adverse = (previous_position == -1 and z >= params.stop_z) or (
                    previous_position == 1 and z <= -params.stop_z
                )
                if is_adverse:
                    assert row["position"] == 0 and signal == "stop"
                if locked and abs(z) < params.entry_z:
                    locked = False
            if signal in ("stop", "max_hold"):
                locked = True
            assert row["position"] == 0 or row["position"] == previous_position or previous_position == 0
            previous_position = row["position"]
        assert open_entries == (1 if previous_position != 0 else 0)


@settings(max_examples=200, deadline=None)
@given(signal_cases(), st.floats(0.0, 1.0))
def test_resuming_from_signal_state_equals_one_pass(case, split_share):
    params, zscores = case
    spreads = spreads_frame(zscores)
    cut = sorted(spreads["bar_ts"].unique())[int(split_share * (spreads["bar_ts"].n_unique() - 1))]
    one_pass = pair_signals(spreads, params)

    first = pair_signals(spreads.filter(pl.col("bar_ts") < cut), params)
    rest = pair_signals(spreads.filter(pl.col("bar_ts") >= cut), params, state=signal_state(first))

    assert_frame_equal(pl.concat([first, rest]).sort("pair_id", "bar_ts"), one_pass, check_exact=True)


def test_signal_state_reports_the_last_bar_of_each_pair():
    params = SignalParams(entry_z=2.0, exit_z=0.5, stop_z=4.0)
    out = pair_signals(spreads_frame({"A/B": [2.5, 1.0], "C/D": [2.5, 4.5, 3.0], "E/F": [0.0, 0.1]}), params)
    state = signal_state(out).sort("pair_id")
    assert state.select("pair_id", "position", "bars_held", "is_stop_locked").rows() == [
        ("A/B", -1, 1, False),
        ("C/D", 0, 0, True),
        ("E/F", 0, 0, False),
    ]
    assert state["last_bar_ts"].to_list() == [hours(1, 1)[0], hours(1, 3)[0], hours(1, 3)[0]]


def test_signals_accept_unsorted_input_and_return_it_sorted():
    spreads = spreads_frame({"B/C": [0.0, 2.5, 0.1], "A/B": [-2.5, -1.0, 0.0]})
    shuffled = spreads.sample(fraction=1.0, shuffle=True, seed=3)
    params = SignalParams()
    assert_frame_equal(
        pair_signals(shuffled, params), pair_signals(spreads.sort("pair_id", "bar_ts"), params)
    )


# --- the pair's own clock: stream breaks, resuming at any session --------------------------------------

from datetime import date  # noqa: E402

from assets.calendar import hourly_bar_starts, sessions as exchange_sessions  # noqa: E402
from tests.assets.pairs.signal_reference import reference_pair_signals  # noqa: E402

CALENDAR = exchange_sessions(date(2025, 3, 3), date(2025, 4, 25))
SESSION_DATES = CALENDAR["session_date"].to_list()
BAR_STARTS = hourly_bar_starts(CALENDAR)
OPEN_BAR = {d: ts for d, ts in BAR_STARTS.group_by("session_date").agg(pl.col("bar_ts").min()).iter_rows()}
WEEK_ENDS = sorted(CALENDAR.group_by(pl.col("session_date").dt.week().alias("week")).agg(pl.col("session_date").max())["session_date"])


@st.composite
def clocked_cases(draw):
    params, _ = draw(signal_cases())
    z_value = st.one_of(st.floats(-6.0, 6.0, allow_nan=False), st.none())
    rows = []
    for k in range(draw(st.integers(1, 3))):
        days = sorted(draw(st.sets(st.sampled_from(SESSION_DATES[:20]), min_size=1, max_size=12)))
        for day in days:
            bars = BAR_STARTS.filter(pl.col("session_date") == day)["bar_ts"].to_list()
            kept = bars[: draw(st.integers(1, len(bars)))]
            rows += [{"pair_id": f"P{k}/Q", "bar_ts": ts, "session_date": day, "zscore": draw(z_value)} for ts in kept]
    scans = {week: draw(st.sets(st.sampled_from(["P0/Q", "P1/Q", "P2/Q"]))) for week in WEEK_ENDS}
    cut = draw(st.integers(1, 20))
    return params, rows, scans, cut


def _candidates(scans: dict[date, set[str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(week, p.split("/")[0], "Q", True) for week, pairs in scans.items() for p in sorted(pairs)],
        schema={"week_end_date": pl.Date, "symbol_y": pl.String, "symbol_x": pl.String, "is_cointegrated": pl.Boolean},
        orient="row",
    ).vstack(pl.DataFrame({"week_end_date": WEEK_ENDS, "symbol_y": "Z", "symbol_x": "Q", "is_cointegrated": False}))


def _listed(scans: dict[date, set[str]]) -> set[tuple[str, date]]:
    listed = set()
    for day in SESSION_DATES:
        earlier = [week for week in scans if week < day]
        if earlier:
            listed |= {(pair, day) for pair in scans[max(earlier)]}
    return listed


def _as_tuples(frame: pl.DataFrame) -> list[tuple]:
    return frame.select(
        "pair_id", "bar_ts", "position", pl.col("signal").cast(pl.String), "bars_held", "is_stop_locked"
    ).rows()


@settings(max_examples=120, deadline=None)
@given(clocked_cases())
def test_signals_follow_the_pairs_own_sessions_and_resume_anywhere(case):
    params, rows, scans, cut = case
    spreads = pl.DataFrame(
        rows, schema={"pair_id": pl.String, "bar_ts": pl.Datetime("us", "UTC"), "session_date": pl.Date, "zscore": pl.Float64}
    ).with_columns(symbol_y=pl.col("pair_id").str.split("/").list.first(), symbol_x=pl.lit("Q"), spread=pl.lit(0.0))
    through = SESSION_DATES[21]
    candidates = _candidates(scans)
    one_pass = pair_signals(spreads.drop("session_date"), params, through=through, candidates=candidates)

    expected = reference_pair_signals(
        rows, SESSION_DATES, params, listed=_listed(scans), through=through, open_bar=OPEN_BAR
    )
    assert _as_tuples(one_pass) == expected

    first = pair_signals(
        spreads.filter(pl.col("session_date") < SESSION_DATES[cut]).drop("session_date"), params,
        through=SESSION_DATES[cut - 1], candidates=candidates,
    )
    rest = pair_signals(
        spreads.filter(pl.col("session_date") >= SESSION_DATES[cut]).drop("session_date"), params,
        state=signal_state(first) if first.height else None, through=through, candidates=candidates,
    )
    assert _as_tuples(pl.concat([first, rest]).sort("pair_id", "bar_ts")) == expected


def test_a_position_ends_at_the_first_bar_of_a_session_its_pair_missed():
    days = SESSION_DATES[:4]
    bars = {d: BAR_STARTS.filter(pl.col("session_date") == d)["bar_ts"].to_list() for d in days}
    spreads = pl.DataFrame(
        {"pair_id": "A/B", "bar_ts": [bars[days[0]][-1], bars[days[2]][0]], "zscore": [2.5, 2.5]},
        schema_overrides={"bar_ts": pl.Datetime("us", "UTC")},
    )
    out = pair_signals(spreads, SignalParams())
    assert out.select("bar_ts", "position", pl.col("signal").cast(pl.String), "bars_held").rows() == [
        (bars[days[0]][-1], -1, "enter_short", 0),
        (bars[days[1]][0], 0, "gap", 1),
        (bars[days[2]][0], -1, "enter_short", 0),
    ]
    # the stream ending before `through` closes it too; without `through` it stays open
    ended = pair_signals(spreads.head(1), SignalParams(), through=days[3])
    assert ended["signal"].cast(pl.String).to_list() == ["enter_short", "gap"]
    assert pair_signals(spreads.head(1), SignalParams())["position"].to_list() == [-1]


def test_a_break_in_a_session_without_a_partition_ends_the_position_on_the_next_one():
    days = SESSION_DATES[:4]
    bars = {d: BAR_STARTS.filter(pl.col("session_date") == d)["bar_ts"].to_list() for d in days}
    spreads = pl.DataFrame(
        {"pair_id": "A/B", "bar_ts": [bars[days[0]][-1], bars[days[2]][0], bars[days[2]][1]], "zscore": [2.5, 2.5, 2.5]},
        schema_overrides={"bar_ts": pl.Datetime("us", "UTC")},
    )
    # days[1] was never built (its upstream was quarantined): the position ends on the pair's next row
    out = pair_signals(spreads, SignalParams(), partitions=[days[0], days[2], days[3]], through=days[3])
    assert out.select("bar_ts", "position", pl.col("signal").cast(pl.String)).rows() == [
        (bars[days[0]][-1], -1, "enter_short"),
        (bars[days[2]][0], 0, "gap"),
        (bars[days[2]][1], -1, "enter_short"),
        (bars[days[3]][0], 0, "gap"),
    ]
    resumed = pair_signals(
        spreads.tail(2), SignalParams(), state=signal_state(out.head(1)), partitions=[days[2], days[3]], through=days[3]
    )
    assert resumed.equals(out.tail(3))
