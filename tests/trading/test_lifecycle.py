"""Order lifecycle on the paper broker: partial fills time out and are cancelled, a half-filled pair is unwound
or completed, and reconciliation records and repairs a ledger that fell behind the broker."""

from datetime import datetime, timedelta, timezone

import pytest

from pipelines.brokers import OrderRequest, PaperBroker, paper_engine
from pipelines.trading.execution import OrderIntent, place_order
from pipelines.trading.lifecycle import manage_orders, reconcile_trades, resolve_unknown_orders, update_positions
from warehouse import ledger as tables
from pipelines.settings import BrokerConfig

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)
PRICES = {"KO": 60.0, "PEP": 150.0}


def open_pair(ledger, broker, y_qty=10.0, x_qty=-4.0):
    trade_id = "pairs:KO/PEP:c1"
    ledger.insert_pair_trade(dict(
        pair_trade_id=trade_id, strategy="pairs", pair_id="KO/PEP", side="long_spread", status="opening",
        symbol_y="KO", symbol_x="PEP", hedge_ratio=1.0, target_y_qty=y_qty, target_x_qty=x_qty, entry_ts=NOW,
        opened_cycle_id="c1"))
    for leg, symbol, qty in (("y", "KO", y_qty), ("x", "PEP", x_qty)):
        place_order(ledger, broker, OrderIntent("c1", "pairs", "KO/PEP", leg, "open", symbol,
                                                "buy" if qty > 0 else "sell", abs(qty), trade_id), NOW)
    return trade_id


@pytest.mark.parametrize("rule, final_status, orders", [("unwind", "unwound", 4), ("complete", "open", 4)])
def test_half_filled_pair_is_repaired_by_rule(ledger, tmp_path, rule, final_status, orders):
    partial = BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite", partial_fill_pct=1.0)
    broker = PaperBroker(paper_engine(partial.paper_url), PRICES.get, NOW, partial)
    trade_id = open_pair(ledger, broker)
    assert {o["status"] for o in ledger.rows(tables.orders)} == {"partially_filled"}
    assert manage_orders(ledger, broker, NOW + timedelta(minutes=5), half_fill_rule=rule) == {"partially_filled": 2}

    full = PaperBroker(broker.engine, PRICES.get, NOW, BrokerConfig(paper_url=partial.paper_url))
    later = NOW + timedelta(minutes=31)
    counts = manage_orders(ledger, full, later, half_fill_rule=rule)
    assert counts["cancelled_on_timeout"] == 2 and counts[{"unwind": "unwound", "complete": "completed"}[rule]] == 1
    assert ledger.pair_trade(trade_id)["status"] == final_status
    assert ledger.count(tables.orders) == orders and len(broker.orders()) == orders
    positions = {r["symbol"]: r["qty"] for r in update_positions(ledger, PRICES, later)}
    assert positions == ({"KO": 0.0, "PEP": 0.0} if rule == "unwind" else {"KO": 10.0, "PEP": -4.0})
    assert reconcile_trades(ledger, full, later).discrepancies == []


def test_reconcile_records_and_repairs_a_ledger_behind_the_broker(ledger, tmp_path):
    settings = BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite")
    broker = PaperBroker(paper_engine(settings.paper_url), PRICES.get, NOW, settings)
    open_pair(ledger, broker)
    ledger.update_order("q-c1-KO.PEP-y-open", status="accepted", filled_qty=0.0, avg_fill_px=None)
    with ledger.engine.begin() as connection:
        connection.execute(tables.fills.delete().where(tables.fills.c.client_order_id == "q-c1-KO.PEP-y-open"))
    report = reconcile_trades(ledger, broker, NOW)
    assert len(report.repaired) == 1 and "took the broker's" in report.repaired[0]
    assert ledger.order("q-c1-KO.PEP-y-open")["status"] == "filled"
    assert {e["rule"] for e in ledger.rows(tables.risk_events)} == {"reconcile_order_state"}
    assert ledger.count(tables.alerts) == 1
    assert reconcile_trades(ledger, broker, NOW).discrepancies == []


def test_orders_with_unknown_outcome_are_adopted_or_marked_not_submitted_after_the_grace(ledger, tmp_path):
    """Two `new` rows as a crash leaves them: one reached the broker, one never did; the pair is settled from both."""
    settings = BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite")
    broker = PaperBroker(paper_engine(settings.paper_url), PRICES.get, NOW, settings)
    trade_id = "pairs:KO/PEP:c1"
    ledger.insert_pair_trade(dict(
        pair_trade_id=trade_id, strategy="pairs", pair_id="KO/PEP", side="long_spread", status="opening",
        symbol_y="KO", symbol_x="PEP", hedge_ratio=1.0, target_y_qty=10.0, target_x_qty=-4.0, entry_ts=NOW,
        opened_cycle_id="c1"))
    for leg, symbol, side, qty in (("y", "KO", "buy", 10.0), ("x", "PEP", "sell", 4.0)):
        cid = f"q-c1-KO.PEP-{leg}-open"
        ledger.insert_order(dict(client_order_id=cid, cycle_id="c1", strategy="pairs", pair_id="KO/PEP",
                                 pair_trade_id=trade_id, leg=leg, action="open", symbol=symbol, side=side, qty=qty,
                                 filled_qty=0.0, status="new", created_at=NOW, updated_at=NOW))
    broker.submit_order(OrderRequest("q-c1-KO.PEP-y-open", "KO", "buy", 10.0))  # the crash came after this

    assert resolve_unknown_orders(ledger, broker, NOW + timedelta(minutes=1), skip_cycle="c1") == {}
    assert resolve_unknown_orders(ledger, broker, NOW + timedelta(minutes=1)) == {"adopted": 1, "unknown": 1}
    assert ledger.order("q-c1-KO.PEP-x-open")["status"] == "new"  # too early to say it never got there
    counts = manage_orders(ledger, broker, NOW + timedelta(minutes=6))
    assert counts["not_submitted"] == 1 and counts["unwound"] == 1
    assert ledger.order("q-c1-KO.PEP-x-open")["status"] == "not_submitted"
    assert ledger.pair_trade(trade_id)["status"] == "unwound" and broker.positions() == []
    assert any("half filled" in a["message"] for a in ledger.rows(tables.alerts))
    assert reconcile_trades(ledger, broker, NOW + timedelta(minutes=7)).discrepancies == []
    assert broker.submit_order(OrderRequest("q-c1-KO.PEP-y-open", "KO", "buy", 10.0)).status == "filled"
    assert len(broker.orders()) == 2  # a second submit of a known id returns the book's order, books nothing


def test_reconcile_reports_a_live_ledger_order_the_broker_does_not_know(ledger, tmp_path):
    """The other direction: the ledger says an order is working, the broker has never heard of it."""
    settings = BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite")
    broker = PaperBroker(paper_engine(settings.paper_url), PRICES.get, NOW, settings)
    ledger.insert_order(dict(client_order_id="q-c9-KO-s-open", cycle_id="c9", strategy="momentum", pair_id="KO",
                             leg="s", action="open", symbol="KO", side="buy", qty=5.0, filled_qty=0.0,
                             status="accepted", broker_order_id="paper-99", created_at=NOW, updated_at=NOW))
    report = reconcile_trades(ledger, broker, NOW + timedelta(minutes=1))
    assert report.discrepancies == ["ledger order q-c9-KO-s-open (accepted) is unknown to the broker: expired"]
    assert report.repaired == [] and ledger.order("q-c9-KO-s-open")["status"] == "expired"
    assert [e["rule"] for e in ledger.rows(tables.risk_events)] == ["reconcile_order_missing_at_broker"]
    assert reconcile_trades(ledger, broker, NOW + timedelta(minutes=2)).discrepancies == []
