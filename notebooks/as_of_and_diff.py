"""Time travel and version diffs: an asset's versions, the asset as of a moment, and what the latest rebuild changed.

Why marimo: notebooks are plain Python files that run headless (`python notebooks/as_of_and_diff.py`)
and re-run cells in dependency order, so changing the asset picker recomputes every view
below it and nothing stale lingers. The warehouse is opened read-only from QUARRY_CATALOG /
QUARRY_DATA_PATH.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    from datetime import timedelta

    import marimo as mo
    import polars as pl

    from assets import default_graph
    from pipelines.settings import Settings
    from warehouse.diff import DiffError, diff_asset, latest_change
    from warehouse.explore import Explorer

    settings = Settings()
    explorer = Explorer.open(settings.warehouse.catalog, settings.warehouse.data_path)
    graph = default_graph()
    return DiffError, diff_asset, explorer, graph, latest_change, mo, pl, timedelta


@app.cell
def _(graph, mo):
    asset_picker = mo.ui.dropdown(options=[a.name for a in graph], value="bars_raw", label="asset")
    asset_picker
    return (asset_picker,)


@app.cell
def _(asset_picker, explorer, mo):
    versions = explorer.sql("SELECT * FROM asset_versions(?)", [asset_picker.value])
    mo.vstack([mo.md(f"## Versions of `{asset_picker.value}` (newest first)"), versions.head(20)])
    return (versions,)


@app.cell
def _(DiffError, asset_picker, explorer, latest_change):
    try:
        before_id, after_id = latest_change(explorer.warehouse, asset_picker.value)
    except DiffError:
        before_id = after_id = None  # built once: nothing superseded yet
    return after_id, before_id


@app.cell
def _(after_id, asset_picker, before_id, diff_asset, explorer, graph, mo):
    change = None
    if before_id:
        change = diff_asset(
            explorer.warehouse, asset_picker.value, graph[asset_picker.value].grain, before=before_id, after=after_id
        )
    mo.md(
        "No rebuild has superseded a version of this asset yet." if change is None else
        f"### Latest change: {change.before.label} → {change.after.label}\n\n"
        f"added {change.rows.added.height}, removed {change.rows.removed.height}, changed {change.rows.changed.height}; "
        f"columns changed: {change.rows.column_changes or 'none'}"
    )
    return (change,)


@app.cell
def _(after_id, asset_picker, before_id, explorer, mo):
    # the same diff in plain SQL, as a notebook user would write it
    sql_diff = None
    if before_id:
        sql_diff = explorer.sql(
            "SELECT change, key, changed_columns FROM version_diff(?, ?, ?)", [asset_picker.value, before_id, after_id]
        )
    mo.vstack([mo.md("### The same diff in SQL: `version_diff`"), sql_diff]) if sql_diff is not None else None
    return (sql_diff,)


@app.cell
def _(after_id, asset_picker, before_id, explorer, graph, mo, pl, timedelta, versions):
    # time travel agrees with the catalog: the partition as of the snapshot just before the
    # latest publish is exactly the version that publish superseded (a snapshot is stamped when
    # its transaction starts, so `published_at` can be a little later than the snapshot)
    as_of_check = None
    if before_id:
        replaced = versions.filter(pl.col("version_id") == after_id).row(0, named=True)
        moment = replaced["snapshot_id"] - 1
        then = explorer.sql(
            "SELECT * FROM asset_at_snapshot(?, ?) WHERE partition_key = ?",
            [asset_picker.value, moment, replaced["partition_key"]],
        )
        superseded = explorer.sql("SELECT * FROM asset_at_version(?, ?)", [asset_picker.value, before_id])
        grain = list(graph[asset_picker.value].grain) or then.columns
        as_of_check = {
            "as_of_snapshot": moment,
            "rows_then": then.height,
            "rows_superseded": superseded.height,
            "then_is_superseded": then.sort(grain).equals(superseded.select(then.columns).sort(grain)),
        }
    mo.vstack([
        mo.md("### Time travel: the snapshot before the latest publish against the superseded version"), as_of_check,
        mo.md(f"### `{asset_picker.value}` [{replaced['partition_key']}] as of snapshot {moment} (first rows)"),
        then.sort(grain).head(20),
        mo.md(f"### The superseded version `{before_id}` (first rows)"), superseded.select(then.columns).sort(grain).head(20),
    ]) if as_of_check else None
    return (as_of_check,)


@app.cell
def _(as_of_check, asset_picker, change, sql_diff, versions):
    summary = {
        "asset": asset_picker.value,
        "versions": versions.height,
        "superseded": int((versions["status"] == "superseded").sum()),
        "latest_change": None if change is None else change.summary(),
        "sql_diff_rows": None if sql_diff is None else sql_diff.height,
        "as_of": as_of_check,
    }
    return (summary,)


if __name__ == "__main__":
    app.run()
