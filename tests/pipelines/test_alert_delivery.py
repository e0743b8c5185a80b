"""Alerts that arrive once, through a real SMTP relay on 127.0.0.1: fills, breaches, blocked cycles and kill-switch
changes from the ledger; a relay that refuses for a while, then comes back (none lost, none doubled); a failed
run reported once.
"""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from pipelines.notify import AlertStore, Notifier, ThrottlePolicy, trade_alert
from pipelines.settings import Settings, SmtpConfig
from pipelines.trading.operations import relay_alerts
from pipelines.trading.risk import Breach, record_breaches
from tests.pipelines.prefect_server import PREFECT, ROOT, UUID, prefect_cli
from warehouse import ledger as tables
from warehouse.ledger import Ledger, upgrade

NOW = datetime(2025, 9, 30, 19, 0, tzinfo=timezone.utc)
QUICK = ThrottlePolicy(send_attempts=2, retry_seconds=0.0)


class Inbox:
    """Keeps every message; answers 451 (try again later) to the first `refuse` DATA commands."""

    def __init__(self, refuse: int = 0):
        self.envelopes, self.refuse = [], refuse

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        self.envelopes.append(envelope)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [" ".join(message_from_bytes(e.content, policy=policy.default)["Subject"].split()) for e in self.envelopes]

    def texts(self) -> list[str]:
        return [message_from_bytes(e.content, policy=policy.default).get_body(("plain",)).get_content()
                for e in self.envelopes]


class Relay:
    """An aiosmtpd relay on a fixed loopback port that can be taken down and brought back."""

    def __init__(self, inbox: Inbox):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.inbox, self.controller = inbox, None

    def up(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def relay():
    server = Relay(Inbox())
    server.up()
    yield server
    server.down()


@pytest.fixture
def notifier(relay, tmp_path) -> Notifier:
    smtp = SmtpConfig(host="127.0.0.1", port=relay.port, recipients=["desk@example.com"],
                        starttls=False, timeout_seconds=5)
    return Notifier(smtp, AlertStore(tmp_path / "alerts.sqlite"), QUICK, record_alert=lambda alert: None,
                    clock=lambda: NOW)


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/ledger.sqlite")
    upgrade(engine)
    return Ledger(engine)


def desk_day(ledger: Ledger) -> None:
    """Two fills, two breaches, a blocked cycle and the kill switch turned on, as the trading code records them."""
    for leg, (symbol, side, qty, px) in enumerate((("GS", "buy", 10, 612.5), ("MS", "sell", 44, 140.25))):
        ledger.record_fill(client_order_id=f"pairs-c1-{leg}", fill_key=f"fill-{leg}", symbol=symbol, side=side,
                           qty=qty, px=px, filled_at=NOW)
    record_breaches(ledger, [Breach("gross_exposure", 2.4, 2.0, "gross exposure 2.4x above 2.0x"),
                             Breach("drawdown", 0.12, 0.10, "drawdown 12% beyond 10%")],
                    at=NOW, verdict="breach", source="monitor-portfolio-risk")
    ledger.raise_alert(at=NOW, level="critical", source="intraday-pairs-trading", subject="bars_hourly",
                       message="cycle pairs-20250930T1900 traded nothing: bars_hourly missing the 18:00 bar",
                       cycle_id="pairs-20250930T1900")
    ledger.set_kill_switch(True)
    ledger.raise_alert(at=NOW, level="critical", source="kill-switch", message="kill switch turned on from the CLI")


EXPECTED = 6  # 2 fills + 2 breaches + 1 blocked cycle + 1 kill switch


def test_fills_breaches_blocked_cycles_and_kill_switch_each_mail_once(relay, notifier, ledger):
    desk_day(ledger)
    relay_alerts(ledger, notifier)
    subjects = relay.inbox.subjects()
    assert len(subjects) == EXPECTED and len(set(subjects)) == EXPECTED
    assert "[Quarry] INFO trade: BUY 10 GS @ 612.5" in subjects
    assert "[Quarry] CRITICAL risk: kill-switch: kill switch turned on from the CLI" in subjects
    assert "[Quarry] CRITICAL risk: monitor-portfolio-risk: drawdown: drawdown 12% beyond 10%" in subjects
    assert any("traded nothing" in text for text in relay.inbox.texts())
    assert ledger.count(tables.alerts, tables.alerts.c.is_acknowledged.is_(False)) == 0

    relay_alerts(ledger, notifier)  # the next sweep finds nothing new
    record_breaches(ledger, [Breach("drawdown", 0.12, 0.10, "drawdown 12% beyond 10%")],
                    at=NOW + timedelta(minutes=15), verdict="breach", source="monitor-portfolio-risk")
    relay_alerts(ledger, notifier)  # the same breach a quarter hour later is a repeat inside the window
    assert len(relay.inbox.envelopes) == EXPECTED


def test_a_relay_down_for_a_while_loses_nothing_and_doubles_nothing(relay, notifier, ledger):
    relay.down()
    desk_day(ledger)
    relay_alerts(ledger, notifier)
    relay_alerts(ledger, notifier)  # a second sweep while still down: nothing new, nothing sent
    assert notifier.flush() == 0
    queued = notifier.store.queued()
    assert len(queued) == EXPECTED and all("Connection refused" in q["last_error"] for q in queued)
    assert ledger.count(tables.alerts, tables.alerts.c.is_acknowledged.is_(False)) == 0  # the outbox holds them now

    relay.up()
    assert notifier.flush() == EXPECTED
    assert notifier.flush() == 0 and notifier.store.queued() == []
    relay_alerts(ledger, notifier)
    assert sorted(relay.inbox.subjects()) == sorted(set(relay.inbox.subjects())) and len(relay.inbox.envelopes) == EXPECTED
    assert not any("held back" in text for text in relay.inbox.texts())  # a failed send is not a repeat


def test_a_send_refused_once_is_retried_and_mailed_once(relay, notifier):
    relay.inbox.refuse = 1
    delivery = notifier.send(trade_alert("KO", "buy", 100, 61.5, "ord-1", fill_key="f-1"))
    assert delivery.status == "sent" and len(relay.inbox.envelopes) == 1

    relay.inbox.refuse = 2  # every attempt of the next one is refused: queued, then sent by the next send
    assert notifier.send(trade_alert("KO", "sell", 100, 62.0, "ord-2", fill_key="f-2")).status == "queued"
    assert notifier.send(trade_alert("KO", "sell", 100, 62.0, "ord-2", fill_key="f-2")).status == "deduplicated"
    assert notifier.send(trade_alert("PEP", "buy", 50, 170.0, "ord-3", fill_key="f-3")).status == "sent"
    assert relay.inbox.subjects() == [
        "[Quarry] INFO trade: BUY 100 KO @ 61.5", "[Quarry] INFO trade: SELL 100 KO @ 62", "[Quarry] INFO trade: BUY 50 PEP @ 170",
    ]


@pytest.mark.slow
def test_a_failed_run_is_reported_once_with_its_deployment_and_link(prefect_harness, relay, notifier):
    from prefect import flow

    from pipelines.monitoring import FailedRun, report_failed_run

    run = FailedRun("6f1c0d1e-0000-4000-8000-000000000001", "materialize", "brisk-otter", "Failed",
                    "2 partitions quarantined", None, "bars-hourly",
                    "http://127.0.0.1:4200/runs/flow-run/6f1c0d1e-0000-4000-8000-000000000001")
    reported = [report_failed_run(run, notifier) for _ in range(3)]  # three health passes see it
    assert reported == [True, False, False]
    [subject] = relay.inbox.subjects()
    assert subject == "[Quarry] CRITICAL failed-run: flow run materialize/bars-hourly failed"
    [text] = relay.inbox.texts()
    assert run.url in text and "deployment: bars-hourly" in text


@pytest.mark.slow
@pytest.mark.server
def test_a_deployed_run_that_fails_is_reported_once_by_its_hook_and_not_again_by_the_health_pass(
    server, relay, lake, tmp_path, monkeypatch,
):
    """A real deployment fails on a process worker: its `on_failure` hook mails at once (deployment, UI link) and
    emits the event; the health pass that finds the same run afterwards sends and emits nothing more."""
    import time

    import httpx
    import yaml
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    from pipelines.monitoring import FAILED_RUN_EVENT, find_failed_runs, report_failed_run

    ui = "http://127.0.0.1:4200"
    quarry_env = {
        **lake.env(), "QUARRY_SMTP_HOST": "127.0.0.1", "QUARRY_SMTP_PORT": str(relay.port),
        "QUARRY_SMTP_STARTTLS": "false", "QUARRY_SMTP_RECIPIENTS": "desk@example.com",
        "QUARRY_ALERTS_DB": str(tmp_path / "alerts.sqlite"), "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
    }
    env = {**server, **quarry_env, "PREFECT_UI_URL": ui}
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [bars] = [d for d in document["deployments"] if d["name"] == "bars-daily"]
    bars["parameters"] = {"selection": "no_such_asset"}
    document["deployments"] = [bars]
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(document, sort_keys=False))
    prefect_cli(env, "work-pool", "create", bars["work_pool"]["name"], "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--name", "bars-daily", timeout=120)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    run_id = UUID.search(prefect_cli(env, "deployment", "run", "materialize/bars-daily")).group(0)
    worker = subprocess.run([PREFECT, "worker", "start", "--pool", bars["work_pool"]["name"], "--run-once"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    state = httpx.get(f"{server['PREFECT_API_URL']}/flow_runs/{run_id}", timeout=10).json()["state"]
    assert state["type"] == "FAILED", state

    [subject] = relay.inbox.subjects()
    assert subject == "[Quarry] CRITICAL failed-run: flow run materialize/bars-daily failed"
    [text] = relay.inbox.texts()
    assert f"{ui}/runs/flow-run/{run_id}" in text and "deployment: bars-daily" in text and "no_such_asset" in text

    for key, value in quarry_env.items():
        monkeypatch.setenv(key, value)
    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"], PREFECT_UI_URL: ui}):
        [found] = [r for r in find_failed_runs(since) if r.flow_run_id == run_id]
        assert found.deployment == "bars-daily"
        assert not any(report_failed_run(found, Notifier.from_settings(Settings())) for _ in range(2))  # two health passes
        with get_client(sync_client=True) as client:
            deadline, events = time.time() + 30, []
            while time.time() < deadline and not events:
                events = [e for e in client.read_events(
                    filter=EventFilter(event=EventNameFilter(name=[FAILED_RUN_EVENT])), limit=50).events
                    if e.resource.id == f"prefect.flow-run.{run_id}"]
                time.sleep(0.5)
            time.sleep(2)  # a second event, if one were emitted, would be readable by now too
            events = [e for e in client.read_events(
                filter=EventFilter(event=EventNameFilter(name=[FAILED_RUN_EVENT])), limit=50).events
                if e.resource.id == f"prefect.flow-run.{run_id}"]
    assert len(events) == 1 and events[0].payload["deployment"] == "bars-daily"
    assert len(relay.inbox.subjects()) == 1
