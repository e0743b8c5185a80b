"""Data quality over time: every check's results run by run, failures by session, and what sits in quarantine.

Why marimo: a plain Python file that runs headless (`python notebooks/data_quality.py`) in the
tests, with SQL cells (`mo.sql`) on the warehouse's own DuckDB connection and charts drawn as
inline SVG, so it needs no network. The warehouse is opened read-only from QUARRY_CATALOG /
QUARRY_DATA_PATH.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import json

    import marimo as mo
    import polars as pl

    from pipelines.settings import Settings
    from quality.charts import time_series_svg
    from warehouse.explore import Explorer

    settings = Settings()
    explorer = Explorer.open(settings.warehouse.catalog, settings.warehouse.data_path)
    return explorer, json, mo, pl, time_series_svg


@app.cell
def _(explorer, mo):
    history = mo.sql("SELECT * FROM check_history", engine=explorer.con, output=False)
    mo.vstack([mo.md("## Every check, run by run"), history])
    return (history,)


@app.cell
def _(history, mo, pl):
    failing_checks = (
        history.filter(pl.col("partitions_failed") > 0)
        .group_by("asset", "check_name", "severity")
        .agg(runs=pl.len(), partitions_failed=pl.col("partitions_failed").sum(), failing_rows=pl.col("failing_rows").sum())
        .sort("severity", "partitions_failed", descending=[False, True])
    )
    mo.vstack([mo.md("## Failing checks (errors first)"), failing_checks])
    return (failing_checks,)


@app.cell
def _(explorer, mo, pl, time_series_svg):
    by_session = mo.sql(
        """
        SELECT partition_key AS session, count(*) FILTER (WHERE NOT passed) AS failed_checks,
               coalesce(sum(failing_rows) FILTER (WHERE NOT passed), 0)::BIGINT AS failing_rows
        FROM lake.quarry.check_results
        WHERE partition_key <> 'all'
        GROUP BY partition_key ORDER BY partition_key
        """,
        engine=explorer.con,
        output=False,
    )
    failures_chart = time_series_svg(
        by_session["session"].str.to_date(strict=False).to_list(), [float(n) for n in by_session["failing_rows"].to_list()],
        title="Failing rows by session (all checks)", y_label="failing rows", color="#c62828",
    )
    mo.vstack([mo.md("## Failing rows by session"), mo.Html(failures_chart)])
    return by_session, failures_chart


@app.cell
def _(explorer, mo):
    quarantined = mo.sql(
        """
        SELECT v.asset, v.partition_key, v.version_id, v.failed_checks, v.created_at
        FROM lake.quarry.versions v
        QUALIFY row_number() OVER (PARTITION BY v.asset, v.partition_key ORDER BY v.created_at DESC, v.version_id DESC) = 1
             AND v.status = 'quarantined'
        ORDER BY v.asset, v.partition_key
        """,
        engine=explorer.con,
        output=False,
    )
    mo.vstack([mo.md("## Partitions whose latest attempt is quarantined"), quarantined])
    return (quarantined,)


@app.cell
def _(explorer, json, mo, pl, quarantined):
    # the failing rows each quarantined partition was stopped for, as the checks sampled them
    samples = explorer.sql(
        """
        SELECT c.asset, c.partition_key, c.check_name, c.failing_rows, c.sample
        FROM lake.quarry.check_results c
        WHERE list_contains(?, c.version_id) AND NOT c.passed AND c.severity = 'error'
        """,
        [quarantined["version_id"].to_list()],
    ).with_columns(sample_rows=pl.col("sample").map_elements(lambda s: len(json.loads(s)) if s else 0, return_dtype=pl.Int64))
    mo.vstack([mo.md("## The failing rows that stopped them (as the checks sampled them)"), samples])
    return (samples,)


@app.cell
def _(by_session, failing_checks, failures_chart, history, quarantined, samples):
    summary = {
        "runs": history["run_id"].n_unique(),
        "checks": history.select("asset", "check_name").unique().height,
        "failing_checks": failing_checks.select("asset", "check_name", "severity").rows(),
        "sessions": by_session.height,
        "quarantined": quarantined.select("asset", "partition_key").rows(),
        "quarantine_reasons": samples.select("asset", "check_name", "failing_rows", "sample_rows").rows(),
        "chart": failures_chart.startswith("<svg"),
    }
    return (summary,)


if __name__ == "__main__":
    app.run()
