"""Technical indicators per symbol and bar as TA-Lib defines them."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl
import talib

from assets.indicators.windows import window_mean_std

__all__ = [
    "INDICATOR_SCHEMA",
    "IndicatorParams",
    "compute_indicators",
    "first_valid_bar",
    "warmup_bars",
]

UTC_TS = pl.Datetime("us", "UTC")

INDICATOR_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "bar_ts": UTC_TS,
        "close_px": pl.Float64,
        "return_pct": pl.Float64,
        "log_return": pl.Float64,
        "sma": pl.Float64,
        "ema": pl.Float64,
        "rsi": pl.Float64,
        "macd_line": pl.Float64,
        "macd_signal": pl.Float64,
        "macd_hist": pl.Float64,
        "bb_upper_px": pl.Float64,
        "bb_middle_px": pl.Float64,
        "bb_lower_px": pl.Float64,
        "atr_px": pl.Float64,
        "volatility_pct": pl.Float64,
    }
)

_PRICE_COLUMNS = {"close": "close_px", "high": "high_px", "low": "low_px"}
_VALUE_COLUMNS = tuple(INDICATOR_SCHEMA)[3:]
_RECURSIVE_COLUMNS = ("ema", "rsi", "macd_line", "macd_signal", "macd_hist", "atr_px")


@dataclass(frozen=True)
class IndicatorParams:
    """Periods of every indicator; the defaults are the customary TA-Lib settings."""

    sma_period: int = 20
    ema_period: int = 20
    rsi_period: int = 14
    macd_fast_period: int = 12
    macd_slow_period: int = 26
    macd_signal_period: int = 9
    bb_period: int = 20
    bb_num_std: float = 2.0
    atr_period: int = 14
    volatility_window: int = 20

    def __post_init__(self) -> None:
        """Refuse settings TA-Lib would refuse, so a bad configuration fails before any bar is read."""
        periods = [f.name for f in fields(self) if f.name.endswith(("_period", "_window"))]
        too_short = [name for name in periods if getattr(self, name) < 2]
        if too_short:
            raise ValueError(f"indicator periods must be at least 2: {', '.join(too_short)}")
        if self.macd_fast_period >= self.macd_slow_period:
            raise ValueError("macd_fast_period must be shorter than macd_slow_period")
        if not self.bb_num_std > 0:
            raise ValueError("bb_num_std must be positive")

@dataclass(frozen=True)
class _Runs:
    """Prices laid out symbol after symbol, with where each symbol's run starts and how long it is."""

    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray


def first_valid_bar(params: IndicatorParams = IndicatorParams()) -> dict[str, int]:
    """Zero-based bar of a symbol at which each column gets its first value: TA-Lib's look-backs."""
    macd_start = params.macd_slow_period + params.macd_signal_period - 2
    return {
        "return_pct": 1,
        "log_return": 1,
        "sma": params.sma_period - 1,
        "ema": params.ema_period - 1,
        "rsi": params.rsi_period,
        "macd_line": macd_start,
        "macd_signal": macd_start,
        "macd_hist": macd_start,
        "bb_upper_px": params.bb_period - 1,
        "bb_middle_px": params.bb_period - 1,
        "bb_lower_px": params.bb_period - 1,
        "atr_px": params.atr_period,
        "volatility_pct": params.volatility_window,
    }


def warmup_bars(params: IndicatorParams = IndicatorParams()) -> int:
    """Bars a symbol needs before every column has a value."""
    return max(first_valid_bar(params).values())


def compute_indicators(
    bars: pl.DataFrame, params: IndicatorParams = IndicatorParams(), *, seed_column: str | None = None
) -> pl.DataFrame:
    """One row per symbol and bar_ts of `bars`, ordered by both, with every indicator column.

    return_pct is the simple return as a fraction (0.01 is one percent) and log_return its natural
    log. volatility_pct is the sample (ddof=1) standard deviation of log returns over the window, per
    bar, not annualized. The rest follow TA-Lib: SMA; EMA seeded with the SMA of its first n closes;
    RSI with Wilder's smoothing seeded by the mean of the first n gains and losses (0 while prices
    have not moved); MACD as talib.MACD, whose fast EMA starts late so that both EMAs begin on the
    same bar; Bollinger bands as talib.BBANDS (SMA, population deviation); ATR as talib.ATR, whose
    first true range is on the second bar. A bar inside a column's warm-up is null. Indicators run
    over each symbol's sequence of bars, so gaps in time change nothing.

    Without `seed_column` every symbol starts at its first bar. With it, `seed_column` names a
    UTC timestamp column of `bars`: each bar's indicators are computed as if its symbol's bars
    began at the first one at or after that timestamp (its own window, so a bar's value depends
    on that window and nothing before it), and bars whose seed is null are read as history only
    and not returned. Bars sharing a seed are computed in one pass through TA-Lib itself: exact
    by definition and the fastest way measured (over 4.4 M bars its C loops took less than half
    the time of the same recurrences through scipy's lfilter).
    """
    runs, batch, first = _bars_by_symbol(bars, seed_column)
    if seed_column is None:
        returned = np.ones(runs.close.size, dtype=bool)
    else:
        returned = batch[seed_column].is_not_null().to_numpy()
    columns = _window_columns(runs, params) | _recursive_columns(runs, first, returned, params)
    position = np.arange(runs.close.size) - first
    for name, first_bar in first_valid_bar(params).items():
        columns[name][position < first_bar] = np.nan  # inside the warm-up of the bar's own window
    if seed_column is None:
        return _indicator_frame(batch, columns)
    return _indicator_frame(batch.filter(returned), {name: values[returned] for name, values in columns.items()})


def _bars_by_symbol(bars: pl.DataFrame, seed_column: str | None) -> tuple[_Runs, pl.DataFrame, np.ndarray]:
    """Symbol, bar_ts and prices ordered by symbol then bar_ts, checked for what the maths relies on,
    and for each bar the row (in that order) its own window starts at.

    A repeated (symbol, bar_ts), or a missing, non-finite or non-positive price, would silently
    corrupt every later value of a recursive indicator, so each one is refused here.
    """
    needed = ("symbol", "bar_ts", *_PRICE_COLUMNS.values(), *([seed_column] if seed_column else []))
    missing = [name for name in needed if name not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns: {', '.join(missing)}")
    for name in ("bar_ts", *([seed_column] if seed_column else [])):
        if bars.schema[name] != UTC_TS:
            raise ValueError(f"{name} must be {UTC_TS}, not {bars.schema[name]}")
    frame = bars.select(
        pl.col("symbol").cast(pl.String),
        "bar_ts",
        *(pl.col(name).cast(pl.Float64) for name in _PRICE_COLUMNS.values()),
    )
    flawed = [
        name
        for name, column in frame.to_dict().items()
        if column.null_count()
        or (column.dtype == pl.Float64 and not _positive_and_finite(column.to_numpy()))
    ]
    if flawed:
        raise ValueError(f"bars have missing, non-finite or non-positive values in: {', '.join(flawed)}")
    if seed_column:
        frame = frame.with_columns(bars[seed_column])
    order, lengths = _symbol_time_order(frame["symbol"], frame["bar_ts"])
    if order is not None:
        frame = frame[order]
    prices = {field: frame[name].to_numpy() for field, name in _PRICE_COLUMNS.items()}
    runs = _Runs(**prices, starts=_starts(lengths), lengths=lengths)
    return runs, frame, _window_starts(runs, frame, seed_column)


def _window_starts(runs: _Runs, frame: pl.DataFrame, seed_column: str | None) -> np.ndarray:
    """Per bar, the first row of its symbol at or after its seed (its run's first row without seeds).

    A bar whose seed comes after the bar itself would have a window without it: refused.
    Bars with a null seed get their run's first row; they are history, never returned.
    """
    if seed_column is None:
        return np.repeat(runs.starts, runs.lengths)
    seed = frame[seed_column]
    ticks = frame["bar_ts"].to_physical().to_numpy()
    seed_ticks = seed.to_physical().fill_null(np.iinfo(np.int64).min).to_numpy()
    if np.any(seed_ticks > ticks):
        raise ValueError(f"a bar's {seed_column} is later than the bar")
    first = np.empty(ticks.size, dtype=np.int64)
    for start, length in zip(runs.starts.tolist(), runs.lengths.tolist()):
        stop = start + length
        first[start:stop] = start + np.searchsorted(ticks[start:stop], seed_ticks[start:stop], side="left")
    return first


def _positive_and_finite(values: np.ndarray) -> bool:
    """Whether every value is a usable price; a NaN makes min and max NaN, which fails both tests."""
    return values.size == 0 or bool(values.min() > 0 and values.max() < np.inf)


def _symbol_time_order(symbol: pl.Series, bar_ts: pl.Series) -> tuple[np.ndarray | None, np.ndarray]:
    """Row order by (symbol, bar_ts), None when already in it, and the number of bars of each symbol.

    Rows usually arrive ordered in time, by symbol (a sorted table) or across symbols (daily
    partitions read back in turn). A stable radix sort on the symbol's rank alone then finishes the
    job, measured two and a half times faster than Polars sorting on (symbol, bar_ts); only rows
    out of time order within a symbol need a full sort, on integer keys.
    """
    ticks = bar_ts.to_physical().to_numpy()
    if symbol.is_sorted():
        order, lengths = None, symbol.rle().struct.field("len").to_numpy().astype(np.int64)
    else:
        rank = symbol.cast(pl.Enum(symbol.unique().sort())).to_physical().to_numpy()
        order, lengths = np.argsort(rank, kind="stable"), np.bincount(rank).astype(np.int64)
    arrived = ticks if order is None else ticks[order]
    if _rising_within_runs(arrived, lengths):
        return order, lengths
    run = np.repeat(np.arange(lengths.size), lengths)
    keys = pl.DataFrame({"run": run, "ticks": arrived})
    within = keys.select(pl.arg_sort_by("run", "ticks")).to_series().to_numpy()
    if np.any((np.diff(arrived[within]) == 0) & (np.diff(run) == 0)):
        raise ValueError("bars repeat a (symbol, bar_ts)")
    return (within if order is None else order[within]), lengths


def _rising_within_runs(ticks: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether time strictly rises within every run; a new run may start at any time."""
    steps = np.diff(ticks)
    steps[np.cumsum(lengths)[:-1] - 1] = 1
    return steps.size == 0 or bool(steps.min() > 0)


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each run begins when runs of these lengths are laid end to end."""
    return (np.cumsum(lengths) - lengths).astype(np.int64)


def _recursive_columns(
    runs: _Runs, first: np.ndarray, returned: np.ndarray, params: IndicatorParams
) -> dict[str, np.ndarray]:
    """EMA, RSI, MACD and ATR of every returned bar, through TA-Lib from the first bar of its own window.

    Returned bars that follow one another and share a window start form one segment, computed
    in one TA-Lib pass from that start; TA-Lib is causal, so a bar's value does not depend on
    how far the pass goes beyond it.
    """
    columns = {name: np.full(runs.close.size, np.nan) for name in _RECURSIVE_COLUMNS}
    rows = np.flatnonzero(returned)
    if not rows.size:
        return columns
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(first[rows]) != 0)) + 1
    for segment in np.split(rows, breaks):
        u, v = int(segment[0]), int(segment[-1]) + 1
        f = int(first[u])
        part = _talib_segment(runs.close[f:v], runs.high[f:v], runs.low[f:v], params)
        for name, values in part.items():
            columns[name][u:v] = values[u - f :]
    return columns


def _talib_segment(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, params: IndicatorParams
) -> dict[str, np.ndarray]:
    """The recursive TA-Lib columns of one symbol's bars, starting from the first bar given."""
    macd_line, macd_signal, macd_hist = talib.MACD(
        close, params.macd_fast_period, params.macd_slow_period, params.macd_signal_period
    )
    return {
        "ema": talib.EMA(close, params.ema_period),
        "rsi": talib.RSI(close, params.rsi_period),
        "macd_line": macd_line,
        "macd_signal": macd_signal,
        "macd_hist": macd_hist,
        "atr_px": talib.ATR(high, low, close, params.atr_period),
    }


def _window_columns(runs: _Runs, params: IndicatorParams) -> dict[str, np.ndarray]:
    """SMA, Bollinger bands (TA-Lib's definitions: population deviation), returns and volatility.

    Computed over all runs laid end to end; a value whose window reaches before the first bar
    of its own window (into another symbol, or before its seed) is blanked by the caller. Each
    value comes from its own window alone (`window_mean_std`), so it does not depend on how far
    back the computation started. The log return is log1p of the simple return, which keeps
    full precision for small moves; volatility is the sample deviation of log returns.
    """
    close = runs.close
    middle, deviation = window_mean_std(close, params.bb_period, ddof=0)
    sma = middle if params.sma_period == params.bb_period else window_mean_std(close, params.sma_period, ddof=0)[0]
    return_pct = np.full(close.size, np.nan)
    np.subtract(close[1:], close[:-1], out=return_pct[1:])
    np.divide(return_pct[1:], close[:-1], out=return_pct[1:])
    log_return = np.log1p(return_pct)
    _, volatility = window_mean_std(log_return, params.volatility_window, ddof=1)
    return {
        "sma": sma, "bb_upper_px": middle + params.bb_num_std * deviation, "bb_middle_px": middle,
        "bb_lower_px": middle - params.bb_num_std * deviation,
        "return_pct": return_pct, "log_return": log_return, "volatility_pct": volatility,
    }


def _indicator_frame(batch: pl.DataFrame, columns: dict[str, np.ndarray]) -> pl.DataFrame:
    """The indicator table for the batch's bars.

    NaN marks exactly the warm-up, since prices are checked finite and positive, so it becomes null.
    """
    values = pl.DataFrame(
        [pl.Series(name, columns[name], dtype=pl.Float64, nan_to_null=True) for name in _VALUE_COLUMNS]
    )
    return pl.concat([batch.select("symbol", "bar_ts", "close_px"), values], how="horizontal")
