"""YahooSource through yfinance's own request and parsing code, its session pointed at a local stand-in for Yahoo.

yfinance has no base-URL option; `YahooSession(base_url=...)` rewrites the *.yahoo.com hosts
to 127.0.0.1, so nothing below yfinance's HTTP session is faked.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import polars as pl
import pytest
from werkzeug import Response

from assets.sources import SampleSource
from assets.sources.fundamentals_schema import FUNDAMENTAL_SCHEMAS
from assets.sources.resilience import ProviderError, RequestPolicy
from assets.sources.sample_fundamentals import sample_fundamentals
from assets.sources.universe_file import Member
from assets.sources.yahoo import YahooSource
from quality.contracts import BarsRaw
from tests.assets.sources.standins import SampleYahoo

START = datetime(2025, 3, 3, tzinfo=timezone.utc)
END = datetime(2025, 3, 5, tzinfo=timezone.utc)
FAST = RequestPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01, timeout_s=5)
CHART = re.compile(r"^/v8/finance/chart/KO")


@pytest.fixture(autouse=True, scope="module")
def yfinance_cache(tmp_path_factory):
    import yfinance

    yfinance.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))


def make_source(httpserver) -> YahooSource:
    return YahooSource((Member("KO", "staples"), Member("PEP", "staples")), base_url=httpserver.url_for("").rstrip("/"),
                       policy=FAST, requests_per_minute=60_000)


def test_bars_are_the_chart_payload_in_bar_schema(httpserver):
    standin = SampleYahoo()
    standin.attach(httpserver)
    bars = make_source(httpserver).fetch_bars(["KO", "PEP"], "1h", START, END)
    expected = SampleSource().fetch_bars(["KO", "PEP"], "1h", START, END)
    assert bars.drop("vwap_px", "trade_count").equals(expected.drop("vwap_px", "trade_count"))
    assert bars["vwap_px"].is_null().all()  # Yahoo has no VWAP or trade count
    windows = [(r["period1"], r["interval"]) for r in standin.chart_requests if "period1" in r]
    assert windows == [(str(int(START.timestamp())), "1h")] * 2
    BarsRaw.validate(bars)


def test_empty_window_is_an_empty_frame(httpserver):
    SampleYahoo().attach(httpserver)
    saturday = datetime(2025, 3, 8, tzinfo=timezone.utc)
    bars = make_source(httpserver).fetch_bars(["KO"], "1h", saturday, saturday.replace(day=9))
    assert bars.is_empty() and bars.schema == SampleSource().fetch_bars(["KO"], "1h", START, END).schema


def test_a_429_then_success(httpserver):
    standin = SampleYahoo()
    httpserver.expect_oneshot_request(CHART).respond_with_response(Response("Too Many Requests", 429, headers={"Retry-After": "0"}))
    standin.attach(httpserver)
    bars = make_source(httpserver).fetch_bars(["KO"], "1d", START.replace(day=17), END.replace(day=19))
    assert bars["symbol"].to_list() == ["KO", "KO"]
    assert not httpserver.oneshot_handlers  # the 429 was served, and retried past


def test_a_500_burst_recovers(httpserver):
    standin = SampleYahoo()
    for _ in range(2):
        httpserver.expect_oneshot_request(CHART).respond_with_data("oops", status=502)
    standin.attach(httpserver)
    assert make_source(httpserver).fetch_bars(["KO"], "1d", START.replace(day=24), END.replace(day=26)).height == 2
    assert not httpserver.oneshot_handlers


def test_an_unknown_symbol_fails_fast_naming_it(httpserver):
    SampleYahoo().attach(httpserver)
    with pytest.raises(ProviderError, match="yahoo: bars for ZZZZ: unknown symbol.*check the symbol in the universe file"):
        make_source(httpserver).fetch_bars(["ZZZZ"], "1h", START, END)


def test_a_malformed_body_is_an_error(httpserver):
    httpserver.expect_request(CHART).respond_with_data("<html>consent wall</html>", content_type="text/html")
    SampleYahoo().attach(httpserver)
    with pytest.raises(ProviderError, match="yahoo: .*chart/KO returned a malformed body.*symbol: KO"):
        # another window than the other tests: yfinance memoizes past-window chart responses per process
        make_source(httpserver).fetch_bars(["KO"], "1h", START.replace(day=10), END.replace(day=12))


def test_splits_come_from_chart_events(httpserver):
    SampleYahoo().attach(httpserver)
    splits = make_source(httpserver).fetch_splits(["AAPL", "KO"], date(2025, 7, 1), date(2025, 8, 29))
    assert splits.rows() == [("AAPL", date(2025, 8, 4), 2.0)]


@pytest.mark.parametrize("dataset", list(FUNDAMENTAL_SCHEMAS))
def test_fundamentals_match_what_yahoo_sent_and_unknown_symbols_are_rows(httpserver, dataset):
    SampleYahoo().attach(httpserver)
    got = make_source(httpserver).fetch_fundamentals(dataset, ["KO", "ZZZZ"])
    expected = sample_fundamentals(dataset, ["KO", "ZZZZ"], SampleSource().sectors())
    if dataset == "financial_statements":  # Yahoo's own name for the item
        expected = expected.with_columns(pl.col("line_item").replace("total_liabilities", "total_liabilities_net_minority_interest"))
    key = [c for c in got.columns if c not in ("issue",)]
    assert got.schema == expected.schema
    assert got.sort(key, nulls_last=True).equals(expected.sort(key, nulls_last=True))
    assert got.filter(pl.col("symbol") == "ZZZZ")["issue"].to_list() == ["unknown symbol"]


def test_a_field_yahoo_stopped_sending_is_named(httpserver):
    standin = SampleYahoo()
    original = standin.quote_summary

    def without_sector(request):
        response = original(request)
        response.set_data(response.get_data(as_text=True).replace('"sector"', '"sectorRenamed"'))
        return response

    standin.quote_summary = without_sector
    standin.attach(httpserver)
    info = make_source(httpserver).fetch_fundamentals("company_info", ["KO"])
    assert info.select("symbol", "sector", "issue").rows() == [("KO", None, "missing: sector")]
