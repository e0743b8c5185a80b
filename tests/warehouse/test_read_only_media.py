"""A SQLite catalog in WAL mode on a read-only mount: one line naming the fix, then reads work once it is applied.
Needs root to bind-mount a directory read-only."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Warehouse, WarehouseError

pytestmark = pytest.mark.slow  # real processes on read-only media

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def read_only_view(tmp_path):
    """`tmp_path/rw` (writable) also seen through `tmp_path/ro`, a read-only bind mount."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    if subprocess.run(["mount", "--bind", str(rw), str(ro)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
    yield rw, ro
    subprocess.run(["umount", "-l", str(ro)], check=False)


def test_wal_catalog_on_read_only_media_says_how_to_fix_it_and_reads_once_fixed(make_lake, read_only_view):
    rw, ro = read_only_view
    lake = make_lake("built")
    lake.materialize("bars_raw")
    published = lake.warehouse.current_versions().height
    lake.warehouse.close()
    (rw / "catalog.sqlite").write_bytes((lake.root / "catalog.sqlite").read_bytes())
    con = sqlite3.connect(rw / "catalog.sqlite")
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.close()  # the last connection removes -wal and -shm: what a copied or archived catalog looks like
    catalog = f"sqlite:{ro}/catalog.sqlite"

    with pytest.raises(WarehouseError, match="read-only media") as refused:
        Warehouse.open(catalog, lake.data_path, read_only=True)
    assert "journal_mode=DELETE" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(WarehouseError, match="read-only media"):
        Warehouse.open(catalog, lake.data_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUARRY_CATALOG": catalog, "QUARRY_DATA_PATH": lake.data_path}
    cli = subprocess.run([sys.executable, "-c", "from pipelines.cli import main; main()", "assets"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode != 0 and "Traceback" not in cli.stdout + cli.stderr
    assert "read-only media" in cli.stdout + cli.stderr

    con = sqlite3.connect(rw / "catalog.sqlite")  # the fix the message names, on the writable side
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    with Warehouse.open(catalog, lake.data_path, read_only=True) as warehouse:
        assert warehouse.current_versions().height == published
        assert warehouse.read("bars_raw").height > 0
    cli = subprocess.run([sys.executable, "-c", "from pipelines.cli import main; main()", "assets", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode == 0, cli.stdout + cli.stderr
