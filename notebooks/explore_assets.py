"""Explore the asset catalog: every asset's grain, published partitions, freshness, and its current rows.

Why marimo: a notebook is a plain Python file (reviewable, importable, runnable headless
with `python notebooks/explore_assets.py` or `marimo export html`), cells re-run in
dependency order so no hidden state survives an edit, and `mo.sql` runs SQL cells on the
same DuckDB connection the warehouse uses. Open it with `marimo edit notebooks/explore_assets.py`.
The warehouse is opened read-only from QUARRY_CATALOG / QUARRY_DATA_PATH, so a scheduled
run keeps writing while you explore.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo
    import polars as pl

    from pipelines.settings import Settings
    from warehouse.explore import Explorer

    settings = Settings()
    explorer = Explorer.open(settings.warehouse.catalog, settings.warehouse.data_path)
    return explorer, mo, pl, settings


@app.cell
def _(mo, settings):
    mo.md(
        f"""
        # Quarry assets

        Catalog `{settings.warehouse.catalog}`, data `{settings.warehouse.data_path}` (read-only). Every view and
        macro used below is listed by `quarry sql-surface --markdown`.
        """
    )
    return


@app.cell
def _(explorer, mo):
    catalog = mo.sql("SELECT * FROM asset_catalog", engine=explorer.con, output=False)
    mo.vstack([mo.md("## The catalog: every asset, its grain, what is published and what is quarantined"), catalog])
    return (catalog,)


@app.cell
def _(catalog, mo, pl):
    stale_after_hours = 24 * 4  # a long weekend: older than this and the asset is worth a look
    freshness = catalog.select(
        "asset",
        "published_partitions",
        "quarantined_partitions",
        "last_published_at",
        hours_since_publish=(pl.col("age_seconds") / 3600).round(1),
        is_unbuilt=pl.col("published_partitions") == 0,
        is_old=(pl.col("age_seconds") / 3600) > stale_after_hours,
    )
    mo.vstack([mo.md(f"## Freshness per asset (old after {stale_after_hours} hours)"), freshness])
    return (freshness,)


@app.cell
def _(explorer, mo):
    daily_bars = mo.sql(
        """
        SELECT symbol, count(*) AS sessions, min(session_date) AS first_session, max(session_date) AS last_session,
               round(avg(close_px), 2) AS avg_close_px
        FROM bars_daily GROUP BY symbol ORDER BY symbol
        """,
        engine=explorer.con,
        output=False,
    )
    mo.vstack([mo.md("## Daily bars per symbol"), daily_bars])
    return (daily_bars,)


@app.cell
def _(explorer, mo):
    recent_versions = mo.sql(
        """
        SELECT asset, partition_key, status, data_version, row_count, run_id, created_at
        FROM lake.quarry.versions ORDER BY created_at DESC LIMIT 20
        """,
        engine=explorer.con,
        output=False,
    )
    mo.vstack([mo.md("## The latest versions"), recent_versions])
    return (recent_versions,)


@app.cell
def _(catalog, daily_bars, freshness, recent_versions):
    summary = {
        "assets": catalog.height,
        "built_assets": int((catalog["published_partitions"] > 0).sum()),
        "quarantined_partitions": int(catalog["quarantined_partitions"].sum()),
        "unbuilt": freshness.filter("is_unbuilt")["asset"].to_list(),
        "daily_symbols": daily_bars.height,
        "recent_versions": recent_versions.height,
    }
    return (summary,)


if __name__ == "__main__":
    app.run()
