"""The validation sweep: re-audit what is published against today's contracts and checks, publishing nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
from loguru import logger
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from assets import AssetGraph, default_graph
from pipelines.logs import route_run_logs
from pipelines.monitoring import REPORT_FAILURE
from pipelines.settings import Settings
from quality.audit import audit
from warehouse import LAKE, Warehouse
from warehouse.versions import new_id


class PublishedDataFailsChecks(RuntimeError):
    """Raised at the end of a sweep that found published partitions failing an error check."""


def sweep(graph: AssetGraph, warehouse: Warehouse, selection: str | None, run_id: str) -> pl.DataFrame:
    """Audit every published partition of the selection; one row per asset, partition and check.

    A contract tightened after data was published, or a check added since, shows here
    before a trading flow trips over it. Results go to `quarry.check_results` under the
    sweep's run id; nothing is republished or quarantined.
    """
    swept = []
    current = warehouse.current_versions()
    for asset in graph.select(selection):
        published = current.filter(pl.col("asset") == asset.name)
        if published.is_empty() or not warehouse.has_table("main", asset.name):
            continue
        rows = warehouse.query(f'SELECT * FROM {LAKE}.main."{asset.name}"')
        keys = published["partition_key"].to_list()
        results = audit(asset, rows, keys).with_columns(
            run_id=pl.lit(run_id),
            version_id=pl.col("partition_key").replace_strict(
                dict(zip(published["partition_key"], published["version_id"])), return_dtype=pl.String
            ),
            asset=pl.lit(asset.name),
            checked_at=pl.lit(datetime.now(timezone.utc), dtype=pl.Datetime("us", "UTC")),
        )
        warehouse.record_checks(results)
        swept.append(results)
        failing = results.filter(~pl.col("passed") & (pl.col("severity") == "error")).height
        logger.info("{}: swept {} published partitions, {} failing error checks", asset.name, len(keys), failing)
    return pl.concat(swept, how="diagonal_relaxed") if swept else pl.DataFrame()


@flow(name="validation-sweep", log_prints=True, **REPORT_FAILURE)
def validation_sweep_flow(selection: str | None = None) -> dict:
    """Re-audit the published data of the selection (default: every asset) and report what fails."""
    settings = Settings()
    route_run_logs(settings)
    run_id = str(flow_run.get_id() or new_id("sweep-"))
    with settings.warehouse.open() as warehouse:
        results = sweep(default_graph(), warehouse, selection, run_id)
    if results.is_empty():
        return {"run_id": run_id, "checked": 0, "failing": 0}
    failing = results.filter(~pl.col("passed") & (pl.col("severity") == "error"))
    table = (
        results.group_by("asset", "check_name", "severity")
        .agg(partitions=pl.len(), failing=(~pl.col("passed")).sum())
        .sort("asset", "check_name")
    )
    try:
        create_table_artifact(key="validation-sweep", table=table.to_dicts(), description="Published data re-audited")
        create_markdown_artifact(
            key="validation-sweep-failures",
            markdown="\n".join(
                [f"# Validation sweep: {failing.height} failing error checks"]
                + [f"- {r['asset']} `{r['partition_key']}` {r['check_name']}: {r['failing_rows']} rows" for r in failing.head(50).iter_rows(named=True)]
            ),
        )
    except Exception as error:  # artifacts are a view of the results already stored
        logger.warning("could not publish artifacts: {}", error)
    if failing.height:
        raise PublishedDataFailsChecks(
            f"{failing.height} published partitions fail an error check: "
            + ", ".join(sorted({f"{r['asset']}/{r['check_name']}" for r in failing.iter_rows(named=True)}))
        )
    return {"run_id": run_id, "checked": results.height, "failing": 0}
