"""Every notebook runs headless against a real warehouse, read-only, and computes what it promises."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assets import default_graph
from tests.notebooks.research_market import BAD_DAY, build_research_market

pytestmark = pytest.mark.slow
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    built = build_research_market(tmp_path_factory.mktemp("research"))
    assert built.market_run.status == "quarantined" and built.repair_run.exit_code == 0
    yield built
    built.warehouse.close()


def run_notebook(name: str, market, monkeypatch) -> dict:
    """Run a notebook's cells in order, as `python notebooks/NAME.py` does, and return its definitions."""
    for variable, value in market.env().items():
        monkeypatch.setenv(variable, value)
    spec = importlib.util.spec_from_file_location(f"notebook_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, definitions = module.app.run()
    explorer = definitions["explorer"]
    assert explorer.warehouse.read_only
    explorer.close()
    return definitions


def test_explore_assets_lists_every_asset_with_freshness(market, monkeypatch):
    summary = run_notebook("explore_assets", market, monkeypatch)["summary"]
    assert summary["assets"] == len(default_graph().assets)
    assert summary["built_assets"] == summary["assets"] - len(summary["unbuilt"])
    assert not set(summary["unbuilt"]) & set(default_graph().upstream("strategy_performance") | {"strategy_performance"})
    assert (summary["quarantined_partitions"], summary["daily_symbols"], summary["recent_versions"]) == (1, 20, 20)


def test_as_of_and_diff_finds_the_repaired_rows(market, monkeypatch):
    summary = run_notebook("as_of_and_diff", market, monkeypatch)["summary"]
    change = summary["latest_change"]
    assert summary["asset"] == "bars_raw" and summary["versions"] == 145 and summary["superseded"] == 1
    assert change["partition_key"] == BAD_DAY.isoformat()
    assert (change["added"], change["removed"], change["changed"]) == (0, 0, 6) == (0, 0, summary["sql_diff_rows"])
    assert change["column_changes"] == {"high_px": 6, "close_px": 6}
    as_of = summary["as_of"]
    assert as_of["rows_then"] == as_of["rows_superseded"] > 100 and as_of["then_is_superseded"]


def test_pairs_research_finds_the_planted_pairs_and_draws_offline(market, monkeypatch):
    definitions = run_notebook("pairs_research", market, monkeypatch)
    summary = definitions["summary"]
    assert {"KO/PEP", "CVX/XOM", "GS/MS", "MA/V"} <= set(summary["pairs"])
    assert summary["bars"] > 250 and summary["charts"] == 3
    assert summary["trades"] == summary["entries"] and summary["position_changes"] >= summary["entries"]
    assert all("http" not in chart for chart in definitions["charts"])


def test_data_quality_shows_the_quarantine_and_why(market, monkeypatch):
    summary = run_notebook("data_quality", market, monkeypatch)["summary"]
    assert summary["runs"] == 2 and summary["chart"]
    assert ("bars_hourly", "bad_ticks_beyond_tolerance", "error") in summary["failing_checks"]
    assert summary["quarantined"] == [("bars_hourly", BAD_DAY.isoformat())]
    assert summary["quarantine_reasons"] == [("bars_hourly", "bad_ticks_beyond_tolerance", 6, 5)]
    assert summary["sessions"] == 144


def test_a_notebook_runs_as_a_plain_script(market):
    env = {**os.environ, **market.env()}
    done = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "data_quality.py")], env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


#: Frames a notebook draws as charts rather than listing as a table.
CHARTED = {"pairs_research": {"signals", "recent"}, "data_quality": {"by_session"}}
#: How many SVG charts each notebook draws.
CHARTS = {"explore_assets": 0, "as_of_and_diff": 0, "pairs_research": 3, "data_quality": 1}
DATE_TICK = re.compile(r"20\d\d|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|[0-3]?\d|[A-Z][a-z]{2} [0-3]\d|\d\d:\d\d")


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_an_exported_notebook_renders_offline_in_chromium_with_dated_axes(market, monkeypatch, tmp_path, name):
    """`quarry export-notebook`'s page: every frame the notebook loads shown as a table under a heading (at least its
    first 20 rows) or drawn as a chart,
    charts drawn with dates on the x axis, nothing fetched; a screenshot of the page as Chromium draws it."""
    import polars as pl

    from pipelines.notebook_export import MAX_TABLE_ROWS, export_notebook

    for variable, value in market.env().items():
        monkeypatch.setenv(variable, value)
    definitions = run_notebook(name, market, monkeypatch)
    loaded = {k: v for k, v in definitions.items() if isinstance(v, pl.DataFrame) and k not in CHARTED.get(name, ())}
    page = tmp_path / f"{name}.html"
    page.write_text(export_notebook(NOTEBOOKS / f"{name}.py"), encoding="utf-8")
    text = page.read_text()
    assert not re.search(r"https?://|<script|<marimo-", text)
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists() and shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{chromium} is not installed (apt-get install chromium)")
        pytest.skip(f"{chromium} is not installed here")
    from playwright.sync_api import sync_playwright

    requests = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(page.as_uri(), wait_until="load")
            charts = tab.evaluate(
                """() => [...document.querySelectorAll('svg[aria-label]')].map(s => ({
                       label: s.getAttribute('aria-label'), width: s.getBoundingClientRect().width,
                       marks: s.querySelectorAll('path, polyline').length,
                       x_ticks: [...s.querySelectorAll('g[id^="xtick"] text')].map(t => t.textContent.trim())}))"""
            )
            tables = tab.evaluate(
                """() => [...document.querySelectorAll('table')].map(t => ({
                       columns: [...t.querySelectorAll('thead th')].map(h => h.textContent),
                       rows: t.querySelectorAll('tbody tr').length,
                       heading: [...(t.closest('section.cell') || document).querySelectorAll('h1, h2, h3')]
                           .filter(h => h.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING)
                           .map(h => h.textContent).pop() || null,
                       visible: t.getBoundingClientRect().height > 0}))"""
            )
            shot = tmp_path / f"{name}.png"
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert requests == [page.as_uri()]
    assert all(t["heading"] and t["visible"] for t in tables), [t for t in tables if not t["heading"]]
    for frame_name, frame in loaded.items():  # a table with the frame's columns (or a selection of them) and rows
        shown = [t for t in tables if t["columns"] and set(t["columns"]) <= set(frame.columns)
                 and len(t["columns"]) >= min(3, frame.width) and min(frame.height, 20, MAX_TABLE_ROWS) <= t["rows"] <= frame.height]
        assert shown, f"{name}: {frame_name} ({frame.columns}, {frame.height} rows) is loaded but not shown: {tables}"
    assert len(charts) == CHARTS[name] and all(c["width"] > 300 and c["marks"] >= 2 for c in charts), charts
    for chart in charts:
        assert len(chart["x_ticks"]) >= 3 and all(DATE_TICK.fullmatch(t) for t in chart["x_ticks"]), chart
    assert shot.stat().st_size > 20_000
    if name == "pairs_research":
        headings = [t["heading"] for t in tables]
        assert any("performance" in h for h in headings) and any("trades" in h for h in headings), headings


QUARRY = str(Path(sys.executable).with_name("quarry"))


def _quarry(market, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")} | market.env()
    return subprocess.run([QUARRY, *args], cwd=market.root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--pairs", "PEP/KO"], "PEP/KO is written KO/PEP"),
    (["--pairs", "KO/PEP,AAA/ZZZ"], "no pair AAA/ZZZ in pair_spreads"),
    (["--from", "2025-07-01", "--to", "2025-06-01"], "--from 2025-07-01 is after --to 2025-06-01"),
    (["--from", "2025-02-30"], "--from '2025-02-30' is not a date (YYYY-MM-DD)"),
    (["--at", "last tuesday"], "--at 'last tuesday' is not an ISO 8601 timestamp"),
])
def test_backtest_user_errors_are_one_line_with_exit_code_2(market, args, message):
    """`quarry backtest` as a real process on a warehouse with pairs: a wrong pair (or one written the other way
    round), date or window is one line on stderr naming it, exit code 2, no traceback."""
    failed = _quarry(market, "backtest", "--from", "2025-05-01", "--to", "2025-07-31", *args)
    assert failed.returncode == 2, (failed.stdout, failed.stderr)
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1 and message in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr


def test_backtest_of_a_known_pair_runs(market):
    done = _quarry(market, "backtest", "--from", "2025-05-01", "--to", "2025-07-31", "--pairs", "KO/PEP", "--json")
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout)
    assert [p["pair_id"] for p in result["pairs"]] == ["KO/PEP"] and result["result_digest"]
