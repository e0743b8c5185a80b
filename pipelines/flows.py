"""Prefect flows over the materializer: the run record, native asset events, the quality report artifact."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from loguru import logger
from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.assets import Asset as PrefectAsset
from prefect.assets import add_asset_metadata, materialize as prefect_materialize
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from assets import Asset, default_graph
from pipelines.building import BatchResult, BuildContext, build_batch
from pipelines.logs import route_to_prefect
from pipelines.materialize import RunSummary, run_materialization
from pipelines.planning import PartitionWork
from pipelines.runs import default_window, make_source, record_and_report
from pipelines.settings import Settings
from warehouse import Warehouse
from warehouse.versions import new_id


def asset_key(name: str) -> str:
    return f"quarry://{name}"


def _materialize_batch(ctx: BuildContext, asset: Asset, work: list[PartitionWork]) -> BatchResult:
    result = build_batch(ctx, asset, work)
    add_asset_metadata(asset_key(asset.name), result.metadata())
    return result


@dataclass(frozen=True)
class WarehouseAddress:
    """Where a batch running in another process finds the warehouse: it opens its own connection."""

    catalog: str
    data_path: str


#: One open warehouse per worker process and address; a Dask worker runs many batches.
_WORKER_WAREHOUSES: dict[WarehouseAddress, Warehouse] = {}
_WORKER_LOCK = threading.Lock()


def _warehouse_at(address: WarehouseAddress) -> Warehouse:
    with _WORKER_LOCK:
        if address not in _WORKER_WAREHOUSES:
            _WORKER_WAREHOUSES[address] = Warehouse.open(address.catalog, address.data_path)
        return _WORKER_WAREHOUSES[address]


def _materialize_remote_batch(
    address: WarehouseAddress, ctx: BuildContext, asset_name: str, work: list[PartitionWork]
) -> BatchResult:
    """A batch in another process: the asset graph is rebuilt there from code, never shipped as pickled functions
    (a code version is a digest of source the worker must be able to read)."""
    graph = default_graph()
    result = build_batch(replace(ctx, graph=graph, warehouse=_warehouse_at(address)), graph[asset_name], work)
    add_asset_metadata(asset_key(asset_name), {**result.metadata(), "worker": result.worker})
    return result


def task_runner(settings: Settings):
    """The flow's task runner from settings: bounded threads, or Dask through prefect-dask."""
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True})
    return ThreadPoolTaskRunner(max_workers=settings.max_workers)


def prefect_submitter(remote: WarehouseAddress | None = None):
    """Submit each batch as a Prefect materializing task, so the server records asset events and lineage.

    With `remote`, batches may run in other processes (Dask workers): the context travels
    without its warehouse connection and each worker opens the warehouse at that address.
    """

    def submit(ctx: BuildContext, asset: Asset, work: list[PartitionWork]):
        materializing = prefect_materialize(
            PrefectAsset(key=asset_key(asset.name)),
            asset_deps=[asset_key(d) for d in asset.deps],
            name=f"materialize-{asset.name}",
            cache_policy=NO_CACHE,
            persist_result=False,
        )(_materialize_batch if remote is None else _materialize_remote_batch)
        partitions = f"{work[0].partition_key}..{work[-1].partition_key}"
        task = materializing.with_options(task_run_name=f"{asset.name}[{partitions}]")
        if remote is None:
            return task.submit(ctx, asset, work)
        return task.submit(remote, replace(ctx, graph=None, warehouse=None), asset.name, work)

    return submit


@flow(name="materialize", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def materialize_flow(
    selection: str | None = None,
    start: date | None = None,
    end: date | None = None,
    full_refresh: bool = False,
    repair: bool = False,
    exclude: str | None = None,
):
    """Materialize a selection of assets over a window of sessions (default: the configured history).

    `selection` and `exclude` follow dbt's grammar: space-separated selectors, comma for intersection.
    """
    settings = Settings()
    route_to_prefect(settings.log_level)
    window = default_window(settings, start, end)
    run_id = str(flow_run.get_id() or new_id("run-"))
    with Warehouse.open(settings.catalog, settings.data_path) as warehouse:
        summary = run_materialization(
            default_graph(),
            warehouse,
            make_source(settings),
            selection=selection,
            window=window,
            run_id=run_id,
            submit=prefect_submitter(
                WarehouseAddress(settings.catalog, settings.data_path) if settings.task_runner == "dask" else None
            ),
            full_refresh=full_refresh,
            repair=repair,
            batch_partitions=settings.batch_partitions,
            exclude=exclude,
        )
        report = record_and_report(warehouse, settings, summary, flow_run_id=run_id)
    publish_artifacts(summary, report)
    if summary.exit_code:
        raise RunNotClean(summary)
    return summary


class RunNotClean(RuntimeError):
    """Raised at the end of a run that quarantined or failed partitions, so the flow run is Failed."""

    def __init__(self, summary: RunSummary):
        totals = summary.totals
        super().__init__(
            f"{totals['quarantined']} partitions quarantined, {totals['failed']} failed; report: {summary.report_path}"
        )
        self.summary = summary


def publish_artifacts(summary: RunSummary, report) -> None:
    """The run's quality report as Prefect artifacts: markdown, a per-asset table and a link to the HTML."""
    try:
        create_markdown_artifact(key="quality-report", markdown=report.markdown, description="Quarry data-quality report")
        create_table_artifact(key="materialization", table=report.asset_rows, description="Per-asset outcome")
        if summary.report_path:
            create_link_artifact(
                key="quality-report-html", link=Path(summary.report_path).resolve().as_uri(),
                link_text="HTML quality report", description="The self-contained run report (opens offline)",
            )
    except Exception as error:  # artifacts are a view; a failure to write one must not fail the run
        logger.warning("could not publish artifacts: {}", error)
