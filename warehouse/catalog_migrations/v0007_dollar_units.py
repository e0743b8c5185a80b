"""Rename dollar columns to carry their unit (…_usd) and give financial_statements a unit column beside its value."""

from __future__ import annotations

import duckdb

from warehouse.catalog_migrations import rename_asset_columns

# Per asset, each old column name and the name that says its unit: all are dollars.
RENAMES = {
    "backtest_trades": {"entry_notional": "entry_notional_usd", "gross_pnl": "gross_pnl_usd", "net_pnl": "net_pnl_usd"},
    "backtest_equity": {"net_pnl": "net_pnl_usd"},
    "trade_analysis": {
        "avg_net_pnl": "avg_net_pnl_usd", "median_net_pnl": "median_net_pnl_usd", "total_net_pnl": "total_net_pnl_usd",
    },
    "key_statistics": {"market_cap": "market_cap_usd", "enterprise_value": "enterprise_value_usd"},
    "institutional_holders": {"value": "market_value_usd"},
}

# The unit of each statement line item that is not dollars, as `LINE_ITEM_UNITS` in
# assets/fundamentals/assets.py stated it when this step shipped (the warehouse may not import
# the assets; tests/warehouse/test_catalog_migrations.py checks the two agree). Every other
# line item is dollars.
LINE_ITEM_UNITS = {
    **dict.fromkeys((
        "basic_eps", "diluted_eps", "normalized_basic_eps", "normalized_diluted_eps", "reported_normalized_basic_eps",
        "reported_normalized_diluted_eps", "continuing_and_discontinued_basic_eps",
        "continuing_and_discontinued_diluted_eps", "basic_continuous_operations", "diluted_continuous_operations",
        "basic_discontinuous_operations", "diluted_discontinuous_operations", "basic_extraordinary",
        "diluted_extraordinary", "basic_accounting_change", "diluted_accounting_change", "basic_epsother_gains_losses",
        "diluted_epsother_gains_losses", "tax_loss_carryforward_basic_eps", "tax_loss_carryforward_diluted_eps",
        "dividend_per_share",
    ), "usd_per_share"),
    **dict.fromkeys((
        "basic_average_shares", "diluted_average_shares", "ordinary_shares_number", "preferred_shares_number",
        "share_issued", "treasury_shares_number",
    ), "shares"),
    "tax_rate_for_calcs": "ratio",
}
DOLLARS = "usd"

_STATEMENTS = "financial_statements"
# The contract column the publish records for `unit`; the contract declares it last, where ADD COLUMN puts it.
_UNIT_COLUMN = '{"name": "unit", "dtype": "String", "nullable": true}'


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    rename_asset_columns(cur, RENAMES)
    add_statement_units(cur)


def add_statement_units(cur: duckdb.DuckDBPyConnection) -> None:
    """Add `unit` to the stored financial statements, labelling every row from its line item, and to their recorded contract.

    A table not yet written, or one that has the column, is left as it is; the statements'
    earlier snapshots keep no unit, for time travel.
    """
    for schema in ("main", "quarantine"):
        columns = {
            row[0]
            for row in cur.execute(
                "SELECT column_name FROM duckdb_columns() "
                "WHERE database_name = 'lake' AND schema_name = ? AND table_name = ?",
                [schema, _STATEMENTS],
            ).fetchall()
        }
        if not columns or "unit" in columns:
            continue
        table = f'lake.{schema}."{_STATEMENTS}"'
        cur.execute(f"ALTER TABLE {table} ADD COLUMN unit VARCHAR")
        cur.execute(
            f"UPDATE {table} SET unit = CASE WHEN line_item IS NOT NULL THEN "
            "coalesce(list_element(?::VARCHAR[], list_position(?::VARCHAR[], line_item)), ?) END",
            [list(LINE_ITEM_UNITS.values()), list(LINE_ITEM_UNITS), DOLLARS],
        )
    cur.execute(
        "UPDATE lake.quarry.asset_metadata SET contract_columns = rtrim(contract_columns, ']') || ', ' || ? || ']' "
        "WHERE asset = ? AND contract_columns LIKE '[{%}]' AND NOT contains(contract_columns, ?)",
        [_UNIT_COLUMN, _STATEMENTS, '"name": "unit"'],
    )
