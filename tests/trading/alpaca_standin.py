"""A loopback stand-in for Alpaca's trading API: its documented payloads, its order book, and its faults on cue.

It keeps orders the way Alpaca does (a client order id is unique: a second POST answers 422
"client_order_id must be unique"), fills market orders at once at a fixed price per symbol,
derives positions and the account from the fills, and answers each endpoint's next request
with a scripted fault when one is queued:

- `accept_then_504`, `accept_then_reset`: the order is booked, then the gateway answers 504 or
  the connection is reset before any answer;
- `504`, `reset`: the request is lost before Alpaca books anything;
- `429`: rate limited (nothing booked); `slow`: booked, answered after `slow_seconds`;
- `hold`: booked, then the answer waits until `release` is set (a client killed meanwhile);
- `malformed`: a 200 whose body is not Alpaca's payload (the order, if any, is booked);
- `404` (lookups): the order is not visible yet, as right after an accept;
- `401`, `403`: the key is refused.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field

from werkzeug import Request, Response
from werkzeug.serving import make_server

ASSET_ID = "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415"
STAMP = "2025-09-04T14:00:01.123456Z"
INITIAL_CASH = 1_000_000.0


def order_payload(cid: str, symbol: str, side: str, qty: float, status: str = "accepted", filled: float = 0,
                  px: float | None = None) -> dict:
    """An order as Alpaca's GET/POST /v2/orders documents it."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, cid)), "client_order_id": cid, "created_at": STAMP,
        "updated_at": STAMP, "submitted_at": STAMP, "filled_at": STAMP if status == "filled" else None,
        "expired_at": None, "canceled_at": None, "failed_at": None, "replaced_at": None, "replaced_by": None,
        "replaces": None, "asset_id": ASSET_ID, "symbol": symbol,
        "asset_class": "us_equity", "notional": None, "qty": f"{qty:g}", "filled_qty": f"{filled:g}",
        "filled_avg_price": None if px is None else str(px), "order_class": "", "order_type": "market",
        "type": "market", "side": side, "time_in_force": "day", "limit_price": None, "stop_price": None,
        "status": status, "extended_hours": False, "legs": None, "trail_percent": None, "trail_price": None,
        "hwm": None, "position_intent": "buy_to_open" if side == "buy" else "sell_to_open",
    }


def error_body(status: int, code: int, message: str) -> Response:
    return Response(json.dumps({"code": code, "message": message}), status=status, content_type="application/json")


@dataclass
class AlpacaStandIn:
    """Alpaca's order book as the stand-in keeps it, served on 127.0.0.1 by a threaded werkzeug server."""

    prices: dict[str, float] = field(default_factory=dict)
    fill: tuple[str, float] = ("filled", 1.0)  # status and filled share of every accepted order
    slow_seconds: float = 1.5
    orders: dict[str, dict] = field(default_factory=dict)
    posts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    faults: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    booked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    bookings: list[str] = field(default_factory=list)  # every client order id Alpaca booked, in order

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def fault(self, endpoint: str, *faults: str) -> None:
        """Queue faults for the next requests to `endpoint` (submit, lookup, orders, positions, clock, account)."""
        self.faults[endpoint].extend(faults)

    # ---- the book ----------------------------------------------------------------------

    def positions(self) -> dict[str, tuple[float, float]]:
        """Per symbol: signed quantity and average entry price, from every fill."""
        book: dict[str, tuple[float, float]] = {}
        for order in self.orders.values():
            filled = float(order["filled_qty"])
            if filled <= 0:
                continue
            signed = filled if order["side"] == "buy" else -filled
            px = float(order["filled_avg_price"])
            qty, avg = book.get(order["symbol"], (0.0, 0.0))
            new = qty + signed
            if abs(new) < 1e-9:
                book.pop(order["symbol"], None)
            elif qty == 0 or (qty > 0) == (signed > 0):
                book[order["symbol"]] = (new, (avg * qty + px * signed) / new)
            else:
                book[order["symbol"]] = (new, avg if (new > 0) == (qty > 0) else px)
        return book

    def _book(self, body: dict) -> dict:
        cid, symbol, qty = body["client_order_id"], body["symbol"], float(body["qty"])
        status, share = self.fill
        px = self.prices.get(symbol, 100.0)
        self.orders[cid] = order_payload(cid, symbol, body["side"], qty, status, qty * share, px if share else None)
        self.bookings.append(cid)
        self.booked.set()
        return self.orders[cid]

    # ---- HTTP ---------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        return self._route(request, environ)(environ, start_response)

    def _route(self, request: Request, environ) -> Response:
        path, method = request.path, request.method
        if path == "/v2/orders" and method == "POST":
            return self._submit(request, environ)
        if path == "/v2/orders:by_client_order_id":
            return self._answer("lookup", environ, lambda: self._lookup(request.args["client_order_id"]))
        if path == "/v2/orders" and method == "GET":
            return self._answer("orders", environ, lambda: Response(
                json.dumps(list(self.orders.values())[-int(request.args.get("limit", 500)):]),
                content_type="application/json"))
        if path.startswith("/v2/orders/") and method == "DELETE":
            return self._cancel(path.rsplit("/", 1)[1])
        if path == "/v2/positions":
            return self._answer("positions", environ, self._positions)
        if path == "/v2/clock":
            return self._answer("clock", environ, lambda: Response(json.dumps({
                "timestamp": "2025-09-04T10:00:00.000-04:00", "is_open": True,
                "next_open": "2025-09-05T09:30:00-04:00", "next_close": "2025-09-04T16:00:00-04:00"}),
                content_type="application/json"))
        if path == "/v2/account":
            return self._answer("account", environ, self._account)
        return error_body(404, 40410000, f"no route {method} {path}")

    def _next_fault(self, endpoint: str) -> str | None:
        with self.lock:
            queue = self.faults[endpoint]
            return queue.popleft() if queue else None

    def _answer(self, endpoint: str, environ, build) -> Response:
        fault = self._next_fault(endpoint)
        if fault is None:
            with self.lock:
                return build()
        if fault == "404":  # not visible yet: Alpaca's lookup can trail its accept by a moment
            return error_body(404, 40410000, "order not found")
        return self._fail(fault, environ) or Response("{}", content_type="application/json")

    @staticmethod
    def _fail(fault: str, environ) -> Response | None:
        """The answer a fault gives when nothing was booked, or None when it is not a failure by itself."""
        if fault in ("504", "accept_then_504"):
            return Response("<html><body><h1>504 Gateway Time-out</h1></body></html>", status=504,
                            content_type="text/html")
        if fault in ("reset", "accept_then_reset"):
            sock = environ["werkzeug.socket"]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST: the client sees "connection reset by peer" and no answer
            return Response("", status=500)
        if fault == "429":
            return error_body(429, 42910000, "rate limit exceeded")
        if fault == "401":
            return error_body(401, 40110000, "request is not authorized")
        if fault == "403":
            return error_body(403, 40310000, "forbidden")
        if fault == "malformed":
            return Response('{"id": 17, "status": ', content_type="application/json")
        return None

    def _submit(self, request: Request, environ) -> Response:
        body = json.loads(request.data)
        cid = body["client_order_id"]
        fault = self._next_fault("submit")
        with self.lock:
            self.posts[cid] += 1
            if fault == "403":  # what Alpaca answers an order it will not take
                return error_body(403, 40310000, "insufficient buying power")
            if fault in ("504", "reset", "429", "401"):
                return self._fail(fault, environ)
            if cid in self.orders:
                return error_body(422, 40010001, "client_order_id must be unique")
            order = self._book(body)
        if fault in ("accept_then_504", "accept_then_reset", "malformed"):
            return self._fail(fault, environ)
        if fault == "slow":
            time.sleep(self.slow_seconds)  # booked, but the answer comes after the client gave up
        if fault == "hold":
            self.release.wait(60)
        return Response(json.dumps(order), content_type="application/json")

    def _lookup(self, cid: str) -> Response:
        found = self.orders.get(cid)
        if found is None:
            return error_body(404, 40410000, "order not found for " + cid)
        return Response(json.dumps(found), content_type="application/json")

    def _cancel(self, order_id: str) -> Response:
        with self.lock:
            for order in self.orders.values():
                if order["id"] == order_id:
                    if order["status"] in ("filled", "canceled", "expired", "rejected"):
                        return error_body(422, 42210000, "order is not cancelable")
                    order["status"] = "canceled"
                    return Response("", status=204)
        return error_body(404, 40410000, "order not found")

    def _positions(self) -> Response:
        rows = []
        for symbol, (qty, avg) in sorted(self.positions().items()):
            px = self.prices.get(symbol, 100.0)
            rows.append({
                "asset_id": ASSET_ID, "symbol": symbol, "exchange": "NYSE", "asset_class": "us_equity",
                "avg_entry_price": f"{avg:.4f}", "qty": f"{qty:g}", "qty_available": f"{qty:g}",
                "side": "long" if qty > 0 else "short", "market_value": f"{qty * px:.2f}",
                "cost_basis": f"{qty * avg:.2f}", "unrealized_pl": f"{qty * (px - avg):.2f}",
                "unrealized_plpc": "0", "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0",
                "current_price": f"{px}", "lastday_price": f"{px}", "change_today": "0"})
        return Response(json.dumps(rows), content_type="application/json")

    def _account(self) -> Response:
        cash = INITIAL_CASH
        for order in self.orders.values():
            filled = float(order["filled_qty"])
            if filled > 0:
                cash += (-1 if order["side"] == "buy" else 1) * filled * float(order["filled_avg_price"])
        value = sum(qty * self.prices.get(s, 100.0) for s, (qty, _) in self.positions().items())
        equity = cash + value
        return Response(json.dumps({
            "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA1", "status": "ACTIVE",
            "currency": "USD", "cash": f"{cash:.2f}", "portfolio_value": f"{equity:.2f}", "equity": f"{equity:.2f}",
            "buying_power": f"{2 * equity:.2f}", "pattern_day_trader": False, "trading_blocked": False,
            "transfers_blocked": False, "account_blocked": False, "created_at": "2024-01-01T00:00:00Z",
            "trade_suspended_by_user": False, "multiplier": "2", "shorting_enabled": True,
            "long_market_value": "0", "short_market_value": "0", "initial_margin": "0",
            "maintenance_margin": "0", "last_equity": f"{equity:.2f}", "last_maintenance_margin": "0", "sma": "0",
            "daytrade_count": 0, "crypto_status": "ACTIVE"}), content_type="application/json")
