"""AlpacaSource's real alpaca-py code path against a local stand-in of Alpaca's market-data API."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pytest
from loguru import logger
from pydantic import SecretStr
from werkzeug import Response

from assets.sources import SampleSource
from assets.sources.alpaca import AlpacaSource
from assets.sources.base import BAR_SCHEMA
from assets.sources.resilience import ProviderError, RequestPolicy
from assets.sources.universe_file import Member
from quality.contracts import BarsRaw
from tests.assets.sources.standins import ALPACA_KEY, ALPACA_SECRET, SampleAlpaca, alpaca_bar
from tests.conftest import WINDOW_END, WINDOW_START

START = datetime(2025, 3, 3, tzinfo=timezone.utc)
END = datetime(2025, 3, 5, tzinfo=timezone.utc)
FAST = RequestPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01, timeout_s=5)
UNIVERSE = tuple(Member(s, sector) for s, sector in SampleSource().sectors().items())


def make_source(httpserver, **kwargs) -> AlpacaSource:
    options = {"universe": UNIVERSE, "data_url": httpserver.url_for("").rstrip("/"), "policy": FAST,
               "requests_per_minute": 60_000, **kwargs}
    return AlpacaSource(SecretStr(ALPACA_KEY), SecretStr(ALPACA_SECRET), **options)


def bars_body(rows: list[dict], token=None) -> dict:
    bars: dict[str, list] = {}
    for row in rows:
        bars.setdefault(row["symbol"], []).append(alpaca_bar(row))
    return {"bars": bars, "next_page_token": token}


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    yield lines
    logger.remove(sink)


def test_bars_follow_page_tokens_into_one_frame(httpserver):
    standin = SampleAlpaca(page_size=10)
    standin.attach(httpserver)
    source = make_source(httpserver)
    bars = source.fetch_bars(["KO", "PEP", "XOM"], "1h", START, END)
    expected = SampleSource().fetch_bars(["KO", "PEP", "XOM"], "1h", START, END)
    assert bars.equals(expected)
    assert len(standin.bar_requests) == 1 + (expected.height - 1) // 10 > 1
    assert [r.get("page_token") for r in standin.bar_requests][1] == "10"
    assert standin.bar_requests[0]["feed"] == "iex" and standin.bar_requests[0]["adjustment"] == "raw"
    BarsRaw.validate(bars)


def test_feed_and_adjustment_are_configurable(httpserver):
    standin = SampleAlpaca()
    standin.attach(httpserver)
    make_source(httpserver, feed="sip", adjustment="split").fetch_bars(["KO"], "1d", START, END)
    assert standin.bar_requests[0]["feed"] == "sip" and standin.bar_requests[0]["adjustment"] == "split"
    assert standin.bar_requests[0]["timeframe"] == "1Day"


def test_empty_window_is_an_empty_frame_in_schema(httpserver):
    httpserver.expect_request("/v2/stocks/bars").respond_with_json({"bars": {}, "next_page_token": None})
    bars = make_source(httpserver).fetch_bars(["KO"], "1h", START, END)
    assert bars.is_empty() and bars.schema == pl.Schema(BAR_SCHEMA)


def test_a_429_then_success_is_retried_by_quarry_once(httpserver, log_lines):
    rows = SampleSource().fetch_bars(["KO"], "1h", START, END).to_dicts()
    httpserver.expect_ordered_request("/v2/stocks/bars").respond_with_response(
        Response("rate limit exceeded", status=429, headers={"Retry-After": "0"}))
    httpserver.expect_ordered_request("/v2/stocks/bars").respond_with_json(bars_body(rows))
    source = make_source(httpserver)
    bars = source.fetch_bars(["KO"], "1h", START, END)
    assert bars.height == len(rows)
    assert source.requests_sent == 2  # alpaca-py's own loop is off: no hidden third request
    assert any("HTTP 429" in line for line in log_lines)


def test_a_500_burst_recovers_within_the_attempts(httpserver):
    rows = SampleSource().fetch_bars(["KO"], "1h", START, END).to_dicts()
    for _ in range(3):
        httpserver.expect_ordered_request("/v2/stocks/bars").respond_with_data("upstream broke", status=500)
    httpserver.expect_ordered_request("/v2/stocks/bars").respond_with_json(bars_body(rows))
    assert make_source(httpserver).fetch_bars(["KO"], "1h", START, END).height == len(rows)


def test_a_500_burst_longer_than_the_attempts_fails_with_a_message(httpserver):
    httpserver.expect_request("/v2/stocks/bars").respond_with_data("upstream broke", status=503)
    with pytest.raises(ProviderError) as error:
        make_source(httpserver).fetch_bars(["KO"], "1h", START, END)
    assert "alpaca" in str(error.value) and "HTTP 503" in str(error.value) and "4 attempts" in str(error.value)
    assert "KO" in str(error.value)


@pytest.mark.parametrize("status", [401, 403])
def test_an_invalid_key_fails_fast_naming_provider_symbol_and_variables(httpserver, status, log_lines):
    httpserver.expect_request("/v2/stocks/bars").respond_with_json({"message": "forbidden."}, status=status)
    source = make_source(httpserver)
    with pytest.raises(ProviderError) as error:
        source.fetch_bars(["KO"], "1h", START, END)
    text = str(error.value)
    assert source.requests_sent == 1
    assert "alpaca" in text and "KO" in text and "ALPACA_API_KEY" in text and f"HTTP {status}" in text
    for secret in (ALPACA_KEY, ALPACA_SECRET):
        assert secret not in text and secret not in repr(source) and all(secret not in line for line in log_lines)


@pytest.mark.parametrize("body", ["<html>gateway</html>", json.dumps({"nothing": 1}),
                                  json.dumps({"bars": {"KO": [{"t": "2025-03-03T15:00:00Z"}]}})])
def test_a_malformed_body_is_an_error_not_an_empty_frame(httpserver, body):
    httpserver.expect_request("/v2/stocks/bars").respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderError, match="alpaca: .*malformed body"):
        make_source(httpserver).fetch_bars(["KO"], "1h", START, END)


GOOD_BAR = {"t": "2025-03-03T15:00:00Z", "o": 60.1, "h": 60.5, "l": 59.9, "c": 60.2, "v": 1200, "n": 40, "vw": 60.2}


@pytest.mark.parametrize("field, value, why", [
    ("c", "60.20", "is not a finite number"),
    ("o", None, "is not a finite number"),
    ("t", "2025-03-03 sometime", "is not an RFC 3339 timestamp"),
    ("t", "2025-03-03T15:00:00", "has no UTC offset"),
    ("v", 1200.5, "is not a whole number"),
    ("n", "forty", "is not a number"),
])
def test_a_malformed_value_names_symbol_field_and_value_and_is_never_cast(httpserver, field, value, why):
    good = dict(GOOD_BAR, t="2025-03-03T14:00:00Z")
    httpserver.expect_request("/v2/stocks/bars").respond_with_json(
        {"bars": {"PEP": [good], "KO": [good, {**GOOD_BAR, field: value}]}, "next_page_token": None})
    with pytest.raises(ProviderError) as raised:
        make_source(httpserver).fetch_bars(["KO", "PEP"], "1h", START, END)
    assert f"alpaca: bar for KO has {field}={value!r}, which {why}" in str(raised.value)
    assert raised.value.symbol == "KO"


def test_whole_volumes_sent_as_floats_are_kept(httpserver):
    httpserver.expect_request("/v2/stocks/bars").respond_with_json(
        {"bars": {"KO": [{**GOOD_BAR, "v": 1200.0}]}, "next_page_token": None})
    bars = make_source(httpserver).fetch_bars(["KO"], "1h", START, END)
    assert bars["volume_qty"].to_list() == [1200] and bars.schema == pl.Schema(BAR_SCHEMA)


def test_splits_come_from_corporate_actions(httpserver):
    SampleAlpaca().attach(httpserver)
    splits = make_source(httpserver).fetch_splits(["AAPL", "NVDA", "KO"], START.date(), datetime(2025, 12, 31).date())
    assert splits.rows() == [("AAPL", datetime(2025, 8, 4).date(), 2.0)]
