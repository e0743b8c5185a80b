"""Throughput of pair_signals + backtest_trades on a synthetic book, next to a per-pair, per-bar Python loop."""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from assets.backtests.simulation import BacktestParams, backtest_trades
from assets.pairs.spreads import SignalParams, pair_signals

START = np.datetime64("2020-01-02T14:00", "us")


@dataclass(frozen=True)
class SyntheticBook:
    """Seeded inputs: AR(1) z-scores per pair with its legs, spread and hedge on every bar (as pair_spreads
    publishes them), random-walk closes per symbol, one candidate row per pair."""

    spreads: pl.DataFrame
    bars_hourly: pl.DataFrame
    candidates: pl.DataFrame


def synthetic_book(n_pairs: int, n_bars: int, seed: int) -> SyntheticBook:
    """Pairs drawn among just enough symbols; z-scores mean-revert with a 0.97 AR coefficient."""
    rng = np.random.default_rng(seed)
    n_symbols = math.ceil((1 + math.sqrt(1 + 4 * n_pairs)) / 2) + 1
    symbols = np.array([f"S{i:04d}" for i in range(n_symbols)])
    ordered = np.array([(y, x) for y in range(n_symbols) for x in range(n_symbols) if y != x])
    legs = ordered[np.sort(rng.choice(len(ordered), n_pairs, replace=False))]
    bar_ts = START + np.arange(n_bars) * np.timedelta64(1, "h")

    log_close = np.log(50.0) + np.cumsum(rng.normal(0.0, 0.005, (n_symbols, n_bars)), axis=1)
    bars_hourly = pl.DataFrame(
        {
            "symbol": np.repeat(symbols, n_bars),
            "bar_ts": np.tile(bar_ts, n_symbols),
            "close_px": np.exp(log_close).ravel(),
        }
    ).with_columns(pl.col("bar_ts").dt.replace_time_zone("UTC"))

    ar, zscore = 0.97, np.zeros((n_pairs, n_bars))
    shocks = rng.normal(0.0, 1.3 * math.sqrt(1 - ar**2), (n_pairs, n_bars))
    for t in range(1, n_bars):
        zscore[:, t] = ar * zscore[:, t - 1] + shocks[:, t]

    candidates = pl.DataFrame(
        {
            "symbol_y": symbols[legs[:, 0]],
            "symbol_x": symbols[legs[:, 1]],
            "hedge_ratio": rng.uniform(0.5, 1.5, n_pairs),
            "intercept": np.zeros(n_pairs),
            "half_life_bars": np.full(n_pairs, 23.0),
            "is_cointegrated": np.ones(n_pairs, dtype=bool),
        }
    )
    pair_ids = (candidates["symbol_y"] + "/" + candidates["symbol_x"]).to_numpy()
    hedge = candidates["hedge_ratio"].to_numpy()
    spread = log_close[legs[:, 0]] - hedge[:, None] * log_close[legs[:, 1]]  # what pair_spreads would publish
    spreads = pl.DataFrame(
        {
            "pair_id": np.repeat(pair_ids, n_bars),
            "symbol_y": np.repeat(candidates["symbol_y"].to_numpy(), n_bars),
            "symbol_x": np.repeat(candidates["symbol_x"].to_numpy(), n_bars),
            "bar_ts": np.tile(bar_ts, n_pairs),
            "spread": spread.ravel(),
            "zscore": zscore.ravel(),
            "hedge_ratio": np.repeat(hedge, n_bars),
            "intercept": np.zeros(n_pairs * n_bars),
        }
    ).with_columns(pl.col("bar_ts").dt.replace_time_zone("UTC"))
    return SyntheticBook(spreads=spreads, bars_hourly=bars_hourly, candidates=candidates)


def naive_pair_loop(
    zscore: list[float],
    y_close: list[float],
    x_close: list[float],
    hedge_ratio: float,
    signal_params: SignalParams,
    params: BacktestParams,
) -> tuple[list[int], list[float], list[float]]:
    """One pair, one bar at a time: state machine, Kelly sizing, fills with costs, per-bar P&L and return.

    Plain Python floats and lists, the quickest form such a loop takes in
    CPython. The gross-exposure cap is left out: it needs every pair at once.
    Returns positions, per-trade net returns on notional, and per-bar returns.
    """
    entry_z, exit_z, stop_z, max_held = (
        signal_params.entry_z,
        signal_params.exit_z,
        signal_params.stop_z,
        signal_params.max_holding_bars,
    )
    state, held = 0, 0  # 0 flat, 1 locked, 2 long, 3 short
    y_qty = x_qty = entry_y = entry_x = 0.0
    side, equity, y_share = 0, params.initial_capital, 1.0 / (1.0 + abs(hedge_ratio))
    wins = losses = closed = 0
    win_total = loss_total = 0.0
    positions, trade_returns, bar_returns = [], [], []
    for t, z in enumerate(zscore):
        pnl = y_qty * (y_close[t] - y_close[t - 1]) + x_qty * (x_close[t] - x_close[t - 1]) if t else 0.0
        cost = 0.0
        if state >= 2:
            held += 1
            short = state == 3
            if (short and z >= stop_z) or (not short and z <= -stop_z):
                state = 1
            elif (short and z <= exit_z) or (not short and z >= -exit_z):
                state = 0
            elif held >= max_held:
                state = 1
            if state < 2:
                y_growth, x_growth = y_close[t] / entry_y, x_close[t] / entry_x
                turnover = y_share * (y_growth + abs(hedge_ratio) * x_growth)
                unit = side * y_share * (
                    (y_growth - 1.0) - hedge_ratio * (x_growth - 1.0)
                ) - params.cost_rate * (1.0 + turnover)
                trade_returns.append(unit)
                closed += 1
                if unit > 0:
                    wins, win_total = wins + 1, win_total + unit
                elif unit < 0:
                    losses, loss_total = losses + 1, loss_total - unit
                cost = params.cost_rate * (abs(y_qty) * y_close[t] + abs(x_qty) * x_close[t])
                y_qty = x_qty = 0.0
                held = 0
        elif state == 1:
            if abs(z) < entry_z:
                state = 0
        elif entry_z <= z < stop_z or -stop_z < z <= -entry_z:
            state, side = (3, -1) if z > 0 else (2, 1)
            if closed >= params.min_trades_for_kelly:
                edge = win_total - loss_total
                if edge <= 0:
                    kelly = 0.0
                elif losses == 0:
                    kelly = math.inf
                else:
                    kelly = edge / ((win_total / wins) * (loss_total / losses) * (wins + losses))
                weight = min(max(params.kelly_fraction * kelly, 0.0), params.max_pair_weight_pct)
            else:
                weight = min(params.default_weight_pct, params.max_pair_weight_pct)
            notional = weight * params.initial_capital
            entry_y, entry_x = y_close[t], x_close[t]
            y_qty = side * notional * y_share / entry_y
            x_qty = -side * notional * y_share * hedge_ratio / entry_x
            cost = params.cost_rate * notional
        net = pnl - cost
        bar_returns.append(net / equity)
        equity += net
        positions.append(1 if state == 2 else -1 if state == 3 else 0)
    return positions, trade_returns, bar_returns


def time_vectorized(book: SyntheticBook, signal_params: SignalParams, params: BacktestParams, repeats: int):
    """Wall times of (signals, backtest) per repeat, and the last run's outputs."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        signals = pair_signals(book.spreads, signal_params)
        signalled = time.perf_counter()
        result = backtest_trades(signals, book.bars_hourly, params)
        timings.append((signalled - started, time.perf_counter() - signalled))
    return timings, signals, result


def time_naive(book: SyntheticBook, pair_ids: list[str], signal_params: SignalParams, params: BacktestParams):
    """Seconds the Python loop takes over the sampled pairs, frames in and frames out, and its outputs per pair.

    Splitting the book by pair is left out of the timing; reading each pair's
    columns into lists, the loop itself and building its output frame are in.
    """
    closes = {
        symbol: frame.sort("bar_ts")
        for (symbol,), frame in book.bars_hourly.partition_by("symbol", as_dict=True).items()
    }
    legs = {f"{row['symbol_y']}/{row['symbol_x']}": row for row in book.candidates.iter_rows(named=True)}
    spreads = book.spreads.filter(pl.col("pair_id").is_in(pair_ids)).sort("pair_id", "bar_ts")
    by_pair = spreads.partition_by("pair_id", as_dict=True)

    outputs, started = {}, time.perf_counter()
    for pair_id in pair_ids:
        leg, spread = legs[pair_id], by_pair[(pair_id,)]
        positions, trade_returns, bar_returns = naive_pair_loop(
            spread["zscore"].to_list(),
            closes[leg["symbol_y"]]["close_px"].to_list(),
            closes[leg["symbol_x"]]["close_px"].to_list(),
            leg["hedge_ratio"],
            signal_params,
            params,
        )
        frame = pl.DataFrame(
            {"pair_id": pair_id, "bar_ts": spread["bar_ts"], "position": positions, "return_pct": bar_returns}
        )
        outputs[pair_id] = (positions, trade_returns, frame)
    return time.perf_counter() - started, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=5, help="vectorized runs; best and median are reported"
    )
    parser.add_argument(
        "--sample-pairs", type=int, default=20, help="pairs the naive loop runs on before extrapolating"
    )
    args = parser.parse_args()

    signal_params = SignalParams()
    params = BacktestParams(fill_lag_bars=0)  # the loop below fills at the signal bar's close
    book = synthetic_book(args.pairs, args.bars, args.seed)
    cells = args.pairs * args.bars
    print(f"book: {args.pairs} pairs x {args.bars} bars = {cells / 1e6:.1f} M bar-pairs, seed {args.seed}")

    timings, signals, result = time_vectorized(book, signal_params, params, args.repeats)
    totals = [sum(t) for t in timings]
    best = min(range(len(totals)), key=totals.__getitem__)
    print("vectorized runs (signals + backtest, s): " + ", ".join(f"{s:.2f} + {b:.2f}" for s, b in timings))
    print(
        f"vectorized: best {totals[best]:.2f} s -> {cells / totals[best] / 1e6:.1f} M bar-pairs/s; "
        f"median {statistics.median(totals):.2f} s -> {cells / statistics.median(totals) / 1e6:.1f} M bar-pairs/s "
        f"({result.trades.height} trades)"
    )

    sample = sorted(
        book.candidates.select(pl.concat_str("symbol_y", pl.lit("/"), "symbol_x"))
        .to_series()
        .sample(min(args.sample_pairs, args.pairs), seed=args.seed)
        .to_list()
    )
    naive_seconds, outputs = time_naive(book, sample, signal_params, params)
    naive_rate = len(sample) * args.bars / naive_seconds
    print(
        f"naive loop: {len(sample)} sampled pairs in {naive_seconds:.2f} s -> {naive_rate / 1e6:.2f} M bar-pairs/s; "
        f"extrapolated linearly to {args.pairs} pairs: {cells / naive_rate:.0f} s (no gross cap)"
    )
    print(f"ratio (vectorized best / naive): {cells / totals[best] / naive_rate:.0f}x")

    positions = signals.filter(pl.col("pair_id").is_in(sample)).sort("pair_id", "bar_ts")
    same_positions = all(
        outputs[pair_id][0] == frame["position"].to_list()
        for (pair_id,), frame in positions.partition_by("pair_id", as_dict=True).items()
    )
    trade_returns = result.trades.filter(pl.col("pair_id").is_in(sample) & ~pl.col("is_open")).sort(
        "pair_id", "entry_ts"
    )
    largest_gap = max(
        (
            float(
                np.max(np.abs(np.asarray(outputs[pair_id][1]) - frame["return_pct"].to_numpy()), initial=0.0)
            )
            for (pair_id,), frame in trade_returns.partition_by("pair_id", as_dict=True).items()
        ),
        default=0.0,
    )
    print(
        f"check on the sample: positions identical {same_positions}; largest trade return gap {largest_gap:.1e}"
    )


if __name__ == "__main__":
    main()
