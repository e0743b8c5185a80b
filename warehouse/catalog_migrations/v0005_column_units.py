"""Rename indicator columns to carry their units: atr to atr_px, volatility to volatility_pct."""

from __future__ import annotations

import duckdb

from warehouse.catalog_migrations import rename_asset_columns

# Per asset, each old column name and the name that says its unit. ATR is in price units; the
# volatility is the per-bar sample deviation of log returns, a fraction like return_pct.
RENAMES = {
    "indicators_hourly": {"atr": "atr_px", "volatility": "volatility_pct"},
    "indicators_daily": {"atr": "atr_px", "volatility": "volatility_pct"},
}


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    rename_asset_columns(cur, RENAMES)
