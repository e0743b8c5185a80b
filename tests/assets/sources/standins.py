"""Local stand-ins for Alpaca and Polygon that answer in each provider's documented payload shapes.

Both serve the bars of the offline sample market, so a graph built from a stand-in
can be compared with one built from `sample`, and both count what they were asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

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
