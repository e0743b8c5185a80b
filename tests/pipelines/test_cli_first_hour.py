"""The first hour, as a real `quarry` process: read-only SQL, a missing warehouse, one-line user errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real quarry subprocesses

QUARRY = str(Path(sys.executable).with_name("quarry"))
LAST_DAY = date(2025, 3, 5)


def quarry(cwd: Path, env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    return subprocess.run([QUARRY, *args], cwd=cwd, env=base | {"COLUMNS": "200"} | env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def fingerprint(root: Path) -> dict[str, str]:
    """Every file of the warehouse (catalog and Parquet) by content: equal before and after means unchanged."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.fixture
def built(lake):
    lake.materialize("+bars_daily", end=LAST_DAY, run_id="run-first-hour")
    return lake


WRITES = [
    "DELETE FROM bars_daily WHERE session_date = DATE '2025-03-04'",
    "CREATE TABLE junk AS SELECT 1 AS x",
    "INSERT INTO bars_daily SELECT * FROM bars_daily",
    "UPDATE bars_daily SET close_px = 0",
    "DROP TABLE bars_daily",
    "CREATE TEMP TABLE scratch AS SELECT 1 AS x",
    "COPY bars_daily TO '{data}main/bars_daily/overwrite.parquet'",
    "COPY (SELECT 1) TO '{root}/elsewhere.csv'",
    "ATTACH 'ducklake:{catalog_file}' AS writable (DATA_PATH '{data}')",
    "ATTACH '{catalog_file}' AS raw_catalog (TYPE sqlite)",
    "DETACH lake",
    "SELECT 1; DELETE FROM bars_daily",
    "CALL ducklake_expire_snapshots('lake', older_than => now())",
    "SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true)",
    "SELECT * FROM query('SELECT * FROM ducklake_delete_orphaned_files(''lake'', cleanup_all => true)')",
    "SELECT * FROM query('DELETE ' || 'FROM bars_daily')",
    "EXPLAIN ANALYZE SELECT * FROM ducklake_merge_adjacent_files('lake')",
    "SET lock_configuration = false",
    "INSTALL httpfs",
]


def _writes(lake) -> list[str]:
    catalog_file = lake.catalog.partition(":")[2]
    return [w.format(data=lake.data_path, root=lake.root, catalog_file=catalog_file) for w in WRITES]


def test_sql_refuses_every_write_in_one_line_and_the_warehouse_is_unchanged(built):
    before, rows = fingerprint(built.root), built.warehouse.read("bars_daily").height
    for statement in _writes(built)[:4] + _writes(built)[6:9]:
        refused = quarry(built.root, built.env(), "sql", statement)
        assert refused.returncode == 2, (statement, refused.stdout, refused.stderr)
        assert refused.stderr.count("\n") == 1 and "data changes go through `quarry materialize`" in refused.stderr, refused.stderr
    session = quarry(built.root, built.env(), "shell", stdin="\n".join(s + ";" for s in _writes(built)) + "\nSELECT count(*) AS n FROM bars_daily;\n")
    assert session.returncode == 0, session.stderr
    refusals = [line for line in session.stdout.splitlines() if line.startswith("error:")]
    assert len(refusals) == len(WRITES) and all("read-only" in line for line in refusals), session.stdout
    assert re.search(rf"│\s+{rows} │", session.stdout.split("error:")[-1]), session.stdout
    assert fingerprint(built.root) == before
    assert not (built.root / "elsewhere.csv").exists()
    assert built.warehouse.read("bars_daily").height == rows


def test_sql_prints_with_duckdbs_renderer_and_in_every_format(built):
    env = built.env()
    query = "SELECT symbol, count(*) AS bars FROM bars_daily GROUP BY symbol ORDER BY symbol LIMIT 2"
    table = quarry(built.root, env, "sql", query)
    assert table.returncode == 0 and "┌" in table.stdout and "│ AAPL" in table.stdout and "varchar" in table.stdout
    assert json.loads(quarry(built.root, env, "sql", query, "--json").stdout) == [{"symbol": "AAPL", "bars": 3}, {"symbol": "AXP", "bars": 3}]
    assert json.loads(quarry(built.root, env, "sql", query, "--format", "json").stdout)[0]["bars"] == 3
    assert quarry(built.root, env, "sql", query, "--format", "csv").stdout == "symbol,bars\nAAPL,3\nAXP,3\n"
    assert quarry(built.root, env, "sql", query, "-f", "markdown").stdout == "| symbol | bars |\n|---|---|\n| AAPL | 3 |\n| AXP | 3 |\n"
    wide = quarry(built.root, env | {"COLUMNS": "100"}, "sql", "SELECT * FROM asset_versions('bars_daily')")
    assert max(len(line) for line in wide.stdout.splitlines()) <= 100 and "13 columns" in wide.stdout


def test_macros_raise_on_unknown_assets_versions_and_runs(built):
    env = built.env()
    for query, message in [
        ("SELECT * FROM asset_versions('bars_dialy')", "no asset named 'bars_dialy'"),
        ("SELECT * FROM asset_at_version('bars_daily', 'v-nope')", "no published or superseded version 'v-nope' of bars_daily"),
        ("SELECT * FROM run_checks('run-nope')", "no run 'run-nope'"),
    ]:
        failed = quarry(built.root, env, "sql", query)
        assert failed.returncode == 2 and message in failed.stderr and failed.stderr.count("\n") == 1, failed.stderr
    version = built.warehouse.versions("bars_daily")["version_id"][0]
    diffed = quarry(built.root, env, "sql", f"SELECT * FROM version_diff('bars_daily', '{version}', 'v-nope')")
    assert diffed.returncode == 2 and "v-nope" in diffed.stderr


@pytest.mark.parametrize("command", [
    ["assets"], ["history", "bars_daily"], ["lineage", "bars_daily"], ["diff", "bars_daily"], ["report"], ["runs"],
    ["sql", "SELECT 1"], ["shell"], ["duckdb"], ["duckdb", "--", "-c", "SELECT 1"], ["backtest"], ["archive"], ["optimize"], ["backup"], ["verify"],
    ["trade", "pairs", "--dry-run"], ["trade", "positions"],
    ["export-notebook", str(Path(__file__).resolve().parents[2] / "notebooks" / "explore_assets.py"), "-o", "page.html"],
])
def test_commands_other_than_materialize_refuse_where_no_warehouse_exists(tmp_path, command):
    refused = quarry(tmp_path, {}, *command, stdin="")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert refused.stderr == ("error: no warehouse at data/catalog.sqlite (QUARRY_CATALOG=sqlite:data/catalog.sqlite): "
                              "run `quarry materialize` to build one, or run from the project directory, "
                              "or set QUARRY_CATALOG to an existing catalog\n")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command, message", [
    (["history", "bars_dialy"], "no asset named 'bars_dialy'"),
    (["lineage", "bars_dialy"], "no asset named 'bars_dialy'"),
    (["diff", "bars_daily", "--from", "v-nope", "--to", "v-nope-either"], "v-nope"),
    (["materialize", "--from", "2025-13-01"], "--from '2025-13-01' is not a date (YYYY-MM-DD)"),
    (["materialize", "--from", "2025-03-05", "--to", "2025-03-03"], "--from 2025-03-05 is after --to 2025-03-03"),
    (["materialize", "-s", "bars_dialy+"], "no asset named 'bars_dialy'"),
    (["materialize", "splits,bars_daily"], "selects no asset"),
    (["materialize", "@+bars_daily"], "is not valid"),
    (["backtest", "--from", "2025-03-05", "--to", "2025-03-01"], "is after"),
    (["report", "run-nope"], "no run 'run-nope'"),
    (["sql", "SELEC 1"], "syntax error"),
])
def test_user_errors_are_one_line_with_exit_code_2(built, command, message):
    failed = quarry(built.root, built.env(), *command)
    assert failed.returncode == 2, (failed.stdout, failed.stderr)
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1 and message in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr


def test_debug_shows_the_traceback(built):
    failed = quarry(built.root, built.env(), "--debug", "history", "bars_dialy")
    assert failed.returncode == 2 and "Traceback (most recent call last)" in failed.stderr and "SelectionError" in failed.stderr


def test_runs_lists_each_run_with_its_window_counts_and_report(built):
    from pipelines.runs import record_and_report
    from pipelines.settings import Settings

    summary = built.materialize("bars_daily+", end=LAST_DAY, run_id="run-regime")
    record_and_report(built.warehouse, Settings(reports_dir=built.root / "reports"), summary)
    listed = json.loads(quarry(built.root, built.env(), "runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == ["run-regime"]
    run = listed[0]
    assert (run["first_session"], run["last_session"]) == ("2025-03-03", "2025-03-05")
    assert run["built"] == 6 and run["status"] == "completed" and run["report_path"].endswith("run-regime.html")
    shown = quarry(built.root, built.env(), "runs")
    assert shown.returncode == 0, shown.stderr
    assert "run-regime" in shown.stdout and "2025-03-03 → 2025-03-05" in shown.stdout


def _dbt_reference(expression: str, exclude: str = "") -> set[str]:
    """The default graph's selection worked out by the path-length reference of tests/assets/test_selection.py."""
    from assets import default_graph
    from assets.selection import Selector
    from tests.assets.test_selection import reference

    graph = default_graph()
    parents = {a.name: tuple(a.deps) for a in graph}
    tags = {a.name: frozenset(a.tags) for a in graph}

    def union(text: str) -> set[str]:
        return set().union(*(set.intersection(*(reference(Selector.parse(p), parents, tags) for p in word.split(",")))
                             for word in text.split()))

    return union(expression) - (union(exclude) if exclude else set())


@pytest.mark.parametrize("args, expression, exclude", [
    (["-s", "+bars_daily tag:weekly", "--exclude", "tag:source"], "+bars_daily tag:weekly", "tag:source"),
    (["+pair_signals,tag:pairs"], "+pair_signals,tag:pairs", ""),
    (["--select", "1+pair_spreads", "--select", "bars_hourly+1"], "1+pair_spreads bars_hourly+1", ""),
    (["@market_regime", "--exclude", "backtest_*"], "@market_regime", "backtest_*"),
    (["-s", "indicators_*", "2+trade_analysis", "--exclude", "bars_daily+1"], "indicators_* 2+trade_analysis", "bars_daily+1"),
])
def test_the_cli_selects_what_dbts_grammar_says(tmp_path, args, expression, exclude):
    planned = quarry(tmp_path, {}, "materialize", *args, "--to", "2025-03-04", "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    assert {a["asset"] for a in json.loads(planned.stdout)["assets"]} == _dbt_reference(expression, exclude)


def test_one_word_for_showing_instead_of_doing():
    """Every command that can show what it would do says `--dry-run`; the old `--plan` still works but is not shown."""
    import typer.main

    from pipelines.cli import app

    def commands(group, path=()):
        for name, command in getattr(group, "commands", {}).items():
            yield from commands(command, (*path, name)) if hasattr(command, "commands") else [((*path, name), command)]

    shown = {path: {o for p in command.params if not getattr(p, "hidden", False) for o in p.opts}
             for path, command in commands(typer.main.get_command(app))}
    with_dry_run = {" ".join(path) for path, options in shown.items() if "--dry-run" in options}
    assert {"materialize", "archive", "trade pairs", "trade momentum"} <= with_dry_run
    synonyms = {"--plan", "--preview", "--what-if", "--simulate", "--noop", "--no-op"}
    assert not {path: options & synonyms for path, options in shown.items() if options & synonyms}
    helped = subprocess.run([QUARRY, "materialize", "--help"], capture_output=True, text=True, env=os.environ | {"COLUMNS": "200"})
    assert "--dry-run" in helped.stdout and "--plan" not in helped.stdout


def test_the_summary_names_the_check_that_quarantined_each_partition(lake, monkeypatch):
    """The CLI's run summary: a quarantined partition's line names the failing check, not only the partition."""
    from rich.console import Console

    from pipelines import cli
    from tests.test_readme import BAD_DAY, BadDaySource

    summary = lake.materialize("+bars_hourly", source=BadDaySource(), end=BAD_DAY, run_id="run-bad-day")
    assert summary.outcomes["bars_hourly"].quarantined == [BAD_DAY.isoformat()]
    for variable, value in lake.env().items():
        monkeypatch.setenv(variable, value)
    recorder = Console(record=True, width=200)
    monkeypatch.setattr(cli, "console", recorder)
    cli._print_summary(summary)
    printed = recorder.export_text()
    assert f"quarantined bars_hourly [{BAD_DAY}]: failed bad_ticks_beyond_tolerance" in printed, printed
