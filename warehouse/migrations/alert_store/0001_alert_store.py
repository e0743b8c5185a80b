"""The alert store's tables (alerts, throttle with send claims, hourly sends, outbox, reported runs); adopts a store made before migrations."""

import sqlalchemy as sa
from alembic import op

revision = "0001_alert_store"
down_revision = None
branch_labels = None
depends_on = None

# The store is a SQLite file read with plain `sqlite3`; IF NOT EXISTS lets a store made
# before migrations (by the same statements) be adopted as it is.
STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, severity TEXT, title TEXT, body TEXT,
        dedup_key TEXT, details TEXT, created_at TEXT, delivery TEXT)""",
    """CREATE TABLE IF NOT EXISTS alert_throttle (
        dedup_key TEXT PRIMARY KEY, last_sent_at TEXT, held_back INTEGER NOT NULL DEFAULT 0, claimed_until TEXT)""",
    "CREATE TABLE IF NOT EXISTS alert_sends (sent_at TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS alert_outbox (
        dedup_key TEXT PRIMARY KEY, alert TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, queued_at TEXT)""",
    "CREATE TABLE IF NOT EXISTS reported_runs (flow_run_id TEXT PRIMARY KEY, reported_at TEXT NOT NULL)",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    throttle = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("alert_throttle")}
    if "claimed_until" not in throttle:  # stores made before sends were claimed
        op.execute("ALTER TABLE alert_throttle ADD COLUMN claimed_until TEXT")
