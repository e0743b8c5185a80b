"""The daily summary's book: realized P&L and fills of the last day, read from a real SQLite ledger."""

from datetime import datetime, timedelta, timezone

from pipelines.monitoring import ledger_book
from warehouse.ledger import Ledger, LedgerSettings

NOW = datetime(2025, 9, 30, 23, 0, tzinfo=timezone.utc)


def _trade(trade_id: str, pair_id: str, status: str, **values) -> dict:
    y, x = pair_id.split("/")
    return {"pair_trade_id": trade_id, "strategy": "pairs", "pair_id": pair_id, "side": "long_spread", "status": status,
            "symbol_y": y, "symbol_x": x, "hedge_ratio": 1.0, "target_y_qty": 10.0, "target_x_qty": -10.0,
            "entry_ts": NOW - timedelta(days=3), "opened_cycle_id": f"c-{trade_id}", **values}


def test_book_sums_trades_closed_in_the_window_and_counts_its_fills(tmp_path, monkeypatch):
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    ledger = Ledger.open(LedgerSettings())
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
    pnl, fill_count = ledger_book(NOW - timedelta(days=1), NOW)
    assert pnl == {"realized": 100.0, "unrealized": 15.0} and fill_count == 2


def test_a_quiet_day_shows_zero_pnl_not_a_blank(tmp_path, monkeypatch):
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    pnl, fill_count = ledger_book(NOW - timedelta(days=1), NOW)
    assert pnl == {"realized": 0.0, "unrealized": 0.0} and fill_count == 0


def test_the_summary_is_dated_in_exchange_time(lake):
    from assets import default_graph
    from pipelines.monitoring import gather_daily_summary

    winter_evening = datetime(2025, 12, 2, 0, 0, tzinfo=timezone.utc)  # 19:00 in New York on 2025-12-01
    summary = gather_daily_summary(lake.warehouse, default_graph(), winter_evening)
    assert summary.day == "2025-12-01"
