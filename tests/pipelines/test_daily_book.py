"""The daily summary's book: realized P&L and fills of the last day, read from a real SQLite ledger."""

from datetime import datetime, timedelta, timezone

from pipelines.monitoring import ledger_book
from warehouse.ledger import Ledger
from pipelines.settings import Settings

NOW = datetime(2025, 9, 30, 23, 0, tzinfo=timezone.utc)


def _trade(trade_id: str, pair_id: str, status: str, **values) -> dict:
    y, x = pair_id.split("/")
    return {"pair_trade_id": trade_id, "strategy": "pairs", "pair_id": pair_id, "side": "long_spread", "status": status,
            "symbol_y": y, "symbol_x": x, "hedge_ratio": 1.0, "target_y_qty": 10.0, "target_x_qty": -10.0,
            "entry_ts": NOW - timedelta(days=3), "opened_cycle_id": f"c-{trade_id}", **values}


def test_book_sums_trades_closed_in_the_window_and_counts_its_fills(tmp_path, monkeypatch):
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    ledger = Ledger.open(Settings().ledger)
    for trade_id, closed_at, pnl in [("t1", NOW - timedelta(hours=3), 120.5), ("t2", NOW - timedelta(hours=30), 999.0),
                                     ("t3", NOW - timedelta(hours=1), -20.5)]:
        assert ledger.insert_pair_trade(_trade(trade_id, "PEP/KO", "closed", exit_ts=closed_at, realized_pnl=pnl))
    assert ledger.insert_pair_trade(_trade("t4", "MS/GS", "open"))
    for n, at in enumerate([NOW - timedelta(hours=2), NOW - timedelta(hours=2), NOW - timedelta(days=2)]):
        assert ledger.insert_order({"client_order_id": f"q-{n}", "cycle_id": "c-1", "strategy": "pairs", "leg": "y",
                                    "action": "open", "symbol": "KO", "side": "buy", "qty": 1.0, "status": "filled",
                                    "created_at": at, "updated_at": at})
        assert ledger.record_fill(client_order_id=f"q-{n}", fill_key=f"q-{n}:1", symbol="KO", side="buy", qty=1, px=60.0, filled_at=at)

    ledger.replace_positions([{"strategy": "pairs", "symbol": "KO", "qty": 10.0, "avg_cost_px": 60.0,
                                "realized_pnl": 0.0, "market_px": 61.5, "unrealized_pnl": 15.0, "updated_at": NOW}])
    pnl, fill_count = ledger_book(ledger, NOW - timedelta(days=1), NOW)
    assert pnl == {"realized": 100.0, "unrealized": 15.0} and fill_count == 2


def test_a_quiet_day_shows_zero_pnl_not_a_blank(tmp_path, monkeypatch):
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    pnl, fill_count = ledger_book(Ledger.open(Settings().ledger), NOW - timedelta(days=1), NOW)
    assert pnl == {"realized": 0.0, "unrealized": 0.0} and fill_count == 0


def test_the_summary_is_dated_in_exchange_time(lake):
    from assets import default_graph
    from pipelines.monitoring import gather_daily_summary

    winter_evening = datetime(2025, 12, 2, 0, 0, tzinfo=timezone.utc)  # 19:00 in New York on 2025-12-01
    summary = gather_daily_summary(lake.warehouse, default_graph(), winter_evening)
    assert summary.day == "2025-12-01"


def _live_book(tmp_path, monkeypatch) -> None:
    """A ledger whose book made 250 on one closed trade and stands at -40 on an open one (marked hour by hour)."""
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    ledger = Ledger.open(Settings().ledger)
    assert ledger.insert_pair_trade(_trade("t1", "PEP/KO", "closed", exit_ts=NOW - timedelta(hours=2), realized_pnl=250.0))
    assert ledger.insert_pair_trade(_trade("t2", "MS/GS", "open"))
    for hours_ago, (t1, t2) in zip((4, 3, 2), ((100.0, None), (180.0, -10.0), (250.0, -40.0))):
        at = NOW - timedelta(hours=hours_ago)
        ledger.upsert_pair_mark(pair_trade_id="t1", strategy="pairs", pair_id="PEP/KO", bar_ts=at, pnl=t1,
                                is_in_market=True)
        if t2 is not None:
            ledger.upsert_pair_mark(pair_trade_id="t2", strategy="pairs", pair_id="MS/GS", bar_ts=at, pnl=t2,
                                    is_in_market=True)


def test_the_daily_summary_shows_the_published_performance_metrics(lake, tmp_path, monkeypatch):
    """The live book's metrics come from the published live_performance version, named in the summary."""
    import pytest

    from assets import default_graph
    from pipelines.monitoring import gather_daily_summary
    from pipelines.notify import render_daily_summary

    _live_book(tmp_path, monkeypatch)
    before = gather_daily_summary(lake.warehouse, default_graph(), NOW)
    assert before.performance == {}
    assert "Performance: not available" in render_daily_summary(before)[1]

    assert lake.materialize("live_performance").exit_code == 0
    summary = gather_daily_summary(lake.warehouse, default_graph(), NOW)
    [published] = lake.warehouse.read("live_performance").to_dicts()
    assert list(summary.performance) == ["live"] and summary.performance["live"] == published
    assert summary.performance["live"]["total_return_pct"] == pytest.approx((250.0 - 40.0) / 1_000_000)
    assert summary.performance["live"]["trade_count"] == 1  # closed trades only
    version = lake.warehouse.current_versions(["live_performance"])["version_id"][0]
    assert version in summary.performance_sources["live"]

    subject, text, body_html = render_daily_summary(summary)
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()
             if line.startswith("  ") and line.split() and line.split()[0] in ("total_return_pct", "trade_count")}
    assert lines == {"total_return_pct": ["0.02%"], "trade_count": ["1"]}
    assert "<th>metric</th><th>live</th>" in body_html and "<td>sharpe_ratio</td>" in body_html
    assert f"live_performance version {version}" in body_html


def test_both_books_side_by_side_with_undefined_metrics_shown_as_a_dash():
    from pipelines.notify import DailySummary, performance_rows, render_daily_summary

    summary = DailySummary(
        day="2025-09-30", runs_completed=1, runs_failed=0, partitions_built=3, quarantines=(), stale_assets=(),
        pnl={"realized": 0.0, "unrealized": 0.0}, trades=0,
        performance={"live": {"total_return_pct": 0.0021, "sharpe_ratio": None, "trade_count": 1},
                     "backtest": {"total_return_pct": -0.125, "sharpe_ratio": 1.234, "trade_count": 40}},
    )
    rows = {row[0]: row[1:] for row in performance_rows(summary)}
    assert rows["total_return_pct"] == ("0.21%", "-12.50%")
    assert rows["sharpe_ratio"] == ("-", "1.23") and rows["trade_count"] == ("1", "40")
    _, text, body_html = render_daily_summary(summary)
    assert "Performance:" in text and "backtest" in text
    assert "<th>metric</th><th>live</th><th>backtest</th>" in body_html
