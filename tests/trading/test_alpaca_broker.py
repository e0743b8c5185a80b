"""The Alpaca broker's real alpaca-py client against a local stand-in answering Alpaca's documented payloads."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from werkzeug import Request, Response

from pipelines.trading.brokers import AlpacaBroker, BrokerSettings, BrokerUnavailable, OrderRejected, OrderRequest
from pipelines.trading.execution import OrderIntent, place_order
from warehouse import ledger as tables

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)


def order_payload(cid: str, symbol: str, side: str, qty: float, status: str = "accepted", filled: float = 0,
                  px: float | None = None) -> dict:
    """An order as Alpaca's GET/POST /v2/orders documents it."""
    stamp = "2025-09-04T14:00:01.123456Z"
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, cid)), "client_order_id": cid, "created_at": stamp,
        "updated_at": stamp, "submitted_at": stamp, "filled_at": stamp if status == "filled" else None,
        "expired_at": None, "canceled_at": None, "failed_at": None, "replaced_at": None, "replaced_by": None,
        "replaces": None, "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": symbol,
        "asset_class": "us_equity", "notional": None, "qty": str(qty), "filled_qty": str(filled),
        "filled_avg_price": None if px is None else str(px), "order_class": "", "order_type": "market",
        "type": "market", "side": side, "time_in_force": "day", "limit_price": None, "stop_price": None,
        "status": status, "extended_hours": False, "legs": None, "trail_percent": None, "trail_price": None,
        "hwm": None, "position_intent": "buy_to_open" if side == "buy" else "sell_to_open",
    }


class FakeAlpaca:
    """Alpaca's order book as the stand-in keeps it; `posts` counts submissions per client order id."""

    def __init__(self, httpserver):
        self.orders: dict[str, dict] = {}
        self.posts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.fill = ("filled", 1.0, 100.25)
        self.reject_with: tuple[int, dict] | None = None
        self.rate_limited = 0
        self.accept_slowly = 0.0
        self.answered = threading.Event()
        httpserver.expect_request("/v2/orders", method="POST").respond_with_handler(self.submit)
        httpserver.expect_request("/v2/orders:by_client_order_id").respond_with_handler(self.by_client_id)
        httpserver.expect_request("/v2/clock").respond_with_json({
            "timestamp": "2025-09-04T10:00:00.000-04:00", "is_open": True,
            "next_open": "2025-09-05T09:30:00-04:00", "next_close": "2025-09-04T16:00:00-04:00"})
        httpserver.expect_request("/v2/account").respond_with_json({
            "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA1", "status": "ACTIVE",
            "currency": "USD", "cash": "98000.50", "portfolio_value": "100500.25", "equity": "100500.25",
            "buying_power": "196001.00", "pattern_day_trader": False, "trading_blocked": False,
            "transfers_blocked": False, "account_blocked": False, "created_at": "2024-01-01T00:00:00Z",
            "trade_suspended_by_user": False, "multiplier": "2", "shorting_enabled": True,
            "long_market_value": "2500", "short_market_value": "0", "initial_margin": "1250",
            "maintenance_margin": "750", "last_equity": "100000", "last_maintenance_margin": "0", "sma": "0",
            "daytrade_count": 0, "crypto_status": "ACTIVE"})
        httpserver.expect_request("/v2/positions").respond_with_json([{
            "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": "KO", "exchange": "NYSE",
            "asset_class": "us_equity", "avg_entry_price": "60.10", "qty": "25", "qty_available": "25",
            "side": "long", "market_value": "1512.50", "cost_basis": "1502.50", "unrealized_pl": "10",
            "unrealized_plpc": "0.0066", "unrealized_intraday_pl": "10", "unrealized_intraday_plpc": "0.0066",
            "current_price": "60.50", "lastday_price": "60.00", "change_today": "0.0083"}])

    def submit(self, request: Request) -> Response:
        body = json.loads(request.data)
        cid = body["client_order_id"]
        with self.lock:
            self.posts[cid] = self.posts.get(cid, 0) + 1
            if self.rate_limited:
                self.rate_limited -= 1
                return Response(json.dumps({"code": 42910000, "message": "rate limit exceeded"}), status=429)
            if self.reject_with:
                status, payload = self.reject_with
                return Response(json.dumps(payload), status=status, content_type="application/json")
            if cid in self.orders:
                return Response(json.dumps({"code": 40010001, "message": "client_order_id must be unique"}),
                                status=422, content_type="application/json")
            status, share, px = self.fill
            qty = float(body["qty"])
            self.orders[cid] = order_payload(cid, body["symbol"], body["side"], qty, status, qty * share,
                                             px if share else None)
        if self.accept_slowly:
            time.sleep(self.accept_slowly)  # accepted, but the answer comes after the client gave up
        self.answered.set()
        return Response(json.dumps(self.orders[cid]), content_type="application/json")

    def by_client_id(self, request: Request) -> Response:
        cid = request.args["client_order_id"]
        with self.lock:
            found = self.orders.get(cid)
        if found is None:
            return Response(json.dumps({"code": 40410000, "message": "order not found"}), status=404)
        return Response(json.dumps(found), content_type="application/json")


@pytest.fixture
def alpaca(httpserver):
    fake = FakeAlpaca(httpserver)
    settings = BrokerSettings(name="alpaca", alpaca_api_key="key", alpaca_secret_key="secret",
                              alpaca_url=httpserver.url_for("").rstrip("/"), http_timeout_seconds=0.5,
                              retry_wait_seconds=0)
    return fake, AlpacaBroker(settings)


def intent(leg="y", symbol="KO", side="buy", qty=10.0):
    return OrderIntent("pairs-20250904T1400", "pairs", "KO/PEP", leg, "open", symbol, side, qty, "t1")


def test_clock_account_and_positions_parse_alpacas_payloads(alpaca):
    _, broker = alpaca
    assert broker.clock(NOW).is_open
    account = broker.account()
    assert account.equity == 100500.25 and account.cash == 98000.50
    [position] = broker.positions()
    assert (position.symbol, position.qty, position.avg_entry_px, position.market_px) == ("KO", 25.0, 60.10, 60.50)


@pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)
def test_accepted_and_filled_orders_land_in_the_ledger_with_their_fills(alpaca, ledger):
    fake, broker = alpaca
    row = place_order(ledger, broker, intent(), NOW)
    assert (row["status"], row["filled_qty"], row["avg_fill_px"]) == ("filled", 10.0, 100.25)
    assert ledger.count(tables.fills) == 1
    fake.fill = ("accepted", 0.0, None)
    accepted = place_order(ledger, broker, intent(leg="x", symbol="PEP", side="sell"), NOW)
    assert accepted["status"] == "accepted" and accepted["broker_order_id"]


@pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)
def test_partially_filled_order_records_the_filled_part_only(alpaca, ledger):
    fake, broker = alpaca
    fake.fill = ("partially_filled", 0.5, 99.0)
    row = place_order(ledger, broker, intent(qty=10.0), NOW)
    assert (row["status"], row["filled_qty"]) == ("partially_filled", 5.0)
    [fill] = ledger.rows(tables.fills)
    assert (fill["qty"], fill["px"]) == (5.0, 99.0)


@pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)
def test_rejected_order_is_final_with_alpacas_reason(alpaca, ledger):
    fake, broker = alpaca
    fake.reject_with = (403, {"code": 40310000, "message": "insufficient buying power"})
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        broker.submit_order(OrderRequest("q-direct", "KO", "buy", 1.0))
    row = place_order(ledger, broker, intent(), NOW)
    assert row["status"] == "rejected" and "insufficient buying power" in row["reason"]
    assert fake.posts[intent().client_order_id] == 1


@pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)
def test_rate_limited_submit_is_retried_until_accepted(alpaca, ledger):
    fake, broker = alpaca
    fake.rate_limited = 1
    row = place_order(ledger, broker, intent(), NOW)
    assert row["status"] == "filled"
    assert fake.posts[intent().client_order_id] == 2 and len(fake.orders) == 1


@pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)
def test_timeout_after_acceptance_finds_the_order_instead_of_submitting_again(alpaca, ledger):
    fake, broker = alpaca
    fake.accept_slowly = 1.5
    try:
        place_order(ledger, broker, intent(), NOW)
    except BrokerUnavailable:
        pass  # the lookup queued behind the slow answer timed out too: the order's fate is unknown
    assert fake.answered.wait(10)
    assert ledger.order(intent().client_order_id)["status"] in ("new", "filled")
    fake.accept_slowly = 0.0
    again = place_order(ledger, broker, intent(), NOW)  # the retried cycle
    assert (again["status"], again["filled_qty"]) == ("filled", 10.0) and again["broker_order_id"]
    assert fake.posts == {intent().client_order_id: 1} and ledger.count(tables.orders) == 1
