"""The SQL surface on a real lake: every view and macro answers, and agrees with the Python reads and diff."""

import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets import default_graph
from tests.warehouse.edited_market import EDITED_DAY, _at, build_two_versions
from warehouse import Warehouse, attach_sql
from warehouse.diff import diff_asset
from warehouse.lake import load_extensions
from warehouse.sql_surface import SURFACE, install_sql_surface, surface_markdown, surface_script


def _reader(lake):
    """A read-only warehouse in this process, as a notebook opens it, with the surface installed."""
    reader = Warehouse.open(lake.catalog, lake.data_path, read_only=True)
    cur = reader.cursor()
    install_sql_surface(cur)
    cur.execute("USE lake")
    return reader, cur


def test_every_view_and_macro_answers_and_matches_the_python_reads(lake):
    build_two_versions(lake)
    reader, cur = _reader(lake)
    try:
        catalog = cur.execute("SELECT * FROM asset_catalog").pl()
        bars = catalog.filter(pl.col("asset") == "bars_daily").row(0, named=True)
        assert bars["grain"] == ["symbol", "session_date"] and bars["published_partitions"] == 5
        assert bars["published_rows"] == 100 and bars["quarantined_partitions"] == 0 and bars["age_seconds"] >= 0
        built = {a.name for a in default_graph().select("+bars_daily")}
        assert set(catalog["asset"]) == built  # the catalog's assets, not every asset today's code declares
        metadata = cur.execute("SELECT * FROM asset_metadata WHERE asset = 'bars_hourly'").pl().row(0, named=True)
        assert (metadata["partitions"], metadata["partition_column"], metadata["contract"]) == ("daily", "bar_ts", "BarsHourly")
        assert metadata["code_version"] == default_graph()["bars_hourly"].code_version

        assert cur.execute("SELECT count(*) FROM current_versions").fetchone()[0] == lake.warehouse.current_versions().height
        versions = cur.execute("SELECT * FROM asset_versions('bars_raw') WHERE partition_key = ?", [EDITED_DAY]).pl()
        assert versions["status"].to_list() == ["published", "superseded"]
        new, old = versions["version_id"].to_list()

        current = cur.execute("SELECT * EXCLUDE (partition_key) FROM asset_current('bars_daily')").pl()
        assert current.sort("symbol", "session_date").equals(lake.warehouse.read("bars_daily").sort("symbol", "session_date"))

        old_rows = cur.execute("SELECT * EXCLUDE (partition_key) FROM asset_at_version('bars_raw', ?)", [old]).pl()
        expected = lake.warehouse.read_as_of("bars_raw", version_id=old)
        assert old_rows.sort("symbol", "bar_ts").equals(expected.sort("symbol", "bar_ts"))
        assert old_rows.filter((pl.col("symbol") == "PEP") & (pl.col("bar_ts") == _at(16))).is_empty()

        first_publish = versions["published_at"][1]
        as_of = cur.execute(
            f"SELECT count(*) FROM asset_as_of('bars_raw', TIMESTAMPTZ '{first_publish.isoformat()}') WHERE partition_key = ?",
            [EDITED_DAY],
        ).fetchone()[0]
        assert as_of == old_rows.height
        snapshot = int(versions["snapshot_id"][1])
        assert cur.execute(
            f"SELECT count(*) FROM asset_at_snapshot('bars_raw', {snapshot}) WHERE partition_key = ?", [EDITED_DAY]
        ).fetchone()[0] == old_rows.height

        checks = cur.execute("SELECT * FROM run_checks('edit2')").pl()
        assert checks.height == lake.warehouse.check_results("edit2").height > 0
        assert checks.filter(pl.col("severity") == "error")["passed"].all()
        assert checks["passed"].to_list() == sorted(checks["passed"].to_list())  # failures (warnings here) first
        history = cur.execute("SELECT DISTINCT run_id FROM check_history ORDER BY run_id").fetchall()
        assert history == [("edit1",), ("edit2",)]

        diff = cur.execute("SELECT change, key, changed_columns FROM version_diff('bars_raw', ?, ?)", [old, new]).fetchall()
        python = diff_asset(reader, "bars_raw", ("symbol", "bar_ts"), before=old, after=new).rows
        assert [(c, k[0]) for c, k, _ in diff] == [("added", "PEP"), ("changed", "KO"), ("removed", "XOM")]
        assert sorted(diff[1][2]) == sorted(python.changed["changed_columns"][0]) == ["close_px", "high_px"]
    finally:
        cur.close()
        reader.close()


def test_the_script_works_in_a_plain_duckdb_connection(lake, tmp_path):
    build_two_versions(lake)
    script = tmp_path / "quarry.sql"
    script.write_text(surface_script())
    con = duckdb.connect()
    load_extensions(con, lake.catalog)
    con.execute(attach_sql(lake.catalog, lake.data_path, read_only=True))
    for statement in script.read_text().split(";\n\n"):
        con.execute(statement)
    assert con.execute("SELECT count(*) FROM asset_catalog").fetchone()[0] == len(default_graph().select("+bars_daily"))
    with pytest.raises(duckdb.InvalidInputException, match="no published or superseded version 'v-none' of bars_daily"):
        con.execute("SELECT count(*) FROM version_diff('bars_daily', 'v-none', 'v-none')")
    with pytest.raises(duckdb.InvalidInputException, match="no asset named 'bars_dialy'"):
        con.execute("SELECT count(*) FROM asset_versions('bars_dialy')")
    printed = subprocess.run([sys.executable, "-m", "warehouse.sql_surface"], capture_output=True, text=True, check=True)
    assert printed.stdout == surface_script()


def test_the_reference_lists_every_object_and_the_docs_carry_it():
    reference = surface_markdown()
    docs = Path(__file__).resolve().parents[2] / "README.md"
    assert reference in docs.read_text()
    assert all(f"`{item.call}`" in reference for item in SURFACE)
    assert len({item.name for item in SURFACE}) == len(SURFACE) >= 9
