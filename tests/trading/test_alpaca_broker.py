"""The Alpaca broker's real alpaca-py client against a loopback stand-in answering Alpaca's documented payloads,
including the way Alpaca answers under faults: each ambiguous submit is looked up by client order id and adopted,
never sent twice; every failure is a BrokerError naming the endpoint and what to check."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipelines.brokers import (
    AlpacaBroker,
    BrokerAuthError,
    BrokerMalformed,
    BrokerUnavailable,
    OrderRejected,
    OrderRequest,
)
from pipelines.trading.execution import OrderIntent, place_order
from tests.trading.alpaca_standin import AlpacaStandIn
from warehouse import ledger as tables
from pipelines.settings import AlpacaKeys, BrokerConfig

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)
pytestmark = pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)


@pytest.fixture
def alpaca():
    standin = AlpacaStandIn(prices={"KO": 100.25, "PEP": 150.0})
    settings = BrokerConfig(name="alpaca", alpaca_url=standin.url,
                              http_timeout_seconds=0.5, retry_wait_seconds=0)
    yield standin, AlpacaBroker(settings, AlpacaKeys(api_key="key", secret_key="secret"))
    standin.stop()


def intent(leg="y", symbol="KO", side="buy", qty=10.0):
    return OrderIntent("pairs-20250904T1400", "pairs", "KO/PEP", leg, "open", symbol, side, qty, "t1")


def booked_once(standin: AlpacaStandIn, ledger) -> None:
    """The broker holds the order exactly once and the ledger has exactly its state and fill."""
    cid = intent().client_order_id
    assert list(standin.orders) == [cid]
    row = ledger.order(cid)
    assert (row["status"], row["filled_qty"], row["avg_fill_px"]) == ("filled", 10.0, 100.25)
    assert row["broker_order_id"] == standin.orders[cid]["id"]
    assert ledger.count(tables.orders) == 1 and ledger.count(tables.fills) == 1


def test_clock_account_and_positions_parse_alpacas_payloads(alpaca, ledger):
    standin, broker = alpaca
    assert broker.clock(NOW).is_open
    assert broker.account().equity == 1_000_000.0
    place_order(ledger, broker, intent(qty=25.0), NOW)
    [position] = broker.positions()
    assert (position.symbol, position.qty, position.avg_entry_px, position.market_px) == ("KO", 25.0, 100.25, 100.25)
    assert broker.account().cash == pytest.approx(1_000_000.0 - 25 * 100.25)


def test_accepted_and_filled_orders_land_in_the_ledger_with_their_fills(alpaca, ledger):
    standin, broker = alpaca
    place_order(ledger, broker, intent(), NOW)
    booked_once(standin, ledger)
    standin.fill = ("accepted", 0.0)
    accepted = place_order(ledger, broker, intent(leg="x", symbol="PEP", side="sell"), NOW)
    assert accepted["status"] == "accepted" and accepted["broker_order_id"]


def test_partially_filled_order_records_the_filled_part_only(alpaca, ledger):
    standin, broker = alpaca
    standin.fill = ("partially_filled", 0.5)
    row = place_order(ledger, broker, intent(qty=10.0), NOW)
    assert (row["status"], row["filled_qty"]) == ("partially_filled", 5.0)
    [fill] = ledger.rows(tables.fills)
    assert (fill["qty"], fill["px"]) == (5.0, 100.25)


def test_rejected_order_is_final_with_alpacas_reason(alpaca, ledger):
    standin, broker = alpaca
    standin.fault("submit", "403")
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        broker.submit_order(OrderRequest("q-direct", "KO", "buy", 1.0))
    standin.fault("submit", "403")
    row = place_order(ledger, broker, intent(), NOW)
    assert row["status"] == "rejected" and "insufficient buying power" in row["reason"]
    assert standin.posts[intent().client_order_id] == 1 and standin.orders == {}


def test_a_rate_limited_submit_is_retried_by_quarry_not_by_alpaca_py(alpaca, ledger):
    standin, broker = alpaca
    standin.fault("submit", "429")
    place_order(ledger, broker, intent(), NOW)
    booked_once(standin, ledger)
    assert standin.posts[intent().client_order_id] == 2


def test_four_429s_leave_the_order_new_with_its_outcome_unknown(alpaca, ledger):
    standin, broker = alpaca
    standin.fault("submit", "429", "429", "429", "429")
    with pytest.raises(BrokerUnavailable, match=r"POST /v2/orders .*HTTP 429.*gave up after 4 attempts"):
        place_order(ledger, broker, intent(), NOW)
    row = ledger.order(intent().client_order_id)
    assert row["status"] == "new" and "outcome unknown" in row["reason"]
    assert standin.posts[intent().client_order_id] == 4 and standin.orders == {}


@pytest.mark.parametrize("fault", ["accept_then_504", "accept_then_reset", "malformed", "slow"])
def test_an_accepted_order_whose_answer_is_lost_is_adopted_not_resent(alpaca, ledger, fault):
    """alpaca-py would have re-POSTed after the 504 and met 422; Quarry looks the order up and adopts it."""
    standin, broker = alpaca
    standin.fault("submit", fault)
    place_order(ledger, broker, intent(), NOW)
    booked_once(standin, ledger)
    assert standin.posts[intent().client_order_id] == 1


@pytest.mark.parametrize("fault", ["504", "reset"])
def test_a_submit_lost_before_alpaca_booked_it_is_sent_again_after_the_lookup(alpaca, ledger, fault):
    standin, broker = alpaca
    standin.fault("submit", fault)
    place_order(ledger, broker, intent(), NOW)
    booked_once(standin, ledger)
    assert standin.posts[intent().client_order_id] == 2


def test_a_422_duplicate_id_is_an_ambiguous_outcome_resolved_by_lookup(alpaca, ledger):
    """Accepted, 504, and the lookup cannot see it yet: the second POST meets 422 and the order is adopted."""
    standin, broker = alpaca
    standin.fault("submit", "accept_then_504")
    standin.fault("lookup", "404", "404")  # place_order's own lookup, then the one after the 504
    row = place_order(ledger, broker, intent(), NOW)
    assert row["status"] == "filled"
    booked_once(standin, ledger)
    assert standin.posts[intent().client_order_id] == 2


def test_reads_are_retried_through_resets_and_5xx(alpaca, ledger):
    standin, broker = alpaca
    standin.fault("positions", "reset", "504", "429")
    assert broker.positions() == []
    standin.fault("clock", "504", "504", "504", "504")
    with pytest.raises(BrokerUnavailable, match=r"GET /v2/clock.*HTTP 504.*client order id"):
        broker.clock(NOW)


@pytest.mark.parametrize("status, endpoint", [("401", "clock"), ("403", "account"), ("401", "lookup")])
def test_a_refused_key_names_the_keys_to_check(alpaca, ledger, status, endpoint):
    standin, broker = alpaca
    standin.fault(endpoint, status)
    call = {"clock": lambda: broker.clock(NOW), "account": broker.account,
            "lookup": lambda: broker.get_order("q-x")}[endpoint]
    with pytest.raises(BrokerAuthError, match=rf"HTTP {status}.*check ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        call()


@pytest.mark.parametrize("endpoint, path", [("clock", "GET /v2/clock"), ("account", "GET /v2/account"),
                                            ("positions", "GET /v2/positions"), ("orders", "GET /v2/orders"),
                                            ("lookup", "GET /v2/orders:by_client_order_id")])
def test_a_malformed_answer_is_a_broker_error_naming_the_endpoint(alpaca, ledger, endpoint, path):
    standin, broker = alpaca
    place_order(ledger, broker, intent(), NOW)
    standin.fault(endpoint, "malformed")
    call = {"clock": lambda: broker.clock(NOW), "account": broker.account, "positions": broker.positions,
            "orders": broker.orders, "lookup": lambda: broker.get_order(intent().client_order_id)}[endpoint]
    with pytest.raises(BrokerMalformed, match=rf"{path}.*QUARRY_ALPACA_TRADING_URL"):
        call()


def test_wrong_values_in_a_well_formed_answer_are_malformed_too(alpaca, ledger):
    standin, broker = alpaca
    place_order(ledger, broker, intent(), NOW)
    standin.orders[intent().client_order_id]["filled_qty"] = "ten"
    with pytest.raises(BrokerMalformed, match="filled_qty"):
        broker.get_order(intent().client_order_id)


def test_an_order_given_up_on_that_alpaca_did_fill_is_taken_back_by_reconcile(alpaca, ledger):
    """Alpaca's lookup trails its accept for longer than the grace: the leg is marked not_submitted and the pair
    released. Reconcile, walking Alpaca's orders, finds the fill, brings the trade back with a critical alert and
    unwinds it, so no position stays held without a live pair trade."""
    from datetime import timedelta

    from pipelines.trading.lifecycle import manage_orders, reconcile_trades

    standin, broker = alpaca
    ledger.insert_pair_trade(dict(
        pair_trade_id="t1", strategy="pairs", pair_id="KO/PEP", side="long_spread", status="opening",
        symbol_y="KO", symbol_x="PEP", hedge_ratio=1.0, target_y_qty=10.0, target_x_qty=-4.0, entry_ts=NOW,
        opened_cycle_id="pairs-20250904T1400"))
    standin.fault("submit", "accept_then_504")
    standin.fault("lookup", *["404"] * 9)
    with pytest.raises(BrokerUnavailable, match="client_order_id must be unique"):
        place_order(ledger, broker, intent(), NOW)
    later = NOW + timedelta(hours=1)
    manage_orders(ledger, broker, later)
    assert ledger.order(intent().client_order_id)["status"] == "not_submitted"
    assert ledger.pair_trade("t1")["status"] == "cancelled"
    assert standin.positions()["KO"][0] == 10.0  # ... yet Alpaca holds the leg

    report = reconcile_trades(ledger, broker, later + timedelta(minutes=5))
    assert any("took the broker's" in d for d in report.repaired)
    assert any(a["level"] == "critical" and "was cancelled but the broker filled" in a["message"]
               for a in ledger.rows(tables.alerts))
    assert ledger.pair_trade("t1")["status"] == "unwound" and standin.positions() == {}
    assert [o["status"] for o in ledger.rows(tables.orders)] == ["filled", "filled"]
    assert reconcile_trades(ledger, broker, later + timedelta(minutes=10)).discrepancies == []
