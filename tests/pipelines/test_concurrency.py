"""Several writer processes on one warehouse: different partitions both publish; a race on the same
partitions never leaves two current versions or a mix of rows. Runs on each catalog of the parity suite."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import catalog_kinds
from warehouse.versions import data_versions_by_partition

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import sys
    from datetime import date
    from assets import default_graph
    from assets.sources import SampleSource
    from pipelines.materialize import run_materialization, thread_submitter
    from pipelines.planning import RunWindow
    from warehouse import Warehouse

    catalog, data_path, start, end, seed, run_id = sys.argv[1:7]
    warehouse = Warehouse.open(catalog, data_path)
    submit, shutdown = thread_submitter(2)
    summary = run_materialization(
        default_graph(), warehouse, SampleSource(seed=int(seed)), selection="bars_raw",
        window=RunWindow.between(date.fromisoformat(start), date.fromisoformat(end)), run_id=run_id,
        submit=submit, full_refresh=True, batch_partitions=1,
    )
    shutdown()
    print(summary.totals["built"], summary.totals["failed"], flush=True)
    sys.exit(summary.exit_code)
    """
)


@pytest.fixture(params=catalog_kinds())
def lake(request, make_lake):
    return make_lake(catalog_kind=request.param)


def _workers(lake, jobs: list[tuple[str, str, int, str]]) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = [
        subprocess.Popen([sys.executable, "-c", WORKER, lake.catalog, lake.data_path, start, end, str(seed), run_id],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for start, end, seed, run_id in jobs
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in running]


def _assert_one_current_version_matching_its_rows(lake) -> pl.DataFrame:
    published = lake.warehouse.current_versions(["bars_raw"])
    assert published["partition_key"].is_unique().all(), "two current versions of one partition"
    rows = lake.warehouse.query("SELECT * FROM lake.main.bars_raw")
    by_partition = data_versions_by_partition(rows)
    recorded = dict(zip(published["partition_key"], published["data_version"]))
    assert by_partition == recorded, "published rows are not exactly the published versions' rows"
    return published


def test_writers_on_different_partitions_both_publish(lake):
    done = _workers(lake, [("2025-03-03", "2025-03-07", 7, "left"), ("2025-03-10", "2025-03-14", 7, "right")])
    assert [p.returncode for p in done] == [0, 0], [p.stderr[-800:] for p in done]
    published = _assert_one_current_version_matching_its_rows(lake)
    assert published.height == 10 and set(published["run_id"]) == {"left", "right"}


def test_writers_racing_on_the_same_partitions_leave_one_current_version(lake):
    done = _workers(lake, [("2025-03-03", "2025-03-07", 7, "seven"), ("2025-03-03", "2025-03-07", 8, "eight")])
    assert [p.returncode for p in done] == [0, 0], [p.stderr[-800:] for p in done]
    published = _assert_one_current_version_matching_its_rows(lake)
    assert published.height == 5
    every = lake.warehouse.versions("bars_raw")
    assert every.filter(pl.col("status") == "superseded").height == 5  # each partition: one winner, one superseded


#: The worker above, with both writers held at two meeting points: on entering the publish, and inside its
#: transaction after the previous version was read and superseded, just before COMMIT. Unserialized, both
#: transactions have then read the same state and both commit; a writer held back by a lock waits `inside` out alone.
RACING_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from warehouse import lake

    meeting, me = Path(sys.argv[7]), sys.argv[6]

    def meet(point: str, seconds: float) -> None:
        (meeting / f"{point}-{me}").touch()
        deadline = time.monotonic() + seconds
        while len(list(meeting.glob(f"{point}-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)

    publish, publish_in = lake.Warehouse.publish, lake.Warehouse._publish_in

    def publish_together(self, *batches):
        meet("arrived", 120)
        return publish(self, *batches)

    def publish_in_then_wait(self, cur, batch):
        checked = publish_in(self, cur, batch)
        meet("inside", 5)
        return checked

    lake.Warehouse.publish, lake.Warehouse._publish_in = publish_together, publish_in_then_wait
    sys.argv = sys.argv[:7]
    """
) + WORKER


def test_writers_held_inside_their_publish_of_the_same_partition_leave_one_current_version(lake, tmp_path):
    """Both writers read the partition's state before either commits (an earlier run created the table, so
    neither publish creates it); the second must still supersede the first, never publish beside it."""
    first = _workers(lake, [("2025-03-04", "2025-03-04", 7, "earlier")])
    assert first[0].returncode == 0, first[0].stderr[-800:]
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = [
        subprocess.Popen([sys.executable, "-c", RACING_WORKER, lake.catalog, lake.data_path, "2025-03-03", "2025-03-03",
                          str(seed), run_id, str(meeting)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for seed, run_id in ((7, "seven"), (8, "eight"))
    ]
    done = [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in running]
    assert [p.returncode for p in done] == [0, 0], [p.stderr[-800:] for p in done]
    assert len(list(meeting.glob("inside-*"))) == 2, "a writer never reached the point just before its commit"
    published = _assert_one_current_version_matching_its_rows(lake)
    assert sorted(published["partition_key"]) == ["2025-03-03", "2025-03-04"]
    raced = lake.warehouse.versions("bars_raw", "2025-03-03")
    assert sorted(raced["status"]) == ["published", "superseded"] and set(raced["run_id"]) == {"seven", "eight"}
