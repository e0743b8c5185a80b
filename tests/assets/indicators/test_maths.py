"""Indicators against TA-Lib and hand-traced values, per symbol whatever the row order or gaps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import polars as pl
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from assets.indicators.maths import (
    INDICATOR_SCHEMA,
    IndicatorParams,
    compute_indicators,
    first_valid_bar,
    warmup_bars,
)

START = datetime(2025, 3, 3, 14, tzinfo=UTC)
KEYS = ["symbol", "bar_ts", "close_px"]
VALUE_COLUMNS = [name for name in INDICATOR_SCHEMA if name not in KEYS]
SHORT = IndicatorParams(
    sma_period=5,
    ema_period=7,
    rsi_period=3,
    macd_fast_period=3,
    macd_slow_period=8,
    macd_signal_period=4,
    bb_period=10,
    bb_num_std=1.5,
    atr_period=6,
    volatility_window=4,
)

def make_bars(
    closes: dict[str, Sequence[float]],
    *,
    spread: float | None = None,
    times: Sequence[datetime] | None = None,
) -> pl.DataFrame:
    """Bars per symbol from closes; high and low sit `spread` (default one percent) either side."""
    frames = []
    for symbol, symbol_closes in closes.items():
        close = np.asarray(symbol_closes, dtype=float)
        half = close * 0.01 if spread is None else np.full(close.size, spread)
        bar_ts = times or [START + timedelta(hours=i) for i in range(close.size)]
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "bar_ts": list(bar_ts),
                    "open_px": close,
                    "high_px": close + half,
                    "low_px": close - half,
                    "close_px": close,
                    "volume_qty": np.full(close.size, 1_000, dtype=np.int64),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("bar_ts").cast(pl.Datetime("us", "UTC")))


@cache
def random_market(seed: int = 11, n_bars: int = 320) -> pl.DataFrame:
    """Random-walk hourly bars: AAA complete, BBB missing every 7th bar, CCC listed at bar 130 near
    50,000, DDD alive for its last 30 bars only (never out of warm-up), all shuffled."""
    rng = np.random.default_rng(seed)
    times = [START + timedelta(hours=i) for i in range(n_bars)]
    frames = []
    listings = (("AAA", 100.0, 0, 0), ("BBB", 40.0, 0, 7), ("CCC", 5e4, 130, 0), ("DDD", 12.0, 290, 0))
    for symbol, level, first, keep_every in listings:
        steps = rng.normal(0.0, 0.01, n_bars - first)
        close = level * np.exp(np.cumsum(steps))
        spread = np.abs(rng.normal(0.0, 0.004, close.size)) * close
        frame = pl.DataFrame(
            {
                "symbol": symbol,
                "bar_ts": times[first:],
                "open_px": close,
                "high_px": close + spread,
                "low_px": close - spread * rng.uniform(0.2, 1.0, close.size),
                "close_px": close,
                "volume_qty": rng.integers(100, 10_000, close.size),
            }
        )
        if keep_every:
            frame = frame.filter(pl.int_range(pl.len()) % keep_every != keep_every - 1)
        frames.append(frame)
    bars = pl.concat(frames).with_columns(pl.col("bar_ts").cast(pl.Datetime("us", "UTC")))
    return bars.sample(fraction=1.0, shuffle=True, seed=seed)


def talib_reference(bars: pl.DataFrame, params: IndicatorParams) -> pl.DataFrame:
    """Each symbol alone through talib itself; returns and volatility the plain numpy way."""
    frames = []
    for _, group in bars.sort("symbol", "bar_ts").group_by("symbol", maintain_order=True):
        close, high, low = (group[name].to_numpy() for name in ("close_px", "high_px", "low_px"))
        previous = np.concatenate(([np.nan], close[:-1]))
        log_return = np.log(close / previous)
        window = params.volatility_window
        volatility = np.full(close.size, np.nan)
        if close.size >= window:
            volatility[window - 1 :] = sliding_window_view(log_return, window).std(axis=1, ddof=1)
        macd = talib.MACD(close, params.macd_fast_period, params.macd_slow_period, params.macd_signal_period)
        bands = talib.BBANDS(close, params.bb_period, params.bb_num_std, params.bb_num_std, 0)
        columns = {
            "return_pct": close / previous - 1.0,
            "log_return": log_return,
            "sma": talib.SMA(close, params.sma_period),
            "ema": talib.EMA(close, params.ema_period),
            "rsi": talib.RSI(close, params.rsi_period),
            "macd_line": macd[0],
            "macd_signal": macd[1],
            "macd_hist": macd[2],
            "bb_upper_px": bands[0],
            "bb_middle_px": bands[1],
            "bb_lower_px": bands[2],
            "atr_px": talib.ATR(high, low, close, params.atr_period),
            "volatility_pct": volatility,
        }
        frames.append(
            group.select(KEYS).with_columns(
                pl.Series(name, columns[name], nan_to_null=True) for name in VALUE_COLUMNS
            )
        )
    return pl.concat(frames)


def assert_indicators_close(actual: pl.DataFrame, expected: pl.DataFrame, tolerance: float = 1e-9) -> None:
    """Same rows in the same order, nulls in the same places, values within `tolerance`.

    The tolerance is absolute below 1 and relative above, since prices and RSI are large numbers.
    """
    assert actual.schema == INDICATOR_SCHEMA
    assert actual.select(KEYS).equals(expected.select(KEYS))
    for name in VALUE_COLUMNS:
        is_null = actual[name].is_null()
        assert is_null.equals(expected[name].is_null()), f"{name}: warm-up nulls differ"
        assert actual[name].is_nan().sum() == 0, f"{name}: NaN where null belongs"
        got, want = actual[name].drop_nulls().to_numpy(), expected[name].drop_nulls().to_numpy()
        error = np.abs(got - want) / np.maximum(1.0, np.abs(want))
        assert error.max(initial=0.0) <= tolerance, f"{name}: off by {error.max():.3g}"


@pytest.mark.parametrize("params", [IndicatorParams(), SHORT], ids=["defaults", "short"])
def test_every_column_matches_talib(params: IndicatorParams) -> None:
    bars = random_market()
    assert_indicators_close(compute_indicators(bars, params), talib_reference(bars, params))


def test_hand_traced_values() -> None:
    params = IndicatorParams(
        sma_period=3, ema_period=3, rsi_period=3, macd_fast_period=2, macd_slow_period=4,
        macd_signal_period=2, bb_period=3, atr_period=3, volatility_window=3,
    )
    out = compute_indicators(make_bars({"AAA": [10, 11, 12, 11, 13, 14]}, spread=1.0), params)
    expected = {
        "sma": [None, None, 11.0, 34 / 3, 12.0, 38 / 3],
        "ema": [None, None, 11.0, 11.0, 12.0, 13.0],
        "rsi": [None, None, None, 200 / 3, 250 / 3, 2900 / 33],
        "atr_px": [None, None, None, 2.0, 7 / 3, 20 / 9],
        "return_pct": [None, 0.1, 1 / 11, -1 / 12, 2 / 11, 1 / 13],
    }
    for name, values in expected.items():
        got = out[name].to_list()
        assert [v is None for v in got] == [v is None for v in values], name
        present = [v for v in values if v is not None]
        assert [v for v in got if v is not None] == pytest.approx(present, rel=1e-12), name


def test_macd_fast_ema_starts_with_the_slow_one() -> None:
    """TA-Lib seeds the fast EMA at the slow EMA's first bar, from the closes just before it."""
    close = np.array([10.0, 30.0, 20.0, 25.0, 22.0, 28.0, 24.0, 26.0, 27.0, 21.0])
    params = IndicatorParams(macd_fast_period=2, macd_slow_period=4, macd_signal_period=2)
    out = compute_indicators(make_bars({"AAA": close}), params)
    fast_seed, slow_seed = close[2:4].mean(), close[0:4].mean()
    fast = fast_seed + (2 / 3) * (close[4] - fast_seed)
    slow = slow_seed + 0.4 * (close[4] - slow_seed)
    signal = ((fast_seed - slow_seed) + (fast - slow)) / 2
    assert out["macd_line"][4] == pytest.approx(fast - slow, rel=1e-12)
    assert out["macd_signal"][4] == pytest.approx(signal, rel=1e-12)
    assert out["macd_line"][:4].null_count() == 4


def test_constant_prices() -> None:
    bars = make_bars({"FLAT": [50.0] * 60}, spread=0.0)
    out = compute_indicators(bars, IndicatorParams())
    assert_indicators_close(out, talib_reference(bars, IndicatorParams()))
    settled = out.slice(warmup_bars())
    assert settled["rsi"].to_list() == [0.0] * settled.height
    for name in ("return_pct", "macd_line", "macd_hist", "atr_px", "volatility_pct"):
        assert settled[name].abs().max() == pytest.approx(0.0, abs=1e-12), name
    for name in ("sma", "ema", "bb_upper_px", "bb_middle_px", "bb_lower_px"):
        assert settled[name].to_list() == pytest.approx([50.0] * settled.height, rel=1e-12), name


def test_single_row() -> None:
    out = compute_indicators(make_bars({"AAA": [10.0]}), IndicatorParams())
    assert out.height == 1
    assert out.select(VALUE_COLUMNS).null_count().row(0) == (1,) * len(VALUE_COLUMNS)


def test_fewer_rows_than_the_warm_up() -> None:
    bars = make_bars({"AAA": 100 + np.sin(np.arange(16))})
    out = compute_indicators(bars, IndicatorParams())
    assert_indicators_close(out, talib_reference(bars, IndicatorParams()))
    for name, first in first_valid_bar().items():
        assert out[name].null_count() == min(first, out.height), name


def test_gaps_in_time_change_nothing() -> None:
    closes = {"AAA": 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, 80)))}
    gappy = [START + timedelta(days=i // 7, hours=i % 7) + timedelta(days=30 * (i > 40)) for i in range(80)]
    regular = compute_indicators(make_bars(closes), IndicatorParams())
    with_gaps = compute_indicators(make_bars(closes, times=gappy), IndicatorParams())
    assert with_gaps.drop("bar_ts").equals(regular.drop("bar_ts"))


def test_interleaved_symbols_equal_each_alone() -> None:
    rng = np.random.default_rng(5)
    closes = {"BBB": 50 + rng.normal(0, 1, 70).cumsum(), "AAA": 80 + rng.normal(0, 1, 60).cumsum()}
    both = make_bars(closes).sort("bar_ts").sample(fraction=1.0, shuffle=True, seed=2)
    out = compute_indicators(both, IndicatorParams())
    alone = pl.concat(compute_indicators(make_bars({s: c}), IndicatorParams()) for s, c in sorted(closes.items()))
    assert out.equals(alone)
    assert out.select("symbol", "bar_ts").equals(out.select("symbol", "bar_ts").sort("symbol", "bar_ts"))


@pytest.mark.parametrize(
    "bars, message",
    [
        (pl.concat([make_bars({"AAA": [1.0, 2.0]}), make_bars({"AAA": [3.0]})]), "repeat"),
        (pl.concat([make_bars({"BBB": [1.0, 2.0], "AAA": [4.0]}), make_bars({"BBB": [3.0]})]), "repeat"),
        (make_bars({"AAA": [1.0, 0.0, 2.0]}), "non-positive"),
        (make_bars({"AAA": [1.0, float("nan"), 2.0]}), "non-finite"),
        (make_bars({"AAA": [1.0, 2.0]}).with_columns(close_px=pl.lit(None, pl.Float64)), "missing"),
        (make_bars({"AAA": [1.0, 2.0]}).drop("high_px"), "lack"),
        (make_bars({"AAA": [1.0, 2.0]}).with_columns(pl.col("bar_ts").dt.replace_time_zone(None)), "bar_ts"),
    ],
    ids=["repeated", "repeated among symbols", "zero price", "nan", "null", "no high", "naive time"],
)
def test_bad_bars_are_refused(bars: pl.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_indicators(bars)


@pytest.mark.parametrize(
    "settings_",
    [{"macd_fast_period": 26}, {"rsi_period": 1}, {"volatility_window": 1}, {"bb_num_std": 0.0}],
)
def test_bad_parameters_are_refused(settings_: dict) -> None:
    with pytest.raises(ValueError):
        IndicatorParams(**settings_)


@settings(max_examples=60, deadline=None)
@given(
    prices=st.lists(st.floats(1.0, 1000.0, allow_nan=False), min_size=30, max_size=120),
    window=st.integers(2, 25),
    start=st.integers(0, 60),
)
def test_window_statistics_are_the_same_bytes_wherever_the_computation_starts(prices, window, start):
    """A one-session rebuild computes from a later first bar: every full window must come out bit-identical."""
    from assets.indicators.windows import window_mean_std

    values = np.round(np.array(prices), 2)
    start = min(start, len(values) - window)
    for ddof in (0, 1):
        whole_mean, whole_std = window_mean_std(values, window, ddof)
        tail_mean, tail_std = window_mean_std(values[start:], window, ddof)
        assert whole_mean[start + window - 1:].tobytes() == tail_mean[window - 1:].tobytes()
        assert whole_std[start + window - 1:].tobytes() == tail_std[window - 1:].tobytes()
        np.testing.assert_allclose(whole_std[window - 1:], np.std(sliding_window_view(values, window), axis=1, ddof=ddof),
                                   rtol=1e-12, atol=1e-12)


def seeded(bars: pl.DataFrame, targets: Sequence[int], lookback: int, bars_per_session: int = 7) -> pl.DataFrame:
    """`bars` with seed_ts: the start of the session `lookback` sessions before each target session's bars, null elsewhere.

    A session is a run of `bars_per_session` hours from START; targets are session numbers.
    """
    session = ((pl.col("bar_ts") - pl.lit(START)).dt.total_hours() // bars_per_session).cast(pl.Int64)
    first_hour = (pl.max_horizontal(session - lookback, pl.lit(0)) * bars_per_session).cast(pl.Int64)
    return bars.with_columns(
        seed_ts=pl.when(session.is_in(list(targets))).then(pl.lit(START) + pl.duration(hours=first_hour))
        .cast(pl.Datetime("us", "UTC"))
    )


@settings(max_examples=40, deadline=None)
@given(
    lookback=st.integers(1, 12),
    first=st.integers(0, 40),
    count=st.integers(1, 6),
    extra_history=st.integers(0, 100),
    params=st.sampled_from([IndicatorParams(), SHORT]),
)
def test_a_batch_of_sessions_equals_each_session_from_its_own_window(lookback, first, count, extra_history, params):
    """However much history is read and whatever other sessions share the computation, a session's rows are the same bytes."""
    bars = random_market()
    targets = list(range(first, first + count))
    batch = seeded(bars, targets, lookback)
    read_from = batch["seed_ts"].min() - timedelta(hours=extra_history)
    together = compute_indicators(batch.filter(pl.col("bar_ts") >= read_from), params, seed_column="seed_ts")
    alone = []
    for target in targets:
        one = seeded(bars, [target], lookback)
        alone.append(compute_indicators(
            one.filter(pl.col("bar_ts") >= one["seed_ts"].min()), params, seed_column="seed_ts"
        ))
    assert together.equals(pl.concat(alone).sort("symbol", "bar_ts"))
    assert together.height == batch["seed_ts"].count()


def test_a_seeded_session_is_computed_as_if_its_bars_began_at_the_seed() -> None:
    bars = random_market()
    window = seeded(bars, [40], lookback=30)
    out = compute_indicators(window, SHORT, seed_column="seed_ts")
    seed = window["seed_ts"].drop_nulls()[0]
    from_seed = compute_indicators(bars.filter(pl.col("bar_ts") >= seed), SHORT)
    assert out.equals(from_seed.filter(pl.col("bar_ts").is_in(out["bar_ts"].implode())))
    assert out["bar_ts"].n_unique() == 7 and set(out["symbol"]) == {"AAA", "BBB", "CCC"}
    # 210 bars after the seed (CCC's window starts at its listing), what is left of the seed is far
    # below 1e-9: the values of the whole history
    whole = compute_indicators(bars, SHORT).filter(pl.col("bar_ts").is_in(out["bar_ts"].implode()))
    assert_indicators_close(out, whole)


def test_seeds_later_than_their_bar_are_refused() -> None:
    bars = make_bars({"AAA": [1.0, 2.0, 3.0]})
    late = bars.with_columns(seed_ts=pl.col("bar_ts").max())
    with pytest.raises(ValueError, match="later than the bar"):
        compute_indicators(late, seed_column="seed_ts")
    with pytest.raises(ValueError, match="seed_ts"):
        compute_indicators(bars, seed_column="seed_ts")
