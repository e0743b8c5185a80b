"""Rename indicator columns to carry their units: atr to atr_px, volatility to volatility_pct."""

from __future__ import annotations

import duckdb

# Per asset, each old column name and the name that says its unit. ATR is in price units; the
# volatility is the per-bar sample deviation of log returns, a fraction like return_pct.
RENAMES = {
    "indicators_hourly": {"atr": "atr_px", "volatility": "volatility_pct"},
    "indicators_daily": {"atr": "atr_px", "volatility": "volatility_pct"},
}
# Published rows live in `main`, rows that failed their audit in `quarantine`; both hold the asset's columns.
SCHEMAS = ("main", "quarantine")


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    for asset, renames in RENAMES.items():
        for schema in SCHEMAS:
            present = {
                row[0]
                for row in cur.execute(
                    "SELECT column_name FROM duckdb_columns() "
                    "WHERE database_name = 'lake' AND schema_name = ? AND table_name = ?",
                    [schema, asset],
                ).fetchall()
            }
            for old, new in renames.items():
                if old in present and new not in present:
                    cur.execute(f'ALTER TABLE lake.{schema}."{asset}" RENAME COLUMN "{old}" TO "{new}"')
        # The recorded contracts describe the tables as they now are.
        for old, new in renames.items():
            cur.execute(
                "UPDATE lake.quarry.asset_metadata SET contract_columns = replace(contract_columns, ?, ?) "
                "WHERE asset = ? AND contract_columns IS NOT NULL",
                [f'"name": "{old}"', f'"name": "{new}"', asset],
            )
