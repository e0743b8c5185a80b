"""`quarry diff` and `quarry sql-surface` through typer's runner, and the lineage SVG file, on a real lake."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import typer
from typer.testing import CliRunner

from pipelines.cli_explore import draw_lineage, register
from tests.warehouse.edited_market import EDITED_DAY, build_two_versions
from warehouse.sql_surface import surface_markdown

QUARRY = str(Path(sys.executable).with_name("quarry"))


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_diff_prints_counts_per_column_and_json(lake):
    build_two_versions(lake)
    runner = CliRunner(env=lake.env() | {"COLUMNS": "160"})
    shown = runner.invoke(_app(), ["diff", "bars_raw", "--partition", EDITED_DAY])
    assert shown.exit_code == 0, shown.output
    assert "added 1, removed 1, changed 1" in shown.output and "close_px" in shown.output
    assert f"(superseded, {EDITED_DAY})" in shown.output and f"(published, {EDITED_DAY})" in shown.output

    as_json = json.loads(runner.invoke(_app(), ["diff", "bars_raw", "--partition", EDITED_DAY, "--json"]).output)
    assert (as_json["added"], as_json["removed"], as_json["changed"]) == (1, 1, 1)
    assert as_json["column_changes"] == {"high_px": 1, "close_px": 1} and as_json["key"] == ["symbol", "bar_ts"]

    same = runner.invoke(_app(), ["diff", "bars_daily", "--partition", "2025-03-03"])
    assert same.exit_code == 0 and "identical" in same.output

    for args, message in ((["diff", "bars_weekly"], "no asset named 'bars_weekly'"),
                          (["diff", "splits", "--partition", "nope"], "only ever published once")):
        failed = subprocess.run([QUARRY, *args], env=os.environ | lake.env(), capture_output=True, text=True)
        assert failed.returncode == 2 and message in failed.stderr and failed.stderr.count("\n") == 1, failed.stderr


def test_sql_surface_prints_the_script_or_the_reference():
    runner = CliRunner()
    script = runner.invoke(_app(), ["sql-surface"])
    assert script.exit_code == 0 and "CREATE OR REPLACE TEMP MACRO asset_as_of" in script.output
    assert runner.invoke(_app(), ["sql-surface", "--markdown"]).output == surface_markdown()


def test_lineage_svg_file_is_well_formed_and_offline(tmp_path):
    path = draw_lineage("pair_signals", tmp_path / "lineage" / "pair_signals.svg")
    text = path.read_text()
    root = ElementTree.fromstring(text)
    labels = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"pair_signals", "bars_raw", "strategy_performance"} <= labels and "market_regime" not in labels
    assert text.count("http") == 1  # the SVG namespace, nothing to fetch
