"""Re-record the data versions of published partitions whose columns steps 5 to 7 renamed or added, where their rows are intact."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.catalog_migrations import v0005_column_units, v0006_backtest_units, v0007_dollar_units
from warehouse.versions import data_versions_by_partition

# A data version hashes the column names, so a renamed or added column changes it although no row
# did: without this step `quarry verify` would mark every such partition damaged.
RENAMED = (v0005_column_units.RENAMES, v0006_backtest_units.RENAMES, v0007_dollar_units.RENAMES)
ADDED = {"financial_statements": ("unit",)}


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    assets = sorted({asset for renames in RENAMED for asset in renames} | set(ADDED))
    for asset in assets:
        rerecord_data_versions(cur, asset)


def as_published(rows: pl.DataFrame, asset: str) -> pl.DataFrame:
    """A table's rows under the columns they were published with, before steps 5 to 7."""
    old_names = {new: old for renames in RENAMED for old, new in renames.get(asset, {}).items() if new in rows.columns}
    return rows.drop(ADDED.get(asset, ()), strict=False).rename(old_names)


def rerecord_data_versions(cur: duckdb.DuckDBPyConnection, asset: str) -> None:
    """Give each published partition of `asset` the data version of its rows now, if its rows are those it was published with.

    A partition whose rows match neither its recorded version nor the renamed one keeps its
    recorded version, so `quarry verify` still finds it damaged.
    """
    stored = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'main' AND table_name = ?",
        [asset],
    ).fetchone()[0]
    if not stored:
        return
    published = cur.execute(
        "SELECT version_id, partition_key, data_version FROM lake.quarry.versions WHERE asset = ? AND status = 'published'",
        [asset],
    ).fetchall()
    if not published:
        return
    rows = cur.execute(f'SELECT * FROM lake.main."{asset}"').pl()
    now, then = data_versions_by_partition(rows), data_versions_by_partition(as_published(rows, asset))
    for version_id, key, recorded in published:
        if key in now and recorded == then.get(key) and recorded != now[key]:
            cur.execute(  # a verify run between the renames and this step found it damaged; it was not
                "UPDATE lake.quarry.versions SET data_version = ?, damaged_at = NULL, damage = NULL WHERE version_id = ?",
                [now[key], version_id],
            )
