"""The ledger on a real database (SQLite, and PostgreSQL in CI): migrations, unique client order ids, idempotent writes."""

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

import pytest

from warehouse import ledger as tables
from warehouse.ledger import Ledger, upgrade

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def order(cid="q-c-KO.PEP-y-open", **overrides):
    return dict(client_order_id=cid, cycle_id="c", strategy="pairs", pair_id="KO/PEP", leg="y", action="open",
                symbol="KO", side="buy", qty=10.0, filled_qty=0.0, status="new", created_at=NOW,
                updated_at=NOW) | overrides


def test_migrations_create_every_table_and_rerun_cleanly(ledger):
    upgrade(ledger.engine)
    names = set(sa.inspect(ledger.engine).get_table_names())
    assert set(tables.metadata.tables) <= names
    for name, table in tables.metadata.tables.items():
        migrated = {c["name"] for c in sa.inspect(ledger.engine).get_columns(name)}
        assert migrated == set(table.columns.keys()), name


def test_a_client_order_id_can_exist_once(ledger):
    assert ledger.insert_order(order())
    assert not ledger.insert_order(order(qty=20.0))
    with pytest.raises(IntegrityError):
        with ledger.engine.begin() as connection:
            connection.execute(tables.orders.insert().values(**order(qty=30.0)))
    assert ledger.count(tables.orders) == 1 and ledger.order("q-c-KO.PEP-y-open")["qty"] == 10.0


def test_fills_are_recorded_once_and_timestamps_stay_utc(ledger):
    ledger.insert_order(order())
    fill = dict(client_order_id="q-c-KO.PEP-y-open", fill_key="q-c-KO.PEP-y-open@10", symbol="KO", side="buy",
                qty=10.0, px=60.0, filled_at=NOW)
    assert ledger.record_fill(**fill) and not ledger.record_fill(**fill)
    assert ledger.rows(tables.fills)[0]["filled_at"] == NOW
    with pytest.raises(IntegrityError):
        with ledger.engine.begin() as connection:
            connection.execute(tables.orders.insert().values(**order(cid="q-bad", qty=0.0)))


def test_decisions_are_one_per_cycle_and_subject_and_the_kill_switch_persists(ledger):
    versions = [{"asset": "pair_signals", "partition_key": "2025-09-04", "version_id": "v1", "data_version": "d"}]
    for verdict in ("approved", "rejected"):
        ledger.record_decision(at=NOW, cycle_id="c", strategy="pairs", subject="KO/PEP", action="open",
                               verdict=verdict, versions=versions)
    rows = ledger.rows(tables.decisions)
    assert len(rows) == 1 and rows[0]["verdict"] == "rejected" and '"version_id": "v1"' in rows[0]["asset_versions"]
    assert not ledger.kill_switch()
    ledger.set_kill_switch(True)
    assert ledger.kill_switch()


def test_a_cycle_is_held_by_one_holder_at_a_time_and_released_after(ledger):
    """Another engine on the same database (as another process would have) cannot take a held cycle."""
    other = Ledger(sa.create_engine(ledger.engine.url))
    with ledger.exclusive("pairs-20250904T1400") as held:
        assert held
        with other.exclusive("pairs-20250904T1400") as second:
            assert not second
        with other.exclusive("pairs-20250904T1500") as different:
            assert different
    with other.exclusive("pairs-20250904T1400") as after:
        assert after
    other.engine.dispose()


def test_upgrade_reports_nothing_to_do_once_migrated(ledger):
    assert upgrade(ledger.engine) is False


def test_the_migration_scripts_heads_match_alembics_and_a_current_ledger_needs_no_alembic(ledger, tmp_path):
    """Asking whether a ledger is current reads the scripts' revisions itself; Alembic is loaded only to migrate."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(tables.MIGRATIONS))
    assert tables._script_heads(tables.MIGRATIONS / "versions") == set(ScriptDirectory.from_config(config).get_heads())
    assert tables._recorded_revisions(ledger.engine) == tables._script_heads(tables.MIGRATIONS / "versions")
    fresh = sa.create_engine(f"sqlite:///{tmp_path}/fresh.sqlite")
    assert tables._recorded_revisions(fresh) is None
    assert upgrade(fresh) is True and upgrade(fresh) is False
    fresh.dispose()

    probe = subprocess.run(
        [sys.executable, "-c", "import sys, sqlalchemy as sa; from warehouse.ledger import upgrade; "
         f"print(upgrade(sa.create_engine({f'sqlite:///{tmp_path}/fresh.sqlite'!r})), 'alembic' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert probe.stdout.split() == ["False", "False"], probe.stderr[-2000:]


def test_a_paper_book_made_by_create_all_in_the_ledgers_database_keeps_its_own_history(ledger):
    """On SQLite and PostgreSQL a book sharing the ledger's database is adopted in place, and each store's
    version table holds only its own revision."""
    from pipelines.brokers import paper_orders
    from warehouse.ledger import PAPER_BOOK_HISTORY, schema_revisions

    paper_orders.metadata.create_all(ledger.engine)  # how the paper broker made its book before migrations
    with ledger.engine.begin() as connection:
        connection.execute(paper_orders.insert().values(
            client_order_id="old-1", symbol="KO", side="buy", qty=5.0, filled_qty=5.0, avg_fill_px=60.0,
            status="filled", reason=None, submitted_at=datetime(2025, 9, 4, 14, tzinfo=timezone.utc)))
    assert upgrade(ledger.engine, history=PAPER_BOOK_HISTORY) is True
    assert upgrade(ledger.engine, history=PAPER_BOOK_HISTORY) is False
    assert schema_revisions(ledger.engine, PAPER_BOOK_HISTORY) == {"0001_paper_book"}
    assert schema_revisions(ledger.engine) == tables._script_heads(tables.LEDGER_HISTORY.versions)
    assert upgrade(ledger.engine) is False  # the ledger is still at its head
    with ledger.engine.connect() as connection:
        assert connection.execute(sa.select(paper_orders.c.client_order_id)).scalars().all() == ["old-1"]
