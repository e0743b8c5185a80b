"""Catalog migrations: a warehouse written before numbered migrations upgrades in place and keeps its rows."""

from __future__ import annotations

import json
import os
import threading
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.conftest import WINDOW_START, catalog_kinds, postgres_catalog_database
from warehouse import Warehouse, WarehouseError
from warehouse.catalog_migrations import latest_version, steps
from warehouse.lake import attach_sql, load_extensions, use_write_ahead_log

# The catalog exactly as Quarry created it before numbered migrations (warehouse/versions.py, CATALOG_DDL).
PREVIOUS_SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS lake.quarry",
    "CREATE SCHEMA IF NOT EXISTS lake.quarantine",
    """CREATE TABLE IF NOT EXISTS lake.quarry.versions (
        version_id VARCHAR, asset VARCHAR, partition_key VARCHAR, status VARCHAR,
        code_version VARCHAR, data_version VARCHAR, upstream_versions VARCHAR,
        row_count BIGINT, run_id VARCHAR, batch_id VARCHAR, snapshot_id BIGINT,
        build_seconds DOUBLE, created_at TIMESTAMPTZ, published_at TIMESTAMPTZ,
        superseded_at TIMESTAMPTZ, failed_checks VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS lake.quarry.runs (
        run_id VARCHAR, flow_run_id VARCHAR, selection VARCHAR, status VARCHAR,
        started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, built BIGINT, up_to_date BIGINT,
        quarantined BIGINT, skipped BIGINT, failed BIGINT, rows_written BIGINT,
        report_path VARCHAR, summary VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS lake.quarry.check_results (
        run_id VARCHAR, version_id VARCHAR, asset VARCHAR, partition_key VARCHAR,
        check_name VARCHAR, severity VARCHAR, passed BOOLEAN, failing_rows BIGINT,
        sample VARCHAR, message VARCHAR, checked_at TIMESTAMPTZ)""",
)
WRITTEN_AT = datetime(2026, 1, 5, 21, 0, tzinfo=timezone.utc)


@pytest.fixture(params=catalog_kinds())
def address(request, tmp_path: Path):
    """Where a warehouse lives: a SQLite catalog, or (when configured, always in CI) a PostgreSQL one."""
    with ExitStack() as stack:
        if request.param == "postgres":
            if not os.environ.get("QUARRY_TEST_PG_DSN"):
                pytest.skip("PostgreSQL catalog variant: set QUARRY_TEST_PG_DSN to run it (CI always does)")
            catalog = "postgres:" + stack.enter_context(postgres_catalog_database(os.environ["QUARRY_TEST_PG_DSN"]))
        else:
            catalog = f"sqlite:{tmp_path}/catalog.sqlite"
        (tmp_path / "lake").mkdir()
        yield catalog, f"{tmp_path}/lake/"


def _attached(catalog: str, data_path: str) -> duckdb.DuckDBPyConnection:
    """A bare DuckDB connection with the lake attached, as any DuckLake client would have it."""
    if catalog.startswith("sqlite:"):
        use_write_ahead_log(Path(catalog.removeprefix("sqlite:")))
    con = duckdb.connect()
    load_extensions(con, catalog)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(attach_sql(catalog, data_path))
    return con


def write_previous_schema_warehouse(catalog: str, data_path: str) -> None:
    """A warehouse as the previous Quarry left it: its catalog tables, one published asset, a run and a check."""
    con = _attached(catalog, data_path)
    for statement in PREVIOUS_SCHEMA:
        con.execute(statement)
    con.execute("CREATE TABLE lake.main.legacy_prices (symbol VARCHAR, close_px DOUBLE, partition_key VARCHAR)")
    con.execute("INSERT INTO lake.main.legacy_prices VALUES ('KO', 61.5, 'all'), ('PEP', 170.25, 'all')")
    con.execute(
        "INSERT INTO lake.quarry.versions VALUES ('v-old', 'legacy_prices', 'all', 'superseded', 'c0', 'd0', '{}', "
        "2, 'run-0', 'b0', 1, 0.1, ?, ?, ?, NULL)",
        [WRITTEN_AT, WRITTEN_AT, WRITTEN_AT],
    )
    con.execute(
        "INSERT INTO lake.quarry.versions VALUES ('v-1', 'legacy_prices', 'all', 'published', 'c1', 'd1', '{}', "
        "2, 'run-1', 'b1', 2, 0.2, ?, ?, NULL, NULL)",
        [WRITTEN_AT, WRITTEN_AT],
    )
    con.execute(
        "INSERT INTO lake.quarry.runs VALUES ('run-1', NULL, '*', 'completed', ?, ?, 1, 0, 0, 0, 0, 2, "
        "'reports/run-1.html', '[]')",
        [WRITTEN_AT, WRITTEN_AT],
    )
    con.execute(
        "INSERT INTO lake.quarry.check_results VALUES ('run-1', 'v-1', 'legacy_prices', 'all', 'positive_close', "
        "'error', true, 0, NULL, NULL, ?)",
        [WRITTEN_AT],
    )
    con.close()


def test_steps_are_numbered_one_to_n_and_say_what_they_change():
    found = steps()
    assert [s.number for s in found] == list(range(1, len(found) + 1))
    assert latest_version() == len(found) >= 1
    assert all(s.summary and s.name.startswith(f"v{s.number:04d}_") for s in found)


def test_step_one_is_the_previous_schema_exactly(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    previous = _attached(f"sqlite:{tmp_path}/a.sqlite", f"{tmp_path}/a/")
    for statement in PREVIOUS_SCHEMA:
        previous.execute(statement)
    migrated = _attached(f"sqlite:{tmp_path}/b.sqlite", f"{tmp_path}/b/")
    steps()[0].migrate(migrated)

    def columns(con, tables):
        return con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = 'lake' AND schema_name = 'quarry' AND list_contains(?, table_name) "
            "ORDER BY table_name, column_index",
            [tables],
        ).fetchall()

    core = ["versions", "runs", "check_results"]
    assert columns(migrated, core) == columns(previous, core)
    # the archive tables the previous code created on first use are part of step one
    assert {r[0] for r in columns(migrated, ["archived_versions", "archive_runs"])} == {"archived_versions", "archive_runs"}


def test_a_warehouse_written_by_the_previous_schema_upgrades_in_place_and_keeps_its_rows(address):
    catalog, data_path = address
    write_previous_schema_warehouse(catalog, data_path)

    with Warehouse.open(catalog, data_path, read_only=True) as reader:
        assert reader.schema_version() == 0  # a read-only open changes nothing
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        history = warehouse.query("SELECT version, step FROM lake.quarry.schema_version ORDER BY version")
        assert history["step"].to_list() == [s.name for s in steps()]

        assert sorted(warehouse.versions("legacy_prices")["version_id"].to_list()) == ["v-1", "v-old"]
        assert warehouse.current_versions(["legacy_prices"])["version_id"].to_list() == ["v-1"]
        assert warehouse.read("legacy_prices").sort("symbol").to_dict(as_series=False) == {
            "symbol": ["KO", "PEP"], "close_px": [61.5, 170.25]
        }
        assert warehouse.run("run-1")["rows_written"] == 2
        assert warehouse.check_results("run-1")["check_name"].to_list() == ["positive_close"]
        assert warehouse.query("SELECT count(*) AS n FROM lake.quarry.archived_versions")["n"][0] == 0

    # opening again applies nothing twice
    with Warehouse.open(catalog, data_path) as again:
        assert again.query("SELECT count(*) AS n FROM lake.quarry.schema_version")["n"][0] == latest_version()


@pytest.mark.slow
def test_the_upgraded_warehouse_materializes_on_top_of_its_old_rows(address, tmp_path: Path):
    from tests.conftest import Lake

    catalog, data_path = address
    write_previous_schema_warehouse(catalog, data_path)
    with Warehouse.open(catalog, data_path) as warehouse:
        summary = Lake(tmp_path, catalog, data_path, warehouse).materialize("bars_raw", start=WINDOW_START, end=WINDOW_START)
        assert summary.status == "completed" and summary.outcomes["bars_raw"].built == [WINDOW_START.isoformat()]
        published = warehouse.current_versions()
        assert set(published["asset"].to_list()) == {"legacy_prices", "bars_raw"}
        assert warehouse.read("legacy_prices").height == 2


def test_two_processes_opening_an_old_warehouse_at_once_upgrade_it_once(address):
    catalog, data_path = address
    write_previous_schema_warehouse(catalog, data_path)
    opened: list[Warehouse] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Warehouse.open(catalog, data_path))
        except BaseException as error:  # reported below, with the other opener's outcome
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors
        history = opened[0].query("SELECT version FROM lake.quarry.schema_version ORDER BY version")
        assert history["version"].to_list() == list(range(1, latest_version() + 1))
        assert opened[1].current_versions(["legacy_prices"])["version_id"].to_list() == ["v-1"]
    finally:
        for warehouse in opened:
            warehouse.close()


def test_a_catalog_newer_than_this_code_is_refused_with_one_line(address):
    catalog, data_path = address
    Warehouse.open(catalog, data_path).close()
    con = _attached(catalog, data_path)
    con.execute("INSERT INTO lake.quarry.schema_version VALUES (?, 'v9999_from_the_future', now())", [latest_version() + 1])
    con.close()
    for read_only in (False, True):
        with pytest.raises(WarehouseError, match=rf"schema version {latest_version() + 1}, newer than .* upgrade Quarry"):
            Warehouse.open(catalog, data_path, read_only=read_only)


def test_a_new_warehouse_starts_at_the_latest_schema_version(lake):
    assert lake.warehouse.schema_version() == latest_version()
    tables = lake.warehouse.query(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'quarry'"
    )
    assert {"versions", "runs", "check_results", "schema_version"} <= set(tables["table_name"].to_list())
    assert isinstance(lake.warehouse.current_versions(), pl.DataFrame)


def _at_schema_version(catalog: str, data_path: str, version: int) -> duckdb.DuckDBPyConnection:
    """A connection to a warehouse whose catalog ran the first `version` steps and recorded them, as that Quarry did."""
    con = _attached(catalog, data_path)
    for step in steps()[:version]:
        step.migrate(con)
        con.execute(
            "CREATE TABLE IF NOT EXISTS lake.quarry.schema_version (version INTEGER, step VARCHAR, applied_at TIMESTAMPTZ)"
        )
        con.execute("INSERT INTO lake.quarry.schema_version VALUES (?, ?, ?)", [step.number, step.name, WRITTEN_AT])
    return con


def write_schema_three_warehouse(catalog: str, data_path: str) -> None:
    """A warehouse as Quarry left it at schema version 3: definitions recorded, no asset metadata kept at publish."""
    con = _at_schema_version(catalog, data_path, 3)
    metadata = {"grain": ["symbol", "bar_ts"], "time_column": "bar_ts", "freshness_seconds": 345600.0, "contract": "BarsRaw"}
    flat = {"grain": ["symbol"], "time_column": None, "freshness_seconds": None, "contract": None}
    for asset, described, at in (
        ("prices", {**metadata, "grain": ["symbol"]}, WRITTEN_AT.replace(hour=1)),  # an older definition
        ("prices", metadata, WRITTEN_AT.replace(hour=2)),
        ("listing", flat, WRITTEN_AT.replace(hour=2)),
        ("never_built", flat, WRITTEN_AT.replace(hour=2)),
    ):
        con.execute(
            "INSERT INTO lake.quarry.asset_definitions VALUES (?, 'c1', 'm1', '{}', ?, ?)", [asset, json.dumps(described), at]
        )
    for version_id, asset, key in (("v-p1", "prices", "2026-01-02"), ("v-p2", "prices", "2026-01-05"), ("v-l", "listing", "all")):
        con.execute(
            "INSERT INTO lake.quarry.versions (version_id, asset, partition_key, status, code_version, row_count, "
            "created_at, published_at) VALUES (?, ?, ?, 'published', 'c1', 1, ?, ?)",
            [version_id, asset, key, WRITTEN_AT, WRITTEN_AT],
        )
    con.close()


def test_a_schema_three_warehouse_gets_asset_metadata_from_its_latest_definitions(address):
    catalog, data_path = address
    write_schema_three_warehouse(catalog, data_path)
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        recorded = warehouse.asset_metadata()
    assert set(recorded) == {"prices", "listing"}  # an asset never published has no metadata to carry
    prices, listing = recorded["prices"], recorded["listing"]
    assert prices.grain == ("symbol", "bar_ts") and prices.time_column == "bar_ts" and prices.contract == "BarsRaw"
    assert prices.partitions is None and prices.is_partitioned and prices.partition_column == "bar_ts"
    assert prices.freshness == timedelta(days=4) and prices.code_version == "c1"
    assert listing.partitions == "none" and not listing.is_partitioned and listing.partition_column is None
    assert listing.grain == ("symbol",) and listing.freshness is None and listing.contract_columns == ()


def write_schema_four_warehouse_with_unitless_indicators(catalog: str, data_path: str) -> None:
    """A warehouse at schema version 4 whose indicator tables still name `atr` and `volatility` without units."""
    con = _at_schema_version(catalog, data_path, 4)
    for schema, rows in (("main", "('KO', 1.25, 0.011, 'all'), ('PEP', 2.5, 0.02, 'all')"), ("quarantine", "('XX', -1.0, 0.5, 'all')")):
        con.execute(
            f"CREATE TABLE lake.{schema}.indicators_daily (symbol VARCHAR, atr DOUBLE, volatility DOUBLE, partition_key VARCHAR)"
        )
        con.execute(f"INSERT INTO lake.{schema}.indicators_daily VALUES {rows}")
    columns = json.dumps([{"name": name, "dtype": "Float64", "nullable": True} for name in ("atr", "volatility", "atrium")])
    con.execute(
        "INSERT INTO lake.quarry.asset_metadata (asset, code_version, grain, partitions, contract, contract_columns, recorded_at) "
        "VALUES ('indicators_daily', 'c1', ['symbol'], 'none', 'IndicatorsDaily', ?, ?)",
        [columns, WRITTEN_AT],
    )
    con.close()


def test_unitless_indicator_columns_are_renamed_in_place_with_their_rows(address):
    catalog, data_path = address
    write_schema_four_warehouse_with_unitless_indicators(catalog, data_path)
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        published = warehouse.query("SELECT symbol, atr_px, volatility_pct FROM lake.main.indicators_daily ORDER BY symbol")
        quarantined = warehouse.query("SELECT symbol, atr_px, volatility_pct FROM lake.quarantine.indicators_daily")
        recorded = warehouse.asset_metadata()["indicators_daily"]
    assert published.rows() == [("KO", 1.25, 0.011), ("PEP", 2.5, 0.02)]
    assert quarantined.rows() == [("XX", -1.0, 0.5)]
    assert [c.name for c in recorded.contract_columns] == ["atr_px", "volatility_pct", "atrium"]


def test_unitless_backtest_columns_are_renamed_in_place_with_their_rows(address):
    catalog, data_path = address
    con = _at_schema_version(catalog, data_path, 5)
    con.execute("CREATE TABLE lake.main.backtest_trades (pair_id VARCHAR, cost DOUBLE, partition_key VARCHAR)")
    con.execute("INSERT INTO lake.main.backtest_trades VALUES ('KO/PEP', 101.5, 'all')")
    con.execute("CREATE TABLE lake.main.backtest_equity (pair_id VARCHAR, equity DOUBLE, partition_key VARCHAR)")
    con.execute("INSERT INTO lake.main.backtest_equity VALUES ('KO/PEP', 1000898.5, 'all')")
    con.close()
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        trades = warehouse.query("SELECT pair_id, cost_usd FROM lake.main.backtest_trades")
        equity = warehouse.query("SELECT pair_id, equity_usd FROM lake.main.backtest_equity")
    assert trades.rows() == [("KO/PEP", 101.5)]
    assert equity.rows() == [("KO/PEP", 1000898.5)]


def write_schema_six_warehouse_with_unitless_dollars(catalog: str, data_path: str) -> None:
    """A warehouse at schema version 6: dollar columns without `_usd`, statement values without a unit."""
    con = _at_schema_version(catalog, data_path, 6)
    for statement in (
        "CREATE TABLE lake.main.backtest_trades (pair_id VARCHAR, entry_notional DOUBLE, gross_pnl DOUBLE, "
        "cost_usd DOUBLE, net_pnl DOUBLE, partition_key VARCHAR)",
        "INSERT INTO lake.main.backtest_trades VALUES ('KO/PEP', 20000.0, 1000.0, 101.5, 898.5, 'all')",
        "CREATE TABLE lake.main.backtest_equity (pair_id VARCHAR, net_pnl DOUBLE, equity_usd DOUBLE, partition_key VARCHAR)",
        "INSERT INTO lake.main.backtest_equity VALUES ('KO/PEP', 898.5, 1000898.5, 'all')",
        "CREATE TABLE lake.main.trade_analysis (dimension VARCHAR, bucket VARCHAR, avg_net_pnl DOUBLE, "
        "median_net_pnl DOUBLE, total_net_pnl DOUBLE, partition_key VARCHAR)",
        "INSERT INTO lake.main.trade_analysis VALUES ('pair', 'KO/PEP', 898.5, 898.5, 898.5, 'all')",
        "CREATE TABLE lake.main.key_statistics (symbol VARCHAR, market_cap DOUBLE, enterprise_value DOUBLE, partition_key VARCHAR)",
        "INSERT INTO lake.main.key_statistics VALUES ('KO', 2.6e11, 3.0e11, 'all')",
        "CREATE TABLE lake.main.institutional_holders (symbol VARCHAR, holder VARCHAR, value DOUBLE, partition_key VARCHAR)",
        "INSERT INTO lake.main.institutional_holders VALUES ('KO', 'Vanguard Group Inc', 2.4e10, 'all')",
    ):
        con.execute(statement)
    for schema, rows in (
        ("main", "('KO', 'total_revenue', 1.2e10, NULL, 'all'), ('KO', 'diluted_eps', 0.71, NULL, 'all'), "
                 "('KO', 'ordinary_shares_number', 4.3e9, NULL, 'all'), ('KO', 'tax_rate_for_calcs', 0.19, NULL, 'all'), "
                 "('XX', NULL, NULL, 'unknown symbol', 'all')"),
        ("quarantine", "('KO', 'basic_eps', -1.0, NULL, 'all')"),
    ):
        con.execute(
            f"CREATE TABLE lake.{schema}.financial_statements "
            "(symbol VARCHAR, line_item VARCHAR, value DOUBLE, issue VARCHAR, partition_key VARCHAR)"
        )
        con.execute(f"INSERT INTO lake.{schema}.financial_statements VALUES {rows}")
    for asset, names in (
        ("financial_statements", ("symbol", "line_item", "value", "issue")),
        ("institutional_holders", ("symbol", "holder", "value")),
    ):
        columns = json.dumps([{"name": name, "dtype": "String", "nullable": True} for name in names])
        con.execute(
            "INSERT INTO lake.quarry.asset_metadata (asset, code_version, grain, partitions, contract, contract_columns, "
            "recorded_at) VALUES (?, 'c1', ['symbol'], 'none', 'Contract', ?, ?)",
            [asset, columns, WRITTEN_AT],
        )
    con.close()


def test_unitless_dollar_columns_are_renamed_and_statement_values_get_their_unit(address):
    catalog, data_path = address
    write_schema_six_warehouse_with_unitless_dollars(catalog, data_path)
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        trades = warehouse.query("SELECT entry_notional_usd, gross_pnl_usd, net_pnl_usd FROM lake.main.backtest_trades")
        equity = warehouse.query("SELECT net_pnl_usd FROM lake.main.backtest_equity")
        analysis = warehouse.query(
            "SELECT avg_net_pnl_usd, median_net_pnl_usd, total_net_pnl_usd FROM lake.main.trade_analysis"
        )
        statistics = warehouse.query("SELECT market_cap_usd, enterprise_value_usd FROM lake.main.key_statistics")
        holders = warehouse.query("SELECT holder, market_value_usd FROM lake.main.institutional_holders")
        statements = warehouse.query("SELECT symbol, line_item, value, unit FROM lake.main.financial_statements ORDER BY value NULLS FIRST")
        quarantined = warehouse.query("SELECT line_item, unit FROM lake.quarantine.financial_statements")
        recorded = warehouse.asset_metadata()
    assert trades.rows() == [(20000.0, 1000.0, 898.5)] and equity.rows() == [(898.5,)]
    assert analysis.rows() == [(898.5, 898.5, 898.5)]
    assert statistics.rows() == [(2.6e11, 3.0e11)] and holders.rows() == [("Vanguard Group Inc", 2.4e10)]
    assert statements.rows() == [
        ("XX", None, None, None), ("KO", "tax_rate_for_calcs", 0.19, "ratio"), ("KO", "diluted_eps", 0.71, "usd_per_share"),
        ("KO", "ordinary_shares_number", 4.3e9, "shares"), ("KO", "total_revenue", 1.2e10, "usd"),
    ]
    assert quarantined.rows() == [("basic_eps", "usd_per_share")]
    assert [c.name for c in recorded["financial_statements"].contract_columns] == ["symbol", "line_item", "value", "issue", "unit"]
    assert [c.name for c in recorded["institutional_holders"].contract_columns] == ["symbol", "holder", "market_value_usd"]


def test_the_unit_step_labels_line_items_as_the_financial_statements_asset_does():
    """Step 7 states the line-item units as they stood when it shipped; the asset must label new rows the same way."""
    from assets.fundamentals.assets import DOLLARS, LINE_ITEM_UNITS
    from warehouse.catalog_migrations import v0007_dollar_units as step

    assert step.LINE_ITEM_UNITS == LINE_ITEM_UNITS, "a line item whose unit changed needs a catalog step for the stored rows"
    assert step.DOLLARS == DOLLARS


def _record_published_versions(con, asset: str, rows_as_published: pl.DataFrame, changed_key: str | None = None) -> None:
    """A published version row per partition of `asset`, with the data version its rows had under the column names
    they were published with; `changed_key`'s rows really changed since, so its recorded version is another."""
    from warehouse.versions import data_versions_by_partition

    for key, version in data_versions_by_partition(rows_as_published).items():
        con.execute(
            "INSERT INTO lake.quarry.versions (version_id, asset, partition_key, status, code_version, data_version, "
            "row_count, created_at, published_at) VALUES (?, ?, ?, 'published', 'c1', ?, 1, ?, ?)",
            [f"v-{asset}-{key}", asset, key, "d-something-else" if key == changed_key else version, WRITTEN_AT, WRITTEN_AT],
        )


def test_partitions_whose_columns_were_renamed_keep_verifying_as_intact(address):
    """A data version hashes column names: step 8 re-records it for intact rows, so verify finds no false damage."""
    from warehouse.catalog_migrations.v0008_renamed_data_versions import as_published
    from warehouse.verify import verify

    catalog, data_path = address
    con = _at_schema_version(catalog, data_path, 7)
    con.execute(
        "CREATE TABLE lake.main.key_statistics (symbol VARCHAR, market_cap_usd DOUBLE, partition_key VARCHAR); "
        "INSERT INTO lake.main.key_statistics VALUES ('KO', 2.6e11, 'all')"
    )
    con.execute(
        "CREATE TABLE lake.main.indicators_daily (symbol VARCHAR, atr_px DOUBLE, partition_key VARCHAR); "
        "INSERT INTO lake.main.indicators_daily VALUES ('KO', 1.25, '2026-01-02'), ('KO', 1.5, '2026-01-05')"
    )
    con.execute(
        "CREATE TABLE lake.main.financial_statements (symbol VARCHAR, line_item VARCHAR, value DOUBLE, "
        "partition_key VARCHAR, unit VARCHAR); "
        "INSERT INTO lake.main.financial_statements VALUES ('KO', 'diluted_eps', 0.71, 'all', 'usd_per_share')"
    )
    for asset in ("key_statistics", "indicators_daily", "financial_statements"):
        rows = con.execute(f"SELECT * FROM lake.main.{asset}").pl()
        _record_published_versions(con, asset, as_published(rows, asset),
                                   changed_key="2026-01-02" if asset == "indicators_daily" else None)
    con.close()
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        damaged = {(c.asset, c.partition_key) for c in verify(warehouse) if c.is_damaged}
    assert damaged == {("indicators_daily", "2026-01-02")}


def test_officer_pay_is_renamed_with_its_unit_and_its_intact_partitions_keep_verifying(address):
    """Step 9 renames company_officers.total_pay in the table and the recorded contract and re-records intact versions."""
    from warehouse.verify import verify

    catalog, data_path = address
    con = _at_schema_version(catalog, data_path, 8)
    con.execute(
        "CREATE TABLE lake.main.company_officers (symbol VARCHAR, officer_name VARCHAR, total_pay DOUBLE, "
        "partition_key VARCHAR); INSERT INTO lake.main.company_officers VALUES "
        "('KO', 'J. Quincey', 2.4e7, '2026-01-02'), ('KO', 'J. Quincey', 2.5e7, '2026-01-05')"
    )
    columns = json.dumps([{"name": n, "dtype": "String", "nullable": True} for n in ("symbol", "officer_name", "total_pay")])
    con.execute(
        "INSERT INTO lake.quarry.asset_metadata (asset, code_version, grain, partitions, contract, contract_columns, "
        "recorded_at) VALUES ('company_officers', 'c1', ['symbol'], 'daily', 'CompanyOfficers', ?, ?)",
        [columns, WRITTEN_AT],
    )
    rows = con.execute("SELECT * FROM lake.main.company_officers").pl()  # still under the old name
    _record_published_versions(con, "company_officers", rows, changed_key="2026-01-02")
    con.close()
    with Warehouse.open(catalog, data_path) as warehouse:
        assert warehouse.schema_version() == latest_version()
        pay = warehouse.query("SELECT total_pay_usd FROM lake.main.company_officers ORDER BY partition_key")
        recorded = warehouse.asset_metadata()["company_officers"]
        damaged = {c.partition_key for c in verify(warehouse) if c.is_damaged}
    assert pay["total_pay_usd"].to_list() == [2.4e7, 2.5e7]
    assert [c.name for c in recorded.contract_columns] == ["symbol", "officer_name", "total_pay_usd"]
    assert damaged == {"2026-01-02"}
