"""Trade analysis against a plain per-trade loop: every dimension's counts, win rates, P&L statistics and profit factors."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.backtests.assets import trade_analysis
from quality.contracts import TradeAnalysis

NEW_YORK = ZoneInfo("America/New_York")
DAYS = [date(2025, 3, 3) + timedelta(days=k) for k in range(10)]
REGIMES = pl.DataFrame({"session_date": DAYS[:6], "regime": ["calm", "volatile", None, "calm", "volatile", "calm"]})

trade = st.fixed_dictionaries({
    "pair_id": st.sampled_from(["A/B", "C/D", "E/F"]),
    "day": st.sampled_from(DAYS),
    "hour": st.integers(9, 15),
    "bars_held": st.integers(1, 90),
    "net_pnl_usd": st.one_of(st.floats(-500, 500, allow_nan=False), st.just(0.0)),
    "exit_reason": st.sampled_from(["exit", "stop", "max_hold", "dropped", "gap"]),
    "is_open": st.booleans(),
})


def bucket_of(bars: int) -> str:
    return "1-7" if bars <= 7 else "8-21" if bars <= 21 else "22-49" if bars <= 49 else "50+"


def regime_before(day: date) -> str:
    earlier = [(d, r) for d, r in REGIMES.iter_rows() if d < day]
    return (max(earlier)[1] or "unknown") if earlier else "unknown"


@settings(max_examples=100, deadline=None)
@given(st.lists(trade, min_size=1, max_size=40))
def test_each_dimension_summarizes_the_closed_trades_like_a_plain_loop(trades):
    frame = pl.DataFrame({
        "pair_id": [t["pair_id"] for t in trades],
        "entry_ts": [datetime(t["day"].year, t["day"].month, t["day"].day, t["hour"], 30, tzinfo=NEW_YORK).astimezone(UTC) for t in trades],
        "bars_held": pl.Series([t["bars_held"] for t in trades], dtype=pl.Int32),
        "net_pnl_usd": [t["net_pnl_usd"] for t in trades],
        "exit_reason": [t["exit_reason"] for t in trades],
        "is_open": [t["is_open"] for t in trades],
    })
    got = trade_analysis.transform(frame, REGIMES)  # the maths, in the contract's columns and dtypes
    closed = [t for t in trades if not t["is_open"]]
    keys = {
        "pair": lambda t: t["pair_id"], "entry_hour": lambda t: f"{t['hour']:02d}",
        "holding_bars": lambda t: bucket_of(t["bars_held"]), "regime": lambda t: regime_before(t["day"]),
        "exit_reason": lambda t: t["exit_reason"],
    }
    expected = {}
    for dimension, key in keys.items():
        for bucket in {key(t) for t in closed}:
            group = [t for t in closed if key(t) == bucket]
            pnl = [t["net_pnl_usd"] for t in group]
            losses = -sum(p for p in pnl if p < 0)
            expected[(dimension, bucket)] = (
                len(group), sum(p > 0 for p in pnl) / len(group), statistics.fmean(pnl), statistics.median(pnl),
                sum(p for p in pnl if p > 0) / losses if losses > 0 else None,
                statistics.fmean(t["bars_held"] for t in group),
            )
    rows = {
        (r["dimension"], r["bucket"]): (r["n_trades"], r["win_rate_pct"], r["avg_net_pnl_usd"], r["median_net_pnl_usd"], r["profit_factor"], r["avg_bars_held"])
        for r in got.iter_rows(named=True)
    }
    assert rows.keys() == expected.keys()
    for key, values in expected.items():
        factor, expected_factor = rows[key][4], values[4]
        assert (factor is None) == (expected_factor is None), key
        without_factor = [v for k, v in enumerate(values) if k != 4]
        assert [v for k, v in enumerate(rows[key]) if k != 4] == pytest.approx(without_factor, rel=1e-9, abs=1e-9), key
        if factor is not None:
            assert factor == pytest.approx(expected_factor, rel=1e-9), key
    if closed:
        TradeAnalysis.validate(got)
