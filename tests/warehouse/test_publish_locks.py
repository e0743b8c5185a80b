"""Publish locks across processes: a writer of a partition another process is publishing waits for it, a writer
of another partition does not; on a SQLite catalog (a file beside it) and a PostgreSQL one (advisory locks)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import catalog_kinds
from warehouse.publish_locks import partitions_locked

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from warehouse.publish_locks import partitions_locked

    catalog, held, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    with partitions_locked(catalog, [("bars_raw", "2025-03-03"), ("bars_raw", "2025-03-04")]):
        held.touch()
        time.sleep(seconds)
    """
)


@pytest.fixture(params=catalog_kinds())
def lake(request, make_lake):
    return make_lake(catalog_kind=request.param)


def _seconds_to_lock(catalog: str, partitions: list[tuple[str, str]]) -> float:
    started = time.monotonic()
    with partitions_locked(catalog, partitions):
        return time.monotonic() - started


def test_a_partition_being_published_elsewhere_waits_and_another_does_not(lake, tmp_path):
    held = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lake.catalog, str(held), "3"],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        while not held.exists():
            assert holder.poll() is None, holder.stderr.read()
            time.sleep(0.01)
        assert _seconds_to_lock(lake.catalog, [("bars_raw", "2025-03-05"), ("bars_hourly", "2025-03-03")]) < 1.0
        waited = _seconds_to_lock(lake.catalog, [("bars_raw", "2025-03-05"), ("bars_raw", "2025-03-04")])
        assert waited > 1.5, "the partition was locked while the other process still held it"
    finally:
        assert holder.wait(timeout=60) == 0, holder.stderr.read()


def test_no_partitions_take_no_lock(tmp_path):
    with partitions_locked(f"sqlite:{tmp_path}/catalog.sqlite", []):
        assert not list(tmp_path.iterdir())
