"""Alert and daily-summary emails through a real SMTP server on 127.0.0.1, with deduplication and a rate limit."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from pipelines.notify import (
    AlertStore, DailySummary, Notifier, ThrottlePolicy, failed_run_alert, risk_alert,
    throttle_decision, trade_alert,
)
from pipelines.settings import Settings, SmtpConfig


class Inbox:
    """An aiosmtpd handler that keeps every envelope it receives."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self):
        return [(e.rcpt_tos, message_from_bytes(e.content, policy=policy.default)) for e in self.envelopes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def smtp_settings(smtp_server, monkeypatch) -> SmtpConfig:
    controller, _ = smtp_server
    monkeypatch.setenv("QUARRY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("QUARRY_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("QUARRY_SMTP_RECIPIENTS", "desk@example.com, risk@example.com")
    monkeypatch.setenv("QUARRY_SMTP_SENDER", "quarry@example.com")
    monkeypatch.setenv("QUARRY_SMTP_STARTTLS", "false")
    return Settings().smtp


def _bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_settings_read_comma_separated_recipients(smtp_settings):
    assert smtp_settings.recipients == ["desk@example.com", "risk@example.com"]
    assert smtp_settings.configured and smtp_settings.starttls is False


def test_alert_email_reaches_recipients_with_subject_text_and_html(smtp_server, smtp_settings, tmp_path):
    _, inbox = smtp_server
    recorded = []
    notifier = Notifier(smtp_settings, AlertStore(tmp_path / "alerts.sqlite"), record_alert=recorded.append)

    delivery = notifier.send(risk_alert("gross_exposure", "Gross exposure 2.4x above the 2.0x limit", 2.4, 2.0))

    assert delivery.status == "sent"
    [(rcpt, message)] = inbox.messages()
    assert rcpt == ["desk@example.com", "risk@example.com"]
    assert message["From"] == "quarry@example.com"
    assert message["Subject"] == "[Quarry] CRITICAL risk: risk limit gross_exposure"
    text, body_html = _bodies(message)
    assert "Gross exposure 2.4x above the 2.0x limit" in text and "limit: 2" in text
    assert "<h2>risk limit gross_exposure</h2>" in body_html and "<td>2.4</td>" in body_html
    assert [a.dedup_key for a in recorded] == ["risk:gross_exposure"]


@pytest.mark.slow
def test_one_broken_feed_sends_one_email_not_five_hundred(smtp_server, smtp_settings, tmp_path):
    _, inbox = smtp_server
    store = AlertStore(tmp_path / "alerts.sqlite")
    notifier = Notifier(smtp_settings, store)
    feed_down = [failed_run_alert("materialize", "run-feed", "Failed", "source returned HTTP 500") for _ in range(500)]

    statuses = [notifier.send(alert).status for alert in feed_down]

    assert statuses.count("sent") == 1 and statuses.count("deduplicated") == 499
    assert len(inbox.messages()) == 1
    assert len(store.alerts()) == 1  # repeats are held back, not stored 500 times


def test_hourly_budget_caps_distinct_alerts_and_reports_held_back_repeats(smtp_server, smtp_settings, tmp_path):
    _, inbox = smtp_server
    now = [datetime(2025, 3, 14, 15, 0, tzinfo=timezone.utc)]
    notifier = Notifier(
        smtp_settings, AlertStore(tmp_path / "alerts.sqlite"),
        ThrottlePolicy(dedupe_window=timedelta(minutes=30), max_per_hour=3), clock=lambda: now[0],
    )
    statuses = [notifier.send(trade_alert("KO", "buy", 100, 61.5, f"ord-{i}")).status for i in range(5)]
    assert statuses == ["sent", "sent", "sent", "rate-limited", "rate-limited"]

    notifier.send(trade_alert("KO", "buy", 100, 61.5, "ord-0"))  # a repeat inside the window
    now[0] += timedelta(minutes=61)
    again = notifier.send(trade_alert("KO", "buy", 100, 61.5, "ord-0"))
    assert again.status == "sent" and again.held_back == 1
    assert len(inbox.messages()) == 4
    text, _ = _bodies(inbox.messages()[-1][1])
    assert "1 similar alerts were held back" in text


def test_daily_summary_email_lists_pnl_quarantines_and_stale_assets(smtp_server, smtp_settings, tmp_path):
    _, inbox = smtp_server
    notifier = Notifier(smtp_settings, AlertStore(tmp_path / "alerts.sqlite"))
    summary = DailySummary(
        day="2025-03-14", runs_completed=3, runs_failed=1, partitions_built=42,
        quarantines=(("bars_hourly", "2025-03-13", "bad_ticks_per_session"),),
        stale_assets=(("pair_candidates", "2 days 3 hours"),), pnl={"realized": 1234.5, "unrealized": -10.0}, trades=7,
    )
    assert notifier.send_daily_summary(summary)
    [(rcpt, message)] = inbox.messages()
    assert rcpt == ["desk@example.com", "risk@example.com"]
    assert " ".join(message["Subject"].split()) == "[Quarry] Daily summary 2025-03-14: 1 quarantined, 1 stale, 1 failed runs"
    text, body_html = _bodies(message)
    assert "realized 1,234.50" in text and "bars_hourly [2025-03-13] bad_ticks_per_session" in text
    assert "pair_candidates: 2 days 3 hours" in text and "Trades: 7" in text
    assert "<td>pair_candidates</td>" in body_html and "<td>1,234.50</td>" in body_html


def test_without_smtp_host_alerts_are_stored_not_mailed(tmp_path, monkeypatch):
    monkeypatch.delenv("QUARRY_SMTP_HOST", raising=False)
    store = AlertStore(tmp_path / "alerts.sqlite")
    delivery = Notifier(SmtpConfig(), store).send(risk_alert("kill_switch", "kill switch on"))
    assert delivery.status == "not-configured"
    assert [r["dedup_key"] for r in store.alerts()] == ["risk:kill_switch"]


@pytest.mark.parametrize(
    "last_sent_minutes_ago, sent_last_hour, expected",
    [(None, 0, "send"), (10, 0, "deduplicated"), (90, 0, "send"), (None, 20, "rate-limited"), (10, 20, "deduplicated")],
)
def test_throttle_decision(last_sent_minutes_ago, sent_last_hour, expected):
    now = datetime(2025, 3, 14, tzinfo=timezone.utc)
    last = None if last_sent_minutes_ago is None else now - timedelta(minutes=last_sent_minutes_ago)
    assert throttle_decision(ThrottlePolicy(timedelta(hours=1), 20), now, last, sent_last_hour) == expected


def test_notifier_from_settings_stores_alert_rows_in_the_ledger(tmp_path, monkeypatch):
    import sqlalchemy as sa

    from warehouse.ledger import Ledger, alerts

    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    monkeypatch.setenv("QUARRY_ALERTS_DB", str(tmp_path / "alerts.sqlite"))
    monkeypatch.setenv("QUARRY_SMTP_HOST", "")
    notifier = Notifier.from_settings(Settings())
    assert notifier.send(risk_alert("drawdown", "drawdown 12% beyond 10%")).status == "not-configured"
    assert notifier.send(risk_alert("drawdown", "drawdown 12% beyond 10%")).status == "deduplicated"
    with Ledger.open(Settings().ledger).engine.connect() as connection:
        rows = connection.execute(sa.select(alerts.c.level, alerts.c.source, alerts.c.subject)).all()
    assert [tuple(r) for r in rows] == [("critical", "notify:risk", "risk limit drawdown")]


def test_email_templates_escape_every_value_they_show():
    from pipelines.notify import DailySummary, render_alert, render_daily_summary, risk_alert

    _, _, alert_html = render_alert(risk_alert("x<y", "spread <script>alert(1)</script> & more", 1.0, 0.5), 3)
    assert "<script>" not in alert_html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in alert_html
    assert "<th align=\"left\">rule</th><td>x&lt;y</td>" in alert_html and "3 similar alerts" in alert_html
    summary = DailySummary(day="<day>", runs_completed=1, runs_failed=0, partitions_built=2,
                           quarantines=(("a<b", "2026-12-01", "c&d"),), stale_assets=(("s>t", "2 sessions"),),
                           pnl={"<book>": 1.5}, performance={"live": {"sharpe_ratio": 1.0}},
                           performance_sources={"live": "v<1>"})
    _, _, summary_html = render_daily_summary(summary)
    for raw, escaped in [("<day>", "&lt;day&gt;"), ("a<b", "a&lt;b"), ("c&d", "c&amp;d"), ("s>t", "s&gt;t"),
                         ("<book>", "&lt;book&gt;"), ("v<1>", "v&lt;1&gt;")]:
        assert raw not in summary_html and escaped in summary_html
