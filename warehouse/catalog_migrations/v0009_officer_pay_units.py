"""Rename company_officers.total_pay to total_pay_usd and re-record the data versions of its intact partitions."""

from __future__ import annotations

import duckdb

from warehouse.catalog_migrations import rename_asset_columns, rerecord_data_versions

RENAMES = {"company_officers": {"total_pay": "total_pay_usd"}}


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    rename_asset_columns(cur, RENAMES)
    for asset, columns in RENAMES.items():
        old_names = {new: old for old, new in columns.items()}
        rerecord_data_versions(cur, asset, lambda rows, old_names=old_names: rows.rename(old_names, strict=False))
