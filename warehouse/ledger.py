"""The trading ledger: orders, fills, positions, pair trades, risk events, alerts and decisions in SQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

__all__ = [
    "ACTIVE_ORDER_STATUSES",
    "ALERT_STORE_HISTORY",
    "LEDGER_HISTORY",
    "Ledger",
    "LedgerConfig",
    "MigrationHistory",
    "PAPER_BOOK_HISTORY",
    "TERMINAL_ORDER_STATUSES",
    "ledger_engine",
    "schema_revisions",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"
#: `not_submitted`: the broker never received it (not found by client order id after the grace period).
TERMINAL_ORDER_STATUSES = frozenset({"filled", "cancelled", "expired", "rejected", "not_submitted"})
ACTIVE_ORDER_STATUSES = frozenset({"new", "accepted", "partially_filled", "pending_cancel"})
KILL_SWITCH = "kill_switch"


class LedgerConfig(BaseModel):
    """Where the ledger lives: a SQLAlchemy URL, or the name of a prefect-sqlalchemy connector block."""

    model_config = ConfigDict(frozen=True)

    url: str = Field("sqlite:///data/ledger.sqlite", description="SQLAlchemy URL (postgresql+psycopg://... for a team).")
    connector_block: str | None = Field(None, description="Name of a SqlAlchemyConnector block to take the engine from.")


class UtcDateTime(sa.types.TypeDecorator):
    """Timestamps stored and returned as UTC-aware datetimes on every backend (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores UTC-aware timestamps only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


TS = UtcDateTime
metadata = sa.MetaData()
cycles = sa.Table(
    "cycles", metadata,
    sa.Column("cycle_id", sa.String(96), primary_key=True), sa.Column("strategy", sa.String(32)),
    sa.Column("started_at", TS), sa.Column("finished_at", TS), sa.Column("status", sa.String(16)),
    sa.Column("reason", sa.Text), sa.Column("asset_versions", sa.Text), sa.Column("is_dry_run", sa.Boolean),
)
orders = sa.Table(
    "orders", metadata,
    sa.Column("order_id", sa.Integer, primary_key=True), sa.Column("client_order_id", sa.String(128)),
    sa.Column("broker_order_id", sa.String(64)), sa.Column("cycle_id", sa.String(96)),
    sa.Column("strategy", sa.String(32)), sa.Column("pair_id", sa.String(64)),
    sa.Column("pair_trade_id", sa.String(160)), sa.Column("leg", sa.String(8)), sa.Column("action", sa.String(16)),
    sa.Column("symbol", sa.String(16)), sa.Column("side", sa.String(4)), sa.Column("qty", sa.Float),
    sa.Column("filled_qty", sa.Float), sa.Column("avg_fill_px", sa.Float), sa.Column("status", sa.String(24)),
    sa.Column("reason", sa.Text), sa.Column("created_at", TS), sa.Column("submitted_at", TS),
    sa.Column("updated_at", TS),
)
fills = sa.Table(
    "fills", metadata,
    sa.Column("fill_id", sa.Integer, primary_key=True), sa.Column("fill_key", sa.String(192)),
    sa.Column("client_order_id", sa.String(128)), sa.Column("symbol", sa.String(16)), sa.Column("side", sa.String(4)),
    sa.Column("qty", sa.Float), sa.Column("px", sa.Float), sa.Column("filled_at", TS),
)
positions = sa.Table(
    "positions", metadata,
    sa.Column("position_id", sa.Integer, primary_key=True), sa.Column("strategy", sa.String(32)),
    sa.Column("symbol", sa.String(16)), sa.Column("qty", sa.Float), sa.Column("avg_cost_px", sa.Float),
    sa.Column("realized_pnl", sa.Float), sa.Column("market_px", sa.Float), sa.Column("unrealized_pnl", sa.Float),
    sa.Column("updated_at", TS),
)
pair_trades = sa.Table(
    "pair_trades", metadata,
    sa.Column("pair_trade_id", sa.String(160), primary_key=True), sa.Column("strategy", sa.String(32)),
    sa.Column("pair_id", sa.String(64)), sa.Column("side", sa.String(16)), sa.Column("status", sa.String(16)),
    sa.Column("symbol_y", sa.String(16)), sa.Column("symbol_x", sa.String(16)), sa.Column("hedge_ratio", sa.Float),
    sa.Column("target_y_qty", sa.Float), sa.Column("target_x_qty", sa.Float), sa.Column("y_qty", sa.Float),
    sa.Column("x_qty", sa.Float), sa.Column("entry_zscore", sa.Float), sa.Column("exit_zscore", sa.Float),
    sa.Column("entry_ts", TS), sa.Column("exit_ts", TS), sa.Column("entry_y_px", sa.Float),
    sa.Column("entry_x_px", sa.Float), sa.Column("exit_y_px", sa.Float), sa.Column("exit_x_px", sa.Float),
    sa.Column("kelly_weight_pct", sa.Float), sa.Column("weight_pct", sa.Float), sa.Column("entry_notional", sa.Float),
    sa.Column("realized_pnl", sa.Float), sa.Column("bars_held", sa.Integer), sa.Column("exit_reason", sa.String(16)),
    sa.Column("opened_cycle_id", sa.String(96)), sa.Column("closed_cycle_id", sa.String(96)),
    sa.Column("updated_at", TS),
)
pair_marks = sa.Table(
    "pair_marks", metadata,
    sa.Column("mark_id", sa.Integer, primary_key=True), sa.Column("pair_trade_id", sa.String(160)),
    sa.Column("strategy", sa.String(32)), sa.Column("pair_id", sa.String(64)), sa.Column("bar_ts", TS),
    sa.Column("pnl", sa.Float), sa.Column("is_in_market", sa.Boolean),
)
account_marks = sa.Table(
    "account_marks", metadata,
    sa.Column("mark_id", sa.Integer, primary_key=True), sa.Column("marked_at", TS), sa.Column("equity", sa.Float),
    sa.Column("cash", sa.Float), sa.Column("gross_exposure", sa.Float), sa.Column("net_exposure", sa.Float),
)
risk_events = sa.Table(
    "risk_events", metadata,
    sa.Column("event_id", sa.Integer, primary_key=True), sa.Column("at", TS), sa.Column("cycle_id", sa.String(96)),
    sa.Column("rule", sa.String(48)), sa.Column("verdict", sa.String(16)), sa.Column("pair_id", sa.String(64)),
    sa.Column("symbol", sa.String(16)), sa.Column("value", sa.Float), sa.Column("limit_value", sa.Float),
    sa.Column("reason", sa.Text),
)
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True), sa.Column("at", TS), sa.Column("level", sa.String(16)),
    sa.Column("source", sa.String(48)), sa.Column("subject", sa.String(160)), sa.Column("message", sa.Text),
    sa.Column("cycle_id", sa.String(96)), sa.Column("is_acknowledged", sa.Boolean),
)
decisions = sa.Table(
    "decisions", metadata,
    sa.Column("decision_id", sa.Integer, primary_key=True), sa.Column("at", TS), sa.Column("cycle_id", sa.String(96)),
    sa.Column("strategy", sa.String(32)), sa.Column("subject", sa.String(64)), sa.Column("signal", sa.String(16)),
    sa.Column("zscore", sa.Float), sa.Column("action", sa.String(16)), sa.Column("verdict", sa.String(16)),
    sa.Column("reason", sa.Text), sa.Column("asset_versions", sa.Text), sa.Column("details", sa.Text),
)
controls = sa.Table(
    "controls", metadata,
    sa.Column("name", sa.String(48), primary_key=True), sa.Column("value", sa.String(200)),
    sa.Column("updated_at", TS),
)


def ledger_engine(config: LedgerConfig) -> Engine:
    """The ledger's engine: from the connector block when one is named, else from the URL."""
    if config.connector_block:
        from prefect_sqlalchemy import SqlAlchemyConnector

        return SqlAlchemyConnector.load(config.connector_block).get_engine()
    url = sa.make_url(config.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30} if url.get_backend_name() == "sqlite" else {})
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL so a reader never blocks the trading writer; foreign keys are off by default in SQLite."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass(frozen=True)
class MigrationHistory:
    """One SQL store's numbered Alembic scripts and the table in that store recording which have run.

    Every store shares `migrations/env.py`; each keeps its scripts in its own folder and its
    revision in its own table, so two stores on one database never mistake each other's history.
    """

    versions: Path
    version_table: str = "alembic_version"


LEDGER_HISTORY = MigrationHistory(MIGRATIONS / "versions")
#: The paper broker's book (`pipelines/brokers/paper.py`).
PAPER_BOOK_HISTORY = MigrationHistory(MIGRATIONS / "paper_book", "paper_book_version")
#: The alert store's throttle, outbox and alert rows (`pipelines/notify.py`).
ALERT_STORE_HISTORY = MigrationHistory(MIGRATIONS / "alert_store", "alert_store_version")


#: PostgreSQL advisory-lock keys (any fixed 64-bit numbers no other application on the database uses).
MIGRATION_LOCK_KEY = 0x71_75_61_72_72_79_6D  # "quarrym"
EXCLUSIVE_LOCK_NAMESPACE = 0x7175


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    return Path(database) if database not in (None, "", ":memory:") else None


@contextmanager
def _file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive `flock` on `path` for the block; the OS drops it when the process dies, so no lock is stale."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _heads(config) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(config).get_heads())


def _current(connection, version_table: str = "alembic_version") -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection, opts={"version_table": version_table}).get_current_heads())


def _script_heads(versions: Path) -> frozenset[str]:
    """The newest revisions of the migration scripts: every `revision` no script names as its `down_revision`.

    Read from the scripts' two assignments, so asking whether a ledger is current costs no
    Alembic import (about a tenth of a CPU-second on every run that plans live_performance).
    """
    import ast

    revisions: set[str] = set()
    replaced: set[str] = set()
    for script in versions.glob("*.py"):
        for statement in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
                name = statement.targets[0].id
                if name == "revision":
                    revisions.add(ast.literal_eval(statement.value))
                elif name == "down_revision":
                    down = ast.literal_eval(statement.value)
                    replaced.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    return frozenset(revisions - replaced)


def _recorded_revisions(engine: Engine, version_table: str = "alembic_version") -> frozenset[str] | None:
    """The revisions in a store's version table; None when it has none yet (a new store, or one made before migrations)."""
    try:
        with engine.connect() as connection:
            return frozenset(row[0] for row in connection.execute(sa.text(f"SELECT version_num FROM {version_table}")))
    except sa.exc.DBAPIError:
        return None


def schema_revisions(engine: Engine, history: MigrationHistory = LEDGER_HISTORY) -> frozenset[str] | None:
    """The Alembic revisions this store records: its schema version, None before its first upgrade."""
    return _recorded_revisions(engine, history.version_table)


def upgrade(engine: Engine, revision: str = "head", history: MigrationHistory = LEDGER_HISTORY) -> bool:
    """Apply a store's Alembic migrations (the ledger's unless told) up to `revision`, once per database; True when any step ran.

    Two processes opening a new store at once must not both create its tables: the
    upgrade runs under a file lock beside a SQLite file or a PostgreSQL advisory lock
    (held by the migrating transaction), and re-reads the revision once it holds the lock.
    """
    if revision == "head" and _recorded_revisions(engine, history.version_table) == _script_heads(history.versions):
        return False  # at head already, the answer of every run that finds nothing to migrate, without Alembic
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")  # a folder's path may hold spaces
    config.set_main_option("version_locations", str(history.versions))
    config.attributes["version_table"] = history.version_table
    target = _heads(config) if revision == "head" else {revision}
    with engine.connect() as connection:
        if _current(connection, history.version_table) == target:
            return False
    sqlite_file = _sqlite_file(engine)
    lock = _file_lock(sqlite_file.with_name(sqlite_file.name + ".migrate.lock")) if sqlite_file else nullcontext(True)
    with lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        if _current(connection, history.version_table) == target:
            return False
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return True


def _insert(engine: Engine, table: sa.Table):
    """The dialect's INSERT, which knows the conflict clause (ON CONFLICT on SQLite and PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Ledger:
    """Reads and idempotent writes over the ledger tables; each method is one transaction."""

    engine: Engine

    @classmethod
    def open(cls, config: LedgerConfig, *, migrate: bool = True) -> Ledger:
        engine = ledger_engine(config)
        if migrate:
            upgrade(engine)
        return cls(engine)

    # ---- generic -------------------------------------------------------------------------

    def rows(self, table: sa.Table, *where, order_by=None) -> list[dict[str, Any]]:
        query = sa.select(table).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def count(self, table: sa.Table, *where) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

    # ---- cycles and decisions ------------------------------------------------------------

    def start_cycle(self, cycle_id: str, strategy: str, at: datetime, is_dry_run: bool) -> bool:
        """Record a cycle as running; False when the cycle already ran to the end (a retry re-checks only)."""
        with self.engine.begin() as connection:
            found = connection.execute(sa.select(cycles.c.status).where(cycles.c.cycle_id == cycle_id)).scalar()
            connection.execute(_insert(self.engine, cycles).values(
                cycle_id=cycle_id, strategy=strategy, started_at=at, status="running", is_dry_run=is_dry_run,
            ).on_conflict_do_update(index_elements=[cycles.c.cycle_id], set_={"status": "running"}))
            return found != "done"

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to hold `name` (a cycle id) for the block: True if this process holds it, False if another does.

        A file lock beside a SQLite ledger, a session advisory lock on PostgreSQL; either is
        released when the holder ends, even by SIGKILL, so a crashed cycle can be retried.
        """
        sqlite_file = _sqlite_file(self.engine)
        if sqlite_file is not None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            with _file_lock(sqlite_file.with_name(f"{sqlite_file.name}.{safe}.lock"), blocking=False) as held:
                yield held
            return
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        with self.engine.connect() as connection:
            key = sa.func.hashtext(name)
            held = connection.execute(sa.select(sa.func.pg_try_advisory_lock(EXCLUSIVE_LOCK_NAMESPACE, key))).scalar()
            connection.commit()
            try:
                yield bool(held)
            finally:
                if held:
                    connection.execute(sa.select(sa.func.pg_advisory_unlock(EXCLUSIVE_LOCK_NAMESPACE, key)))
                    connection.commit()

    def finish_cycle(self, cycle_id: str, status: str, reason: str | None, versions: list[dict], at: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(cycles.update().where(cycles.c.cycle_id == cycle_id).values(
                status=status, reason=reason, finished_at=at, asset_versions=json.dumps(versions)))

    def record_decision(self, *, at: datetime, cycle_id: str, strategy: str, subject: str, action: str, verdict: str,
                        versions: list[dict], signal: str | None = None, zscore: float | None = None,
                        reason: str | None = None, details: Mapping[str, Any] | None = None) -> None:
        """The audit row of one decision; a re-run of the cycle replaces it with what it decided this time."""
        values = dict(at=at, cycle_id=cycle_id, strategy=strategy, subject=subject, signal=signal, zscore=zscore,
                      action=action, verdict=verdict, reason=reason, asset_versions=json.dumps(versions),
                      details=json.dumps(details or {}, default=str))
        self._upsert(decisions, [decisions.c.cycle_id, decisions.c.strategy, decisions.c.subject], values)

    # ---- orders and fills ----------------------------------------------------------------

    def order(self, client_order_id: str) -> dict | None:
        found = self.rows(orders, orders.c.client_order_id == client_order_id)
        return found[0] if found else None

    def insert_order(self, values: Mapping[str, Any]) -> bool:
        """Insert an order before it goes to the broker; False when its client order id is already taken."""
        return self._insert_once(orders, [orders.c.client_order_id], values)

    def _insert_once(self, table: sa.Table, key: list, values: Mapping[str, Any]) -> bool:
        """INSERT ... ON CONFLICT (key) DO NOTHING: True when this call wrote the row, False when it existed."""
        with self.engine.begin() as connection:
            written = connection.execute(
                _insert(self.engine, table).values(**values).on_conflict_do_nothing(index_elements=key).returning(*key))
            return written.first() is not None

    def _upsert(self, table: sa.Table, key: list, values: Mapping[str, Any]) -> None:
        """INSERT ... ON CONFLICT (key) DO UPDATE: one statement, so concurrent writers never collide."""
        names = {column.name for column in key}
        with self.engine.begin() as connection:
            connection.execute(_insert(self.engine, table).values(**values).on_conflict_do_update(
                index_elements=key, set_={k: v for k, v in values.items() if k not in names}))

    def update_order(self, client_order_id: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(orders.update().where(orders.c.client_order_id == client_order_id).values(
                updated_at=values.pop("updated_at", _utcnow()), **values))

    def active_orders(self) -> list[dict]:
        return self.rows(orders, orders.c.status.in_(sorted(ACTIVE_ORDER_STATUSES)), order_by=orders.c.order_id)

    def orders_of_trade(self, pair_trade_id: str) -> list[dict]:
        return self.rows(orders, orders.c.pair_trade_id == pair_trade_id, order_by=orders.c.order_id)

    def record_fill(self, *, client_order_id: str, fill_key: str, symbol: str, side: str, qty: float, px: float,
                    filled_at: datetime) -> bool:
        """Record one execution once: the fill key (order id and cumulative quantity) is unique."""
        return self._insert_once(fills, [fills.c.fill_key], dict(
            client_order_id=client_order_id, fill_key=fill_key, symbol=symbol, side=side, qty=qty, px=px,
            filled_at=filled_at))

    # ---- pair trades, positions, marks ---------------------------------------------------

    def pair_trade(self, pair_trade_id: str) -> dict | None:
        found = self.rows(pair_trades, pair_trades.c.pair_trade_id == pair_trade_id)
        return found[0] if found else None

    def live_pair_trades(self, strategy: str | None = None) -> list[dict]:
        """Pair trades not yet closed or unwound, oldest first."""
        where = [pair_trades.c.status.in_(["opening", "open", "closing"])]
        if strategy:
            where.append(pair_trades.c.strategy == strategy)
        return self.rows(pair_trades, *where, order_by=pair_trades.c.entry_ts)

    def insert_pair_trade(self, values: Mapping[str, Any]) -> bool:
        return self._insert_once(pair_trades, [pair_trades.c.pair_trade_id], {**values, "updated_at": _utcnow()})

    def update_pair_trade(self, pair_trade_id: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(pair_trades.update().where(pair_trades.c.pair_trade_id == pair_trade_id).values(
                updated_at=_utcnow(), **values))

    def replace_positions(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Positions are derived from fills: rewrite them in one transaction."""
        with self.engine.begin() as connection:
            connection.execute(positions.delete())
            batch = [dict(row) for row in rows]
            if batch:
                connection.execute(positions.insert(), batch)

    def upsert_pair_mark(self, *, pair_trade_id: str, strategy: str, pair_id: str, bar_ts: datetime, pnl: float,
                         is_in_market: bool) -> None:
        self._upsert(pair_marks, [pair_marks.c.pair_trade_id, pair_marks.c.bar_ts], dict(
            pair_trade_id=pair_trade_id, strategy=strategy, pair_id=pair_id, bar_ts=bar_ts, pnl=pnl,
            is_in_market=is_in_market))

    def upsert_account_mark(self, *, marked_at: datetime, equity: float, cash: float, gross_exposure: float,
                            net_exposure: float) -> None:
        self._upsert(account_marks, [account_marks.c.marked_at], dict(
            marked_at=marked_at, equity=equity, cash=cash, gross_exposure=gross_exposure, net_exposure=net_exposure))

    # ---- risk, alerts, controls ----------------------------------------------------------

    def record_risk_event(self, *, at: datetime, rule: str, verdict: str, reason: str, cycle_id: str | None = None,
                          pair_id: str | None = None, symbol: str | None = None, value: float | None = None,
                          limit_value: float | None = None) -> None:
        with self.engine.begin() as connection:
            connection.execute(risk_events.insert().values(
                at=at, cycle_id=cycle_id, rule=rule, verdict=verdict, pair_id=pair_id, symbol=symbol, value=value,
                limit_value=limit_value, reason=reason))

    def raise_alert(self, *, at: datetime, level: str, source: str, message: str, subject: str | None = None,
                    cycle_id: str | None = None) -> None:
        with self.engine.begin() as connection:
            connection.execute(alerts.insert().values(
                at=at, level=level, source=source, subject=subject, message=message, cycle_id=cycle_id,
                is_acknowledged=False))

    def pair_trade_marks(self) -> list[dict[str, Any]]:
        """Every mark of every pair trade: its cumulative P&L and whether it was in the market, per bar."""
        return self.rows(pair_marks)

    def pair_trade_statuses(self) -> dict[str, str]:
        """Each pair trade's status, by id."""
        return {t["pair_trade_id"]: t["status"] for t in self.rows(pair_trades)}

    def kill_switch(self) -> bool:
        found = self.rows(controls, controls.c.name == KILL_SWITCH)
        return bool(found) and found[0]["value"] == "on"

    def set_kill_switch(self, on: bool, at: datetime | None = None) -> None:
        self._upsert(controls, [controls.c.name],
                     dict(name=KILL_SWITCH, value="on" if on else "off", updated_at=at or _utcnow()))
