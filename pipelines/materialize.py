"""The materializer: plan, then build a selection in dependency order, parallel where independent."""

from __future__ import annotations

import json
import queue
import traceback
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import polars as pl
from loguru import logger

from assets.graph import AssetGraph
from assets.model import Asset
from pipelines.building import BatchJob, BatchResult, BuildContext, JobResult, build_job
from pipelines.planning import (
    RECHECKS, AssetPlan, CatalogState, PartitionWork, RunWindow, plan_asset, plan_selection, watermark_of,
)
from warehouse import Warehouse
from warehouse.lake import StorageError, failure_kind, storage_failure
from warehouse.redaction import redact


DEFINITION_SCHEMA = pl.Schema({
    "asset": pl.String, "code_version": pl.String, "metadata_hash": pl.String, "code_digests": pl.String,
    "metadata": pl.String, "recorded_at": pl.Datetime("us", "UTC"),
})


class JobFuture(Protocol):
    def add_done_callback(self, fn: Callable[[Any], None]) -> None: ...

    def result(self) -> JobResult: ...


#: Runs one job (one asset's batch, or small assets together) somewhere (a thread, a Prefect task); returns its future.
Submit = Callable[[BuildContext, BatchJob], JobFuture]


@dataclass
class AssetOutcome:
    """What a run did to one asset."""

    asset: str
    built: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    seconds: float = 0.0
    warnings: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)

    def absorb(self, result: BatchResult) -> None:
        self.built.extend(result.published)
        self.up_to_date.extend(result.unchanged)
        self.quarantined.extend(result.quarantined)
        self.rows += result.rows_written
        self.warnings += result.warnings
        self.workers.add(result.worker)
        for stage, seconds in result.seconds.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds


@dataclass
class RunSummary:
    run_id: str
    selection: str
    started_at: datetime
    outcomes: dict[str, AssetOutcome]
    finished_at: datetime | None = None
    report_path: str | None = None
    window: tuple[str, str] | None = None  # first and last session of the run's window, for the report
    #: Set when the storage refused a write (disk full, read-only, no permission): one line naming it.
    stopped_by: str | None = None

    @property
    def totals(self) -> dict[str, int]:
        o = self.outcomes.values()
        return {
            "built": sum(len(a.built) for a in o),
            "up_to_date": sum(len(a.up_to_date) for a in o),
            "quarantined": sum(len(a.quarantined) for a in o),
            "skipped": sum(len(a.skipped) for a in o),
            "failed": sum(len(a.failed) for a in o),
            "rows_written": sum(a.rows for a in o),
        }

    @property
    def status(self) -> str:
        totals = self.totals
        if totals["failed"] or self.stopped_by:
            return "failed"
        if totals["quarantined"]:
            return "quarantined"
        return "completed"

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "completed" else 1


def catalog_state(warehouse: Warehouse, names: list[str]) -> CatalogState:
    definitions = warehouse.asset_definitions(names)
    code_digests = {
        (row["asset"], row["code_version"]): json.loads(row["code_digests"])
        for row in definitions.select("asset", "code_version", "code_digests").iter_rows(named=True)
    }
    return CatalogState(warehouse.current_versions(names), warehouse.latest_attempts(names), code_digests)


def changed_definitions_rows(assets: list[Asset], recorded: pl.DataFrame, at: datetime) -> pl.DataFrame:
    """Definition rows for the assets whose code version or metadata differ from their latest record."""
    latest = {
        row["asset"]: (row["code_version"], row["metadata_hash"])
        for row in recorded.select("asset", "code_version", "metadata_hash").iter_rows(named=True)
    }  # rows come oldest first, so the last one per asset wins
    rows = [
        {
            "asset": a.name, "code_version": a.code_version, "metadata_hash": a.metadata_hash,
            "code_digests": json.dumps(a.code_digests, sort_keys=True),
            "metadata": json.dumps(a.metadata, sort_keys=True), "recorded_at": at,
        }
        for a in assets
        if latest.get(a.name) != (a.code_version, a.metadata_hash)
    ]
    return pl.DataFrame(rows, schema=DEFINITION_SCHEMA)


def record_definitions(warehouse: Warehouse, assets: list[Asset]) -> int:
    """Bring the catalog's record of each asset up to date; a metadata-only change lands here and rebuilds nothing."""
    rows = changed_definitions_rows(assets, warehouse.asset_definitions([a.name for a in assets]), datetime.now(timezone.utc))
    warehouse.record_asset_definitions(rows)
    return rows.height


def plan_run(
    graph: AssetGraph, warehouse: Warehouse, selection: str | None, window: RunWindow,
    *, full_refresh: bool = False, source_identity: str | None = None, repair: bool = False,
    exclude: str | None = None, resources: Mapping[str, object] | None = None,
) -> list[AssetPlan]:
    """The whole run's plan from the catalog alone: cheap enough to answer a no-op run without Prefect."""
    selected = graph.select(selection, exclude)
    names = sorted({a.name for a in selected} | {d for a in selected for d in a.deps})
    return plan_selection(
        graph, selected, catalog_state(warehouse, names), window,
        full_refresh=full_refresh, source_identity=source_identity, repair=repair, resources=resources,
    )


def batches(work: tuple[PartitionWork, ...], size: int) -> list[list[PartitionWork]]:
    """Consecutive partitions in groups of `size`: a task per batch, never a task per partition."""
    ordered = sorted(work, key=lambda w: w.partition_key)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def run_materialization(
    graph: AssetGraph,
    warehouse: Warehouse,
    source: object,
    *,
    selection: str | None,
    window: RunWindow,
    run_id: str,
    submit: Submit,
    full_refresh: bool = False,
    batch_partitions: int = 260,
    repair: bool = False,
    exclude: str | None = None,
    resources: Mapping[str, object] | None = None,
) -> RunSummary:
    """Build every stale partition of the selection, each asset as soon as its upstreams are done.

    An asset is planned only when its upstream assets in this run have finished, so an
    upstream rebuild that produced identical data causes no downstream work, and a
    quarantined upstream partition blocks only its own downstream partitions. A repair run
    first takes the files of damaged partitions out of their tables, then rebuilds them.
    `resources` are the outside resources besides the market source, by name (the ledger), handed to
    the assets that read them.
    """
    if repair:
        from warehouse.verify import retire_damaged_files

        retire_damaged_files(warehouse)
    selected = graph.select(selection, exclude)
    selected_names = {a.name for a in selected}
    summary = RunSummary(run_id, (selection or "*") + (f" --exclude {exclude}" if exclude else ""), datetime.now(timezone.utc), {a.name: AssetOutcome(a.name) for a in selected})
    if window.partition_keys:
        summary.window = (window.partition_keys[0], window.partition_keys[-1])
    try:
        record_definitions(warehouse, selected)
    except StorageError as refused:  # the disk refused the first catalog write: stop, and say so once
        summary.stopped_by = str(refused)
        for outcome in summary.outcomes.values():
            outcome.skipped.append(("*", f"run stopped: {refused}"))
        summary.finished_at = datetime.now(timezone.utc)
        return summary
    identity = source.identity() if hasattr(source, "identity") else None
    waiting = {a.name: a for a in selected}
    # the catalog is read once; each finished batch's version rows keep this copy current
    state = catalog_state(warehouse, sorted({a.name for a in selected} | {d for a in selected for d in a.deps}))
    running: dict[str, int] = {}
    finished_jobs: queue.Queue = queue.Queue()
    started_at: dict[str, float] = {}
    held: dict[str, set[str]] = {}  # partitions blocked in this run, by asset: their downstream waits too

    def plan(asset: Asset) -> AssetPlan:
        found = plan_asset(
            graph, asset, state, window,
            full_refresh=full_refresh, source_identity=identity,
            watermark=watermark_of(asset, {"source": source, **(resources or {})}), repair=repair,
            blocked_upstream=held,
        )
        held[asset.name] = {key for key, _ in found.blocked}
        outcome = summary.outcomes[asset.name]
        outcome.up_to_date = list(found.up_to_date)
        outcome.skipped = list(found.blocked)
        for w in found.to_build:
            outcome.reasons[w.reason] = outcome.reasons.get(w.reason, 0) + 1
        announce = logger.bind(asset=asset.name, planned=len(found.to_build))
        if found.is_noop:
            announce.info("{}: up to date ({} partitions, {} blocked)", asset.name, len(found.up_to_date), len(found.blocked))
        else:
            announce.info("{}: building {} partitions ({})", asset.name, len(found.to_build), outcome.reasons)
        return found

    def rechecked(name: str, work: tuple[PartitionWork, ...]) -> dict[str, dict]:
        """The published versions an unpartitioned source keeps when it is only rechecked and its data did not change."""
        if graph[name].is_partitioned or not graph[name].is_source or any(w.reason not in RECHECKS for w in work):
            return {}
        published = state.published_map(name)
        return {w.partition_key: published[w.partition_key] for w in work if w.partition_key in published}

    def launch(job: BatchJob, plans: dict[str, AssetPlan]) -> None:
        ctx = BuildContext(
            graph, warehouse, source, run_id, window.sessions,
            input_versions={
                name: {w.partition_key: plans[name].input_versions[w.partition_key] for w in work}
                for name, work in job.batches
            },
            rechecked={name: rechecked(name, work) for name, work in job.batches if rechecked(name, work)},
            through=window.through,
            resources=dict(resources or {}),
        )
        for name in job.assets:
            running[name] = running.get(name, 0) + 1
            started_at.setdefault(name, time.perf_counter())
        submit(ctx, job).add_done_callback(lambda f, j=job: finished_jobs.put((j, f)))

    def launch_ready(ready: list[Asset]) -> None:
        """A job per batch of a partitioned asset; the unpartitioned ones ready together share one job."""
        together: list[tuple[str, tuple[PartitionWork, ...]]] = []
        plans: dict[str, AssetPlan] = {}
        for asset in ready:
            plans[asset.name] = found = plan(asset)
            if found.is_noop:
                continue
            if not asset.is_partitioned:
                together.append((asset.name, found.to_build))
                continue
            # a stateful asset resumes each partition from the one before: one ordered batch
            for group in batches(found.to_build, len(found.to_build) if asset.is_stateful else batch_partitions):
                launch(BatchJob.of(asset.name, group), plans)
        if together:
            launch(BatchJob(tuple(together)), plans)

    while waiting or running:
        ready = [
            a for a in waiting.values()
            if not any(d in waiting or d in running for d in a.deps if d in selected_names)
        ]
        for asset in ready:
            del waiting[asset.name]
        if summary.stopped_by:  # the disk refused a write: nothing else can publish either
            for asset in ready:
                summary.outcomes[asset.name].skipped.append(("*", f"run stopped: {summary.stopped_by}"))
        else:
            launch_ready(ready)
        if not running:
            continue
        job, future = finished_jobs.get()
        try:
            done = future.result()
        except Exception as error:  # a job's failure must not stop independent work
            logger.error("{}: failed: {}", job.label, error)
            logger.debug("{}", "".join(traceback.format_exception(error)))
            done = JobResult({}, {name: redact(f"{type(error).__name__}: {error}") for name in job.assets})
        for name, work in job.batches:
            outcome = summary.outcomes[name]
            if name in done.results:
                result = done.results[name]
                outcome.absorb(result)
                if result.version_rows is not None:
                    state = state.after(result.version_rows)
            else:
                error = redact(done.failures.get(name, "not built"))
                logger.error("{}: batch of {} partitions failed: {}", name, len(work), error)
                outcome.failed.extend((w.partition_key, error) for w in work)
                summary.stopped_by = summary.stopped_by or stop_reason(error, warehouse.data_path)
            running[name] -= 1
            if running[name] == 0:
                del running[name]
                outcome.seconds = time.perf_counter() - started_at[name]
                logger.bind(asset=name, finished=True).info(
                    "{}: done, {} partitions built, {} quarantined, {} failed, {} rows in {:.1f}s",
                    name, len(outcome.built), len(outcome.quarantined), len(outcome.failed), outcome.rows, outcome.seconds,
                )
    summary.finished_at = datetime.now(timezone.utc)
    return summary


def stop_reason(failure: str, data_path: str) -> str | None:
    """The one line that stops a run when a batch failed because the disk refused (full, read-only, denied)."""
    kind = failure_kind(RuntimeError(failure))
    if kind not in ("disk-full", "read-only", "permission"):
        return None
    told = failure.removeprefix(f"{StorageError.__name__}: ")
    return told if told != failure else str(storage_failure(kind, RuntimeError(failure), data_path))


def thread_submitter(max_workers: int) -> tuple[Submit, Callable[[], None]]:
    """Run jobs on a bounded thread pool; returns the submitter and a shutdown function."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="quarry-batch")
    return (lambda ctx, job: pool.submit(build_job, ctx, job)), pool.shutdown
