"""Pairs cycles on a real lake and ledger against the loopback Alpaca stand-in, under the faults Alpaca really
answers with: accepted then 504, accepted then a reset connection, four 429s and a cycle in the next hour, a slow
accept, a 422 duplicate client order id, and a cycle process SIGKILLed between its two legs' submits.

After each: every client order id was booked at most once at the broker, the ledger's orders and positions are the
broker's, every broker position belongs to a live pair trade (or is alerted), no order is left with an unknown
outcome, and a second reconciliation finds nothing to say.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipelines.trading import operations as ops
from pipelines.brokers import BrokerMaker
from pipelines.trading.runtime import TradingRuntime
from tests.trading.alpaca_standin import AlpacaStandIn
from tests.trading.conftest import build_lake
from warehouse import ledger as tables
from warehouse.ledger import Ledger, LedgerConfig
from pipelines.settings import AlpacaKeys, BrokerConfig, RiskLimits, TradingConfig

pytestmark = pytest.mark.slow
OPEN_AT = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)  # GS/MS enters long on the 13:00 bar
NEXT_HOUR = OPEN_AT + timedelta(hours=1)
Y_OPEN = "q-pairs-20250904T1400-GS.MS-y-open"
X_OPEN = "q-pairs-20250904T1400-GS.MS-x-open"
LEDGER_STATUS = {"filled": "filled", "accepted": "accepted", "partially_filled": "partially_filled",
                 "canceled": "cancelled"}
LIVE = ("opening", "open", "closing")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault-lake")
    warehouse = build_lake(root)
    yield warehouse, root
    warehouse.close()


@pytest.fixture
def alpaca(lake):
    warehouse, _ = lake
    prices = make_runtime(warehouse, "sqlite://", "http://127.0.0.1:9").validated_prices(OPEN_AT)[0]
    standin = AlpacaStandIn(prices=prices)
    yield standin
    standin.stop()


def make_runtime(warehouse, ledger_url: str, alpaca_url: str) -> TradingRuntime:
    return TradingRuntime(
        warehouse, Ledger.open(LedgerConfig(url=ledger_url)),
        BrokerMaker(BrokerConfig(name="alpaca", alpaca_url=alpaca_url, http_timeout_seconds=0.5, retry_wait_seconds=0),
                    AlpacaKeys(api_key="key", secret_key="secret")),
        RiskLimits(), TradingConfig(check_market_clock=False))


def assert_books_agree(runtime: TradingRuntime, standin: AlpacaStandIn, now: datetime) -> None:
    """The acceptance invariants, read from the broker's book and the ledger's tables directly."""
    ledger = runtime.ledger
    assert [cid for cid, n in Counter(standin.bookings).items() if n > 1] == []
    rows = {o["client_order_id"]: o for o in ledger.rows(tables.orders)}
    for cid, order in standin.orders.items():
        row = rows[cid]
        assert (row["symbol"], row["side"], row["qty"]) == (order["symbol"], order["side"], float(order["qty"]))
        assert (row["status"], row["filled_qty"]) == (LEDGER_STATUS[order["status"]], float(order["filled_qty"]))
    for cid, row in rows.items():
        assert cid in standin.orders or row["status"] in ("not_submitted", "rejected"), row
    assert [cid for cid, row in rows.items() if row["status"] == "new"] == []

    held: dict[str, float] = defaultdict(float)
    for fill in ledger.rows(tables.fills):
        held[fill["symbol"]] += fill["qty"] if fill["side"] == "buy" else -fill["qty"]
    at_broker = {symbol: qty for symbol, (qty, _) in standin.positions().items()}
    assert {s: q for s, q in held.items() if abs(q) > 1e-9} == pytest.approx(at_broker)

    owned: dict[str, float] = defaultdict(float)
    for trade in ledger.rows(tables.pair_trades, tables.pair_trades.c.status.in_(LIVE)):
        for order in ledger.orders_of_trade(trade["pair_trade_id"]):
            owned[order["symbol"]] += order["filled_qty"] if order["side"] == "buy" else -order["filled_qty"]
    alerted = {a["subject"] for a in ledger.rows(tables.alerts) if "belongs to no live pair trade" in a["message"]}
    for symbol, qty in at_broker.items():
        assert abs(owned.get(symbol, 0.0) - qty) < 1e-9 or symbol in alerted, (symbol, qty, dict(owned))
    assert ops.run_reconcile(runtime, now).discrepancies == []


@pytest.mark.parametrize("faults, posts", [
    ({"submit": ["accept_then_504"]}, 1),
    ({"submit": ["accept_then_reset"]}, 1),
    ({"submit": ["slow"]}, 1),
    ({"submit": ["accept_then_504"], "lookup": ["404", "404"]}, 2),  # the second POST meets 422 duplicate id
], ids=["accept-then-504", "accept-then-reset", "slow-accept", "422-duplicate-id"])
def test_an_accepted_order_whose_answer_was_lost_is_adopted_and_the_pair_opens(lake, alpaca, tmp_path, faults, posts):
    warehouse, _ = lake
    runtime = make_runtime(warehouse, f"sqlite:///{tmp_path}/ledger.sqlite", alpaca.url)
    for endpoint, queued in faults.items():
        alpaca.fault(endpoint, *queued)
    report = ops.run_pairs_cycle(runtime, OPEN_AT)
    assert report.status == "done", report.reason
    assert alpaca.posts[Y_OPEN] == posts and alpaca.posts[X_OPEN] == 1
    [trade] = [t for t in runtime.ledger.rows(tables.pair_trades) if t["pair_id"] == "GS/MS"]
    assert trade["status"] == "open" and (trade["y_qty"], trade["x_qty"]) == (trade["target_y_qty"], trade["target_x_qty"])
    assert runtime.ledger.order(Y_OPEN)["status"] == "filled"
    assert ops.run_pairs_cycle(runtime, NEXT_HOUR).status == "done"
    assert_books_agree(runtime, alpaca, NEXT_HOUR + timedelta(minutes=10))


def test_four_429s_fail_the_cycle_and_the_next_hour_releases_the_pair(lake, alpaca, tmp_path):
    warehouse, _ = lake
    runtime = make_runtime(warehouse, f"sqlite:///{tmp_path}/ledger.sqlite", alpaca.url)
    alpaca.fault("submit", "429", "429", "429", "429")
    report = ops.run_pairs_cycle(runtime, OPEN_AT)
    assert report.status == "failed" and "POST /v2/orders" in report.reason and "HTTP 429" in report.reason
    [cycle] = runtime.ledger.rows(tables.cycles)
    assert cycle["status"] == "failed" and "HTTP 429" in cycle["reason"]
    [alert] = runtime.ledger.rows(tables.alerts)
    assert alert["level"] == "critical" and report.cycle_id in alert["message"]
    assert runtime.ledger.order(Y_OPEN)["status"] == "new" and alpaca.orders == {}

    assert ops.run_pairs_cycle(runtime, NEXT_HOUR).status == "done"
    assert runtime.ledger.order(Y_OPEN)["status"] == "not_submitted"
    [trade] = runtime.ledger.rows(tables.pair_trades, tables.pair_trades.c.opened_cycle_id == report.cycle_id)
    assert trade["status"] == "cancelled"  # released: the pair may enter again
    assert "unknown" not in ops.run_manage_orders(runtime, NEXT_HOUR)
    assert alpaca.posts[Y_OPEN] == 4 and X_OPEN not in alpaca.posts
    assert_books_agree(runtime, alpaca, NEXT_HOUR + timedelta(minutes=10))


@pytest.mark.parametrize("retry_at, final", [(OPEN_AT, "open"), (NEXT_HOUR, "unwound")],
                         ids=["same-hour-resumes", "next-hour-unwinds"])
def test_a_cycle_killed_between_its_legs_leaves_nothing_untracked(lake, alpaca, tmp_path, retry_at, final):
    """The first leg is booked at Alpaca and the process dies before it hears so (and before the second leg).
    The same cycle retried resumes both legs; a cycle in the next hour adopts the first and unwinds it."""
    warehouse, root = lake
    ledger_url = f"sqlite:///{tmp_path}/ledger.sqlite"
    runtime = make_runtime(warehouse, ledger_url, alpaca.url)
    alpaca.fault("submit", "hold")
    script = Path(__file__).with_name("alpaca_cycle.py")
    process = subprocess.Popen(
        [sys.executable, str(script), f"sqlite:{root}/catalog.sqlite", f"{root}/lake/", ledger_url, alpaca.url,
         OPEN_AT.isoformat()],
        cwd=Path(__file__).parents[2], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert alpaca.booked.wait(120), "the cycle never submitted"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        alpaca.release.set()
    assert alpaca.bookings == [Y_OPEN]
    assert [o["status"] for o in runtime.ledger.rows(tables.orders)] == ["new"]

    assert ops.run_pairs_cycle(runtime, retry_at).status == "done"
    [trade] = [t for t in runtime.ledger.rows(tables.pair_trades) if t["pair_id"] == "GS/MS"]
    assert trade["status"] == final
    if final == "unwound":
        assert X_OPEN not in alpaca.orders and trade["realized_pnl"] is not None
        assert any("half filled" in a["message"] for a in runtime.ledger.rows(tables.alerts))
    assert alpaca.posts[Y_OPEN] == 1
    assert_books_agree(runtime, alpaca, retry_at + timedelta(minutes=10))


def test_a_position_no_pair_trade_holds_is_alerted_on_every_reconcile_until_closed(lake, alpaca, tmp_path):
    warehouse, _ = lake
    runtime = make_runtime(warehouse, f"sqlite:///{tmp_path}/ledger.sqlite", alpaca.url)
    alpaca._book({"client_order_id": "manual-1", "symbol": "KO", "side": "sell", "qty": "79"})  # placed by hand
    for minute in (0, 10):
        report = ops.run_reconcile(runtime, OPEN_AT + timedelta(minutes=minute))
        assert any("KO" in d and "belongs to no live pair trade" in d for d in report.discrepancies)
    assert sum("belongs to no live pair trade" in a["message"] for a in runtime.ledger.rows(tables.alerts)) == 2
    alpaca._book({"client_order_id": "manual-2", "symbol": "KO", "side": "buy", "qty": "79"})
    assert ops.run_reconcile(runtime, OPEN_AT + timedelta(minutes=20)).discrepancies == []


@pytest.mark.parametrize("fault, says", [
    (("submit", ["429"] * 4), ["POST /v2/orders (q-pairs-20250904T1400-GS.MS-y-open)", "HTTP 429", "check"]),
    (("account", ["401"]), ["GET /v2/account", "HTTP 401", "check ALPACA_API_KEY and ALPACA_SECRET_KEY"]),
    (("account", ["malformed"]), ["GET /v2/account", "not JSON", "QUARRY_ALPACA_TRADING_URL"]),
], ids=["429-burst", "wrong-key", "malformed"])
def test_the_cli_says_in_one_line_which_broker_call_failed_and_what_to_check(lake, alpaca, tmp_path, fault, says):

    _, root = lake
    env = {"QUARRY_CATALOG": f"sqlite:{root}/catalog.sqlite", "QUARRY_DATA_PATH": f"{root}/lake/",
           "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite", "QUARRY_BROKER_NAME": "alpaca",
           "ALPACA_API_KEY": "key", "ALPACA_SECRET_KEY": "secret", "QUARRY_ALPACA_TRADING_URL": alpaca.url,
           "QUARRY_BROKER_RETRY_WAIT_SECONDS": "0", "QUARRY_BROKER_HTTP_TIMEOUT_SECONDS": "0.5", "COLUMNS": "80"}
    alpaca.fault(fault[0], *fault[1])
    # the real command in its own process: what an operator's terminal shows
    quarry = Path(sys.executable).with_name("quarry")
    done = subprocess.run([str(quarry), "trade", "pairs", "--ignore-clock", "--at", OPEN_AT.isoformat()],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert len(done.stdout.strip().splitlines()) == 1 and "Traceback" not in output, output
    assert all(text in done.stdout for text in says), output
    ledger = Ledger.open(LedgerConfig(url=env["QUARRY_LEDGER_URL"]))
    assert [c["status"] for c in ledger.rows(tables.cycles)] == ["failed"]
    assert [a["level"] for a in ledger.rows(tables.alerts)] == ["critical"]
