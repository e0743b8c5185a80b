"""The HTML report from its template: values a run carries (samples, selections, messages) arrive as text, charts as drawings."""

import json
from datetime import datetime, timedelta
from html.parser import HTMLParser

import polars as pl

from assets import default_graph
from pipelines.materialize import AssetOutcome, RunSummary
from quality.report import build_report

SCRIPT = "<script>alert('x')</script>"
CHECK_SCHEMA = {"asset": pl.String, "partition_key": pl.String, "check_name": pl.String, "severity": pl.String,
                "passed": pl.Boolean, "failing_rows": pl.Int64, "message": pl.String, "sample": pl.String,
                "version_id": pl.String}


class _Page(HTMLParser):
    """The elements a browser would build from the page, and the text of every table cell."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.cells, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def test_markup_in_run_values_arrives_escaped_and_the_charts_as_svg():
    started = datetime(2025, 3, 4, 14, 30)
    summary = RunSummary(
        run_id="r<1>", selection="bars_raw+ <b>bold</b>", started_at=started, finished_at=started + timedelta(minutes=1),
        outcomes={"bars_raw": AssetOutcome("bars_raw", built=["2025-01-02"], quarantined=["2025-01-03"], rows=10,
                                           failed=[("2025-01-06", "source said <html><body>502</body></html>")])},
    )
    sample = [{"symbol": SCRIPT, "bar_ts": "2025-01-03T10:00:00", "close_px": -1.0}]
    checks = pl.DataFrame([{
        "asset": "bars_raw", "partition_key": "2025-01-03", "check_name": "bad_ticks", "severity": "error", "passed": False,
        "failing_rows": 1, "message": "close < 0 & <i>odd</i>", "sample": json.dumps(sample), "version_id": "v1",
    }], schema=CHECK_SCHEMA)
    equity = pl.DataFrame({"bar_ts": [started + timedelta(days=i) for i in range(5)], "equity_usd": [100.0, 101.0, 99.0, 102.0, 103.0]})

    page = build_report(summary, checks, equity, {"total_return_pct": 0.03}, graph=default_graph()).html
    parsed = _parse(page)

    tags = [tag for tag, _ in parsed.tags]
    assert "script" not in tags and "i" not in tags and "html" in tags and tags.count("html") == 1
    assert [t for t in tags if t == "b"] == ["b"]  # the failure's asset name, not the selection's <b>
    assert SCRIPT in parsed.cells and "source said <html><body>502</body></html>" in parsed.cells
    assert "&lt;script&gt;" in page and "<code>bars_raw+ &lt;b&gt;bold&lt;/b&gt;</code>" in page
    assert "close &lt; 0 &amp; &lt;i&gt;odd&lt;/i&gt;" in page and "<title>Quarry run r&lt;1&gt;</title>" in page
    # our own drawings are placed as markup, not shown as text
    labels = {attrs.get("aria-label") for tag, attrs in parsed.tags if tag == "svg"}
    assert labels == {"Lineage of this run", "Equity", "Drawdown"}
    assert "&lt;svg" not in page and "3.00%" in parsed.cells
