"""compute_indicators against per-symbol pandas loops, side by side on one seeded random-walk market."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.indicators.maths import IndicatorParams, compute_indicators  # noqa: E402


@dataclass(frozen=True)
class Timing:
    """Best and median wall time of repeated runs, in seconds."""

    best_s: float
    median_s: float


def random_walk_bars(symbols: int, bars: int, seed: int) -> pl.DataFrame:
    """One row per symbol and hourly bar: geometric random walks with consistent OHLC and volume.

    Rows come ordered by bar_ts then symbol, the way daily partitions read back from the warehouse,
    so the transform under test has to order them itself.
    """
    rng = np.random.default_rng(seed)
    start_px = rng.uniform(10.0, 500.0, size=(symbols, 1))
    close = start_px * np.exp(np.cumsum(rng.normal(0.0, 0.004, size=(symbols, bars)), axis=1))
    open_ = np.concatenate([start_px, close[:, :-1]], axis=1)
    spread = np.abs(rng.normal(0.0, 0.003, size=(symbols, bars)))
    high = np.maximum(open_, close) * (1.0 + spread)
    low = np.minimum(open_, close) * (1.0 - spread)
    bar_ts = np.datetime64("2021-01-04T14:00", "us") + np.arange(bars) * np.timedelta64(1, "h")
    frame = pl.DataFrame(
        {
            "symbol": np.repeat(np.array([f"SYM{i:04d}" for i in range(symbols)]), bars),
            "bar_ts": np.tile(bar_ts, symbols),
            "open_px": open_.ravel(),
            "high_px": high.ravel(),
            "low_px": low.ravel(),
            "close_px": close.ravel(),
            "volume_qty": rng.integers(1_000, 1_000_000, size=symbols * bars),
        }
    ).with_columns(pl.col("bar_ts").dt.replace_time_zone("UTC"))
    return frame.sort("bar_ts", "symbol")


def pandas_symbol_indicators(group: pd.DataFrame, params: IndicatorParams) -> pd.DataFrame:
    """One symbol's columns the usual script way: pandas rolling and ewm, column by column.

    Its EMA-type columns seed with the first value (ewm adjust=False), not TA-Lib's SMA, so its
    warm-up values differ; it is here for timing, not as a reference.
    """
    group = group.sort_values("bar_ts").copy()
    close = group["close_px"]
    previous = close.shift(1)
    group["return_pct"] = close.pct_change()
    group["log_return"] = np.log(close / previous)
    group["sma"] = close.rolling(params.sma_period).mean()
    group["ema"] = close.ewm(span=params.ema_period, adjust=False).mean()
    change = close.diff()
    avg_gain = change.clip(lower=0).ewm(alpha=1 / params.rsi_period, adjust=False).mean()
    avg_loss = (-change.clip(upper=0)).ewm(alpha=1 / params.rsi_period, adjust=False).mean()
    group["rsi"] = 100 - 100 / (1 + avg_gain / avg_loss)
    fast = close.ewm(span=params.macd_fast_period, adjust=False).mean()
    slow = close.ewm(span=params.macd_slow_period, adjust=False).mean()
    group["macd_line"] = fast - slow
    group["macd_signal"] = group["macd_line"].ewm(span=params.macd_signal_period, adjust=False).mean()
    group["macd_hist"] = group["macd_line"] - group["macd_signal"]
    middle = close.rolling(params.bb_period).mean()
    deviation = close.rolling(params.bb_period).std(ddof=0)
    group["bb_upper_px"] = middle + params.bb_num_std * deviation
    group["bb_middle_px"] = middle
    group["bb_lower_px"] = middle - params.bb_num_std * deviation
    high, low = group["high_px"], group["low_px"]
    true_range = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()], axis=1).max(axis=1)
    group["atr_px"] = true_range.ewm(alpha=1 / params.atr_period, adjust=False).mean()
    group["volatility_pct"] = group["log_return"].rolling(params.volatility_window).std()
    return group


def pandas_filter_loop(bars: pd.DataFrame, params: IndicatorParams) -> pd.DataFrame:
    """The naive script: select each symbol with a boolean mask, compute, concatenate."""
    symbols = sorted(bars["symbol"].unique())
    frames = [pandas_symbol_indicators(bars[bars["symbol"] == symbol], params) for symbol in symbols]
    return pd.concat(frames, ignore_index=True)


def pandas_groupby_loop(bars: pd.DataFrame, params: IndicatorParams) -> pd.DataFrame:
    """The tidier script: one groupby pass hands each symbol's rows over, so no mask per symbol."""
    frames = [pandas_symbol_indicators(group, params) for _, group in bars.groupby("symbol", sort=True)]
    return pd.concat(frames, ignore_index=True)


def timed_in_turns(contenders: dict[str, Callable[[], object]], repeat: int) -> dict[str, Timing]:
    """Wall time of each contender over `repeat` rounds, taking turns so a busy machine hits all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: Timing(best_s=min(s), median_s=float(np.median(s))) for name, s in seconds.items()}


def warm_up(params: IndicatorParams) -> None:
    """Run every contender once on a tiny market, so lazy imports and first calls are not timed."""
    tiny = random_walk_bars(3, 200, 0)
    compute_indicators(tiny, params)
    pandas_groupby_loop(tiny.to_pandas(), params)
    pandas_filter_loop(tiny.to_pandas(), params)


def main() -> None:
    """Build the market once, time every contender side by side, print the figures and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=8800, help="bars per symbol")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each contender's best round counts")
    args = parser.parse_args()

    params = IndicatorParams()
    bars = random_walk_bars(args.symbols, args.bars, args.seed)
    by_symbol = bars.sort("symbol", "bar_ts")
    bars_pd = bars.to_pandas()
    print(f"{bars.height:,} rows: {args.symbols} symbols x {args.bars} bars, ordered by bar_ts unless noted")

    quarry = {
        "compute_indicators": lambda: compute_indicators(bars, params),
        "compute_indicators, rows ordered by symbol": lambda: compute_indicators(by_symbol, params),
    }
    baselines = {
        "pandas groupby loop": lambda: pandas_groupby_loop(bars_pd, params),
        "pandas filter loop (mask per symbol)": lambda: pandas_filter_loop(bars_pd, params),
    }
    warm_up(params)
    timings = timed_in_turns(quarry | baselines, args.repeat)

    header = "".join(f"{'vs ' + name.split(' (')[0]:>26}" for name in baselines)
    print(f"{'':<46}{'best s':>9}{'median s':>10}{header}")
    for name, timing in timings.items():
        ratios = "".join(f"{timings[b].best_s / timing.best_s:>25.1f}x" for b in baselines)
        print(f"{name:<46}{timing.best_s:>9.3f}{timing.median_s:>10.3f}{ratios}")


if __name__ == "__main__":
    main()
