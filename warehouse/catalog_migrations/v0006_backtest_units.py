"""Rename backtest columns to carry their units: cost to cost_usd in backtest_trades, equity to equity_usd in backtest_equity."""

from __future__ import annotations

import duckdb

from warehouse.catalog_migrations import rename_asset_columns

# Per asset, each old column name and the name that says its unit: both are dollars of the backtest's capital.
RENAMES = {
    "backtest_trades": {"cost": "cost_usd"},
    "backtest_equity": {"equity": "equity_usd"},
}


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    rename_asset_columns(cur, RENAMES)
