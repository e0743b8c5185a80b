"""Backups you can trust: every file's SHA-256 checked on restore (one flipped byte is refused, nothing restored),
the ledger (SQLite, or PostgreSQL through pg_dump -Fc) and the paper broker's book in every backup, and the
weekly restore drill that re-verifies the restored warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.brokers import paper_engine, paper_orders
from warehouse import ledger as tables
from warehouse.backup import BackupError, backup, restore
from warehouse.ledger import Ledger, upgrade

pytestmark = pytest.mark.slow
QUARRY = str(Path(sys.executable).with_name("quarry"))
NOW = datetime(2025, 3, 5, 15, tzinfo=timezone.utc)


def _ledger_with_an_alert(url: str) -> Ledger:
    engine = sa.create_engine(url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.set_kill_switch(True, at=NOW)
    ledger.raise_alert(at=NOW, level="critical", source="kill-switch", message="kill switch turned on from the CLI")
    return ledger


def _book(path: Path) -> int:
    """A paper broker book with one order in it; returns how many orders it holds."""
    engine = paper_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        return len(connection.execute(paper_orders.select()).all())


@pytest.fixture
def desk(lake, tmp_path):
    """A small warehouse, a SQLite ledger with an alert and the kill switch on, and a paper broker book."""
    assert lake.materialize("+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 5)).exit_code == 0
    _ledger_with_an_alert(f"sqlite:///{tmp_path}/ledger.sqlite")
    book = tmp_path / "paper_broker.sqlite"
    engine = paper_engine(f"sqlite:///{book}")
    with engine.begin() as connection:
        connection.execute(paper_orders.insert().values(
            client_order_id="pairs-c1-0", symbol="KO", side="buy", qty=100, filled_qty=100, avg_fill_px=61.5,
            status="filled", submitted_at=NOW))
    return lake, tmp_path / "ledger.sqlite", book


def test_every_backup_holds_ledger_and_book_and_restores_them_exactly(desk, tmp_path):
    lake, ledger_path, book = desk
    taken = backup(lake.catalog, lake.data_path, tmp_path / "backups", ledger_path, book_path=book)
    assert {d.relative_path for d in taken.databases} == {"catalog.sqlite", "ledger.sqlite", "paper_broker.sqlite"}
    restored = restore(taken.path, tmp_path / "restored")
    restored_ledger = Ledger(sa.create_engine(f"sqlite:///{restored.ledger_path}"))
    assert restored_ledger.count(tables.alerts) == 1 and restored_ledger.kill_switch()
    assert _book(restored.book_path) == _book(book) == 1


@pytest.mark.parametrize("target", ["data file", "catalog", "ledger", "broker book"])
def test_one_flipped_byte_anywhere_is_refused_and_nothing_is_restored(desk, tmp_path, target):
    lake, ledger_path, book = desk
    taken = backup(lake.catalog, lake.data_path, tmp_path / "backups", ledger_path, book_path=book)
    victim = {
        "data file": taken.path / "lake" / taken.files[0].relative_path, "catalog": taken.path / "catalog.sqlite",
        "ledger": taken.path / "ledger.sqlite", "broker book": taken.path / "paper_broker.sqlite",
    }[target]
    content = bytearray(victim.read_bytes())
    content[len(content) // 2] ^= 0x01
    victim.write_bytes(bytes(content))

    with pytest.raises(BackupError, match="SHA-256"):
        restore(taken.path, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    cli = subprocess.run([QUARRY, "restore", str(taken.path), "--to", str(tmp_path / "cli-restored")],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2 and "SHA-256" in cli.stdout and "Traceback" not in cli.stdout + cli.stderr
    assert victim.name in cli.stdout.replace("\n", "")


def test_a_postgresql_ledger_is_dumped_and_restored(lake, tmp_path):
    dsn = os.environ.get("QUARRY_TEST_PG_DSN")
    if not dsn:
        pytest.skip("QUARRY_TEST_PG_DSN is not set")
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    names = [f"quarry_ledger_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect(dsn, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    source, target = (make_conninfo(**{**conninfo_to_dict(dsn), "dbname": name}) for name in names)
    try:
        params = conninfo_to_dict(source)
        url = sa.URL.create("postgresql+psycopg", username=params.get("user"), host=params.get("host"),
                            port=int(params.get("port", 5432)), database=params["dbname"])
        ledger = _ledger_with_an_alert(url)
        ledger.engine.dispose()
        taken = backup(lake.catalog, lake.data_path, tmp_path / "backups", ledger_conninfo=source)
        assert "ledger.dump" in {d.relative_path for d in taken.databases} and taken.ledger
        with pytest.raises(BackupError, match="PostgreSQL ledger"):
            restore(taken.path, tmp_path / "no-target")
        restored = restore(taken.path, tmp_path / "restored", target_ledger=target)
        assert restored.ledger_url == target
        with psycopg.connect(target) as con:
            assert con.execute("SELECT source, message FROM alerts").fetchall() == [
                ("kill-switch", "kill switch turned on from the CLI")]
            assert con.execute("SELECT value FROM controls WHERE name = 'kill_switch'").fetchall() == [("on",)]
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_restore_drill_passes_on_a_good_backup_and_fails_on_a_damaged_one(desk, tmp_path, monkeypatch,
                                                                              prefect_harness):
    from pipelines.maintenance import restore_drill_flow

    lake, ledger_path, book = desk
    for name, value in {**lake.env(), "QUARRY_BACKUPS_DIR": str(tmp_path / "backups"),
                        "QUARRY_LEDGER_URL": f"sqlite:///{ledger_path}", "QUARRY_BROKER_PAPER_URL": f"sqlite:///{book}",
                        "QUARRY_LOGS_DIR": str(tmp_path / "logs")}.items():
        monkeypatch.setenv(name, value)
    taken = backup(lake.catalog, lake.data_path, tmp_path / "backups", ledger_path, book_path=book)
    result = restore_drill_flow()
    assert result["damaged"] == [] and result["partitions"] > 0 and result["ledger"] and result["broker_book"]

    data_file = taken.path / "lake" / taken.files[-1].relative_path
    content = bytearray(data_file.read_bytes())
    content[len(content) // 2] ^= 0x01
    data_file.write_bytes(bytes(content))
    state = restore_drill_flow(return_state=True)
    assert state.is_failed() and "SHA-256" in str(state.message)
