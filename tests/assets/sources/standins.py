"""Local stand-ins for Alpaca and Polygon that answer in each provider's documented payload shapes.

Both serve the bars of the offline sample market, so a graph built from a stand-in
can be compared with one built from `sample`, and both count what they were asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import polars as pl
from werkzeug import Request, Response

from assets.sources import SampleSource

ALPACA_KEY = "AKTESTKEY0123456789"
ALPACA_SECRET = "alpaca-secret-do-not-leak-5f3a9c"
POLYGON_KEY = "polygon-secret-do-not-leak-77e1b2"


def alpaca_bar(row: dict) -> dict:
    return {
        "t": row["bar_ts"].strftime("%Y-%m-%dT%H:%M:%SZ"), "o": row["open_px"], "h": row["high_px"],
        "l": row["low_px"], "c": row["close_px"], "v": row["volume_qty"], "n": row["trade_count"],
        "vw": row["vwap_px"],
    }


def polygon_agg(row: dict) -> dict:
    return {
        "t": int(row["bar_ts"].timestamp() * 1000), "o": row["open_px"], "h": row["high_px"],
        "l": row["low_px"], "c": row["close_px"], "v": float(row["volume_qty"]), "vw": row["vwap_px"],
        "n": row["trade_count"],
    }


def _utc(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


@dataclass
class SampleAlpaca:
    """`/v2/stocks/bars` and `/v1/corporate-actions` over the sample market, `page_size` bars a page."""

    market: SampleSource = field(default_factory=SampleSource)
    page_size: int = 400
    bar_requests: list[dict] = field(default_factory=list)
    auth_seen: list[tuple[str, str]] = field(default_factory=list)

    def bars(self, request: Request) -> Response:
        args = request.args
        self.bar_requests.append(dict(args))
        self.auth_seen.append((request.headers.get("APCA-API-KEY-ID", ""), request.headers.get("APCA-API-SECRET-KEY", "")))
        if request.headers.get("APCA-API-SECRET-KEY") != ALPACA_SECRET:
            return Response(json.dumps({"message": "forbidden."}), status=403, content_type="application/json")
        symbols = args["symbols"].split(",")
        timeframe = "1h" if args["timeframe"] == "1Hour" else "1d"
        frame = self.market.fetch_bars(symbols, timeframe, _utc(args["start"]), _utc(args["end"]))
        offset = int(args.get("page_token") or 0)
        page = frame.slice(offset, self.page_size)
        bars: dict[str, list] = {}
        for row in page.iter_rows(named=True):
            bars.setdefault(row["symbol"], []).append(alpaca_bar(row))
        next_token = str(offset + self.page_size) if offset + self.page_size < frame.height else None
        return Response(json.dumps({"bars": bars, "next_page_token": next_token}), content_type="application/json")

    def corporate_actions(self, request: Request) -> Response:
        args = request.args
        splits = self.market.fetch_splits(args["symbols"].split(","), _utc(args["start"] + "T00:00:00Z").date(),
                                          _utc(args["end"] + "T00:00:00Z").date())
        forward = [
            {"symbol": s, "new_rate": r, "old_rate": 1.0, "ex_date": d.isoformat(), "id": f"{s}-{d}"}
            for s, d, r in splits.iter_rows()
        ]
        return Response(json.dumps({"corporate_actions": {"forward_splits": forward}, "next_page_token": None}),
                        content_type="application/json")

    def attach(self, server) -> None:
        server.expect_request("/v2/stocks/bars").respond_with_handler(self.bars)
        server.expect_request("/v1/corporate-actions").respond_with_handler(self.corporate_actions)

    def days_asked(self) -> list[tuple[str, str]]:
        """The (start, end) windows of the first page of each bars download."""
        return [(r["start"], r["end"]) for r in self.bar_requests if not r.get("page_token")]


@dataclass
class SamplePolygon:
    """`/v2/aggs/ticker/{T}/range/1/hour/{from}/{to}` and `/v3/reference/splits` over the sample market."""

    base_url: str
    market: SampleSource = field(default_factory=SampleSource)
    page_size: int = 30
    agg_requests: list[str] = field(default_factory=list)

    def aggs(self, request: Request) -> Response:
        self.agg_requests.append(request.full_path)
        if request.headers.get("Authorization") != f"Bearer {POLYGON_KEY}":
            return Response(json.dumps({"status": "ERROR", "error": "Unknown API Key"}), status=401,
                            content_type="application/json")
        parts = request.path.split("/")
        symbol, span, start, end = parts[4], parts[7], parts[8], parts[9]
        frame = self.market.fetch_bars([symbol], "1h" if span == "hour" else "1d", _utc(start), _utc(end))
        offset = int(request.args.get("cursor") or 0)
        page = frame.slice(offset, self.page_size)
        body = {"ticker": symbol, "status": "OK", "resultsCount": page.height, "adjusted": False,
                "results": [polygon_agg(r) for r in page.iter_rows(named=True)]}
        if not page.height:
            del body["results"]
        if offset + self.page_size < frame.height:
            body["next_url"] = f"{self.base_url}{request.path}?cursor={offset + self.page_size}"
        return Response(json.dumps(body), content_type="application/json")

    def splits(self, request: Request) -> Response:
        symbol = request.args["ticker"]
        start = _utc(request.args["execution_date.gte"] + "T00:00:00Z").date()
        end = _utc(request.args["execution_date.lte"] + "T00:00:00Z").date()
        rows = self.market.fetch_splits([symbol], start, end)
        results = [{"ticker": s, "execution_date": d.isoformat(), "split_from": 1, "split_to": r}
                   for s, d, r in rows.iter_rows()]
        return Response(json.dumps({"status": "OK", "results": results}), content_type="application/json")

    def attach(self, server) -> None:
        import re

        server.expect_request(re.compile(r"^/v2/aggs/ticker/.+")).respond_with_handler(self.aggs)
        server.expect_request("/v3/reference/splits").respond_with_handler(self.splits)

    def sessions_asked(self) -> list[str]:
        """The `from` of each first-page aggregates request, as a UTC date."""
        firsts = [p for p in self.agg_requests if "cursor=" not in p]
        return sorted({_utc(p.split("?")[0].split("/")[8]).date().isoformat() for p in firsts})


def frames_equal_ignoring_order(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.sort(a.columns).equals(b.sort(b.columns))


#: The sample's statement items under the names Yahoo's fundamentals-timeseries API uses.
YAHOO_LINE_ITEMS = {"total_revenue": "TotalRevenue", "net_income": "NetIncome", "diluted_eps": "DilutedEPS",
                    "ordinary_shares_number": "OrdinarySharesNumber", "total_assets": "TotalAssets",
                    "total_liabilities": "TotalLiabilitiesNetMinorityInterest", "operating_cash_flow": "OperatingCashFlow"}


@dataclass
class SampleYahoo:
    """Yahoo's chart (`/v8/finance/chart/{T}`), quoteSummary and crumb endpoints over the sample market.

    Served to yfinance through `YahooSession(base_url=...)`, which rewrites the *.yahoo.com hosts here.
    """

    market: SampleSource = field(default_factory=SampleSource)
    chart_requests: list[dict] = field(default_factory=list)
    summary_requests: list[str] = field(default_factory=list)
    known: tuple[str, ...] = ("KO", "PEP", "XOM", "AAPL")

    def chart(self, request: Request) -> Response:
        from assets.calendar import sessions

        symbol = request.path.rsplit("/", 1)[1]
        args = request.args
        self.chart_requests.append({"symbol": symbol, **args})
        if symbol not in self.known:
            body = {"chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}
            return Response(json.dumps(body), status=404, content_type="application/json")
        if "period1" in args:
            start, end = _utc(args["period1"] + "000"), _utc(args["period2"] + "000")
        else:
            start, end = datetime(2025, 3, 3, tzinfo=timezone.utc), datetime(2025, 3, 4, tzinfo=timezone.utc)
        interval = args.get("interval", "1d")
        frame = self.market.fetch_bars([symbol], "1h" if interval == "1h" else "1d", start, end)
        quote = {"open": frame["open_px"].to_list(), "high": frame["high_px"].to_list(), "low": frame["low_px"].to_list(),
                 "close": frame["close_px"].to_list(), "volume": frame["volume_qty"].to_list()}
        days = sessions(start.date(), (end - timedelta(microseconds=1)).date())
        periods = [[{"timezone": "EST", "gmtoffset": -18000, "start": int(o.timestamp()), "end": int(c.timestamp())}]
                   for o, c in zip(days["open_ts"], days["close_ts"])]
        meta = {"currency": "USD", "symbol": symbol, "exchangeName": "NYQ", "instrumentType": "EQUITY",
                "gmtoffset": -18000, "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                "regularMarketPrice": quote["close"][-1] if frame.height else 1.0, "dataGranularity": interval,
                "priceHint": 2, "tradingPeriods": periods or {"pre": [], "post": []}}
        result = {"meta": meta, "timestamp": [int(t.timestamp()) for t in frame["bar_ts"]],
                  "indicators": {"quote": [quote], "adjclose": [{"adjclose": quote["close"]}]}}
        if not frame.height:  # Yahoo leaves out the series when a window has no bars
            result = {"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}
        splits = self.market.fetch_splits([symbol], start.date(), end.date())
        if splits.height:
            result["events"] = {"splits": {
                str(ts): {"date": ts, "numerator": ratio, "denominator": 1.0, "splitRatio": f"{ratio}:1"}
                for ts, ratio in ((int(datetime(d.year, d.month, d.day, 14, 30, tzinfo=timezone.utc).timestamp()), r)
                                  for _, d, r in splits.iter_rows())}}
        return Response(json.dumps({"chart": {"result": [result], "error": None}}), content_type="application/json")

    def quote_summary(self, request: Request) -> Response:
        from assets.sources.sample_fundamentals import sample_fundamentals

        symbol = request.path.rsplit("/", 1)[1]
        self.summary_requests.append(symbol)
        if symbol not in self.known:
            body = {"quoteSummary": {"result": None, "error": {"code": "Not Found", "description": "Quote not found for symbol: " + symbol}}}
            return Response(json.dumps(body), status=404, content_type="application/json")
        sectors = self.market.sectors()
        info = sample_fundamentals("company_info", [symbol], sectors).row(0, named=True)
        stats = sample_fundamentals("key_statistics", [symbol], sectors).row(0, named=True)
        officers = sample_fundamentals("company_officers", [symbol], sectors).to_dicts()
        holders = sample_fundamentals("institutional_holders", [symbol], sectors).to_dicts()
        profile = {"sector": info["sector"], "industry": info["industry"], "country": info["country"],
                   "website": info["website"], "fullTimeEmployees": info["employee_count"],
                   "companyOfficers": [{"maxAge": 1, "name": o["officer_name"], "title": o["title"], "age": o["age"],
                                        "fiscalYear": o["fiscal_year"], "totalPay": {"raw": o["total_pay_usd"], "fmt": "x"}}
                                       for o in officers]}
        result = {
            "assetProfile": profile,
            "quoteType": {"exchange": info["exchange"], "shortName": info["short_name"], "symbol": symbol},
            "summaryDetail": {"currency": info["currency"], "marketCap": stats["market_cap_usd"], "beta": stats["beta"],
                              "trailingPE": stats["trailing_pe"], "forwardPE": stats["forward_pe"],
                              "dividendYield": stats["dividend_yield_pct"]},
            "defaultKeyStatistics": {"enterpriseValue": stats["enterprise_value_usd"], "priceToBook": stats["price_to_book"],
                                     "profitMargins": stats["profit_margin_pct"],
                                     "sharesOutstanding": stats["shares_outstanding_qty"],
                                     "floatShares": stats["float_shares_qty"]},
            "financialData": {"currentPrice": 10.0},
            "institutionOwnership": {"maxAge": 1, "ownershipList": [
                {"maxAge": 1, "reportDate": {"raw": int(datetime(h["report_date"].year, h["report_date"].month,
                                                                 h["report_date"].day, tzinfo=timezone.utc).timestamp())},
                 "organization": h["holder"], "pctHeld": {"raw": h["held_pct"]}, "position": {"raw": h["shares_qty"]},
                 "value": {"raw": h["market_value_usd"]}, "pctChange": {"raw": 0.01}} for h in holders]},
        }
        return Response(json.dumps({"quoteSummary": {"result": [result], "error": None}}), content_type="application/json")

    def timeseries(self, request: Request) -> Response:
        """`/ws/fundamentals-timeseries/...`: quarterly statement items of the sample fundamentals, by Yahoo key."""
        from assets.sources.sample_fundamentals import sample_fundamentals

        symbol = request.path.rsplit("/", 1)[1]
        items = sample_fundamentals("financial_statements", [symbol], self.market.sectors())
        by_key: dict[str, list] = {}
        for row in items.iter_rows(named=True):
            key = "quarterly" + YAHOO_LINE_ITEMS.get(row["line_item"], "")
            by_key.setdefault(key, []).append(row)
        results = []
        for key in request.args.get("type", "").split(","):
            rows = by_key.get(key, [])
            entry = {"meta": {"symbol": [symbol], "type": [key]}}
            if rows:
                entry["timestamp"] = [int(datetime(r["period_end_date"].year, r["period_end_date"].month,
                                                   r["period_end_date"].day, tzinfo=timezone.utc).timestamp()) for r in rows]
                entry[key] = [{"asOfDate": r["period_end_date"].isoformat(), "periodType": "3M",
                               "reportedValue": {"raw": r["value"], "fmt": "x"}} for r in rows]
            results.append(entry)
        return Response(json.dumps({"timeseries": {"result": results, "error": None}}), content_type="application/json")

    def attach(self, server) -> None:
        import re

        server.no_handler_status_code = 404
        server.expect_request(re.compile(r"^/v8/finance/chart/.+")).respond_with_handler(self.chart)
        server.expect_request(re.compile(r"^/ws/fundamentals-timeseries/.+")).respond_with_handler(self.timeseries)
        server.expect_request(re.compile(r"^/v10/finance/quoteSummary/.+")).respond_with_handler(self.quote_summary)
        server.expect_request("/v7/finance/quote").respond_with_json({"quoteResponse": {"result": [], "error": None}})
        server.expect_request("/v1/test/getcrumb").respond_with_data("crumb-local")
        server.expect_request("/").respond_with_data("", status=404)
