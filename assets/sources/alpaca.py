"""Alpaca market data through alpaca-py's historical clients, with Quarry owning timeouts, retries and rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, CorporateActionsType, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.historical.corporate_actions import CorporateActionsClient
from alpaca.data.requests import CorporateActionsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from pydantic import SecretStr

from assets.sources import bar_values
from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA, SourceError, Timeframe
from assets.sources.universe_file import Member, universe_digest
from assets.sources.resilience import Guard, GuardedSession, ProviderError, RateLimiter, Redactor, RequestPolicy

DATA_URL = "https://data.alpaca.markets"
PROVIDER = "alpaca"
HINTS = {
    401: "Alpaca rejected the key; check ALPACA_API_KEY and ALPACA_SECRET_KEY",
    403: "Alpaca refused the key for this data; check ALPACA_API_KEY, ALPACA_SECRET_KEY and that the feed (QUARRY_ALPACA_FEED) is in your plan",
    422: "Alpaca rejected the request; check the symbols and the window",
}
TIMEFRAMES = {"1h": TimeFrame.Hour, "1d": TimeFrame.Day}


@dataclass(frozen=True, repr=False)
class AlpacaSource:
    """Bars and splits from Alpaca's market-data API (`/v2/stocks/bars`, `/v1/corporate-actions`).

    Prices are as traded (`adjustment="raw"`) by default, matching BAR_SCHEMA; Quarry adjusts
    splits itself in `bars_hourly`.
    """

    api_key: SecretStr
    secret_key: SecretStr
    universe: tuple[Member, ...]
    data_url: str = DATA_URL
    feed: str = "iex"
    adjustment: str = "raw"
    requests_per_minute: float = 200.0
    policy: RequestPolicy = RequestPolicy()
    name: str = "alpaca"
    _guard: Guard = field(init=False, compare=False)

    def __post_init__(self) -> None:
        redact = Redactor([self.api_key.get_secret_value(), self.secret_key.get_secret_value()])
        guard = Guard(PROVIDER, self.policy, RateLimiter(self.requests_per_minute), redact, dict(HINTS))
        object.__setattr__(self, "_guard", guard)

    def __repr__(self) -> str:
        return f"AlpacaSource({self.identity()})"

    @property
    def requests_sent(self) -> int:
        return self._guard.requests_sent

    def identity(self) -> str:
        return (f"alpaca(url={self.data_url},feed={self.feed},adjustment={self.adjustment},"
                f"universe={universe_digest(self.universe)})")

    def symbols(self) -> list[str]:
        return list(dict.fromkeys(m.symbol for m in self.universe))

    def sectors(self) -> dict[str, str]:
        return {m.symbol: m.sector for m in self.universe}

    def fetch_bars(self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime) -> pl.DataFrame:
        request = StockBarsRequest(
            symbol_or_symbols=list(symbols), timeframe=TIMEFRAMES[timeframe], start=start, end=end,
            feed=DataFeed(self.feed), adjustment=Adjustment(self.adjustment),
        )
        client = self._client(StockHistoricalDataClient)
        raw = self._call(lambda: client.get_stock_bars(request), symbols, "bars")
        return bars_frame(raw, start, end, self._guard, symbols)

    def fetch_splits(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        request = CorporateActionsRequest(
            symbols=list(symbols), types=[CorporateActionsType.FORWARD_SPLIT, CorporateActionsType.REVERSE_SPLIT],
            start=start, end=end,
        )
        client = self._client(CorporateActionsClient)
        raw = self._call(lambda: client.get_corporate_actions(request), symbols, "corporate actions")
        return splits_frame(raw, self._guard)

    def _client(self, kind: type) -> Any:
        """An alpaca-py client whose HTTP goes through Quarry's guard, with its own retry loop off.

        alpaca-py retries 429/504 itself with a fixed sleep and no timeout; `_retry = 0` makes
        its loop run once, and the guarded session supplies timeout, backoff and rate limit.
        """
        client = kind(
            api_key=self.api_key.get_secret_value(), secret_key=self.secret_key.get_secret_value(),
            url_override=self.data_url, raw_data=True,
        )
        client._retry = 0
        client._session = GuardedSession(self._guard)
        return client

    def _call(self, fetch, symbols: list[str], what: str) -> Any:
        named = describe_symbols(symbols)
        try:
            return fetch()
        except ProviderError as error:
            raise ProviderError(f"{error} (symbols: {named})", provider=PROVIDER, status=error.status,
                                symbol=named) from None
        except APIError as error:  # a status alpaca-py saw first; the guard passes only successes on
            raise self._guard.failure(error.status_code, str(error), f"{what} for {named}") from None
        except ValueError as error:
            raise self._guard.malformed(f"{what} for {named}", str(error)) from None


def describe_symbols(symbols: list[str], shown: int = 5) -> str:
    more = len(symbols) - shown
    return ", ".join(symbols[:shown]) + (f" (+{more} more)" if more > 0 else "")


def bars_frame(raw: Any, start: datetime, end: datetime, guard: Guard, symbols: list[str]) -> pl.DataFrame:
    """Alpaca's `{symbol: [{t, o, h, l, c, v, n, vw}]}` as BAR_SCHEMA rows inside [start, end).

    Every value is checked as it is read: a string price, an unparseable timestamp or a
    fractional volume is a ProviderError naming symbol, field and value, never a cast.
    """
    if not isinstance(raw, dict):
        raise guard.malformed(f"bars for {describe_symbols(symbols)}", f"expected an object, got {type(raw).__name__}")
    rows = []
    for symbol, bars in raw.items():
        if not isinstance(bars, list):
            raise guard.malformed(f"bars for {symbol}", f"expected a list of bars, got {type(bars).__name__}")
        for bar in bars:
            if not isinstance(bar, dict) or any(key not in bar for key in ("t", "o", "h", "l", "c", "v")):
                raise guard.malformed(f"bars for {symbol}", f"bar without t/o/h/l/c/v: {bar!r}")
            rows.append((
                symbol, bar_values.timestamp(PROVIDER, symbol, "t", bar["t"]),
                *(bar_values.price(PROVIDER, symbol, key, bar[key]) for key in ("o", "h", "l", "c")),
                bar_values.whole(PROVIDER, symbol, "v", bar["v"]),
                bar_values.price(PROVIDER, symbol, "vw", bar.get("vw"), optional=True),
                bar_values.whole(PROVIDER, symbol, "n", bar.get("n"), optional=True),
            ))
    if not rows:
        return pl.DataFrame(schema=BAR_SCHEMA)
    return (
        pl.DataFrame(rows, orient="row", schema=BAR_SCHEMA)
        .filter(pl.col("bar_ts") >= start, pl.col("bar_ts") < end)
        .sort("symbol", "bar_ts")
    )


def splits_frame(raw: Any, guard: Guard) -> pl.DataFrame:
    """Alpaca's forward and reverse splits as SPLIT_SCHEMA: `new_rate / old_rate` new shares per old share."""
    if not isinstance(raw, dict):
        raise guard.malformed("corporate actions", f"expected an object, got {type(raw).__name__}")
    rows = []
    for kind in ("forward_splits", "reverse_splits"):
        for split in raw.get(kind, []) or []:
            try:
                rows.append((split["symbol"], date.fromisoformat(split["ex_date"]),
                             float(split["new_rate"]) / float(split["old_rate"])))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
                raise guard.malformed("corporate actions", f"split {split!r}: {error}") from None
    return pl.DataFrame(rows, schema=SPLIT_SCHEMA, orient="row").unique(["symbol", "ex_date"]).sort("symbol", "ex_date")


__all__ = ["AlpacaSource", "SourceError"]
