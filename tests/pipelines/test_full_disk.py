"""A really full disk under the data path: `quarry materialize` stops with one line naming the disk, the failed
run is recorded with its summary, and nothing published changes. Needs root to mount a small tmpfs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Warehouse
from warehouse.lake import failure_kind

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("message, kind", [
    ('IO Error: Could not write file "/mnt/x/a.parquet": No space left on device', "disk-full"),
    ("database or disk is full", "disk-full"),
    ("Failed to commit DuckLake transaction: database or disk is full", "disk-full"),
    ('IO Error: Cannot open file "/lake/x.parquet": Permission denied', "permission"),
    ('IO Error: Cannot open file "/lake/x.parquet": No such file or directory', "missing-file"),
    ("attempt to write a readonly database", "read-only"),
    ("Failed to commit DuckLake transaction: conflict on table bars_raw", "conflict"),
    ("database is locked", "conflict"),
    ("Binder Error: column not found", "other"),
])
def test_failures_are_classified_before_any_retry(message, kind):
    assert failure_kind(RuntimeError(message)) == kind


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted under tmp_path (unmounted afterwards), or a skip saying why there is none."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the suite as root or in CI's container)")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _published(catalog: str, data_path: str) -> tuple[list, list]:
    with Warehouse.open(catalog, data_path, read_only=True) as warehouse:
        versions = warehouse.query(
            "SELECT asset, partition_key, version_id, data_version FROM lake.quarry.versions "
            "WHERE status = 'published' ORDER BY ALL").rows()
        rows = warehouse.query("SELECT * FROM lake.bars_raw ORDER BY ALL").rows()
    return versions, rows


def test_materialize_on_a_full_disk_stops_with_one_line_and_records_the_failed_run(tmp_path, small_disk, prefect_home):
    catalog, data_path = f"sqlite:{tmp_path}/catalog.sqlite", f"{small_disk}/lake/"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")},
           "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(prefect_home), "COLUMNS": "200",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
           "QUARRY_CATALOG": catalog, "QUARRY_DATA_PATH": data_path, "QUARRY_START_DATE": "2025-03-03",
           "QUARRY_REPORTS_DIR": str(tmp_path / "reports")}
    quarry = [sys.executable, "-c", "from pipelines.cli import main; main()", "materialize"]
    first = subprocess.run(quarry + ["bars_raw", "--to", "2025-03-07"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    before = _published(catalog, data_path)

    _fill(small_disk)

    full = subprocess.run(quarry + ["bars_raw+", "--to", "2025-03-07", "--full-refresh"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=600)
    output = full.stdout + full.stderr
    assert full.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    last = [line for line in full.stdout.splitlines() if line.strip()][-1]
    assert last.startswith(f"error: the disk at {small_disk} is full"), last
    assert "recorded as failed" in last

    assert _published(catalog, data_path) == before
    with Warehouse.open(catalog, data_path, read_only=True) as warehouse:
        run = warehouse.last_run()
    assert run["status"] == "failed" and run["built"] == 0
    assert "bars_raw" in run["summary"] and "is full" in run["summary"]


def _fill(disk: Path) -> None:
    """Write zeros until the filesystem refuses: a really full disk, not a simulated one."""
    with open(disk / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_optimize_on_a_full_disk_still_deletes_orphans_and_reports_the_failed_merge(tmp_path, small_disk):
    from datetime import date, datetime, timezone

    from tests.conftest import Lake
    from warehouse.optimize import optimize

    warehouse = Warehouse.open(f"sqlite:{tmp_path}/catalog.sqlite", f"{small_disk}/lake/")
    lake = Lake(tmp_path, f"sqlite:{tmp_path}/catalog.sqlite", f"{small_disk}/lake/", warehouse)
    try:
        for day in (date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)):  # one small file per run: mergeable
            lake.materialize("bars_raw", start=day, end=day, run_id=f"run-{day}")
        [first, *_] = warehouse.query("SELECT data_file FROM ducklake_list_files('lake', 'bars_raw')")["data_file"]
        orphan = Path(first).with_name("ducklake-orphan-left-by-a-killed-writer.parquet")
        orphan.write_bytes(Path(first).read_bytes())
        before = warehouse.query("SELECT * FROM lake.bars_raw ORDER BY ALL").rows()
        _fill(small_disk)

        result = optimize(warehouse, datetime.now(timezone.utc), orphan_age_hours=0)
        assert not orphan.exists(), "orphan cleanup must run even though the merge failed"
        assert any(p.startswith("merge adjacent files") and ("full" in p or "space" in p) for p in result.problems), \
            result.problems
        assert warehouse.query("SELECT * FROM lake.bars_raw ORDER BY ALL").rows() == before
    finally:
        warehouse.close()
