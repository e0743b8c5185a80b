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
from prefect.utilities.annotations import quote

from assets import default_graph
from pipelines.building import BatchJob, BuildContext, JobResult, build_job
from pipelines.logs import route_run_logs
from pipelines.materialize import RunSummary, run_materialization
from pipelines.monitoring import REPORT_FAILURE
from pipelines.resources import Resources
from pipelines.runs import default_window, record_and_report
from pipelines.settings import Settings
from warehouse import Warehouse
from warehouse.versions import new_id


def asset_key(name: str) -> str:
    return f"quarry://{name}"


def _materialize_job(ctx: BuildContext, job: BatchJob) -> JobResult:
    done = build_job(ctx, job)
    for name, result in done.results.items():
        add_asset_metadata(asset_key(name), result.metadata())
    return done


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


def _materialize_remote_job(address: WarehouseAddress, ctx: BuildContext, job: BatchJob) -> JobResult:
    """A job in another process: the asset graph is rebuilt there from code, never shipped as pickled functions
    (a code version is a digest of source the worker must be able to read)."""
    done = build_job(replace(ctx, graph=default_graph(), warehouse=_warehouse_at(address)), job)
    for name, result in done.results.items():
        add_asset_metadata(asset_key(name), {**result.metadata(), "worker": result.worker})
    return done


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

    The parameters Prefect inspects are a small descriptor (asset name, partitions); the
    context is quoted, so Prefect never walks the graph, the session calendar or the plan's
    upstream records looking for futures. With `remote`, batches may run in other processes
    (Dask workers): the context travels without its graph and warehouse connection (only
    this job's upstream records) and each worker opens the warehouse at that address.
    """

    def submit(ctx: BuildContext, job: BatchJob):
        names = job.assets
        upstream = sorted({d for name in names for d in ctx.graph[name].deps} - set(names))
        materializing = prefect_materialize(
            *(PrefectAsset(key=asset_key(name)) for name in names),
            asset_deps=[asset_key(d) for d in upstream],
            name=f"materialize-{names[0]}" if len(names) == 1 else "materialize-together",
            cache_policy=NO_CACHE,
            persist_result=False,
        )(_materialize_job if remote is None else _materialize_remote_job)
        task = materializing.with_options(task_run_name=job.label)
        if remote is None:
            return task.submit(quote(ctx), job)
        # Dask hands a quoted parameter over still wrapped: the remote context goes as is (small without the graph)
        return task.submit(remote, replace(ctx, graph=None, warehouse=None), job)

    return submit


@flow(name="materialize", task_runner=ThreadPoolTaskRunner(max_workers=4),
      log_prints=True, **REPORT_FAILURE)
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
    resources = Resources.from_settings(settings)
    route_run_logs(settings)
    window = default_window(settings, start, end)
    run_id = str(flow_run.get_id() or new_id("run-"))
    graph = default_graph()
    with resources.warehouse() as warehouse:
        summary = run_materialization(
            graph,
            warehouse,
            resources.source,
            selection=selection,
            window=window,
            run_id=run_id,
            submit=prefect_submitter(
                WarehouseAddress(settings.warehouse.catalog, settings.warehouse.data_path) if settings.task_runner == "dask" else None
            ),
            full_refresh=full_refresh,
            repair=repair,
            batch_partitions=settings.batch_partitions,
            exclude=exclude,
            resources=resources.engine_resources,
        )
        report = record_and_report(warehouse, settings, summary, flow_run_id=run_id, graph=graph)
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
