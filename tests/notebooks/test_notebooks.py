"""Every notebook runs headless against a real warehouse, read-only, and computes what it promises."""

import importlib.util
import os
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


def test_an_exported_notebook_renders_offline_in_chromium_with_dated_axes(market, monkeypatch, tmp_path):
    """`quarry export-notebook`'s page: every table under a heading, charts with dates on the x axis, nothing fetched."""
    import re
    import shutil

    from pipelines.notebook_export import export_notebook

    for variable, value in market.env().items():
        monkeypatch.setenv(variable, value)
    page = tmp_path / "pairs.html"
    page.write_text(export_notebook(NOTEBOOKS / "pairs_research.py"), encoding="utf-8")
    text = page.read_text()
    assert not re.search(r"https?://|<script|<marimo-", text)
    assert text.count("<h2") >= 4 and text.count("<table") >= 3  # candidates, performance, trades
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
                       x_ticks: [...s.querySelectorAll('g[id^="xtick"] text')].map(t => t.textContent.trim())}))"""
            )
            headings = tab.evaluate("() => [...document.querySelectorAll('h2')].map(h => h.textContent)")
            shot = tmp_path / "pairs.png"
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert requests == [page.as_uri()]
    assert len(charts) == 3 and all(c["width"] > 300 for c in charts), charts
    month_or_day = re.compile(r"20\d\d|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|[0-3]?\d|\d\d:\d\d")
    for chart in charts:
        assert len(chart["x_ticks"]) >= 3 and all(month_or_day.fullmatch(t) for t in chart["x_ticks"]), chart
    assert any("performance" in h for h in headings) and any("trades" in h for h in headings)
    assert shot.stat().st_size > 30_000
