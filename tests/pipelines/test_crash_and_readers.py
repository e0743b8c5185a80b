"""Real processes: a writer killed with SIGKILL mid-publish, and a reader holding the lake attached during a run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import catalog_kinds
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    from assets import default_graph
    from assets.sources import SampleSource
    from pipelines.materialize import run_materialization, thread_submitter
    from pipelines.planning import RunWindow
    from warehouse import Warehouse
    from warehouse import lake as lake_module

    catalog, data_path = sys.argv[1], sys.argv[2]
    original = lake_module.Warehouse._publish_in

    def publish_then_hang(self, cur, batch):
        original(self, cur, batch)  # every statement of the publish ran; COMMIT has not
        print("IN_TRANSACTION", flush=True)
        time.sleep(120)

    lake_module.Warehouse._publish_in = publish_then_hang
    warehouse = Warehouse.open(catalog, data_path)
    submit, _ = thread_submitter(1)
    run_materialization(default_graph(), warehouse, SampleSource(seed=99), selection="bars_raw",
                        window=RunWindow.between(date(2025, 3, 3), date(2025, 3, 14)), run_id="doomed",
                        submit=submit, full_refresh=True)
    """
)

# killed right after a publish committed, before any follow-up catalog write (the next batch, the run record)
WRITER_AFTER_COMMIT = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    from assets import default_graph
    from assets.sources import SampleSource
    from pipelines.materialize import run_materialization, thread_submitter
    from pipelines.planning import RunWindow
    from warehouse import Warehouse
    from warehouse import lake as lake_module

    catalog, data_path = sys.argv[1], sys.argv[2]

    original = lake_module.Warehouse.publish

    def committed_then_hang(self, *batches):
        original(self, *batches)
        print("COMMITTED", flush=True)  # the publish transaction committed; nothing after it ran
        time.sleep(120)

    lake_module.Warehouse.publish = committed_then_hang
    warehouse = Warehouse.open(catalog, data_path)
    submit, _ = thread_submitter(1)
    run_materialization(default_graph(), warehouse, SampleSource(seed=99), selection="bars_raw",
                        window=RunWindow.between(date(2025, 3, 3), date(2025, 3, 14)), run_id="doomed",
                        submit=submit, full_refresh=True)
    """
)

READER = textwrap.dedent(
    """
    import json, sys, time, duckdb
    from warehouse.lake import attach_sql, load_extensions
    catalog, data_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    con = duckdb.connect()
    load_extensions(con, catalog)
    con.execute(attach_sql(catalog, data_path, read_only=True))
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            versions = con.execute("SELECT count(*) FROM lake.quarry.versions WHERE status = 'published'").fetchone()[0]
            rows = con.execute("SELECT count(*) FROM lake.bars_daily").fetchone()[0]
            print(json.dumps({"published": versions, "rows": rows}), flush=True)
        except Exception as error:
            print(json.dumps({"error": str(error)}), flush=True)
        time.sleep(0.2)
    """
)


def _python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kwargs)


def _snapshot(warehouse: Warehouse) -> dict:
    versions = warehouse.query("SELECT asset, partition_key, version_id, status, data_version FROM lake.quarry.versions ORDER BY ALL")
    rows = warehouse.query("SELECT * FROM lake.bars_raw ORDER BY symbol, bar_ts")
    return {"versions": versions, "rows": rows}



@pytest.fixture(params=catalog_kinds())
def lake(request, make_lake):
    """The parity suite: every test here runs on a SQLite and (when configured, always in CI) a PostgreSQL catalog."""
    return make_lake(catalog_kind=request.param)

def test_sigkill_mid_publish_leaves_published_state_unchanged_and_next_run_completes(lake):
    lake.materialize("+bars_daily", run_id="before")
    before = _snapshot(lake.warehouse)
    lake.warehouse.close()

    writer = _python(WRITER, lake.catalog, lake.data_path)
    line = writer.stdout.readline()
    assert line.strip() == "IN_TRANSACTION", writer.stderr.read()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    reopened = Warehouse.open(lake.catalog, lake.data_path)
    lake.warehouse = reopened
    after = _snapshot(reopened)
    assert after["versions"].equals(before["versions"])
    assert after["rows"].equals(before["rows"])

    files_before = {p for p in Path(lake.data_path).rglob("*.parquet")}
    reopened.delete_orphaned_files(older_than_hours=None)
    assert {p for p in Path(lake.data_path).rglob("*.parquet")} <= files_before

    summary = lake.materialize("+bars_daily", run_id="after", full_refresh=True)
    assert summary.exit_code == 0 and summary.totals["failed"] == 0
    assert reopened.read("bars_raw").height == before["rows"].height


def test_sigkill_right_after_a_publish_commit_leaves_a_consistent_new_version(lake):
    """The publish committed, no follow-up catalog write ran: the new version is whole and readable."""
    from warehouse.verify import verify

    lake.materialize("+bars_daily", run_id="before")
    before = _snapshot(lake.warehouse)
    lake.warehouse.close()

    writer = _python(WRITER_AFTER_COMMIT, lake.catalog, lake.data_path)
    line = writer.stdout.readline()
    assert line.strip() == "COMMITTED", writer.stderr.read()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)

    reopened = Warehouse.open(lake.catalog, lake.data_path)
    lake.warehouse = reopened
    published = reopened.current_versions(["bars_raw"])
    assert published.height == before["versions"].filter(pl.col("asset") == "bars_raw").height
    assert published.group_by("partition_key").len()["len"].max() == 1  # one published version per partition
    doomed = published.filter(pl.col("run_id") == "doomed")
    assert doomed.height > 0 and reopened.run("doomed") is None  # published, but the run was never recorded
    assert not [c for c in verify(reopened, ["bars_raw"]) if c.is_damaged]  # rows match their data versions
    version = doomed.row(0, named=True)
    assert reopened.read_as_of("bars_raw", version_id=version["version_id"]).height == version["row_count"]

    summary = lake.materialize("+bars_daily", run_id="after")
    assert summary.exit_code == 0 and summary.totals["failed"] == 0


def test_reader_process_keeps_reading_during_a_run_and_sees_new_versions(lake):
    lake.materialize("+bars_daily", run_id="first", end=date(2025, 3, 7))
    reader = _python(READER, lake.catalog, lake.data_path, "12")
    first = json.loads(reader.stdout.readline())
    assert first.get("published", 0) > 0, first

    summary = lake.materialize("+bars_daily", run_id="second")
    assert summary.exit_code == 0
    published_now = lake.warehouse.current_versions().height

    out, err = reader.communicate(timeout=60)
    seen = [first] + [json.loads(line) for line in out.splitlines() if line.strip()]
    assert not [s for s in seen if "error" in s], [s for s in seen if "error" in s][:3]
    assert seen[-1]["published"] == published_now > first["published"]
    assert seen[-1]["rows"] > first["rows"]
