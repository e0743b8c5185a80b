"""Dask fan-out: the materialize flow on a local Dask cluster of two worker processes (prefect-dask)."""

from datetime import date

import pytest

pytestmark = pytest.mark.slow


def test_batches_fan_out_over_dask_workers_and_publish(prefect_harness, lake, monkeypatch):
    from pipelines.flows import materialize_flow, task_runner
    from pipelines.settings import Settings

    for key, value in {**lake.env(), "QUARRY_TASK_RUNNER": "dask", "QUARRY_DASK_WORKERS": "2",
                       "QUARRY_BATCH_PARTITIONS": "2"}.items():
        monkeypatch.setenv(key, value)
    flow = materialize_flow.with_options(task_runner=task_runner(Settings()))
    summary = flow(selection="+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 14))

    assert summary.exit_code == 0
    assert {a: len(o.built) for a, o in summary.outcomes.items()} == {
        "bars_raw": 10, "splits": 1, "bars_hourly": 10, "bars_daily": 10,
    }
    workers = set().union(*(o.workers for o in summary.outcomes.values()))
    assert len(workers) >= 2, workers  # the batches really ran in more than one process
    import os

    assert not any(w.endswith(f":{os.getpid()}") for w in workers)
    published = lake.warehouse.current_versions(["bars_daily"])
    assert published.height == 10 and published["partition_key"].is_unique().all()


def test_dask_build_publishes_the_data_versions_of_the_threads_build(prefect_harness, make_lake, monkeypatch):
    """The pairs strategy over four months: two Dask workers and the thread pool publish identical data."""
    from pipelines.flows import materialize_flow, task_runner
    from pipelines.settings import Settings

    start, end, selection = date(2025, 1, 2), date(2025, 4, 30), "+strategy_performance"
    threads_lake, dask_lake = make_lake("threads"), make_lake("dask")
    threads = threads_lake.materialize(selection, start=start, end=end, batch_partitions=20)
    for key, value in {**dask_lake.env(), "QUARRY_TASK_RUNNER": "dask", "QUARRY_DASK_WORKERS": "2",
                       "QUARRY_BATCH_PARTITIONS": "20"}.items():
        monkeypatch.setenv(key, value)
    on_dask = materialize_flow.with_options(task_runner=task_runner(Settings()))(selection=selection, start=start, end=end)

    assert threads.exit_code == on_dask.exit_code == 0
    assert len(threads.outcomes["pair_candidates"].built) >= 16  # enough weeks for the scan's worker processes

    def published(lake):
        return lake.warehouse.current_versions().select("asset", "partition_key", "data_version", "row_count").sort(
            "asset", "partition_key"
        )

    assert published(threads_lake)["asset"].unique().sort().to_list() == sorted(threads.outcomes)
    assert published(dask_lake).equals(published(threads_lake))
