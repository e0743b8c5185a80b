"""The paper book and the alert store migrate like the ledger: a store made by the code before numbered migrations
(`create_all`, raw DDL) is adopted in place, keeps its rows and records its schema version; a new one starts at head."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from pipelines.notify import AlertStore, ThrottlePolicy
from pipelines.settings import BrokerConfig
from pipelines.brokers import OrderRequest, PaperBroker, paper_engine, paper_orders
from warehouse.ledger import ALERT_STORE_HISTORY, PAPER_BOOK_HISTORY, _script_heads, schema_revisions

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)

#: The alert store's tables as `AlertStore` made them before migrations, and before sends were claimed.
ALERTS_DDL_BEFORE_MIGRATIONS = (
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, severity TEXT, title TEXT, body TEXT,
        dedup_key TEXT, details TEXT, created_at TEXT, delivery TEXT)""",
    """CREATE TABLE IF NOT EXISTS alert_throttle (
        dedup_key TEXT PRIMARY KEY, last_sent_at TEXT, held_back INTEGER NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS alert_sends (sent_at TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS alert_outbox (
        dedup_key TEXT PRIMARY KEY, alert TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, queued_at TEXT)""",
    "CREATE TABLE IF NOT EXISTS reported_runs (flow_run_id TEXT PRIMARY KEY, reported_at TEXT NOT NULL)",
)


def _sqlite(path) -> sa.Engine:
    return sa.create_engine(sa.URL.create("sqlite", database=str(path)))


def test_a_paper_book_made_by_create_all_is_adopted_with_its_orders(tmp_path):
    path = tmp_path / "paper.sqlite"
    before = _sqlite(path)
    paper_orders.metadata.create_all(before)  # how the broker made its book before migrations
    with before.begin() as connection:
        connection.execute(paper_orders.insert().values(
            client_order_id="old-1", symbol="KO", side="buy", qty=5.0, filled_qty=5.0, avg_fill_px=60.0,
            status="filled", reason=None, submitted_at=NOW))
    assert schema_revisions(before, PAPER_BOOK_HISTORY) is None
    before.dispose()

    settings = BrokerConfig(paper_url=f"sqlite:///{path}", reject_pct=0.0, partial_fill_pct=0.0)
    engine = paper_engine(settings.paper_url)
    assert schema_revisions(engine, PAPER_BOOK_HISTORY) == _script_heads(PAPER_BOOK_HISTORY.versions) == {"0001_paper_book"}
    broker = PaperBroker(engine, {"KO": 60.0}.get, NOW, settings)
    broker.submit_order(OrderRequest("new-1", "KO", "buy", 3.0))
    assert [o.client_order_id for o in broker.orders()] == ["old-1", "new-1"]
    assert [(p.symbol, p.qty) for p in broker.positions()] == [("KO", 8.0)]
    # the ledger's version table is not the book's: the two could share one database
    assert "alembic_version" not in sa.inspect(engine).get_table_names()


def test_a_new_paper_book_starts_at_head(tmp_path):
    engine = paper_engine(f"sqlite:///{tmp_path}/new/paper.sqlite")
    assert schema_revisions(engine, PAPER_BOOK_HISTORY) == {"0001_paper_book"}
    assert "paper_orders" in sa.inspect(engine).get_table_names()


def test_an_alert_store_made_by_raw_ddl_is_adopted_and_gains_send_claims(tmp_path):
    path = tmp_path / "alerts.sqlite"
    with sqlite3.connect(path) as con:
        for ddl in ALERTS_DDL_BEFORE_MIGRATIONS:
            con.execute(ddl)
        con.execute("INSERT INTO alert_throttle (dedup_key, last_sent_at, held_back) VALUES ('old', ?, 2)",
                    ((NOW - timedelta(minutes=5)).isoformat(),))
    con.close()

    store = AlertStore(path)
    engine = _sqlite(path)
    assert schema_revisions(engine, ALERT_STORE_HISTORY) == _script_heads(ALERT_STORE_HISTORY.versions) == {"0001_alert_store"}
    assert "claimed_until" in {c["name"] for c in sa.inspect(engine).get_columns("alert_throttle")}
    engine.dispose()
    policy = ThrottlePolicy(dedupe_window=timedelta(hours=1), max_per_hour=10)
    assert store.reserve(policy, "old", NOW) == ("deduplicated", 3)  # the throttle row it had is still read
    assert store.reserve(policy, "fresh", NOW)[0] == "send"
    assert store.reserve(policy, "fresh", NOW)[0] == "deduplicated"  # claimed, so a second sender holds back
    assert AlertStore(path).reserve(policy, "fresh", NOW)[0] == "deduplicated"  # reopening migrates nothing away


def test_a_new_alert_store_starts_at_head(tmp_path):
    store = AlertStore(tmp_path / "new" / "alerts.sqlite")
    engine = _sqlite(store.path)
    assert schema_revisions(engine, ALERT_STORE_HISTORY) == {"0001_alert_store"}
    assert {"alerts", "alert_throttle", "alert_sends", "alert_outbox", "reported_runs"} <= set(
        sa.inspect(engine).get_table_names())
    engine.dispose()
