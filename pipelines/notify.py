"""Email notifications: trade, risk and failed-run alerts and the daily summary, deduplicated and rate-limited."""

from __future__ import annotations

import hashlib
import json
import smtplib
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jinja2
import sqlalchemy as sa
from loguru import logger

from assets.retrying import RetryPolicy
from pipelines.settings import Settings, SmtpConfig, redactor
from warehouse.ledger import ALERT_STORE_HISTORY, LedgerConfig, upgrade

AlertKind = Literal["trade", "risk", "failed-run", "health", "data"]
Severity = Literal["info", "warning", "critical"]
DeliveryStatus = Literal["sent", "deduplicated", "rate-limited", "not-configured", "queued"]


@dataclass(frozen=True)
class Alert:
    """One thing a person should know about; alerts with the same `dedup_key` are the same problem."""

    kind: AlertKind
    severity: Severity
    title: str
    body: str
    dedup_key: str
    details: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def redacted(self, redact: Callable[[str], str]) -> Alert:
        """The same alert with every text field passed through `redact` (nothing secret leaves in an alert)."""
        from dataclasses import replace

        return replace(self, title=redact(self.title), body=redact(self.body),
                       details={k: redact(str(v)) for k, v in self.details.items()})

    def as_row(self) -> dict:
        return {
            "kind": self.kind, "severity": self.severity, "title": self.title, "body": self.body,
            "dedup_key": self.dedup_key, "details": json.dumps(dict(self.details), default=str),
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        return json.dumps({**self.as_row(), "created_at": self.created_at.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> Alert:
        row = json.loads(text)
        return cls(kind=row["kind"], severity=row["severity"], title=row["title"], body=row["body"],
                   dedup_key=row["dedup_key"], details=json.loads(row["details"]),
                   created_at=datetime.fromisoformat(row["created_at"]))


def trade_alert(symbol: str, side: str, quantity: float, price: float, order_id: str, strategy: str = "pairs",
                fill_key: str | None = None) -> Alert:
    """A fill the desk should see; keyed by fill (else order) so a retried report is not a second email."""
    return Alert(
        kind="trade", severity="info", title=f"{side.upper()} {quantity:g} {symbol} @ {price:g}",
        body=f"Strategy {strategy} filled {side} {quantity:g} {symbol} at {price:g} (order {order_id}).",
        dedup_key=f"trade:{fill_key or order_id}",
        details={"symbol": symbol, "side": side, "quantity": f"{quantity:g}", "price": f"{price:g}", "order_id": order_id},
    )


def risk_alert(rule: str, message: str, value: float | None = None, limit: float | None = None) -> Alert:
    """A breached risk limit or a kill switch; keyed by the rule so a persisting breach mails once per window."""
    details = {"rule": rule}
    if value is not None:
        details["value"] = f"{value:g}"
    if limit is not None:
        details["limit"] = f"{limit:g}"
    return Alert(kind="risk", severity="critical", title=f"risk limit {rule}", body=message,
                 dedup_key=f"risk:{rule}", details=details)


def failed_run_alert(flow_name: str, flow_run_id: str, state: str, message: str = "", url: str | None = None,
                     deployment: str | None = None) -> Alert:
    """A flow run that ended Failed or Crashed; keyed by the run, so detection and hooks never mail twice."""
    details = {"flow": flow_name, "flow_run_id": flow_run_id, "state": state}
    if deployment:
        details["deployment"] = deployment
    if url:
        details["url"] = url
    what = f"{flow_name}/{deployment}" if deployment else flow_name
    body = message or f"Flow run {flow_run_id} of {what} ended {state}."
    return Alert(
        kind="failed-run", severity="critical", title=f"flow run {what} {state.lower()}",
        body=body + (f"\n{url}" if url else ""), dedup_key=f"failed-run:{flow_run_id}", details=details,
    )


#: Ledger alert sources whose rows are about orders and the book rather than risk.
TRADE_SOURCES = frozenset({"manage-orders", "reconcile-trades", "update-positions"})


def ledger_alert(row: Mapping) -> Alert:
    """A row of the ledger's `alerts` table (a breach, a blocked cycle, a kill-switch change, a discrepancy) as an alert.

    Keyed by what it says, so the same breach recorded every quarter hour mails once per window.
    """
    source, subject, message = row["source"], row.get("subject") or "", row["message"]
    severity = row["level"] if row["level"] in ("info", "warning", "critical") else "warning"
    digest = hashlib.sha256(f"{source}|{subject}|{message}".encode()).hexdigest()[:16]
    return Alert(
        kind="trade" if source in TRADE_SOURCES else "risk", severity=severity,
        title=f"{source}: {subject or message.splitlines()[0][:80]}", body=message, dedup_key=f"ledger:{source}:{digest}",
        details={k: str(row[k]) for k in ("source", "subject", "cycle_id") if row.get(k)},
        created_at=row["at"] if isinstance(row.get("at"), datetime) and row["at"].tzinfo else datetime.now(timezone.utc),
    )


# ---- rendering ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The email templates in pipelines/templates, every value escaped unless a template says otherwise."""
    return jinja2.Environment(loader=jinja2.PackageLoader("pipelines", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def render_alert(alert: Alert, suppressed_since_last: int = 0) -> tuple[str, str, str]:
    """Subject, plain text and HTML of an alert email (with how many repeats were held back)."""
    subject = f"[Quarry] {alert.severity.upper()} {alert.kind}: {alert.title}"
    held = f"{suppressed_since_last} similar alerts were held back since the last email." if suppressed_since_last else ""
    lines = [alert.body, ""] + [f"{k}: {v}" for k, v in alert.details.items()]
    lines += ["", f"at {alert.created_at:%Y-%m-%d %H:%M:%S %Z}"] + ([held] if held else [])
    at = f"{alert.created_at:%Y-%m-%d %H:%M:%S %Z}"
    body_html = _templates().get_template("alert_email.html").render(alert=alert, at=at, held=held)
    return subject, "\n".join(lines), body_html


@dataclass(frozen=True)
class DailySummary:
    """What happened on one day: runs, quarantines, stale assets, and the book when the ledger knows it."""

    day: str
    runs_completed: int
    runs_failed: int
    partitions_built: int
    quarantines: tuple[tuple[str, str, str], ...]  # (asset, partition_key, failed checks)
    stale_assets: tuple[tuple[str, str], ...]  # (asset, how late)
    pnl: Mapping[str, float] | None = None
    trades: int | None = None
    #: The strategy's metrics by book (`live` from the ledger, `backtest`), from their published performance assets.
    performance: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    #: Where each book's metrics come from: the asset, its version and when it was published.
    performance_sources: Mapping[str, str] = field(default_factory=dict)


#: The metrics the daily summary shows, in the order a person reads them (the performance contract's columns).
PERFORMANCE_METRICS = (
    "total_return_pct", "cagr_pct", "volatility_pct", "sharpe_ratio", "sortino_ratio", "max_drawdown_pct",
    "calmar_ratio", "trade_count", "win_rate_pct", "profit_factor", "exposure_pct", "n_periods",
)


def _metric(name: str, value: object) -> str:
    """A metric as a person reads it: `_pct` fractions as percentages, other floats to two places, none as `-`."""
    if isinstance(value, float) and value == value:
        return f"{value:.2%}" if name.endswith("_pct") else f"{value:,.2f}"
    return "-" if value is None or isinstance(value, float) else str(value)


def performance_rows(summary: DailySummary) -> list[tuple[str, ...]]:
    """One row per metric: its name, then its value in each book (in the summary's book order)."""
    books = list(summary.performance)
    return [(name, *(_metric(name, summary.performance[b].get(name)) for b in books)) for name in PERFORMANCE_METRICS]


def render_daily_summary(summary: DailySummary) -> tuple[str, str, str]:
    """Subject, plain text and HTML of the end-of-day email."""
    flags = []
    if summary.quarantines:
        flags.append(f"{len(summary.quarantines)} quarantined")
    if summary.stale_assets:
        flags.append(f"{len(summary.stale_assets)} stale")
    if summary.runs_failed:
        flags.append(f"{summary.runs_failed} failed runs")
    subject = f"[Quarry] Daily summary {summary.day}: " + (", ".join(flags) if flags else "all clear")
    text = [
        f"Quarry daily summary for {summary.day}",
        "",
        f"Runs: {summary.runs_completed} completed, {summary.runs_failed} failed; {summary.partitions_built} partitions built.",
    ]
    if summary.pnl is not None:
        text.append("P&L: " + ", ".join(f"{k} {v:,.2f}" for k, v in summary.pnl.items()))
    else:
        text.append("P&L: not available (no ledger)")
    if summary.trades is not None:
        text.append(f"Trades: {summary.trades}")
    books = list(summary.performance)
    if books:
        rows = performance_rows(summary)
        width = max(len(r[0]) for r in rows)
        text += ["", "Performance:" + "".join(f"  {b:>14}" for b in books)]
        text += [f"  {r[0]:<{width}}" + "".join(f"  {v:>14}" for v in r[1:]) for r in rows]
        text += [f"  {b}: {summary.performance_sources[b]}" for b in books if b in summary.performance_sources]
    else:
        text += ["", "Performance: not available (no published live_performance or strategy_performance)"]
    text += ["", "Quarantined partitions:"] + (
        [f"  {a} [{p}] {checks}" for a, p, checks in summary.quarantines] or ["  none"]
    )
    text += ["", "Stale assets:"] + ([f"  {a}: {late}" for a, late in summary.stale_assets] or ["  none"])

    body_html = _templates().get_template("daily_summary.html").render(
        summary=summary, books=tuple(books),
        pnl=None if summary.pnl is None else [(k, f"{v:,.2f}") for k, v in summary.pnl.items()],
        performance=performance_rows(summary) if books else [],
        sources=[(b, summary.performance_sources[b]) for b in books if b in summary.performance_sources],
    )
    return subject, "\n".join(text), body_html


# ---- sending ------------------------------------------------------------------------------


def build_message(settings: SmtpConfig, subject: str, text: str, body_html: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content(text)
    message.add_alternative(body_html, subtype="html")
    return message


def _relay_failure(error: BaseException) -> bool:
    """A refused connection, a timeout or an SMTP error may pass; a retry resends the whole message."""
    return isinstance(error, (OSError, smtplib.SMTPException))


def send_email(settings: SmtpConfig, subject: str, text: str, body_html: str) -> None:
    """Send one multipart (text + HTML) email through the configured relay.

    Once the relay has accepted the message, a failure to say goodbye is not a failed send
    (retrying it would mail twice).
    """
    message = build_message(settings, subject, text, body_html)
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
    try:
        if settings.starttls:
            smtp.starttls()
        if settings.user:
            smtp.login(settings.user, settings.password.get_secret_value() if settings.password else "")
        smtp.send_message(message)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


# ---- throttling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """Dedupe window and hourly budget; a send is tried `send_attempts` times, `retry_seconds` apart (doubling)."""

    dedupe_window: timedelta = timedelta(hours=1)
    max_per_hour: int = 20
    send_attempts: int = 3
    retry_seconds: float = 2.0
    claim: timedelta = timedelta(minutes=5)


def throttle_decision(
    policy: ThrottlePolicy, now: datetime, last_sent_at: datetime | None, sent_last_hour: int
) -> Literal["send", "deduplicated", "rate-limited"]:
    """Whether an alert may be emailed: once per key per window, and never more than the hourly budget."""
    if last_sent_at is not None and now - last_sent_at < policy.dedupe_window:
        return "deduplicated"
    if sent_last_hour >= policy.max_per_hour:
        return "rate-limited"
    return "send"


class AlertStore:
    """A small SQLite file shared by every process: the throttle state, and alert rows where no ledger is given.

    Its tables are made and changed by the numbered migrations in `warehouse/migrations/alert_store/`.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # concurrent flows read the throttle while one writes
        migrator = sa.create_engine(sa.URL.create("sqlite", database=str(self.path)), connect_args={"timeout": 30})
        try:
            upgrade(migrator, history=ALERT_STORE_HISTORY)
        finally:
            migrator.dispose()

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def record_alert(self, alert: Alert, delivery: str = "") -> None:
        """Store an alert row (the default `record_alert` while no ledger exists)."""
        row = alert.as_row()
        with self._connect() as con:
            con.execute(
                "INSERT INTO alerts (kind, severity, title, body, dedup_key, details, created_at, delivery)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row["kind"], row["severity"], row["title"], row["body"], row["dedup_key"], row["details"],
                 row["created_at"].isoformat(), delivery),
            )

    def alerts(self) -> list[dict]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM alerts ORDER BY alert_id")]

    @contextmanager
    def _transaction(self):
        """One write transaction, taken at once (BEGIN IMMEDIATE) so concurrent senders queue instead of failing
        mid-way; committed if the block ends normally, rolled back otherwise."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def reserve(self, policy: ThrottlePolicy, key: str, now: datetime) -> tuple[str, int]:
        """Decide and, for a send, claim the key for a while in one transaction, so concurrent processes never both send.

        The claim is not a send: the key counts as sent only once `mark_sent` says the relay
        took it. A key sent within the window, claimed by another sender or waiting in the
        outbox is a repeat. Returns the decision and how many repeats were held back since
        the key's last email.
        """
        with self._transaction() as con:
            found = con.execute(
                "SELECT last_sent_at, held_back, claimed_until FROM alert_throttle WHERE dedup_key = ?", (key,)
            ).fetchone()
            last = datetime.fromisoformat(found[0]) if found and found[0] else None
            held = found[1] if found else 0
            claimed = found is not None and found[2] is not None and datetime.fromisoformat(found[2]) > now
            queued = con.execute("SELECT 1 FROM alert_outbox WHERE dedup_key = ?", (key,)).fetchone() is not None
            hour_ago = (now - timedelta(hours=1)).isoformat()
            sent = con.execute("SELECT count(*) FROM alert_sends WHERE sent_at > ?", (hour_ago,)).fetchone()[0]
            decision = "deduplicated" if claimed or queued else throttle_decision(policy, now, last, sent)
            if decision == "send":
                con.execute(
                    "INSERT INTO alert_throttle (dedup_key, last_sent_at, held_back, claimed_until) VALUES (?, NULL, 0, ?)"
                    " ON CONFLICT (dedup_key) DO UPDATE SET claimed_until = excluded.claimed_until",
                    (key, (now + policy.claim).isoformat()),
                )
            else:
                con.execute(
                    "INSERT INTO alert_throttle (dedup_key, last_sent_at, held_back) VALUES (?, NULL, 1)"
                    " ON CONFLICT (dedup_key) DO UPDATE SET held_back = held_back + 1",
                    (key,),
                )
        return decision, (held if decision == "send" else held + 1)

    def mark_sent(self, key: str, now: datetime) -> None:
        """The relay took the email: the key is sent now, its held-back count restarts, the outbox forgets it."""
        with self._transaction() as con:
            con.execute(
                "INSERT INTO alert_throttle (dedup_key, last_sent_at, held_back, claimed_until) VALUES (?, ?, 0, NULL)"
                " ON CONFLICT (dedup_key) DO UPDATE SET last_sent_at = excluded.last_sent_at, held_back = 0,"
                " claimed_until = NULL",
                (key, now.isoformat()),
            )
            con.execute("INSERT INTO alert_sends (sent_at) VALUES (?)", (now.isoformat(),))
            con.execute("DELETE FROM alert_sends WHERE sent_at <= ?", ((now - timedelta(hours=1)).isoformat(),))
            con.execute("DELETE FROM alert_outbox WHERE dedup_key = ?", (key,))

    def queue(self, alert: Alert, error: str, now: datetime) -> None:
        """A send that failed every attempt waits in the outbox (and its claim is released) for the next flush."""
        with self._transaction() as con:
            con.execute(
                "INSERT INTO alert_outbox (dedup_key, alert, attempts, last_error, queued_at) VALUES (?, ?, 1, ?, ?)"
                " ON CONFLICT (dedup_key) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error",
                (alert.dedup_key, alert.to_json(), error[:500], now.isoformat()),
            )
            con.execute("UPDATE alert_throttle SET claimed_until = NULL WHERE dedup_key = ?", (alert.dedup_key,))

    def claim_queued(self, policy: ThrottlePolicy, now: datetime) -> list[Alert]:
        """Queued alerts nobody else is sending right now, claimed for this sender."""
        with self._transaction() as con:
            rows = con.execute(
                "SELECT o.dedup_key, o.alert FROM alert_outbox o LEFT JOIN alert_throttle t USING (dedup_key)"
                " WHERE t.claimed_until IS NULL OR t.claimed_until <= ? ORDER BY o.queued_at",
                (now.isoformat(),),
            ).fetchall()
            for key, _ in rows:
                con.execute(
                    "INSERT INTO alert_throttle (dedup_key, last_sent_at, held_back, claimed_until) VALUES (?, NULL, 0, ?)"
                    " ON CONFLICT (dedup_key) DO UPDATE SET claimed_until = excluded.claimed_until",
                    (key, (now + policy.claim).isoformat()),
                )
        return [Alert.from_json(text) for _, text in rows]

    def release(self, keys: list[str]) -> None:
        """Give up claims not used (a flush that stopped early)."""
        with self._connect() as con:
            con.executemany("UPDATE alert_throttle SET claimed_until = NULL WHERE dedup_key = ?", [(k,) for k in keys])

    def queued(self) -> list[dict]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT dedup_key, attempts, last_error FROM alert_outbox")]

    def first_report(self, flow_run_id: str, now: datetime) -> bool:
        """True once per flow run: the first caller reports it, every later one knows it was reported."""
        with self._connect() as con:
            inserted = con.execute(
                "INSERT INTO reported_runs (flow_run_id, reported_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (flow_run_id, now.isoformat()),
            )
            return inserted.rowcount == 1


def ledger_recorder(ledger: LedgerConfig) -> Callable[[Alert], None]:
    """Store alerts as rows of the ledger's `alerts` table (opened lazily, on the first alert)."""
    opened: list = []

    def record(alert: Alert) -> None:
        if not opened:
            from warehouse.ledger import Ledger

            opened.append(Ledger.open(ledger))
        opened[0].raise_alert(
            at=alert.created_at, level=alert.severity, source=f"notify:{alert.kind}", message=alert.body,
            subject=alert.title,
        )

    return record


@dataclass(frozen=True)
class Delivery:
    status: DeliveryStatus
    alert: Alert
    held_back: int = 0
    error: str = ""


class Notifier:
    """Routes alerts: every new problem is stored and emailed, repeats and floods are held back.

    `record_alert` stores an alert row; it defaults to the alert store's own table and is
    meant to be the ledger's writer once the ledger exists.
    """

    def __init__(
        self,
        smtp: SmtpConfig,
        store: AlertStore,
        policy: ThrottlePolicy = ThrottlePolicy(),
        record_alert: Callable[[Alert], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        redact: Callable[[str], str] | None = None,
    ):
        from warehouse.redaction import redact as redact_patterns

        self.redact = redact or redact_patterns
        self.smtp = smtp
        self.store = store
        self.policy = policy
        self.record_alert = record_alert or store.record_alert
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, record_alert: Callable[[Alert], None] | None = None) -> Notifier:
        """The configured notifier; alert rows go to the ledger's `alerts` table unless `record_alert` says otherwise."""
        ops = settings.ops
        policy = ThrottlePolicy(timedelta(minutes=ops.alert_dedupe_minutes), ops.alert_max_per_hour)
        return cls(settings.smtp, AlertStore(ops.alerts_db), policy, record_alert or ledger_recorder(settings.ledger),
                   redact=redactor(settings))

    def send(self, alert: Alert) -> Delivery:
        """Email the alert unless it repeats one already sent (or queued) in the window or the hourly budget is spent.

        The alert is redacted first: its row, its email and its log lines never carry a secret.
        Alerts queued while the relay was down go first. A send that fails every attempt is
        queued too and its key stays free, so it is neither lost nor counted as sent.
        """
        alert = alert.redacted(self.redact)
        self.flush()
        decision, held = self.store.reserve(self.policy, alert.dedup_key, self.clock())
        if decision != "send":
            logger.info("alert {} {}: {}", alert.dedup_key, decision, alert.title)
            return Delivery(decision, alert, held)
        try:
            self.record_alert(alert)
        except Exception as error:  # the ledger being down is when an alert matters most: still email it
            logger.error("could not store alert {} (emailing it anyway): {}", alert.dedup_key, self.redact(str(error)))
        if not self.smtp.configured:
            logger.warning("alert (email not configured): {} {}", alert.title, alert.body)
            self.store.mark_sent(alert.dedup_key, self.clock())
            return Delivery("not-configured", alert, held)
        return self._deliver(alert, held, self.policy.send_attempts)

    def flush(self) -> int:
        """Retry queued alerts, oldest first, until the relay refuses one; returns how many went out."""
        if not self.smtp.configured:
            return 0
        sent = 0
        claimed = self.store.claim_queued(self.policy, self.clock())
        for at, alert in enumerate(claimed):
            if self._deliver(alert, 0, 1).status != "sent":
                self.store.release([a.dedup_key for a in claimed[at + 1 :]])
                break
            sent += 1
        return sent

    def _deliver(self, alert: Alert, held: int, attempts: int) -> Delivery:
        subject, text, body_html = render_alert(alert, held)
        first_wait = self.policy.retry_seconds
        retry = RetryPolicy(attempts=attempts, retry_on=_relay_failure, first_wait_s=first_wait,
                            max_wait_s=first_wait * 2 ** max(attempts - 2, 0))
        try:
            retry.call(lambda: send_email(self.smtp, subject, text, body_html))
        except (OSError, smtplib.SMTPException) as failure:
            error = self.redact(f"{type(failure).__name__}: {failure}")
            logger.error("could not email alert {} ({} attempts): {}; queued for the next flush", alert.dedup_key,
                         attempts, error)
            self.store.queue(alert, error, self.clock())
            return Delivery("queued", alert, held, error)
        self.store.mark_sent(alert.dedup_key, self.clock())
        return Delivery("sent", alert, held)

    def send_daily_summary(self, summary: DailySummary) -> bool:
        """The daily summary is not throttled: it is one email a day by schedule. False when email is off."""
        if not self.smtp.configured:
            logger.warning("daily summary not emailed: QUARRY_SMTP_HOST / QUARRY_SMTP_RECIPIENTS not set")
            return False
        send_email(self.smtp, *render_daily_summary(summary))
        return True
