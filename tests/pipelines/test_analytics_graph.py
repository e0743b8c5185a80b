"""The analytics graph on a real DuckLake: indicators, pair scan, spreads, signals, backtest and performance.

One warehouse is built per module over nine months of the sample market (the pair scan
needs 250 bars and the z-score 500), then each test checks one promise against it.
"""

from datetime import date

import numpy as np
import polars as pl
import pytest
import talib
from statsmodels.tsa.stattools import coint

from assets import default_graph
from assets.sources import SampleSource
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.resources import LedgerOnUse
from pipelines.settings import Settings
from warehouse import Warehouse

pytestmark = pytest.mark.slow
START, END = date(2025, 1, 2), date(2025, 9, 30)


def build(warehouse, *, end=END, selection=None, batch_partitions=40, run_id="analytics"):
    submit, shutdown = thread_submitter(4)
    try:
        return run_materialization(
            default_graph(), warehouse, SampleSource(), selection=selection, window=RunWindow.between(START, end),
            run_id=run_id, submit=submit, batch_partitions=batch_partitions,
            resources={"ledger": LedgerOnUse(Settings().ledger)},
        )
    finally:
        shutdown()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("analytics")
    warehouse = Warehouse.open(f"sqlite:{root}/catalog.sqlite", f"{root}/lake/")
    summary = build(warehouse)
    strategy_only = build(warehouse, selection="+strategy_performance", run_id="strategy", batch_partitions=7)
    yield warehouse, summary, strategy_only, root
    warehouse.close()


def test_whole_strategy_builds_clean(built):
    warehouse, summary, strategy_only, _ = built
    assert summary.exit_code == 0, summary.totals
    assert all(o.built for o in summary.outcomes.values()), {a: o.skipped[:1] for a, o in summary.outcomes.items()}
    assert set(strategy_only.outcomes) == {
        "bars_raw", "splits", "universe", "bars_hourly", "pair_candidates", "pair_spreads", "pair_signals",
        "backtest_trades", "backtest_equity", "strategy_performance",
    }
    assert strategy_only.totals["built"] == 0  # +strategy_performance over the same window: all up to date
    strategy = warehouse.read("strategy_performance")
    assert strategy.height == 1 and strategy["trade_count"][0] > 10
    assert -1 < strategy["max_drawdown_pct"][0] < 0
    trades = warehouse.read("backtest_trades")
    assert set(trades["exit_reason"]) <= {"exit", "stop", "max_hold", "dropped", "gap", "open"} and trades.height == strategy["trade_count"][0] + strategy["open_trade_count"][0]


def test_known_pairs_are_found_and_match_statsmodels(built):
    warehouse, *_ = built
    candidates = warehouse.read("pair_candidates")
    last_week = candidates.filter(pl.col("week_end_date") == candidates["week_end_date"].max())
    kept = {(r["symbol_y"], r["symbol_x"]) for r in last_week.filter(pl.col("is_traded")).iter_rows(named=True)}
    assert {("KO", "PEP"), ("CVX", "XOM"), ("GS", "MS"), ("MA", "V")} <= kept
    assert (last_week["n_tested"] == last_week.height).all()  # the screen left few pairs, every one long enough

    window = last_week["window_start_date"][0], last_week["week_end_date"][0]
    bars = warehouse.read("bars_hourly").filter(pl.col("session_date").is_between(*window))
    wide = bars.pivot(on="symbol", index="bar_ts", values="close_px").sort("bar_ts")
    for row in last_week.iter_rows(named=True):
        legs = wide.select(row["symbol_y"], row["symbol_x"]).drop_nulls()  # the pair's own common bars
        stat, p_value, _ = coint(np.log(legs[row["symbol_y"]].to_numpy()), np.log(legs[row["symbol_x"]].to_numpy()))
        assert row["n_obs"] == legs.height
        assert row["adf_stat"] == pytest.approx(stat, abs=1e-9)
        assert row["p_value"] == pytest.approx(p_value, abs=1e-9)


def test_indicators_built_day_by_day_match_talib_over_the_whole_history(built):
    warehouse, *_ = built
    published = warehouse.read("indicators_hourly").sort("symbol", "bar_ts")
    bars = warehouse.read("bars_hourly").sort("symbol", "bar_ts")
    assert published.height == bars.height
    for symbol in ("KO", "NVDA", "AAPL"):
        mine = published.filter(pl.col("symbol") == symbol)
        b = bars.filter(pl.col("symbol") == symbol)
        close, high, low = (b[c].to_numpy() for c in ("close_px", "high_px", "low_px"))
        expected = {
            "ema": talib.EMA(close, 20), "rsi": talib.RSI(close, 14), "atr_px": talib.ATR(high, low, close, 14),
            "macd_signal": talib.MACD(close, 12, 26, 9)[1], "bb_upper_px": talib.BBANDS(close, 20, 2.0, 2.0, 0)[0],
        }
        for column, reference in expected.items():
            got = mine[column].to_numpy(allow_copy=True).astype(float)
            assert np.array_equal(np.isnan(got), np.isnan(reference)), (symbol, column)
            np.testing.assert_allclose(got, reference, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{symbol} {column}")


def test_regime_labels_every_session(built):
    warehouse, *_ = built
    regime = warehouse.read("market_regime").sort("session_date")
    assert regime.height == RunWindow.between(START, END).sessions.height
    labelled = regime.drop_nulls("regime")
    assert set(labelled["regime"]) <= {"calm", "volatile"} and labelled.height > regime.height - 25


def test_signals_resumed_day_by_day_equal_one_pass(built, tmp_path):
    warehouse, *_ = built
    stepwise = Warehouse.open(f"sqlite:{tmp_path}/catalog.sqlite", f"{tmp_path}/lake/")
    try:
        from assets.backtests.simulation import BacktestParams
        from assets.pairs.spreads import SignalParams
        from pipelines.pinned_backtest import run_pinned_backtest

        build(stepwise, end=date(2025, 8, 29), selection="+pair_signals", run_id="first")
        past = {"start": date(2025, 6, 2), "end": date(2025, 8, 15), "signal_params": SignalParams(), "backtest_params": BacktestParams()}
        before = run_pinned_backtest(stepwise, **past)
        second = build(stepwise, selection="+pair_signals", run_id="second", batch_partitions=3)
        assert second.exit_code == 0
        # a closed past window gives the same result after later sessions are published
        after = run_pinned_backtest(stepwise, **past)
        assert after.result_digest == before.result_digest and after.trades.equals(before.trades)
        assert after.versions != before.versions  # it did read the newer catalog
        assert len(second.outcomes["pair_signals"].built) == RunWindow.between(date(2025, 9, 2), END).sessions.height
        one_pass = warehouse.read("pair_signals").sort("pair_id", "bar_ts")
        resumed = stepwise.read("pair_signals").select(one_pass.columns).sort("pair_id", "bar_ts")
        assert resumed.equals(one_pass)
    finally:
        stepwise.close()


def test_published_signals_follow_the_stated_rules_on_each_pairs_sessions(built):
    from assets.pairs.spreads import SignalParams
    from assets.calendar import hourly_bar_starts
    from tests.assets.pairs.signal_reference import reference_pair_signals

    warehouse, *_ = built
    calendar = RunWindow.between(START, END).sessions
    sessions = calendar["session_date"].to_list()
    open_bar = dict(hourly_bar_starts(calendar).group_by("session_date").agg(pl.col("bar_ts").min()).iter_rows())
    scans = warehouse.read("pair_candidates").filter(pl.col("is_cointegrated"))
    by_week = {}
    for week, y, x in scans.select("week_end_date", "symbol_y", "symbol_x").iter_rows():
        by_week.setdefault(week, set()).add(f"{y}/{x}")
    listed = set()
    for day in sessions:
        earlier = [week for week in by_week if week < day]
        listed |= {(pair, day) for pair in by_week[max(earlier)]} if earlier else set()
    spreads = warehouse.read("pair_spreads").with_columns(
        session_date=pl.col("bar_ts").dt.convert_time_zone("America/New_York").dt.date()
    )
    expected = reference_pair_signals(
        spreads.select("pair_id", "bar_ts", "session_date", "zscore").to_dicts(), sessions, SignalParams(),
        listed=listed, through=END, open_bar=open_bar,
    )
    published = warehouse.read("pair_signals").sort("pair_id", "bar_ts")
    assert published.select("pair_id", "bar_ts", "position", "signal", "bars_held", "is_stop_locked").rows() == expected
    assert {"exit", "enter_long", "enter_short"} <= set(published["signal"])

    # no position spans a session in which its pair had no rows
    number = {day: k for k, day in enumerate(sessions)}
    rows = published.with_columns(
        session=pl.col("bar_ts").dt.convert_time_zone("America/New_York").dt.date().replace_strict(number, return_dtype=pl.Int64)
    )
    spanning = rows.filter(
        (pl.col("session").shift(-1).over("pair_id") > pl.col("session") + 1) & (pl.col("position") != 0)
    )
    assert spanning.is_empty()


def test_every_trade_uses_what_its_signal_knew(built):
    warehouse, *_ = built
    trades = warehouse.read("backtest_trades")
    spreads = warehouse.read("pair_spreads").select(
        "pair_id", pl.col("bar_ts").alias("signal_ts"), "spread", pl.col("hedge_ratio").alias("spread_hedge"), "hedge_week_end_date"
    )
    scans = warehouse.read("pair_candidates").select(
        pl.concat_str("symbol_y", pl.lit("/"), "symbol_x").alias("pair_id"), pl.col("week_end_date").alias("hedge_week_end_date"),
        pl.col("hedge_ratio").alias("scan_hedge"),
    )
    checked = trades.join(spreads, on=["pair_id", "signal_ts"], how="left").join(scans, on=["pair_id", "hedge_week_end_date"], how="left")
    assert checked["spread_hedge"].null_count() == 0
    assert (checked["hedge_ratio"] == checked["spread_hedge"]).all() and (checked["hedge_ratio"] == checked["scan_hedge"]).all()
    assert (checked["entry_spread"] == checked["spread"]).all()
    # the scan in force is the last one before the signal's session
    signal_day = checked["signal_ts"].dt.convert_time_zone("America/New_York").dt.date()
    assert (checked["hedge_week_end_date"] < signal_day).all()
    assert (trades["entry_ts"] > trades["signal_ts"]).all()  # one bar of fill lag

    # a trade holds exposure only while its pair has rows: every in-market bar follows its pair's previous session
    equity = warehouse.read("backtest_equity").sort("pair_id", "bar_ts").with_columns(
        day=pl.col("bar_ts").dt.convert_time_zone("America/New_York").dt.date()
    )
    sessions = RunWindow.between(START, END).sessions["session_date"].to_list()
    number = {day: k for k, day in enumerate(sessions)}
    held = equity.with_columns(session=pl.col("day").replace_strict(number, return_dtype=pl.Int64)).filter(
        pl.col("is_in_market") & (pl.col("session") > pl.col("session").shift(1).over("pair_id") + 1)
    )
    assert held.is_empty()


def test_rebuild_is_a_noop_and_a_new_day_builds_only_that_day(built, tmp_path):
    warehouse, *_ = built
    again = build(warehouse, run_id="again")
    assert again.totals["built"] == 0
    fresh = Warehouse.open(f"sqlite:{tmp_path}/c.sqlite", f"{tmp_path}/lake/")
    try:
        build(fresh, end=date(2025, 9, 29), run_id="monday")
        tuesday = build(fresh, run_id="tuesday")
        built_keys = {a: o.built for a, o in tuesday.outcomes.items() if o.built}
        assert built_keys["pair_signals"] == ["2025-09-30"] and built_keys["bars_hourly"] == ["2025-09-30"]
        assert "pair_candidates" not in built_keys  # the week of 2025-09-29 is not complete yet
        assert built_keys["strategy_performance"] == ["all"]
    finally:
        fresh.close()


def test_backtest_is_reproducible_and_pinned_to_versions(built):
    from datetime import datetime, timezone

    from assets.backtests.simulation import BacktestParams
    from assets.pairs.spreads import SignalParams
    from pipelines.pinned_backtest import run_pinned_backtest
    from warehouse import WarehouseError

    warehouse, *_ = built
    window = {"start": date(2025, 6, 2), "end": END, "backtest_params": BacktestParams()}
    first = run_pinned_backtest(warehouse, signal_params=SignalParams(), **window)
    again = run_pinned_backtest(warehouse, signal_params=SignalParams(), **window)
    assert first.result_digest == again.result_digest and first.versions == again.versions
    assert first.strategy["trade_count"][0] + first.strategy["open_trade_count"][0] == first.trades.height > 0

    wider = run_pinned_backtest(warehouse, signal_params=SignalParams(entry_z=1.5), **window)
    assert wider.result_digest != first.result_digest
    assert wider.trades.height > first.trades.height

    pinned_now = run_pinned_backtest(warehouse, signal_params=SignalParams(), at=datetime.now(timezone.utc), **window)
    assert pinned_now.result_digest == first.result_digest
    with pytest.raises(WarehouseError, match="no published version as of 2000"):
        run_pinned_backtest(warehouse, signal_params=SignalParams(), at=datetime(2000, 1, 1, tzinfo=timezone.utc), **window)


def test_run_report_draws_equity_and_drawdown(built, tmp_path):
    from pipelines.runs import record_and_report
    from pipelines.settings import Settings

    warehouse, summary, *_ = built
    settings = Settings(reports_dir=tmp_path)
    report = record_and_report(warehouse, settings, summary)
    page = (tmp_path / f"{summary.run_id}.html").read_text()
    assert page.count("<svg") == 3 and "aria-label='Lineage of this run'" in page and "aria-label='Equity'" in page and "aria-label='Drawdown'" in page
    assert "sharpe_ratio" in page and "Strategy performance" in report.markdown
    assert "Trade analysis" in page and "by exit reason" in page and "### by holding bars" in report.markdown
