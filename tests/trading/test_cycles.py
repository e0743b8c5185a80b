"""Trading cycles on a real lake and ledger with the paper broker: fail-closed reads, a session that opens and
closes pair trades, live performance, the dry run, and a cycle killed mid-way then re-run.

One warehouse is built per module over nine months of the sample market (active pairs need 500 bars).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from assets import AssetGraph, Check, default_graph
from assets.sources import SampleSource
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.settings import BrokerConfig, RiskLimits, Settings, TradingConfig
from pipelines.trading import operations as ops
from pipelines.brokers import BrokerMaker, paper_engine, paper_orders
from pipelines.trading.lifecycle import reconcile_trades
from pipelines.trading.runtime import TradingRuntime
from tests.trading.conftest import START, build_lake
from warehouse import ledger as tables
from warehouse.ledger import Ledger, LedgerConfig

pytestmark = pytest.mark.slow
OPEN_AT = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)  # GS/MS enters long on the 13:00 bar
CLOSE_AT = datetime(2025, 9, 5, 14, tzinfo=timezone.utc)  # and exits on the next session's first bar


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("trading-lake")
    warehouse = build_lake(root)
    yield warehouse, root
    warehouse.close()


def make_runtime(warehouse, tmp_path: Path, **risk) -> TradingRuntime:
    return TradingRuntime(
        warehouse, Ledger.open(LedgerConfig(url=f"sqlite:///{tmp_path}/ledger.sqlite")),
        BrokerMaker(BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite")), RiskLimits(**risk),
        TradingConfig(check_market_clock=False),
    )


def session_hours(start: datetime, end: datetime):
    at = start
    while at <= end:
        if at.weekday() < 5 and 14 <= at.hour <= 20:
            yield at
        at += timedelta(hours=1)


def assert_blocked(runtime: TradingRuntime, report, reason: str) -> None:
    assert report.status == "blocked" and reason in report.reason
    ledger = runtime.ledger
    assert ledger.count(tables.orders) == 0
    [decision] = ledger.rows(tables.decisions)
    assert decision["verdict"] == "blocked" and reason in decision["reason"] and "pair_signals" in decision["reason"]
    [alert] = ledger.rows(tables.alerts)
    assert alert["level"] == "critical" and reason in alert["message"]
    assert len(paper_engine(runtime.brokers.config.paper_url).connect().execute(paper_orders.select()).all()) == 0


def test_stale_signals_place_no_order(lake, tmp_path):
    runtime = make_runtime(lake[0], tmp_path)
    report = ops.run_pairs_cycle(runtime, datetime(2025, 10, 9, 17, tzinfo=timezone.utc))
    assert_blocked(runtime, report, "stale by")


def test_missing_signals_place_no_order(lake, tmp_path):
    runtime = make_runtime(lake[0], tmp_path)
    report = ops.run_pairs_cycle(runtime, datetime(2024, 12, 2, 17, tzinfo=timezone.utc))
    assert_blocked(runtime, report, "missing")


def test_session_opens_and_closes_pair_trades_and_live_performance_reports_them(lake, tmp_path, monkeypatch):
    warehouse, _ = lake
    runtime = make_runtime(warehouse, tmp_path)
    reports = [ops.run_pairs_cycle(runtime, at) for at in session_hours(OPEN_AT, CLOSE_AT)]
    assert all(r.status == "done" for r in reports)
    trades = pl.DataFrame(runtime.ledger.rows(tables.pair_trades))
    gs_ms = trades.filter(pl.col("pair_id") == "GS/MS")
    assert gs_ms.height == 1 and gs_ms["status"][0] == "closed" and gs_ms["realized_pnl"][0] != 0
    orders = runtime.ledger.rows(tables.orders)
    assert len({o["client_order_id"] for o in orders}) == len(orders) >= 4
    decisions = runtime.ledger.rows(tables.decisions)
    assert all("pair_signals" in d["asset_versions"] and "bars_hourly" in d["asset_versions"] for d in decisions)
    assert reconcile_trades(runtime.ledger, runtime.broker({}, CLOSE_AT), CLOSE_AT).discrepancies == []

    graph = default_graph()
    submit, shutdown = thread_submitter(2)
    try:  # the engine hands the asset the ledger: no setting, no variable
        summary = run_materialization(graph, warehouse, SampleSource(), selection="live_performance",
                                      window=RunWindow.between(START, date(2025, 9, 30)), run_id="live",
                                      submit=submit, resources={"ledger": runtime.ledger})
    finally:
        shutdown()
    assert summary.exit_code == 0
    live = warehouse.read("live_performance")
    assert live.height == 1 and live["trade_count"][0] == trades.filter(pl.col("status") == "closed").height >= 1
    assert live["total_return_pct"][0] == pytest.approx(trades["realized_pnl"].drop_nulls().sum() / 1_000_000, rel=1e-6)


def test_dry_run_explains_each_pair_and_places_nothing(lake, tmp_path, monkeypatch):
    warehouse, root = lake
    from pipelines.cli_trade import register

    env = {"QUARRY_CATALOG": f"sqlite:{root}/catalog.sqlite", "QUARRY_DATA_PATH": f"{root}/lake/",
           "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
           "QUARRY_BROKER_PAPER_URL": f"sqlite:///{tmp_path}/paper.sqlite", "COLUMNS": "220"}
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["trade", "pairs", "--dry-run", "--ignore-clock", "--at", OPEN_AT.isoformat()],
                                env=env)
    assert result.exit_code == 0, result.output
    assert "GS/MS" in result.output and "enter_long" in result.output and "approved" in result.output
    assert "GS +" in result.output and "MS -" in result.output  # both legs with their sizes
    signals_version = warehouse.current_versions(["pair_signals"]).filter(pl.col("partition_key") == "2025-09-04")
    assert signals_version["version_id"][0] in result.output
    assert Ledger.open(LedgerConfig(url=env["QUARRY_LEDGER_URL"])).count(tables.orders) == 0

    killed = CliRunner().invoke(app, ["trade", "kill-switch", "on"], env=env)
    assert "kill switch: on" in killed.output
    blocked = CliRunner().invoke(app, ["trade", "pairs", "--dry-run", "--ignore-clock", "--at", OPEN_AT.isoformat()],
                                 env=env)
    assert "kill switch is on" in blocked.output


def test_killed_cycle_rerun_places_no_duplicate_and_leaves_a_consistent_ledger(lake, tmp_path):
    warehouse, root = lake
    runtime = make_runtime(warehouse, tmp_path)
    script = Path(__file__).with_name("kill_cycle.py")
    process = subprocess.Popen(
        [sys.executable, str(script), f"sqlite:{root}/catalog.sqlite", f"{root}/lake/",
         runtime.ledger.engine.url.render_as_string(), runtime.brokers.config.paper_url, OPEN_AT.isoformat()],
        cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("SUBMITTED"), line
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    [half] = runtime.ledger.rows(tables.orders)
    assert half["status"] == "new"  # submitted at the broker, never confirmed in the ledger

    report = ops.run_pairs_cycle(runtime, OPEN_AT)  # the retry of the same cycle
    assert report.status == "done"
    orders = runtime.ledger.rows(tables.orders)
    broker_orders = paper_engine(runtime.brokers.config.paper_url).connect().execute(paper_orders.select()).all()
    assert len(orders) == len(broker_orders) == 2 and len({o["client_order_id"] for o in orders}) == 2
    assert all(o["status"] == "filled" for o in orders) and runtime.ledger.count(tables.fills) == 2
    [trade] = runtime.ledger.rows(tables.pair_trades)
    assert trade["status"] == "open"
    assert reconcile_trades(runtime.ledger, runtime.broker({}, OPEN_AT), OPEN_AT).discrepancies == []


def test_quarantined_signals_place_no_order(lake, tmp_path):
    """Last: it materializes one more session whose pair_signals fail an error check."""
    warehouse, _ = lake
    failing = Check("always_fails_on_2025_10_01", "error",
                    lambda frame: frame.filter(pl.col("partition_key") == "2025-10-01").head(1))
    graph = AssetGraph.of([
        dataclasses.replace(a, checks=(*a.checks, failing)) if a.name == "pair_signals" else a for a in default_graph()
    ])
    submit, shutdown = thread_submitter(2)
    try:
        run_materialization(graph, warehouse, SampleSource(), selection="+pair_signals",
                            window=RunWindow.between(START, date(2025, 10, 1)), run_id="bad-day", submit=submit)
    finally:
        shutdown()
    runtime = make_runtime(warehouse, tmp_path)
    report = ops.run_pairs_cycle(runtime, datetime(2025, 10, 1, 18, tzinfo=timezone.utc))
    assert_blocked(runtime, report, "quarantined by always_fails_on_2025_10_01")


def test_daily_momentum_is_a_second_strategy_on_the_same_ledger(lake, tmp_path):
    """The Strategy interface admits another strategy: momentum on indicators_daily buys the strongest names once a session."""
    warehouse, _ = lake
    runtime = make_runtime(warehouse, tmp_path)
    first_day = datetime(2025, 9, 29, 21, 30, tzinfo=timezone.utc)
    report = runtime.momentum().run_cycle(first_day)
    assert report.status == "done", report
    assert {v["asset"] for v in report.versions} == {"indicators_daily"}
    momentum_orders = runtime.ledger.rows(tables.orders, tables.orders.c.strategy == "momentum")
    assert 1 <= len(momentum_orders) <= 3 and {o["side"] for o in momentum_orders} == {"buy"}

    again = runtime.momentum().run_cycle(first_day)  # a retried cycle reuses its client order ids
    assert runtime.ledger.count(tables.orders, tables.orders.c.strategy == "momentum") == len(momentum_orders)
    assert again.cycle_id == report.cycle_id
    assert runtime.ledger.count(tables.orders, tables.orders.c.strategy == "pairs") == 0


def test_trading_flows_run_under_prefect(prefect_harness, lake, tmp_path, monkeypatch):
    """The hourly cycle, position update and reconciliation as Prefect flows, configured only by settings."""
    from pipelines.trading.flows import intraday_pairs_trading, reconcile_trades_flow, update_positions_flow

    _, root = lake
    monkeypatch.setenv("QUARRY_CATALOG", f"sqlite:{root}/catalog.sqlite")
    monkeypatch.setenv("QUARRY_DATA_PATH", f"{root}/lake/")
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    monkeypatch.setenv("QUARRY_BROKER_PAPER_URL", f"sqlite:///{tmp_path}/paper.sqlite")
    intraday_pairs_trading(now=OPEN_AT, check_market=False)
    update_positions_flow(now=OPEN_AT + timedelta(minutes=5))
    reconcile_trades_flow(now=OPEN_AT + timedelta(minutes=10))

    ledger = Ledger.open(LedgerConfig(url=f"sqlite:///{tmp_path}/ledger.sqlite"))
    orders = ledger.rows(tables.orders)
    assert orders and {o["strategy"] for o in orders} == {"pairs"}
    assert {t["pair_id"] for t in ledger.rows(tables.pair_trades)} >= {"GS/MS"}
    assert not [a for a in ledger.rows(tables.alerts) if a["level"] == "critical"]


RACER = """
import sys, time
from pathlib import Path
from pipelines.cli import main
go = Path(sys.argv[1])
print("READY", flush=True)
while not go.exists():
    time.sleep(0.01)
sys.argv = ["quarry", *sys.argv[2:]]
main()
"""


def test_cycles_for_the_same_hour_on_a_fresh_ledger_one_trades_the_others_leave(lake, tmp_path):
    """Real `quarry trade pairs` processes released together on a ledger that does not exist yet: the
    migrations run once, one process places the orders, the others leave cleanly, none shows a traceback."""
    _, root = lake
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "COLUMNS": "200",
           "QUARRY_CATALOG": f"sqlite:{root}/catalog.sqlite", "QUARRY_DATA_PATH": f"{root}/lake/",
           "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
           "QUARRY_BROKER_PAPER_URL": f"sqlite:///{tmp_path}/paper.sqlite"}
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(go), "trade", "pairs", "--ignore-clock",
                                "--at", OPEN_AT.isoformat()], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for racer in racers:
        assert racer.stdout.readline().startswith("READY")
    go.touch()
    outputs = [racer.communicate(timeout=300) for racer in racers]
    for racer, (out, err) in zip(racers, outputs):
        assert racer.returncode == 0, out + err
        assert "Traceback" not in out + err and "IntegrityError" not in out + err, err
    ledger = Ledger.open(LedgerConfig(url=f"sqlite:///{tmp_path}/ledger.sqlite"))
    orders = ledger.rows(tables.orders)
    broker_orders = paper_engine(f"sqlite:///{tmp_path}/paper.sqlite").connect().execute(paper_orders.select()).all()
    assert len(orders) == len(broker_orders) == 2 and len({o["client_order_id"] for o in orders}) == 2
    [cycle] = ledger.rows(tables.cycles)
    assert cycle["status"] == "done"
    assert len(ledger.rows(tables.decisions)) == len({(d["subject"],) for d in ledger.rows(tables.decisions)})
    traded = [out for out, _ in outputs if "running in another process" not in out]
    assert traded and all("done" in out for out in traded)


def test_a_desk_day_through_the_flows_mails_each_fill_breach_blocked_cycle_and_failed_run_once(
    prefect_harness, lake, tmp_path, monkeypatch,
):
    """The trading flows under Prefect with an SMTP relay on 127.0.0.1: GS/MS opens (two fills), the book breaches a
    limit, the relay goes down while GS/MS exits (two fills queued), comes back, a cycle finds its hour missing and
    a materialization fails. Every fill, breach, blocked cycle and failed run arrives as exactly one email."""
    from email import message_from_bytes, policy

    from pipelines.flows import materialize_flow
    from pipelines.notify import AlertStore
    from pipelines.trading.flows import generate_risk_alerts, intraday_pairs_trading, monitor_portfolio_risk_flow
    from tests.pipelines.test_alert_delivery import Inbox, Relay

    _, root = lake
    relay = Relay(Inbox())
    for name, value in {
        "QUARRY_CATALOG": f"sqlite:{root}/catalog.sqlite", "QUARRY_DATA_PATH": f"{root}/lake/",
        "QUARRY_START_DATE": START.isoformat(), "QUARRY_REPORTS_DIR": str(tmp_path / "reports"),
        "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
        "QUARRY_BROKER_PAPER_URL": f"sqlite:///{tmp_path}/paper.sqlite",
        "QUARRY_ALERTS_DB": str(tmp_path / "alerts.sqlite"), "QUARRY_LOGS_DIR": str(tmp_path / "logs"),
        "QUARRY_SMTP_HOST": "127.0.0.1", "QUARRY_SMTP_PORT": str(relay.port), "QUARRY_SMTP_STARTTLS": "false",
        "QUARRY_SMTP_RECIPIENTS": "desk@example.com", "QUARRY_SMTP_TIMEOUT_SECONDS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    relay.up()
    try:
        intraday_pairs_trading(now=OPEN_AT, check_market=False)
        monkeypatch.setenv("QUARRY_RISK_MAX_OPEN_PAIRS", "0")  # the open pair is now one too many
        monitor_portfolio_risk_flow(now=OPEN_AT + timedelta(minutes=15))
        monkeypatch.delenv("QUARRY_RISK_MAX_OPEN_PAIRS")
        opened = len(relay.inbox.envelopes)

        relay.down()
        intraday_pairs_trading(now=CLOSE_AT, check_market=False)
        assert len(relay.inbox.envelopes) == opened
        relay.up()
        missing_hour = datetime(2025, 10, 1, 15, tzinfo=timezone.utc)  # after the lake; quarantined instead if that test ran first
        blocked = intraday_pairs_trading(now=missing_hour, check_market=False)
        assert blocked.status == "blocked", blocked.reason
        failed = materialize_flow(selection="no_such_asset", return_state=True)
        assert failed.is_failed()
        generate_risk_alerts(now=missing_hour + timedelta(minutes=2))  # the quarter-hour sweep finds nothing new
    finally:
        relay.down()

    ledger = Ledger.open(Settings().ledger)
    fills = ledger.rows(tables.fills)
    relayed = [a for a in ledger.rows(tables.alerts) if not a["source"].startswith("notify:")]
    breaches = [a for a in relayed if a["source"] == "monitor-portfolio-risk"]
    blocks = [a for a in relayed if a["source"] == "intraday-pairs-trading"]
    assert len(fills) == 4 and {f["symbol"] for f in fills} == {"GS", "MS"}
    assert breaches and len(blocks) == 1 and len(relayed) == len(breaches) + len(blocks)

    messages = [message_from_bytes(e.content, policy=policy.default) for e in relay.inbox.envelopes]
    subjects = [" ".join(m["Subject"].split()) for m in messages]
    assert len(subjects) == len(set(subjects)) == len(fills) + len(breaches) + len(blocks) + 1, subjects
    trades = [s for s in subjects if " trade: " in s]
    assert sorted(trades) == sorted(f"[Quarry] INFO trade: {f['side'].upper()} {f['qty']:g} {f['symbol']} @ {f['px']:g}"
                                    for f in fills)
    assert sum("monitor-portfolio-risk" in s for s in subjects) == len(breaches)
    [block] = [m for m in messages if "intraday-pairs-trading" in m["Subject"]]
    assert blocked.reason in " ".join(block.get_body(("plain",)).get_content().split())
    assert [s for s in subjects if "failed-run" in s] == ["[Quarry] CRITICAL failed-run: flow run materialize failed"]
    assert not any("held back" in m.get_body(("plain",)).get_content() for m in messages)
    assert AlertStore(tmp_path / "alerts.sqlite").queued() == []  # nothing left waiting for the relay
