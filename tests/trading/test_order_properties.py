"""Whatever Alpaca answers while a pair is opened, the next order-management run leaves every order in a known
state and the ledger equal to the broker: a hypothesis property over random fault scripts, against the loopback
stand-in with a real SQLite ledger."""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines.brokers import AlpacaBroker, BrokerError
from pipelines.trading.execution import OrderIntent, place_order
from pipelines.trading.lifecycle import manage_orders, reconcile_trades
from tests.trading.alpaca_standin import AlpacaStandIn
from warehouse import ledger as tables
from warehouse.ledger import Ledger, upgrade
from pipelines.settings import AlpacaKeys, BrokerConfig

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)
TRADE = "pairs:KO/PEP:c1"
LEDGER_STATUS = {"filled": "filled", "accepted": "accepted", "partially_filled": "partially_filled",
                 "canceled": "cancelled"}
SUBMIT_FAULTS = ["accept_then_504", "accept_then_reset", "504", "reset", "429", "malformed", "403"]
LOOKUP_FAULTS = ["404", "504", "reset"]


def open_pair(ledger: Ledger, broker: AlpacaBroker) -> None:
    """What a cycle does: the trade row, then each leg at most once, stopping at the first unknown outcome."""
    ledger.insert_pair_trade(dict(
        pair_trade_id=TRADE, strategy="pairs", pair_id="KO/PEP", side="long_spread", status="opening",
        symbol_y="KO", symbol_x="PEP", hedge_ratio=1.0, target_y_qty=10.0, target_x_qty=-4.0, entry_ts=NOW,
        opened_cycle_id="c1"))
    for leg, symbol, side, qty in (("y", "KO", "buy", 10.0), ("x", "PEP", "sell", 4.0)):
        try:
            place_order(ledger, broker, OrderIntent("c1", "pairs", "KO/PEP", leg, "open", symbol, side, qty, TRADE),
                        NOW)
        except BrokerError:
            return


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(submit=st.lists(st.sampled_from(SUBMIT_FAULTS), max_size=6),
       lookup=st.lists(st.sampled_from(LOOKUP_FAULTS), max_size=3),
       rule=st.sampled_from(["unwind", "complete"]))
@pytest.mark.slow
def test_after_any_fault_script_every_order_is_known_and_the_books_agree(submit, lookup, rule):
    standin = AlpacaStandIn(prices={"KO": 60.0, "PEP": 150.0})
    engine = sa.create_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'ledger.sqlite'}")
    try:
        upgrade(engine)
        ledger = Ledger(engine)
        broker = AlpacaBroker(BrokerConfig(name="alpaca", alpaca_url=standin.url, http_timeout_seconds=0.5, retry_wait_seconds=0,
                                             request_attempts=2), AlpacaKeys(api_key="key", secret_key="secret"))  # two attempts: unknown outcomes are common
        standin.fault("submit", *submit)
        standin.fault("lookup", *lookup)
        open_pair(ledger, broker)
        standin.faults.clear()  # Alpaca is answering again by the next hour
        later = NOW + timedelta(hours=1)
        manage_orders(ledger, broker, later, half_fill_rule=rule)
        reconcile_trades(ledger, broker, later, half_fill_rule=rule)

        assert [cid for cid, n in Counter(standin.bookings).items() if n > 1] == []
        rows = {o["client_order_id"]: o for o in ledger.rows(tables.orders)}
        assert {cid: LEDGER_STATUS[o["status"]] for cid, o in standin.orders.items()} == {
            cid: row["status"] for cid, row in rows.items() if cid in standin.orders}
        assert all(row["status"] in ("not_submitted", "rejected") for cid, row in rows.items()
                   if cid not in standin.orders)
        trade = ledger.pair_trade(TRADE)
        event(f"trade {trade['status']}, orders {sorted(Counter(r['status'] for r in rows.values()).items())}")
        held: dict[str, float] = defaultdict(float)
        for order in ledger.orders_of_trade(TRADE):
            held[order["symbol"]] += order["filled_qty"] if order["side"] == "buy" else -order["filled_qty"]
        at_broker = {symbol: qty for symbol, (qty, _) in standin.positions().items()}
        assert {s: q for s, q in held.items() if abs(q) > 1e-9} == at_broker
        if trade["status"] == "open":
            assert at_broker == {"KO": 10.0, "PEP": -4.0}
        else:  # never opened, or half filled and unwound: nothing may stay held
            assert trade["status"] in ("cancelled", "unwound") and at_broker == {}, (trade["status"], at_broker)
        assert reconcile_trades(ledger, broker, later + timedelta(minutes=5)).discrepancies == []
    finally:
        engine.dispose()
        standin.stop()
