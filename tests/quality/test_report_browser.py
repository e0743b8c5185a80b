"""A real run's HTML report in headless Chromium: renders without console errors, offline, with every chart drawn."""

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.notebooks.research_market import BAD_DAY, build_research_market

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
DATE_TICK = re.compile(r"20\d\d|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|[0-3]?\d|[A-Z][a-z]{2} [0-3]\d|\d\d:\d\d")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    from pipelines.runs import record_and_report
    from pipelines.settings import Settings, WarehouseConfig

    root = tmp_path_factory.mktemp("report")
    market = build_research_market(root)
    try:
        settings = Settings(warehouse=WarehouseConfig(catalog=market.catalog, data_path=market.data_path), reports_dir=root / "reports")
        record_and_report(market.warehouse, settings, market.market_run)
    finally:
        market.warehouse.close()
    return root / "reports" / "market.html"


def test_the_page_holds_no_url_and_every_section(report_page):
    page = report_page.read_text()
    assert not re.search(r"https?://", page), re.findall(r"https?://\S{0,40}", page)
    assert "bad_ticks_beyond_tolerance" in page and BAD_DAY.isoformat() in page
    for label in ("Lineage of this run", "Equity", "Drawdown"):
        assert f"aria-label='{label}'" in page
    assert "sessions 2025-01-02 → 2025-07-31" in page  # the run's window in the header
    assert re.search(r"<td>total_return_pct</td><td>-?[\d.,]+%</td>", page)  # fractions shown as percentages


def test_chromium_renders_it_offline_without_console_errors(report_page, tmp_path):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":  # .ci/run installs it: in CI a missing browser is a failure
            pytest.fail(f"{CHROMIUM} is not installed (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed here (apt-get install chromium to run the browser test)")
    from playwright.sync_api import sync_playwright

    console_errors, page_errors, requests = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report_page.as_uri(), wait_until="load")
            title = page.title()
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('svg')].map(s => {
                       const box = s.getBoundingClientRect();
                       return {label: s.getAttribute('aria-label'), width: box.width, height: box.height,
                               marks: s.querySelectorAll('polyline, rect, path').length,
                               x_ticks: [...s.querySelectorAll('g[id^="xtick"] text')].map(t => t.textContent.trim()),
                               y_ticks: [...s.querySelectorAll('g[id^="ytick"] text')].map(t => t.textContent.trim())};
                   })"""
            )
            sample_headers = page.evaluate("() => [...document.querySelectorAll('.failure table th')].map(t => t.textContent)")
            broken_images = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
            links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
            failure_rows = page.locator(".failure table tbody tr").count()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert console_errors == [] and page_errors == []
    assert requests == [report_page.as_uri()]  # the page itself and nothing else
    assert title == "Quarry run market" and broken_images == 0
    assert all(link.startswith("file://") or link.startswith("#") for link in links)
    assert {d["label"] for d in drawn} == {"Lineage of this run", "Equity", "Drawdown"}
    assert all(d["width"] > 300 and d["height"] > 100 and d["marks"] >= 2 for d in drawn), drawn
    charts = {d["label"]: d for d in drawn if d["label"] in ("Equity", "Drawdown")}
    for chart in charts.values():  # the x axis is dated: every tick label is a year, a month or a day of the window
        assert len(chart["x_ticks"]) >= 3 and all(DATE_TICK.fullmatch(t) for t in chart["x_ticks"]), chart["x_ticks"]
        assert any(re.fullmatch(r"20\d\d|[A-Z][a-z]{2}", t) for t in chart["x_ticks"]), chart["x_ticks"]
    assert all(t.endswith("%") for t in charts["Drawdown"]["y_ticks"]), charts["Drawdown"]["y_ticks"]
    assert all(re.fullmatch(r"[\d,]+", t) for t in charts["Equity"]["y_ticks"]), charts["Equity"]["y_ticks"]  # 1,098,000 not 1.098e+06
    assert {"symbol", "bar_ts"} <= set(sample_headers) and "index" not in sample_headers  # failing rows named by grain key
    assert failure_rows >= 5  # the sampled failing rows of the quarantined partition
    assert shot.stat().st_size > 50_000
