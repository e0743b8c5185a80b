"""A deterministic offline market: seeded, calendar-aware hourly bars with known cointegrated pairs.

Same seed and universe size give identical bars for a date whatever window asks for
it, because every session draws from its own seeded generator and levels are
accumulated from a fixed origin. The market has splits, missing bars and a small,
known rate of bad ticks, so the cleaning and quality code has something real to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl

from assets.calendar import HOURLY_BARS_PER_YEAR, hourly_bar_starts, session_of, sessions
from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA, Timeframe, ohlcv_aggregates

ORIGIN = date(2019, 1, 2)
ANNUAL_VOL = 0.25
MARKET_VOL = 0.12
SPREAD_AR = 0.95
SPREAD_VOL = 0.004

#: The default universe: tickers, sectors, and which pairs the market makes cointegrated.
DEFAULT_UNIVERSE: tuple[tuple[str, str], ...] = (
    ("KO", "staples"), ("PEP", "staples"), ("PG", "staples"), ("WMT", "staples"),
    ("XOM", "energy"), ("CVX", "energy"), ("SLB", "energy"), ("COP", "energy"),
    ("GS", "financials"), ("MS", "financials"), ("JPM", "financials"), ("BAC", "financials"),
    ("V", "payments"), ("MA", "payments"), ("PYPL", "payments"), ("AXP", "payments"),
    ("AAPL", "technology"), ("MSFT", "technology"), ("NVDA", "technology"), ("INTC", "technology"),
)
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("PEP", "KO"), ("CVX", "XOM"), ("MS", "GS"), ("MA", "V"))
DEFAULT_SPLITS: tuple[tuple[str, date, float], ...] = (
    ("NVDA", date(2024, 6, 10), 10.0),
    ("WMT", date(2024, 2, 26), 3.0),
    ("AAPL", date(2025, 8, 4), 2.0),
)


@dataclass(frozen=True)
class SampleSource:
    """The offline market every Quarry install can build with no keys and no network."""

    seed: int = 7
    n_symbols: int = 20
    bad_tick_rate: float = 0.0005
    missing_bar_rate: float = 0.002
    name: str = "sample"
    clock: datetime | None = None  # the market's "now": a bar exists once it has ended by then

    def identity(self) -> str:
        return (
            f"sample(seed={self.seed},symbols={self.n_symbols},"
            f"bad_ticks={self.bad_tick_rate},missing={self.missing_bar_rate})"
        )

    def symbols(self) -> list[str]:
        return [symbol for symbol, _ in universe(self.n_symbols)]

    def sectors(self) -> dict[str, str]:
        return dict(universe(self.n_symbols))

    def cointegrated_pairs(self) -> list[tuple[str, str]]:
        """The (y, x) pairs built as y = a + b·x + stationary noise in log prices."""
        return list(cointegrated_pairs(self.n_symbols))

    def fetch_bars(self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime) -> pl.DataFrame:
        last_session = (end - _ONE_MICRO).date()
        hourly = _market(
            self.seed, self.n_symbols, self.bad_tick_rate, self.missing_bar_rate, max(start.date(), ORIGIN), last_session
        )
        bars = hourly.filter(
            pl.col("symbol").is_in(symbols), pl.col("bar_ts") >= start, pl.col("bar_ts") < end
        )
        if self.clock is not None:
            bars = bars.filter(pl.col("bar_ts") + pl.duration(hours=1) <= self.clock)
        if timeframe == "1d":
            bars = _daily(bars)
        return bars.sort("symbol", "bar_ts")

    def fetch_fundamentals(self, dataset: str, symbols: list[str]) -> pl.DataFrame:
        from assets.sources.sample_fundamentals import sample_fundamentals

        return sample_fundamentals(dataset, symbols, self.sectors())

    def fetch_splits(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        rows = [s for s in split_schedule(self.n_symbols) if s[0] in symbols and start <= s[1] <= end]
        return pl.DataFrame(rows, schema=SPLIT_SCHEMA, orient="row").sort("symbol", "ex_date")


_ONE_MICRO = np.timedelta64(1, "us").astype(object)


def universe(n_symbols: int) -> tuple[tuple[str, str], ...]:
    """The first `n_symbols` of the default universe, extended with synthetic tickers in sectors of ten."""
    extra = tuple((f"SYN{i:04d}", f"sector{i // 10:02d}") for i in range(max(0, n_symbols - len(DEFAULT_UNIVERSE))))
    return (DEFAULT_UNIVERSE + extra)[:n_symbols]


def cointegrated_pairs(n_symbols: int) -> tuple[tuple[str, str], ...]:
    names = {symbol for symbol, _ in universe(n_symbols)}
    synthetic = tuple(
        (f"SYN{i + 1:04d}", f"SYN{i:04d}") for i in range(0, n_symbols - len(DEFAULT_UNIVERSE) - 1, 10)
    )
    return tuple((y, x) for y, x in DEFAULT_PAIRS + synthetic if y in names and x in names)


def split_schedule(n_symbols: int) -> tuple[tuple[str, date, float], ...]:
    names = {symbol for symbol, _ in universe(n_symbols)}
    return tuple(s for s in DEFAULT_SPLITS if s[0] in names)


def _daily(hourly: pl.DataFrame) -> pl.DataFrame:
    """Daily bars as a provider would aggregate them, stamped at the session's first bar."""
    return (
        hourly.sort("symbol", "bar_ts")
        .group_by("symbol", session_of(pl.col("bar_ts")).alias("day"))
        .agg(
            pl.col("bar_ts").first(),
            *ohlcv_aggregates(),
            pl.col("trade_count").sum(),
        )
        .select(BAR_SCHEMA.keys())
    )


def _market(
    seed: int, n_symbols: int, bad_tick_rate: float, missing_bar_rate: float, first_session: date, last_session: date
) -> pl.DataFrame:
    """Every hourly bar between two sessions, without generating the bars before them.

    Each session's generator first draws the session's total moves and spread shock (the
    header), then its hourly detail. The level at the window's first session is the sum
    of earlier headers, so jumping to any date costs one small draw per earlier session.
    """
    bar_frame = hourly_bar_starts(sessions(max(first_session, ORIGIN), last_session))
    if bar_frame.is_empty():
        return pl.DataFrame(schema=BAR_SCHEMA)
    names = [symbol for symbol, _ in universe(n_symbols)]
    n_pairs = len(cointegrated_pairs(n_symbols))
    history = sessions(ORIGIN, last_session).with_columns(
        n_bars=pl.when(pl.col("is_half_day")).then(4).otherwise(7)
    )
    headers = _session_headers(seed, history, n_symbols, n_pairs)
    draws = _bar_draws(seed, bar_frame["session_date"], n_symbols)
    first = history["session_date"].search_sorted(bar_frame["session_date"][0])
    log_close, spread = _log_prices(draws, headers, first, bar_frame["session_date"], names, n_symbols)
    adjusted_close = np.exp(log_close)
    split_factor = _split_factor(bar_frame["session_date"], names, n_symbols)
    open_gap = np.exp(draws["gap"] * ANNUAL_VOL / np.sqrt(HOURLY_BARS_PER_YEAR) * 0.3)
    # a bar opens at the previous bar's close; a session's first bar near its own close (the overnight gap)
    previous_close = np.vstack([adjusted_close[:1], adjusted_close[:-1]])
    opens_session = (bar_frame["session_date"].rle_id().diff().fill_null(1) > 0).to_numpy()[:, None]
    adjusted_open = np.where(opens_session, adjusted_close, previous_close) * open_gap
    wick = np.abs(draws["wick"]) * ANNUAL_VOL / np.sqrt(HOURLY_BARS_PER_YEAR) * 0.5
    adjusted_high = np.maximum(adjusted_open, adjusted_close) * np.exp(wick)
    low_wick = np.abs(draws["low_wick"]) * ANNUAL_VOL / np.sqrt(HOURLY_BARS_PER_YEAR) * 0.5
    adjusted_low = np.minimum(adjusted_open, adjusted_close) * np.exp(-low_wick)
    volume = np.round(np.exp(12.0 + 0.4 * draws["volume"]) / split_factor).astype(np.int64) + 100

    raw = {
        "open_px": adjusted_open * split_factor,
        "high_px": adjusted_high * split_factor,
        "low_px": adjusted_low * split_factor,
        "close_px": adjusted_close * split_factor,
    }
    is_bad = draws["bad"] < bad_tick_rate
    bad_close = raw["close_px"] * np.where(draws["bad_sign"] > 0, 1.35, 0.65)
    raw["close_px"] = np.where(is_bad, bad_close, raw["close_px"])
    raw["high_px"] = np.maximum(raw["high_px"], raw["close_px"])
    raw["low_px"] = np.minimum(raw["low_px"], raw["close_px"])

    n_bars = bar_frame.height
    frame = pl.DataFrame(
        {
            "symbol": pl.Series(np.tile(np.array(names, dtype=object), n_bars), dtype=pl.String),
            "bar_ts": np.repeat(bar_frame["bar_ts"].to_numpy(), n_symbols),
            **{column: np.round(values, 4).ravel() for column, values in raw.items()},
            "volume_qty": volume.ravel(),
            "is_missing": (draws["missing"] < missing_bar_rate).ravel(),
            "is_bad": is_bad.ravel(),
        }
    ).with_columns(pl.col("bar_ts").dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC")))
    frame = frame.with_columns(
        vwap_px=((pl.col("high_px") + pl.col("low_px") + pl.col("close_px")) / 3).round(4),
        trade_count=(pl.col("volume_qty") // 100),
        session=pl.col("bar_ts").dt.date(),
    )
    # At most one bad tick per symbol and session, so the default market stays within tolerance.
    first_bad = pl.col("is_bad") & (pl.col("is_bad").cum_sum().over("symbol", "session") == 1)
    frame = frame.with_columns(
        close_px=pl.when(pl.col("is_bad") & ~first_bad).then(pl.col("open_px")).otherwise(pl.col("close_px"))
    ).with_columns(
        high_px=pl.max_horizontal("high_px", "close_px", "open_px"),
        low_px=pl.min_horizontal("low_px", "close_px", "open_px"),
    )
    return frame.filter(~pl.col("is_missing")).select(BAR_SCHEMA.keys())


def _session_generator(seed: int, session_date: date) -> np.random.Generator:
    return np.random.default_rng([seed, session_date.toordinal()])


def _session_headers(seed: int, history: pl.DataFrame, n_symbols: int, n_pairs: int) -> dict[str, np.ndarray]:
    """Per session since ORIGIN: log-price level at the open and the spread at the open, per symbol/pair."""
    bar_vol = ANNUAL_VOL / np.sqrt(HOURLY_BARS_PER_YEAR)
    market_vol = MARKET_VOL / np.sqrt(HOURLY_BARS_PER_YEAR)
    n_sessions = history.height
    moves = np.empty((n_sessions, n_symbols))
    shocks = np.empty((n_sessions, n_pairs))
    for i, (session_date, n_bars) in enumerate(history.select("session_date", "n_bars").iter_rows()):
        rng = _session_generator(seed, session_date)
        idiosyncratic = rng.standard_normal(n_symbols)
        market = rng.standard_normal()
        shocks[i] = rng.standard_normal(n_pairs)
        moves[i] = np.sqrt(n_bars) * (bar_vol * idiosyncratic + market_vol * market)
    start_level = _start_levels(n_symbols)
    open_level = start_level + np.vstack([np.zeros((1, n_symbols)), np.cumsum(moves, axis=0)[:-1]])
    daily_ar = SPREAD_AR**7
    stationary_sd = SPREAD_VOL / np.sqrt(1 - SPREAD_AR**2)
    open_spread = np.zeros((n_sessions, n_pairs))
    for i in range(1, n_sessions):
        open_spread[i] = daily_ar * open_spread[i - 1] + np.sqrt(1 - daily_ar**2) * stationary_sd * shocks[i]
    return {"open_level": open_level, "move": moves, "open_spread": open_spread}


def _bar_draws(seed: int, session_dates: pl.Series, n_symbols: int) -> dict[str, np.ndarray]:
    """The hourly detail of each session, drawn after its header from the same generator."""
    n_pairs = len(cointegrated_pairs(n_symbols))
    kinds = ("ret", "market", "spread", "gap", "wick", "low_wick", "volume", "bad", "bad_sign", "missing")
    per_session: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    counts = session_dates.value_counts(sort=False).sort(session_dates.name)
    for session_date, n_bars in counts.iter_rows():
        rng = _session_generator(seed, session_date)
        rng.standard_normal(n_symbols), rng.standard_normal(), rng.standard_normal(n_pairs)  # the header
        block = rng.standard_normal((7, n_bars, n_symbols))
        uniforms = rng.random((3, n_bars, n_symbols))
        market = rng.standard_normal((n_bars, 1))
        for kind, values in zip(("ret", "spread", "gap", "wick", "low_wick", "volume", "bad_sign"), block):
            per_session[kind].append(values)
        for kind, values in zip(("bad", "missing"), uniforms[:2]):
            per_session[kind].append(values)
        per_session["market"].append(np.broadcast_to(market, (n_bars, n_symbols)))
    return {kind: np.concatenate(blocks) for kind, blocks in per_session.items() if blocks}


def _start_levels(n_symbols: int) -> np.ndarray:
    return np.log(20.0 + 180.0 * (np.arange(n_symbols) * 0.618 % 1.0))


def _log_prices(
    draws: dict[str, np.ndarray],
    headers: dict[str, np.ndarray],
    first_session: int,
    bar_sessions: pl.Series,
    names: list[str],
    n_symbols: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly log closes: a Brownian bridge from each session's open level to the next; pairs' y legs ride a + b·x + spread."""
    bar_vol = ANNUAL_VOL / np.sqrt(HOURLY_BARS_PER_YEAR)
    market_vol = MARKET_VOL / np.sqrt(HOURLY_BARS_PER_YEAR)
    session_index = (bar_sessions.rle_id().to_numpy() + first_session).astype(np.int64)
    step = draws["ret"] * bar_vol + draws["market"] * market_vol
    bars_in_session = np.bincount(session_index)[session_index][:, None]
    step_sum = np.zeros((session_index.max() + 1, n_symbols))
    np.add.at(step_sum, session_index, step)
    # shift every step so a session's steps add up to its header move: the bridge between open levels
    bridged = step + (headers["move"][session_index] - step_sum[session_index]) / bars_in_session
    cumulative = np.cumsum(bridged, axis=0)
    session_start = np.searchsorted(session_index, session_index)
    before = np.where(session_start[:, None] > 0, cumulative[np.maximum(session_start - 1, 0)], 0.0)
    log_px = headers["open_level"][session_index] + cumulative - before

    # AR(1) spreads restarted at each session's open spread; sessions are at most 7 bars, so step by position
    position = np.arange(len(session_index)) - session_start
    start_level = _start_levels(n_symbols)
    index = {name: i for i, name in enumerate(names)}
    pairs = cointegrated_pairs(n_symbols)
    spreads = np.empty((len(session_index), len(pairs)))
    for k, (y, x) in enumerate(pairs):
        iy, ix = index[y], index[x]
        hedge = 0.8 + 0.1 * (k % 5)
        shocks = SPREAD_VOL * draws["spread"][:, iy]
        spread = spreads[:, k]
        opening = position == 0
        spread[opening] = SPREAD_AR * headers["open_spread"][session_index[opening], k] + shocks[opening]
        for offset in range(1, int(position.max()) + 1):
            rows = np.flatnonzero(position == offset)
            spread[rows] = SPREAD_AR * spread[rows - 1] + shocks[rows]
        log_px[:, iy] = start_level[iy] - hedge * start_level[ix] + hedge * log_px[:, ix] + spreads[:, k]
    return log_px, spreads


def _split_factor(session_dates: pl.Series, names: list[str], n_symbols: int) -> np.ndarray:
    """How many times larger a traded price was than today's adjusted price, per bar and symbol."""
    factor = np.ones((len(session_dates), n_symbols))
    days = session_dates.to_numpy()
    for symbol, ex_date, ratio in split_schedule(n_symbols):
        factor[days < np.datetime64(ex_date), names.index(symbol)] *= ratio
    return factor
