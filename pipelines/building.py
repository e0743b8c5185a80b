"""Build one batch of partitions of one asset: read inputs, transform, audit, publish."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

import polars as pl
from loguru import logger

from assets.calendar import session_of
from assets.calendar import sessions as exchange_sessions
from assets.graph import AssetGraph
from assets.model import UNPARTITIONED, Asset
from pipelines.planning import PartitionWork, handed_resource, partition_spans
from quality.audit import RESULT_SCHEMA, audit, contract_columns, failed_checks_by_partition
from warehouse import PublishBatch, Warehouse
from warehouse.versions import AssetMetadata, ContractColumn, data_versions_by_partition, new_id

@dataclass(frozen=True)
class SourceWindow:
    """The time span a source asset fetches for a batch of session partitions (an open session up to `through`)."""

    sessions: pl.DataFrame
    through: datetime | None = None

    @property
    def first_session(self) -> date:
        return self.sessions["session_date"].min()

    @property
    def last_session(self) -> date:
        return self.sessions["session_date"].max()

    @property
    def start_ts(self) -> datetime:
        return self.sessions["open_ts"].min().replace(minute=0)

    @property
    def end_ts(self) -> datetime:
        close = self.sessions["close_ts"].max()
        return close if self.through is None else min(close, self.through)


@dataclass(frozen=True)
class BuildContext:
    """What a batch needs from outside the asset: the graph, the warehouse, the source, the run.

    `input_versions` holds the plan's upstream records of this batch's partitions only.
    A Prefect task receives the context quoted (never walked as a collection) beside a
    small descriptor: the asset and its partition keys.
    """

    graph: AssetGraph
    warehouse: Warehouse
    source: object
    run_id: str
    window_sessions: pl.DataFrame
    input_versions: dict[str, dict[str, dict]] = field(default_factory=dict)
    through: datetime | None = None
    #: Per asset and partition, the published version a recheck of an unpartitioned source keeps if its data is unchanged.
    rechecked: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: Outside resources other than the market source, by name, for the assets that read them (the ledger).
    resources: Mapping[str, object] = field(default_factory=dict)

    def handed(self, asset: Asset) -> object:
        """What the asset's fetch is handed: see `handed_resource`."""
        return handed_resource(asset, {"source": self.source, **self.resources})


@dataclass(frozen=True)
class BatchResult:
    """What one batch did, per partition, and where its time went."""

    asset: str
    published: tuple[str, ...]
    quarantined: tuple[str, ...]
    rows_written: int
    versions: dict[str, str]
    data_versions: dict[str, str]
    failed_checks: dict[str, list[str]]
    warnings: int
    seconds: dict[str, float]
    worker: str = ""
    version_rows: pl.DataFrame | None = None
    unchanged: tuple[str, ...] = ()

    def metadata(self) -> dict:
        return {
            "partitions_published": len(self.published),
            "partitions_quarantined": len(self.quarantined),
            "rows": self.rows_written,
            "versions": dict(list(self.versions.items())[:20]),
            "data_versions": dict(list(self.data_versions.items())[:20]),
            "quarantined": list(self.quarantined)[:20],
        }


def published_metadata(asset: Asset) -> AssetMetadata:
    """What the catalog records with a publish: the grain, partitioning, freshness and contract in force."""
    return AssetMetadata(
        asset=asset.name,
        code_version=asset.code_version,
        grain=tuple(asset.grain),
        partitions=asset.partitions,
        partition_column=asset.time_column if asset.is_partitioned else None,
        time_column=asset.time_column,
        freshness_seconds=asset.freshness.total_seconds() if asset.freshness is not None else None,
        contract=asset.contract_name,
        contract_columns=tuple(ContractColumn(*column) for column in contract_columns(asset)),
    )


def partition_keys_of(asset: Asset, frame: pl.DataFrame) -> pl.Expr:
    """Each row's partition: the exchange-local date of the asset's time column."""
    if not asset.is_partitioned:
        return pl.lit(UNPARTITIONED)
    column = pl.col(asset.time_column)
    if frame.schema[asset.time_column] == pl.Date:
        return column.cast(pl.String)
    return session_of(column).cast(pl.String)


@dataclass(frozen=True)
class BatchJob:
    """What one task builds: batches of one or more assets, published together in one DuckLake transaction.

    Usually one asset and a run of its partitions; or the small unpartitioned assets that
    became ready together (the outputs of a multi-asset among them, computed once).
    """

    batches: tuple[tuple[str, tuple[PartitionWork, ...]], ...]

    @classmethod
    def of(cls, asset: str, work: list[PartitionWork]) -> BatchJob:
        return cls(((asset, tuple(work)),))

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.batches)

    @property
    def label(self) -> str:
        if len(self.batches) == 1:
            name, work = self.batches[0]
            return f"{name}[{work[0].partition_key}..{work[-1].partition_key}]"
        return ", ".join(self.assets)


@dataclass(frozen=True)
class JobResult:
    """Per asset of a job: what its batch published, or why it failed (the others still publish)."""

    results: dict[str, BatchResult]
    failures: dict[str, str]


def build_job(ctx: BuildContext, job: BatchJob) -> JobResult:
    """Write-audit-publish for every batch of a job, with one publish transaction for all of them.

    A staged frame never touches the published table: it is audited here, and only the
    partitions that pass are published, together with their catalog rows. An asset whose
    transform or audit raises fails alone; the rest of the job still publishes.
    """
    batch_id = new_id("b")
    computed: dict[str, object] = {}
    staged: list[tuple[Asset, list[str], PublishBatch, pl.DataFrame, dict[str, list[str]], dict[str, float]]] = []
    failures: dict[str, str] = {}
    for name, work in job.batches:
        asset = ctx.graph[name]
        try:
            staged.append(_stage(ctx, asset, list(work), batch_id, computed))
        except Exception as error:  # one asset's failure must not stop the others in its job
            logger.error("{}: build failed: {}", name, error)
            failures[name] = f"{type(error).__name__}: {error}"
    mark = time.perf_counter()
    if staged:
        ctx.warehouse.publish(*(batch for _, _, batch, _, _, _ in staged))
    publish_seconds = (time.perf_counter() - mark) / max(len(staged), 1)
    results = {}
    for asset, keys, batch, checks, failed, timings in staged:
        timings["publish"] = publish_seconds
        results[asset.name] = _batch_result(asset, keys, batch, checks, failed, timings)
    return JobResult(results, failures)


def _stage(
    ctx: BuildContext, asset: Asset, work: list[PartitionWork], batch_id: str, computed: dict[str, object]
) -> tuple[Asset, list[str], PublishBatch, pl.DataFrame, dict[str, list[str]], dict[str, float]]:
    """Read, transform and audit one asset's batch; `computed` shares a multi-asset's run among its outputs."""
    keys = [w.partition_key for w in work]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    inputs = None if asset.computation in computed else _read_inputs(ctx, asset, keys)
    timings["read"] = time.perf_counter() - started

    mark = time.perf_counter()
    if inputs is not None:
        computed[asset.computation] = asset.compute(inputs)
    result = computed[asset.computation]
    output = result[asset.output] if asset.output is not None else result
    if asset.output is None:
        del computed[asset.computation]
    staged = output.with_columns(partition_key=partition_keys_of(asset, output)).filter(
        pl.col("partition_key").is_in(keys)
    )
    timings["transform"] = time.perf_counter() - mark

    mark = time.perf_counter()
    results = audit(asset, staged, keys)
    if asset.is_partitioned and asset.is_source:
        results = pl.concat([results, _empty_partitions(staged, keys)], how="vertical")
    if asset.is_stateful:
        results = pl.concat([results, _after_a_failure(results, keys)], how="vertical")
    failed = failed_checks_by_partition(results)
    timings["audit"] = time.perf_counter() - mark
    batch = _publish_batch(ctx, asset, work, staged, results, failed, sum(timings.values()), batch_id)
    return asset, keys, _unless_unchanged(ctx, asset, keys, batch, failed), results, failed, timings


def _unless_unchanged(
    ctx: BuildContext, asset: Asset, keys: list[str], batch: PublishBatch, failed: dict[str, list[str]]
) -> PublishBatch:
    """A recheck of a source that found the data it published: no new version, only the record of the recheck.

    The published version's upstream record is re-stamped (the new window or watermark),
    so the next run knows the source was checked; its rows and data version stay as they are.
    """
    current = ctx.rechecked.get(asset.name, {})
    fresh = dict(zip(batch.version_rows["partition_key"], batch.version_rows["data_version"]))
    if failed or not current or any(k not in current or current[k]["data_version"] != fresh.get(k) for k in keys):
        return batch
    records = ctx.input_versions.get(asset.name, {})
    return replace(
        batch, rows=batch.rows.clear(), quarantined_rows=batch.quarantined_rows.clear(),
        version_rows=batch.version_rows.clear(), check_rows=batch.check_rows.clear(),
        confirmed={current[k]["version_id"]: json.dumps(records.get(k, {})) for k in keys},
    )


def _batch_result(
    asset: Asset, keys: list[str], batch: PublishBatch, results: pl.DataFrame, failed: dict[str, list[str]],
    timings: dict[str, float],
) -> BatchResult:
    if batch.confirmed:
        logger.bind(progress=len(keys), asset=asset.name).info("{}: rechecked, unchanged at the source", asset.name)
        return BatchResult(asset.name, (), (), 0, {}, {}, {}, 0, timings, f"{socket.gethostname()}:{os.getpid()}",
                           None, tuple(keys))
    quarantined = set(failed)
    published = tuple(k for k in keys if k not in quarantined)
    warnings = results.filter(~pl.col("passed") & (pl.col("severity") == "warn")).height
    versions = dict(zip(batch.version_rows["partition_key"], batch.version_rows["version_id"]))
    data_versions = dict(zip(batch.version_rows["partition_key"], batch.version_rows["data_version"]))
    logger.bind(progress=len(keys), asset=asset.name).info(
        "{}: published {} partitions, quarantined {} ({} rows) in {:.2f}s",
        asset.name, len(published), len(quarantined), batch.rows.height, sum(timings.values()),
    )
    return BatchResult(
        asset=asset.name,
        published=published,
        quarantined=tuple(sorted(quarantined)),
        rows_written=batch.rows.height,
        versions=versions,
        data_versions=data_versions,
        failed_checks=failed,
        warnings=warnings,
        seconds=timings,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        version_rows=batch.version_rows,
    )


def _read_inputs(ctx: BuildContext, asset: Asset, keys: list[str]) -> dict[str, pl.DataFrame]:
    """Upstream frames for exactly the partitions the batch reads (look-backs included), plus context inputs."""
    inputs: dict[str, pl.DataFrame] = {}
    planned = ctx.input_versions.get(asset.name, {})
    batch_sessions = _sessions_for(keys) if asset.is_partitioned else None
    for dep_name in asset.deps:
        dep = ctx.graph[dep_name]
        if dep.is_partitioned and asset.is_partitioned:
            spans = partition_spans([planned.get(k, {}).get(dep_name, {"partitions": [k]}) for k in keys])
            inputs[dep_name] = ctx.warehouse.read(dep_name, spans=spans)
        else:
            inputs[dep_name] = ctx.warehouse.read(dep_name)
    for name in asset.context_inputs:
        if name == "sessions":
            inputs["sessions"] = batch_sessions if batch_sessions is not None else ctx.window_sessions
        elif name == "fetched":
            window_sessions = batch_sessions if batch_sessions is not None else ctx.window_sessions
            inputs["fetched"] = asset.fetch(ctx.handed(asset), SourceWindow(window_sessions, ctx.through))
        elif name == "partition_keys":
            inputs["partition_keys"] = list(keys)
        elif name == "previous":
            previous_keys = planned.get(keys[0], {}).get("@previous", {}).get("partitions", [])
            inputs["previous"] = ctx.warehouse.read(asset.name, previous_keys) if previous_keys else None
    return inputs


def _sessions_for(keys: list[str]) -> pl.DataFrame:
    if not keys:
        return exchange_sessions(date(2000, 1, 1), date(1999, 1, 1))
    days = sorted(date.fromisoformat(k) for k in keys)
    return exchange_sessions(days[0], days[-1]).filter(pl.col("session_date").is_in(days))


def _after_a_failure(results: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """In a stateful batch, every partition after a failed one resumed from unpublished state: fail it too."""
    first_failure = min(failed_checks_by_partition(results), default=None)

    def row(key: str) -> tuple:
        resumed_from_failure = first_failure is not None and key > first_failure
        reason = f"resumes from {first_failure}, which was quarantined" if resumed_from_failure else ""
        return (key, "previous_partition_published", "error", not resumed_from_failure, int(resumed_from_failure), None, reason)

    return pl.DataFrame([row(k) for k in keys], schema=RESULT_SCHEMA, orient="row")


def _empty_partitions(staged: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """A source's session partition with no rows fails: publishing nothing would hide an outage.

    Derived assets may legitimately be empty (no pair was active that day).
    """
    present = set(staged["partition_key"].unique().to_list())
    return pl.DataFrame(
        [(k, "not_empty", "error", k in present, 0 if k in present else 1, None, "" if k in present else "no rows")
         for k in keys],
        schema=RESULT_SCHEMA,
        orient="row",
    )


def _publish_batch(
    ctx: BuildContext,
    asset: Asset,
    work: list[PartitionWork],
    staged: pl.DataFrame,
    results: pl.DataFrame,
    failed: dict[str, list[str]],
    seconds: float,
    batch_id: str,
) -> PublishBatch:
    now = datetime.now(timezone.utc)
    keys = [w.partition_key for w in work]
    quarantined = set(failed)
    data_versions = data_versions_by_partition(staged)
    row_counts = dict(staged.group_by("partition_key").len().iter_rows())
    version_ids = {key: new_id("v") for key in keys}
    upstream = {k: dict(ctx.input_versions.get(asset.name, {}).get(k, {})) for k in keys}
    if asset.is_stateful:
        # each partition after the first resumed from the one built just before it, in this batch
        for before, key in zip(keys, keys[1:]):
            upstream[key]["@previous"] = {
                "data_version": data_versions.get(before, ""), "versions": [version_ids[before]], "partitions": [before],
            }
    version_rows = pl.DataFrame(
        {
            "version_id": [version_ids[k] for k in keys],
            "asset": asset.name,
            "partition_key": keys,
            "status": ["quarantined" if k in quarantined else "published" for k in keys],
            "code_version": asset.code_version,
            "data_version": [data_versions.get(k, "") for k in keys],
            "upstream_versions": [json.dumps(upstream[k]) for k in keys],
            "row_count": [row_counts.get(k, 0) for k in keys],
            "run_id": ctx.run_id,
            "batch_id": batch_id,
            "snapshot_id": pl.Series([None] * len(keys), dtype=pl.Int64),
            "build_seconds": seconds / max(len(keys), 1),
            "created_at": now,
            "published_at": [None if k in quarantined else now for k in keys],
            "superseded_at": pl.Series([None] * len(keys), dtype=pl.Datetime("us", "UTC")),
            "failed_checks": [",".join(failed[k]) if k in failed else None for k in keys],
        },
        schema_overrides={"published_at": pl.Datetime("us", "UTC"), "created_at": pl.Datetime("us", "UTC")},
    )
    check_rows = results.with_columns(
        run_id=pl.lit(ctx.run_id),
        version_id=pl.col("partition_key").replace_strict(version_ids, return_dtype=pl.String),
        asset=pl.lit(asset.name),
        checked_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
    )
    is_quarantined = pl.col("partition_key").is_in(sorted(quarantined))
    return PublishBatch(
        asset=asset.name,
        batch_id=batch_id,
        partitioned=asset.is_partitioned,
        rows=staged.filter(~is_quarantined),
        quarantined_rows=staged.filter(is_quarantined).with_columns(
            version_id=pl.col("partition_key").replace_strict(version_ids, return_dtype=pl.String)
        ),
        version_rows=version_rows,
        check_rows=check_rows,
        published_at=now,
        metadata=published_metadata(asset),
    )
