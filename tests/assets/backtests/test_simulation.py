"""Pairs backtest: a hand-priced two-trade example, Kelly sizing without look-ahead, the gross cap, P&L bookkeeping."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.backtests.simulation import BacktestParams, backtest_trades, kelly_weights
from assets.pairs.spreads import SIGNAL_DTYPE, SignalParams, pair_signals

START = datetime(2025, 3, 3, 14, tzinfo=UTC)


def hours(n: int) -> list[datetime]:
    return [START + timedelta(hours=i) for i in range(n)]


def make_signals(pair_id: str, positions: list[int], signals: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": pair_id,
            "bar_ts": hours(len(positions)),
            "zscore": [0.0] * len(positions),
            "position": pl.Series(positions, dtype=pl.Int8),
            "signal": pl.Series(signals, dtype=SIGNAL_DTYPE),
        }
    )


def make_bars(closes: dict[str, list[float]]) -> pl.DataFrame:
    return pl.concat(
        pl.DataFrame({"symbol": symbol, "bar_ts": hours(len(values)), "close_px": values})
        for symbol, values in closes.items()
    )


def legged(
    signals: pl.DataFrame, bars: pl.DataFrame, pairs: list[tuple[str, str, float]], intercept: float = 0.0
) -> pl.DataFrame:
    """Signals with their legs, the hedge ratio and intercept of their spread, and that spread from the bars."""
    hedges = {f"{y}/{x}": beta for y, x, beta in pairs}
    closes = bars.select("symbol", "bar_ts", "close_px")
    frame = signals.with_columns(
        symbol_y=pl.col("pair_id").str.split("/").list.first(),
        symbol_x=pl.col("pair_id").str.split("/").list.last(),
        hedge_ratio=pl.col("pair_id").replace_strict(hedges, return_dtype=pl.Float64),
        intercept=pl.lit(intercept),
    )
    for leg in ("y", "x"):
        frame = frame.join(
            closes.rename({"symbol": f"symbol_{leg}", "close_px": f"{leg}_px"}), on=[f"symbol_{leg}", "bar_ts"], how="left"
        )
    spread = pl.col("y_px").log() - pl.col("hedge_ratio") * pl.col("x_px").log() - pl.col("intercept")
    return frame.with_columns(spread=spread.fill_null(0.0)).drop("y_px", "x_px")


HAND_PARAMS = BacktestParams(
    initial_capital=1_000_000.0,
    commission_bps=1.0,
    slippage_bps=4.0,
    default_weight_pct=0.1,
    min_trades_for_kelly=10,
    max_pair_weight_pct=0.5,
    max_gross_exposure_pct=1.0,
    fill_lag_bars=0,
)


def two_trade_run(params: BacktestParams = HAND_PARAMS):
    signals = make_signals(
        "Y/X",
        positions=[0, 1, 1, 0, 0, -1, -1, 0, 0],
        signals=["none", "enter_long", "hold", "exit", "none", "enter_short", "hold", "stop", "none"],
    )
    bars = make_bars(
        {
            "Y": [100.0, 100.0, 102.0, 104.0, 101.0, 100.0, 103.0, 106.0, 105.0],
            "X": [50.0, 50.0, 50.5, 51.0, 50.0, 50.0, 50.0, 50.0, 49.0],
        }
    )
    return backtest_trades(legged(signals, bars, [("Y", "X", 1.0)]), bars, params)


def test_two_trades_priced_by_hand():
    # 10 % of 1,000,000 gross, split 50,000 / 50,000 by a hedge ratio of 1; costs 5 bps a leg a fill.
    # Long:  +500 Y @100, -1000 X @50 -> Y 104, X 51: 500*4 - 1000*1 = 1,000 gross;
    #        costs 0.0005 * 100,000 + 0.0005 * (500*104 + 1000*51) = 50 + 51.5.
    # Short: -500 Y @100, +1000 X @50 -> Y 106, X 50: -3,000 gross; costs 50 + 0.0005 * 103,000.
    trades = two_trade_run().trades
    assert trades.select("side", "y_qty", "x_qty", "entry_notional_usd").rows() == [
        ("long_spread", 500.0, -1000.0, 100_000.0),
        ("short_spread", -500.0, 1000.0, 100_000.0),
    ]
    assert trades["gross_pnl_usd"].to_list() == pytest.approx([1_000.0, -3_000.0], abs=1e-9)
    assert trades["cost_usd"].to_list() == pytest.approx([101.5, 101.5], abs=1e-9)
    assert trades["net_pnl_usd"].to_list() == pytest.approx([898.5, -3_101.5], abs=1e-9)
    assert trades["return_pct"].to_list() == pytest.approx([0.008985, -0.031015], abs=1e-12)
    assert trades["bars_held"].to_list() == [2, 2]
    assert trades["exit_reason"].cast(pl.String).to_list() == ["exit", "stop"]
    assert trades["entry_ts"].to_list() == [hours(9)[1], hours(9)[5]]
    assert trades["exit_ts"].to_list() == [hours(9)[3], hours(9)[7]]
    assert trades["entry_spread"].to_list() == pytest.approx([math.log(2.0)] * 2, rel=1e-15)
    assert trades["exit_spread"].to_list() == pytest.approx(
        [math.log(104 / 51), math.log(106 / 50)], rel=1e-15
    )
    assert trades["trade_id"].to_list() == [0, 1]
    assert not trades["is_open"].any()


def test_two_trades_bar_by_bar():
    returns = two_trade_run().returns
    assert returns["position"].to_list() == [0, 1, 1, 0, 0, -1, -1, 0, 0]
    assert returns["is_in_market"].to_list() == [False, False, True, True, False, False, True, True, False]
    # Fill bars pay 50 at entry and 51.5 at exit; bar 2: 500 * 2 - 1000 * 0.5; bar 6: -500 * 3; bar 7: -500 * 3 - 51.5.
    assert returns["net_pnl_usd"].to_list() == pytest.approx(
        [0, -50, 500, 448.5, 0, -50, -1500, -1551.5, 0], abs=1e-9
    )
    assert returns["equity_usd"][-1] == pytest.approx(1_000_000 + 898.5 - 3_101.5, abs=1e-6)
    equity_before = np.concatenate([[1_000_000.0], returns["equity_usd"].to_numpy()[:-1]])
    np.testing.assert_allclose(
        returns["return_pct"].to_numpy(), returns["net_pnl_usd"].to_numpy() / equity_before, rtol=1e-15
    )


def test_fill_lag_moves_fills_to_the_next_close():
    trades = two_trade_run(BacktestParams(**{**HAND_PARAMS.__dict__, "fill_lag_bars": 1})).trades
    assert trades["entry_ts"].to_list() == [hours(9)[2], hours(9)[6]]
    assert trades["exit_ts"].to_list() == [hours(9)[4], hours(9)[8]]
    assert trades.select("entry_y_px", "entry_x_px", "exit_y_px", "exit_x_px").rows() == [
        (102.0, 50.5, 101.0, 50.0),
        (103.0, 50.0, 105.0, 49.0),
    ]
    assert trades["exit_reason"].cast(pl.String).to_list() == ["exit", "stop"]


def test_legs_split_gross_notional_by_hedge_ratio():
    signals = make_signals("Y/X", [0, -1, -1], ["none", "enter_short", "hold"])
    bars = make_bars({"Y": [40.0, 40.0, 41.0], "X": [80.0, 80.0, 79.0]})
    trades = backtest_trades(legged(signals, bars, [("Y", "X", 1.5)]), bars, HAND_PARAMS).trades
    row = trades.row(0, named=True)
    assert row["y_qty"] * 40.0 == pytest.approx(-100_000 / 2.5)
    assert row["x_qty"] * 80.0 == pytest.approx(100_000 * 1.5 / 2.5)
    assert row["is_open"] and row["exit_ts"] is None and row["exit_reason"] == "open"
    assert row["gross_pnl_usd"] == pytest.approx(row["y_qty"] * 1.0 + row["x_qty"] * -1.0)
    assert row["cost_usd"] == pytest.approx(50.0)  # only the entry fill so far


def test_kelly_estimate_from_earlier_closed_trades():
    # p = q = 0.5, W = 0.02, L = 0.01: p/L - q/W = 25 times notional; a quarter of it is 6.25.
    params = BacktestParams(
        min_trades_for_kelly=4, kelly_fraction=0.25, default_weight_pct=0.03, max_pair_weight_pct=100.0
    )
    unit_return = np.array([0.02, -0.01, 0.02, -0.01, 0.5, -0.3])
    weights = kelly_weights(unit_return, np.zeros(6, dtype=bool), np.zeros(6, dtype=np.int64), params)
    assert weights[:4].tolist() == [0.03] * 4
    assert weights[4] == pytest.approx(6.25)
    # One more win of 0.5: p = 3/5, W = 0.18, L = 0.01 -> (p W - q L) / (W L) = 0.104 / 0.0018
    assert weights[5] == pytest.approx(0.25 * 0.104 / 0.0018)


def test_kelly_gives_zero_to_a_losing_edge_and_caps_an_unbeaten_one():
    params = BacktestParams(min_trades_for_kelly=2, max_pair_weight_pct=0.2)
    losing = kelly_weights(
        np.array([-0.01, 0.005, 0.01]), np.zeros(3, dtype=bool), np.zeros(3, dtype=np.int64), params
    )
    unbeaten = kelly_weights(
        np.array([0.01, 0.02, 0.01]), np.zeros(3, dtype=bool), np.zeros(3, dtype=np.int64), params
    )
    assert losing[2] == 0.0 and unbeaten[2] == 0.2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.floats(-0.05, 0.05)), min_size=1, max_size=40),
    st.data(),
)
def test_kelly_weights_never_look_ahead(trades, data):
    trades = sorted(trades, key=lambda trade: trade[0])
    pair = np.array([p for p, _ in trades])
    unit_return = np.array([r for _, r in trades])
    params = BacktestParams(min_trades_for_kelly=2, max_pair_weight_pct=10.0)
    is_open = np.zeros(pair.size, dtype=bool)
    is_open[np.flatnonzero(np.append(pair[1:] != pair[:-1], True))] = data.draw(st.booleans())
    before = kelly_weights(unit_return, is_open, pair, params)

    changed = data.draw(st.integers(0, pair.size - 1))
    later_in_pair = (pair == pair[changed]) & (np.arange(pair.size) >= changed)
    rewritten = np.where(later_in_pair, -unit_return + 0.01, unit_return)
    after = kelly_weights(rewritten, is_open, pair, params)

    unaffected = ~later_in_pair
    unaffected[changed] = True  # a trade's own outcome does not size it either
    np.testing.assert_array_equal(before[unaffected], after[unaffected])


def test_changing_a_future_trade_leaves_earlier_sizes_alone():
    rng = np.random.default_rng(5)
    n = 600
    z = np.zeros(n)
    for t in range(1, n):
        z[t] = 0.9 * z[t - 1] + rng.normal(0.0, 0.9)
    spreads = pl.DataFrame({"pair_id": "Y/X", "bar_ts": hours(n), "zscore": z})
    signals = pair_signals(spreads, SignalParams(entry_z=1.5, exit_z=0.3, stop_z=4.0, max_holding_bars=30))
    # Y tracks X plus a noisy multiple of z, so trades mostly win and Kelly sizes vary.
    x_close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    y_close = 2.0 * x_close * np.exp(0.01 * z + rng.normal(0, 0.004, n))
    params = BacktestParams(min_trades_for_kelly=3, max_pair_weight_pct=1e6, max_gross_exposure_pct=1e9)
    bars = make_bars({"Y": y_close.tolist(), "X": x_close.tolist()})
    base = backtest_trades(legged(signals, bars, [("Y", "X", 1.0)]), bars, params).trades
    assert base.height > 10 and base["weight_pct"].n_unique() > 3
    k = base.height // 2
    entry_bar = hours(n).index(base["entry_ts"][k])
    shocked_y = y_close.copy()
    shocked_y[entry_bar + 1 :] *= 1.2
    shocked_bars = make_bars({"Y": shocked_y.tolist(), "X": x_close.tolist()})
    shocked = backtest_trades(legged(signals, shocked_bars, [("Y", "X", 1.0)]), shocked_bars, params).trades

    assert shocked["return_pct"][k] != base["return_pct"][k]
    assert shocked["weight_pct"][: k + 1].to_list() == base["weight_pct"][: k + 1].to_list()
    assert shocked["weight_pct"][k + 1 :].to_list() != base["weight_pct"][k + 1 :].to_list()


def test_gross_cap_shares_room_pro_rata_and_frees_it_on_exit():
    # A and B ask 0.6 each at bar 1 (cap 1.0: 0.5 each); C at bar 2 finds no room;
    # A exits at bar 3 and D, entering then, gets A's 0.5.
    rows = {
        "A/Z": ([0, 1, 1, 0, 0, 0], ["none", "enter_long", "hold", "exit", "none", "none"]),
        "B/Z": ([0, 1, 1, 1, 1, 1], ["none", "enter_long", "hold", "hold", "hold", "hold"]),
        "C/Z": ([0, 0, -1, -1, 0, 0], ["none", "none", "enter_short", "hold", "exit", "none"]),
        "D/Z": ([0, 0, 0, 1, 1, 1], ["none", "none", "none", "enter_long", "hold", "hold"]),
    }
    signals = pl.concat(make_signals(pair_id, *columns) for pair_id, columns in rows.items())
    bars = make_bars({symbol: [10.0, 10.5, 11.0, 10.8, 10.2, 10.4] for symbol in "ABCDZ"})
    params = BacktestParams(default_weight_pct=0.6, max_pair_weight_pct=1.0, max_gross_exposure_pct=1.0, fill_lag_bars=0)
    trades = backtest_trades(legged(signals, bars, [(p, "Z", 1.0) for p in "ABCD"]), bars, params).trades.sort("pair_id")
    assert trades["kelly_weight_pct"].to_list() == [0.6] * 4
    assert trades["weight_pct"].to_list() == pytest.approx([0.5, 0.5, 0.0, 0.5], abs=1e-12)


def test_bar_pnl_adds_up_to_trade_pnl_on_a_random_book():
    rng = np.random.default_rng(11)
    symbols, n = ["S0", "S1", "S2", "S3"], 400
    closes = {s: (30.0 + 10 * i) * np.exp(np.cumsum(rng.normal(0, 0.01, n))) for i, s in enumerate(symbols)}
    bars = make_bars({s: v.tolist() for s, v in closes.items()}).filter(
        ~((pl.col("symbol") == "S3") & (pl.int_range(pl.len()) % 29 == 3))
    )
    pairs = [("S0", "S1", 0.8), ("S0", "S2", 1.3), ("S1", "S3", -0.4), ("S2", "S3", 2.0)]
    spreads = pl.concat(
        pl.DataFrame({"pair_id": f"{y}/{x}", "bar_ts": hours(n), "zscore": rng.normal(0, 1.6, n)})
        for y, x, _ in pairs
    ).join(
        bars.filter(pl.col("symbol") == "S3").select("bar_ts", has_s3=pl.lit(True)), on="bar_ts", how="left"
    )
    spreads = spreads.filter(~pl.col("pair_id").str.ends_with("S3") | pl.col("has_s3").is_not_null()).drop(
        "has_s3"
    )
    signals = pair_signals(spreads, SignalParams(entry_z=1.5, exit_z=0.2, stop_z=3.5, max_holding_bars=15))
    params = BacktestParams(min_trades_for_kelly=5, max_gross_exposure_pct=0.15, fill_lag_bars=1)

    result = backtest_trades(legged(signals, bars, pairs), bars, params)

    by_pair = result.returns.group_by("pair_id").agg(
        pl.col("net_pnl_usd").sum(), pl.col("is_in_market").sum(), pl.col("equity_usd").last()
    )
    from_trades = result.trades.group_by("pair_id").agg(pl.col("net_pnl_usd").sum(), pl.col("bars_held").sum())
    joined = by_pair.join(from_trades, on="pair_id", suffix="_trades").sort("pair_id")
    np.testing.assert_allclose(joined["net_pnl_usd"], joined["net_pnl_usd_trades"], atol=1e-6)
    np.testing.assert_allclose(joined["equity_usd"], params.initial_capital + joined["net_pnl_usd"], atol=1e-6)
    assert joined["is_in_market"].to_list() == joined["bars_held"].to_list()
    assert result.returns.height == signals.height
    open_gross = _open_gross_by_bar(result.trades)
    assert max(open_gross) <= 0.15 + 1e-12


def _open_gross_by_bar(trades: pl.DataFrame) -> list[float]:
    times = sorted(set(trades["entry_ts"].to_list()))
    return [
        trades.filter((pl.col("entry_ts") <= t) & (pl.col("exit_ts").is_null() | (pl.col("exit_ts") > t)))[
            "weight_pct"
        ].sum()
        for t in times
    ]


def test_missing_leg_price_is_an_error():
    signals = make_signals("Y/X", [0, 1], ["none", "enter_long"])
    full = make_bars({"Y": [1.0, 1.0], "X": [1.0, 1.0]})
    with pytest.raises(ValueError, match="leg closes"):
        backtest_trades(legged(signals, full, [("Y", "X", 1.0)]), make_bars({"Y": [1.0, 1.0], "X": [1.0]}), HAND_PARAMS)


def test_a_trade_keeps_its_entry_hedge_and_closes_at_a_stream_break():
    from datetime import date

    from assets.calendar import hourly_bar_starts, sessions

    bar_ts = hourly_bar_starts(sessions(date(2025, 3, 3), date(2025, 3, 5)))["bar_ts"].to_list()
    day0, day1, day2 = bar_ts[:7], bar_ts[7:14], bar_ts[14:]
    signals = pl.DataFrame(
        {
            "pair_id": "A/B", "symbol_y": "A", "symbol_x": "B",
            "bar_ts": [day0[5], day0[6], day1[0], day2[0], day2[1]],
            "spread": [0.11, 0.05, None, -0.2, -0.1],
            "zscore": [-2.5, -1.9, None, 2.4, 2.2],
            "hedge_ratio": [1.0, 2.0, 2.0, 1.5, 1.5],
            "intercept": [0.0, 0.0, 0.0, 0.1, 0.1],
            "position": pl.Series([1, 1, 0, -1, -1], dtype=pl.Int8),
            "signal": ["enter_long", "hold", "gap", "enter_short", "hold"],
        }
    )
    closes = {"A": np.linspace(100.0, 110.0, len(bar_ts)), "B": np.linspace(50.0, 45.0, len(bar_ts))}
    bars = pl.DataFrame(
        {"symbol": np.repeat(["A", "B"], len(bar_ts)), "bar_ts": bar_ts * 2, "close_px": np.concatenate([closes["A"], closes["B"]])}
    ).filter(~((pl.col("symbol") == "B") & (pl.col("bar_ts") == day1[0])))  # B has no bar where the gap closes
    trades = backtest_trades(signals, bars, BacktestParams()).trades

    first, second = trades.row(0, named=True), trades.row(1, named=True)
    assert (first["hedge_ratio"], first["entry_spread"], first["exit_reason"]) == (1.0, 0.11, "gap")
    assert first["entry_ts"] == day0[6] and first["exit_ts"] == day1[0]  # one bar after the signal; at the break
    assert first["exit_y_px"] == closes["A"][7] and first["exit_x_px"] == closes["B"][6]  # B's last close before
    assert first["x_qty"] == pytest.approx(-first["y_qty"] * closes["A"][6] * 1.0 / closes["B"][6])
    exit_notional = abs(first["y_qty"]) * closes["A"][7] + abs(first["x_qty"]) * closes["B"][6]
    assert first["cost_usd"] == pytest.approx(BacktestParams().cost_rate * (first["entry_notional_usd"] + exit_notional))
    assert second["is_open"] and second["exit_reason"] == "open" and second["hedge_ratio"] == 1.5
    assert second["entry_ts"] == day2[1] and second["entry_spread"] == -0.2


def test_an_open_trade_frees_its_exposure_when_its_stream_ends():
    rows = {
        "A/Z": ([0, 1, 1], ["none", "enter_long", "hold"]),
        "B/Z": ([0, 0, 0, 0, 1, 1], ["none", "none", "none", "none", "enter_long", "hold"]),
    }
    signals = pl.concat(make_signals(pair_id, *columns) for pair_id, columns in rows.items())
    bars = make_bars({symbol: [10.0, 10.5, 11.0, 10.8, 10.2, 10.4] for symbol in "ABZ"})
    params = BacktestParams(default_weight_pct=0.6, max_pair_weight_pct=1.0, max_gross_exposure_pct=1.0, fill_lag_bars=0)
    trades = backtest_trades(legged(signals, bars, [("A", "Z", 1.0), ("B", "Z", 1.0)]), bars, params).trades.sort("pair_id")
    assert trades["is_open"].to_list() == [True, True]
    assert trades["weight_pct"].to_list() == [0.6, 0.6]  # A's stream ended at bar 2: its room is free at bar 4


def test_fill_lag_is_zero_or_one_bar():
    with pytest.raises(ValueError, match="fill_lag_bars"):
        BacktestParams(fill_lag_bars=2)
    assert BacktestParams().fill_lag_bars == 1


def test_signals_without_an_entry_give_no_trades_and_flat_equity():
    signals = make_signals("Y/X", [0, 0, 0], ["none", "none", "none"])
    bars = make_bars({"Y": [10.0, 11.0, 12.0], "X": [5.0, 5.0, 5.0]})
    result = backtest_trades(legged(signals, bars, [("Y", "X", 1.0)]), bars, BacktestParams())
    assert result.trades.is_empty() and result.returns["net_pnl_usd"].to_list() == [0.0, 0.0, 0.0]
