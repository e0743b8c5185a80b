"""The team setup backed up and restored: a DuckLake catalog on PostgreSQL, the ledger on PostgreSQL and the paper
broker's book. The weekly backup flow takes all three; `quarry restore` brings them back into empty databases with
the same rows; the restore drill flow restores into scratch databases of its own, verifies and drops them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import postgres_catalog_database
from warehouse import Warehouse
from warehouse.ledger import Ledger, upgrade

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
QUARRY = str(Path(sys.executable).with_name("quarry"))
NOW = datetime(2025, 3, 5, 15, tzinfo=timezone.utc)


@contextmanager
def _database(dsn: str):
    """An empty PostgreSQL database: its libpq address and its SQLAlchemy URL."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"quarry_ledger_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = {**conninfo_to_dict(dsn), "dbname": name}
    url = sa.URL.create("postgresql+psycopg", username=params.get("user"), password=params.get("password"),
                        host=params.get("host"), port=int(params.get("port", 5432)), database=name)
    try:
        yield make_conninfo(**params), url
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drill_databases(dsn: str) -> list[str]:
    import psycopg

    from pipelines.maintenance import DRILL_DATABASE_PREFIX

    with psycopg.connect(dsn) as con:
        return [r[0] for r in con.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                          (DRILL_DATABASE_PREFIX + "%",)).fetchall()]


def test_a_team_backup_restores_catalog_ledger_and_book_and_the_drill_cleans_up(
    make_lake, tmp_path, monkeypatch, prefect_harness,
):
    dsn = os.environ.get("QUARRY_TEST_PG_DSN")
    if not dsn:
        pytest.skip("QUARRY_TEST_PG_DSN is not set")
    from pipelines.maintenance import backup_databases_flow, restore_drill_flow
    from pipelines.brokers import paper_engine, paper_orders

    lake = make_lake("team", catalog_kind="postgres")
    assert lake.materialize("+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 5)).exit_code == 0
    expected = lake.warehouse.read("bars_daily").sort("symbol", "session_date")
    with _database(dsn) as (_, ledger_url), _database(dsn) as (restored_ledger, _), \
            postgres_catalog_database(dsn) as restored_catalog:
        engine = sa.create_engine(ledger_url)
        upgrade(engine)
        ledger = Ledger(engine)
        ledger.set_kill_switch(True, at=NOW)
        ledger.raise_alert(at=NOW, level="critical", source="kill-switch", message="kill switch turned on from the CLI")
        engine.dispose()
        book = tmp_path / "paper_broker.sqlite"
        with paper_engine(f"sqlite:///{book}").begin() as connection:
            connection.execute(paper_orders.insert().values(
                client_order_id="pairs-c1-0", symbol="KO", side="buy", qty=100, filled_qty=100, avg_fill_px=61.5,
                status="filled", submitted_at=NOW))
        env = {**lake.env(), "QUARRY_LEDGER_URL": ledger_url.render_as_string(hide_password=False),
               "QUARRY_BROKER_PAPER_URL": f"sqlite:///{book}", "QUARRY_BACKUPS_DIR": str(tmp_path / "backups")}
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        taken = backup_databases_flow()
        backup_dir = Path(taken["path"])
        held = {p.name for p in backup_dir.iterdir()}
        assert {"catalog.dump", "ledger.dump", "paper_broker.sqlite", "manifest.json", "lake"} <= held

        drill = restore_drill_flow()
        assert drill["damaged"] == [] and drill["partitions"] == lake.warehouse.current_versions().height
        assert drill["ledger"] and drill["ledger_rows"]["alerts"] == 1 and drill["broker_book"]
        assert _drill_databases(dsn) == []  # the drill's scratch databases are gone

        cli = subprocess.run([QUARRY, "restore", str(backup_dir), "--to", str(tmp_path / "restored"),
                              "--catalog", f"postgres:{restored_catalog}", "--ledger", restored_ledger],
                             capture_output=True, text=True, timeout=300, env={**os.environ, **env})
        assert cli.returncode == 0, cli.stdout + cli.stderr
        with Warehouse.open(f"postgres:{restored_catalog}", f"{tmp_path / 'restored' / 'lake'}/",
                            read_only=True) as restored:
            assert restored.read("bars_daily").sort("symbol", "session_date").equals(expected)
        import psycopg

        with psycopg.connect(restored_ledger) as con:
            assert con.execute("SELECT source, message FROM alerts").fetchall() == [
                ("kill-switch", "kill switch turned on from the CLI")]
            assert con.execute("SELECT value FROM controls WHERE name = 'kill_switch'").fetchall() == [("on",)]
        restored_book = tmp_path / "restored" / "paper_broker.sqlite"
        with paper_engine(f"sqlite:///{restored_book}").connect() as connection:
            assert len(connection.execute(paper_orders.select()).all()) == 1

        # a damaged team backup fails the drill, and still leaves no scratch database behind
        dump = backup_dir / "ledger.dump"
        content = bytearray(dump.read_bytes())
        content[len(content) // 2] ^= 0x01
        dump.write_bytes(bytes(content))
        state = restore_drill_flow(return_state=True)
        assert state.is_failed() and "SHA-256" in str(state.message)
        assert _drill_databases(dsn) == []
