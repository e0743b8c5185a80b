"""Backup while a writer process keeps publishing, then restore into a fresh place: counts and data versions agree."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import WINDOW_START
from warehouse import Warehouse
from warehouse.backup import Backup, BackupError, backup, list_backups, restore
from warehouse.versions import data_versions_by_partition

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import date, timedelta
    from assets import default_graph
    from assets.sources import SampleSource
    from pipelines.materialize import run_materialization, thread_submitter
    from pipelines.planning import RunWindow
    from warehouse import Warehouse

    catalog, data_path, marker = sys.argv[1:4]
    start = date(2025, 3, 3)
    with Warehouse.open(catalog, data_path) as warehouse:
        for round_no in range(6):
            submit, shutdown = thread_submitter(2)
            try:
                run_materialization(
                    default_graph(), warehouse, SampleSource(), selection="+bars_daily",
                    window=RunWindow.between(start, date(2025, 3, 7) + timedelta(days=round_no)),
                    run_id=f"writer-{round_no}", submit=submit, full_refresh=round_no % 2 == 1,
                )
            finally:
                shutdown()
            open(marker, "a").write(f"{round_no}\\n")
    """
)


def _consistent(warehouse: Warehouse) -> dict[str, tuple[int, int]]:
    """Every published version's rows are in its table with its row count and data version; totals per asset."""
    current = warehouse.current_versions()
    totals = {}
    for asset in current["asset"].unique().to_list():
        mine = current.filter(pl.col("asset") == asset)
        rows = warehouse.query(f'SELECT * FROM lake.main."{asset}"')
        by_partition = data_versions_by_partition(rows)
        counts = dict(rows.group_by("partition_key").len().iter_rows())
        for v in mine.iter_rows(named=True):
            assert counts.get(v["partition_key"], 0) == v["row_count"], (asset, v["partition_key"])
            assert by_partition.get(v["partition_key"], "empty") == v["data_version"] or v["row_count"] == 0
        totals[asset] = (mine.height, rows.height)
    return totals


def test_backup_during_writes_restores_consistent_lake(make_lake, tmp_path):
    source = make_lake("source")
    source.materialize("+bars_daily", start=WINDOW_START, end=WINDOW_START)  # something to back up from the start
    ledger = tmp_path / "ledger.sqlite"
    with sqlite3.connect(ledger) as con:
        con.execute("CREATE TABLE orders (order_id TEXT, qty REAL)")
        con.executemany("INSERT INTO orders VALUES (?, ?)", [("o1", 10), ("o2", -5)])
    con.close()

    marker = tmp_path / "rounds"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, source.catalog, source.data_path, str(marker)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 60
        while not marker.exists() and writer.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), writer.stderr.read() if writer.poll() is not None else "writer never finished a round"
        taken = []
        while writer.poll() is None or len(taken) < 2:  # back up again and again while the writer publishes
            taken.append(backup(source.catalog, source.data_path, tmp_path / "backups", ledger))
            time.sleep(0.2)
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()

    assert list_backups(tmp_path / "backups") == sorted(b.path for b in taken)
    loaded = Backup.load(taken[0].path)
    assert loaded.files and loaded.ledger and loaded.latest_snapshot_id == taken[0].latest_snapshot_id

    snapshots = [b.latest_snapshot_id for b in taken]
    assert len(set(snapshots)) >= 2, snapshots  # the backups saw the lake at different moments of the writes
    for number, one in enumerate([taken[0], taken[len(taken) // 2], taken[-1]]):
        restored = restore(one.path, tmp_path / f"restored-{number}")
        with Warehouse.open(restored.catalog, restored.data_path, read_only=True) as copy:
            totals = _consistent(copy)
            assert totals["bars_hourly"][0] >= 1
            copied_versions = copy.query("SELECT version_id, data_version, row_count, status FROM lake.quarry.versions")
        # the backup is the source as it was at one instant: every version it holds is in the source, unchanged
        later = source.warehouse.query("SELECT version_id, data_version, row_count FROM lake.quarry.versions")
        joined = copied_versions.join(later, on="version_id", how="left", suffix="_now")
        assert joined["data_version_now"].null_count() == 0
        assert (joined["data_version"] == joined["data_version_now"]).all()
        with sqlite3.connect(restored.ledger_path) as con:
            assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
        con.close()

    # the source was never touched by the restores and is itself consistent
    assert _consistent(source.warehouse)["bars_daily"][0] == 8  # sessions 2025-03-03 .. 2025-03-12


def test_restore_refuses_a_non_empty_target(lake, tmp_path):
    lake.materialize("bars_raw", start=WINDOW_START, end=WINDOW_START)
    taken = backup(lake.catalog, lake.data_path, tmp_path / "backups")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        restore(taken.path, occupied)
