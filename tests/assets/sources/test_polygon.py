"""PolygonSource's real `massive` code path against a local stand-in of Polygon's aggregates API."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import polars as pl
import pytest
from pydantic import SecretStr
from werkzeug import Response

from assets.sources import SampleSource
from assets.sources.base import BAR_SCHEMA
from assets.sources.polygon import PolygonSource
from assets.sources.resilience import ProviderError, RequestPolicy
from assets.sources.universe_file import Member
from quality.contracts import BarsRaw
from tests.assets.sources.standins import POLYGON_KEY, SamplePolygon, polygon_agg

START = datetime(2025, 3, 3, tzinfo=timezone.utc)
END = datetime(2025, 3, 5, tzinfo=timezone.utc)
FAST = RequestPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01, timeout_s=5)
AGGS = re.compile(r"^/v2/aggs/ticker/KO/range/1/hour/.+")


def make_source(httpserver, key=POLYGON_KEY) -> PolygonSource:
    return PolygonSource(SecretStr(key), (Member("KO", "staples"), Member("PEP", "staples")),
                         base_url=httpserver.url_for("").rstrip("/"), policy=FAST, requests_per_minute=60_000)


def ko_rows() -> list[dict]:
    return [polygon_agg(r) for r in SampleSource().fetch_bars(["KO"], "1h", START, END).iter_rows(named=True)]


def test_aggregates_follow_next_url_into_one_frame(httpserver):
    standin = SamplePolygon(base_url=httpserver.url_for("").rstrip("/"), page_size=5)
    standin.attach(httpserver)
    bars = make_source(httpserver).fetch_bars(["KO", "PEP"], "1h", START, END)
    assert bars.equals(SampleSource().fetch_bars(["KO", "PEP"], "1h", START, END))
    assert sum("cursor=" in p for p in standin.agg_requests) >= 4
    assert all("adjusted=false" in p for p in standin.agg_requests if "cursor=" not in p)
    BarsRaw.validate(bars)


def test_empty_window_is_an_empty_frame_in_schema(httpserver):
    httpserver.expect_request(AGGS).respond_with_json({"ticker": "KO", "status": "OK", "resultsCount": 0})
    bars = make_source(httpserver).fetch_bars(["KO"], "1h", START, END)
    assert bars.is_empty() and bars.schema == pl.Schema(BAR_SCHEMA)


def test_a_429_then_success_honours_retry_after(httpserver):
    httpserver.expect_ordered_request(AGGS).respond_with_response(
        Response('{"status":"ERROR","error":"exceeded the maximum requests per minute"}', status=429,
                 headers={"Retry-After": "0"}))
    httpserver.expect_ordered_request(AGGS).respond_with_json({"status": "OK", "results": ko_rows()})
    source = make_source(httpserver)
    assert source.fetch_bars(["KO"], "1h", START, END).height == len(ko_rows())
    assert source.requests_sent == 2  # urllib3's own retries are off


def test_a_500_burst_recovers(httpserver):
    for _ in range(3):
        httpserver.expect_ordered_request(AGGS).respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(AGGS).respond_with_json({"status": "OK", "results": ko_rows()})
    assert make_source(httpserver).fetch_bars(["KO"], "1h", START, END).height == len(ko_rows())


def test_an_invalid_key_fails_fast_naming_provider_symbol_and_variable(httpserver):
    SamplePolygon(base_url=httpserver.url_for("").rstrip("/")).attach(httpserver)
    wrong = "wrong-polygon-key-123"
    source = make_source(httpserver, key=wrong)
    with pytest.raises(ProviderError) as error:
        source.fetch_bars(["KO", "PEP"], "1h", START, END)
    text = str(error.value)
    assert source.requests_sent == 1
    assert text.startswith("polygon:") and "HTTP 401" in text and "POLYGON_API_KEY" in text and "symbol: KO" in text
    assert wrong not in text and wrong not in repr(source)


def test_an_unknown_ticker_names_the_symbol(httpserver):
    httpserver.expect_request(AGGS).respond_with_json({"status": "NOT_FOUND", "message": "ticker not found"}, status=404)
    with pytest.raises(ProviderError, match=r"polygon: .*HTTP 404.*check the symbol.*symbol: KO"):
        make_source(httpserver).fetch_bars(["KO"], "1h", START, END)


@pytest.mark.parametrize("body", ["<html>not json</html>", '{"status":"OK","results":[{"o":1.0}]}',
                                  '{"status":"OK","results":"nope"}'])
def test_a_malformed_body_is_an_error_not_an_empty_frame(httpserver, body):
    httpserver.expect_request(AGGS).respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderError, match="polygon: .*malformed body"):
        make_source(httpserver).fetch_bars(["KO"], "1h", START, END)


@pytest.mark.parametrize("field, value, why", [("c", "60.2", "is not a finite number"),
                                              ("v", 1200.5, "is not a whole number")])
def test_a_malformed_value_names_symbol_field_and_value_and_is_never_cast(httpserver, field, value, why):
    bar = {"t": 1741014000000, "o": 60.1, "h": 60.5, "l": 59.9, "c": 60.2, "v": 1200, "vw": 60.2, "n": 40}
    httpserver.expect_request(AGGS).respond_with_json(
        {"ticker": "KO", "status": "OK", "resultsCount": 1, "results": [{**bar, field: value}]})
    with pytest.raises(ProviderError, match=rf"polygon: bar for KO has {field}={value!r}, which {why}"):
        make_source(httpserver).fetch_bars(["KO"], "1h", START, END)


def test_splits_from_reference_endpoint(httpserver):
    SamplePolygon(base_url=httpserver.url_for("").rstrip("/")).attach(httpserver)
    source = make_source(httpserver)
    splits = source.fetch_splits(["AAPL", "KO"], date(2025, 1, 1), date(2025, 12, 31))
    assert splits.rows() == [("AAPL", date(2025, 8, 4), 2.0)]
