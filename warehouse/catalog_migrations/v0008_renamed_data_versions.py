"""Re-record the data versions of published partitions whose columns steps 5 to 7 renamed or added, where their rows are intact."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.catalog_migrations import (
    rerecord_data_versions, v0005_column_units, v0006_backtest_units, v0007_dollar_units,
)

# A data version hashes the column names, so a renamed or added column changes it although no row
# did: without this step `quarry verify` would mark every such partition damaged.
RENAMED = (v0005_column_units.RENAMES, v0006_backtest_units.RENAMES, v0007_dollar_units.RENAMES)
ADDED = {"financial_statements": ("unit",)}


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    assets = sorted({asset for renames in RENAMED for asset in renames} | set(ADDED))
    for asset in assets:
        rerecord_data_versions(cur, asset, lambda rows, asset=asset: as_published(rows, asset))


def as_published(rows: pl.DataFrame, asset: str) -> pl.DataFrame:
    """A table's rows under the columns they were published with, before steps 5 to 7."""
    old_names = {new: old for renames in RENAMED for old, new in renames.get(asset, {}).items() if new in rows.columns}
    return rows.drop(ADDED.get(asset, ()), strict=False).rename(old_names)
