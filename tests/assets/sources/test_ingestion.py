"""End to end: `+bars_daily` from local Alpaca and Polygon stand-ins into a real DuckLake, incrementally and safely."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from loguru import logger
from pydantic import SecretStr

from assets.sources import SampleSource
from assets.sources.alpaca import AlpacaSource
from assets.sources.polygon import PolygonSource
from assets.sources.resilience import RequestPolicy
from assets.sources.universe_file import Member
from pipelines.runs import record_and_report
from pipelines.settings import Settings
from tests.assets.sources.standins import ALPACA_KEY, ALPACA_SECRET, POLYGON_KEY, SampleAlpaca, SamplePolygon

FIRST, LAST, NEXT = date(2025, 3, 3), date(2025, 3, 7), date(2025, 3, 10)
FAST = RequestPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01, timeout_s=5)
SYMBOLS = ("KO", "PEP", "XOM", "CVX", "AAPL", "NVDA")
MARKET = SampleSource(n_symbols=20)
UNIVERSE = tuple(Member(s, MARKET.sectors()[s]) for s in SYMBOLS)
SECRETS = (ALPACA_KEY, ALPACA_SECRET, POLYGON_KEY)


class SixSymbolSample(SampleSource):
    """The sample market restricted to the stand-ins' universe, for a like-for-like comparison."""

    def symbols(self) -> list[str]:
        return list(SYMBOLS)


@pytest.fixture
def captured_logs():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m) + repr(m.record["extra"])), level="TRACE")
    yield lines
    logger.remove(sink)


def alpaca(httpserver) -> AlpacaSource:
    return AlpacaSource(SecretStr(ALPACA_KEY), SecretStr(ALPACA_SECRET), UNIVERSE,
                        data_url=httpserver.url_for("").rstrip("/"), policy=FAST, requests_per_minute=60_000)


def polygon(httpserver) -> PolygonSource:
    return PolygonSource(SecretStr(POLYGON_KEY), UNIVERSE, base_url=httpserver.url_for("").rstrip("/"),
                         policy=FAST, requests_per_minute=60_000)


def assert_clean(summary, assets=("bars_raw", "splits", "bars_hourly", "bars_daily")):
    for name in assets:
        outcome = summary.outcomes[name]
        assert not outcome.failed and not outcome.quarantined, (name, outcome.failed, outcome.quarantined)
    assert summary.status == "completed"


@pytest.mark.slow
def test_same_graph_from_sample_alpaca_and_polygon_passes_the_same_contracts(make_lake, httpserver):
    SampleAlpaca(market=MARKET, page_size=100).attach(httpserver)
    SamplePolygon(base_url=httpserver.url_for("").rstrip("/"), market=MARKET, page_size=20).attach(httpserver)
    built = {}
    for name, source in (("sample", SixSymbolSample()), ("alpaca", alpaca(httpserver)), ("polygon", polygon(httpserver))):
        lake = make_lake(name)
        summary = lake.materialize("+bars_daily", source=source, start=FIRST, end=LAST)
        assert_clean(summary)
        assert summary.outcomes["bars_raw"].built == [d.isoformat() for d in (FIRST, date(2025, 3, 4), date(2025, 3, 5), date(2025, 3, 6), LAST)]
        checks = lake.warehouse.check_results("test-run").filter(pl.col("asset") == "bars_raw")
        assert checks.filter(pl.col("check_name") == "contract:BarsRaw")["passed"].all()
        built[name] = {a: lake.warehouse.read(a).drop("partition_key", strict=False).sort(pl.all()) for a in ("bars_raw", "bars_daily", "splits")}
    for asset in ("bars_raw", "bars_daily", "splits"):
        assert built["alpaca"][asset].equals(built["sample"][asset]), asset
        assert built["polygon"][asset].equals(built["sample"][asset]), asset


@pytest.mark.slow
def test_a_daily_rerun_asks_only_for_the_new_day_and_a_failing_provider_changes_nothing(
    lake, httpserver, captured_logs, tmp_path
):
    standin = SampleAlpaca(market=MARKET, page_size=100)
    standin.attach(httpserver)
    source = alpaca(httpserver)
    assert_clean(lake.materialize("+bars_daily", source=source, start=FIRST, end=LAST, run_id="r1"))
    first_windows = standin.days_asked()
    assert len(first_windows) == 1 and first_windows[0][0].startswith("2025-03-03")

    standin.bar_requests.clear()
    summary = lake.materialize("+bars_daily", source=source, start=FIRST, end=NEXT, run_id="r2")
    assert_clean(summary)
    assert summary.outcomes["bars_raw"].built == [NEXT.isoformat()]
    assert summary.outcomes["bars_daily"].built == [NEXT.isoformat()]
    assert standin.days_asked() == [("2025-03-10T13:00:00+00:00", "2025-03-10T20:00:00+00:00")]

    before = lake.warehouse.current_versions(["bars_raw", "bars_hourly", "bars_daily"]).sort("asset", "partition_key")
    published_rows = lake.warehouse.read("bars_raw").sort(pl.all())
    httpserver.clear()
    httpserver.expect_request("/v2/stocks/bars").respond_with_data("upstream broke", status=502)
    httpserver.expect_request("/v1/corporate-actions").respond_with_data("upstream broke", status=502)
    failed = lake.materialize("+bars_daily", source=source, start=FIRST, end=date(2025, 3, 11), run_id="r3")

    assert failed.status == "failed"
    (key, why), = failed.outcomes["bars_raw"].failed
    assert key == "2025-03-11"
    assert why.startswith("ProviderError: alpaca:") and "HTTP 502" in why and "try again later" in why
    assert failed.outcomes["bars_daily"].skipped == [("2025-03-11", "upstream bars_hourly 2025-03-11 blocked")]
    after = lake.warehouse.current_versions(["bars_raw", "bars_hourly", "bars_daily"]).sort("asset", "partition_key")
    assert after.select("version_id", "data_version").equals(before.select("version_id", "data_version"))
    assert lake.warehouse.read("bars_raw").sort(pl.all()).equals(published_rows)
    assert lake.warehouse.query("SELECT count(*) AS n FROM lake.quarry.versions WHERE status = 'quarantined'")["n"][0] == 0

    report = record_and_report(lake.warehouse, Settings(reports_dir=tmp_path / "reports"), failed)
    artifacts = [report.html, report.markdown, *captured_logs, repr(source),
                 lake.warehouse.query("SELECT * FROM lake.quarry.versions").write_csv(),
                 lake.warehouse.query("SELECT * FROM lake.quarry.runs").write_csv(),
                 lake.warehouse.query("SELECT * FROM lake.quarry.check_results").write_csv()]
    assert "HTTP 502" in report.html
    assert any("alpaca" in line and "502" in line for line in captured_logs)
    for secret in SECRETS:
        assert not [text[:80] for text in artifacts if secret in text], secret
    assert all(auth == (ALPACA_KEY, ALPACA_SECRET) for auth in standin.auth_seen)
