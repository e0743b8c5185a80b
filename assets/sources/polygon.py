"""Polygon aggregates and splits through `massive` (Polygon's maintained client), with Quarry owning retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl
import urllib3
from massive import RESTClient
from massive.exceptions import BadResponse

from assets.sources import bar_values
from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA, Timeframe
from assets.sources.universe_file import Member, universe_digest
from assets.sources.resilience import Guard, GuardedPool, ProviderError, RateLimiter, Redactor, RequestPolicy
from pydantic import SecretStr

BASE_URL = "https://api.polygon.io"
PROVIDER = "polygon"
HINTS = {
    401: "Polygon rejected the key; check POLYGON_API_KEY",
    403: "Polygon refused the key for this data; check POLYGON_API_KEY and that your plan covers it",
    404: "Polygon does not know this ticker; check the symbol in the universe file",
}
TIMESPANS = {"1h": (1, "hour"), "1d": (1, "day")}


@dataclass(frozen=True, repr=False)
class PolygonSource:
    """Bars from `/v2/aggs/ticker/{T}/range/...` (one request per symbol, following `next_url`) and splits from `/v3/reference/splits`.

    Aggregates are requested unadjusted so prices stay as traded, matching BAR_SCHEMA.
    """

    api_key: SecretStr
    universe: tuple[Member, ...]
    base_url: str = BASE_URL
    adjusted: bool = False
    requests_per_minute: float = 300.0
    policy: RequestPolicy = RequestPolicy()
    name: str = "polygon"
    _guard: Guard = field(init=False, compare=False)

    def __post_init__(self) -> None:
        redact = Redactor([self.api_key.get_secret_value()])
        guard = Guard(PROVIDER, self.policy, RateLimiter(self.requests_per_minute), redact, dict(HINTS))
        object.__setattr__(self, "_guard", guard)

    def __repr__(self) -> str:
        return f"PolygonSource({self.identity()})"

    @property
    def requests_sent(self) -> int:
        return self._guard.requests_sent

    def identity(self) -> str:
        return f"polygon(url={self.base_url},adjusted={self.adjusted},universe={universe_digest(self.universe)})"

    def symbols(self) -> list[str]:
        return list(dict.fromkeys(m.symbol for m in self.universe))

    def sectors(self) -> dict[str, str]:
        return {m.symbol: m.sector for m in self.universe}

    def fetch_bars(self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime) -> pl.DataFrame:
        client = self._client()
        multiplier, timespan = TIMESPANS[timeframe]
        frames = []
        for symbol in symbols:
            aggs = self._call(
                lambda: list(client.list_aggs(symbol, multiplier, timespan, start, end - timedelta(milliseconds=1),
                                              adjusted=self.adjusted, sort="asc", limit=50_000)),
                symbol, "aggregates",
            )
            frames.append(aggs_frame(symbol, aggs, self._guard))
        bars = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=BAR_SCHEMA)
        return bars.filter(pl.col("bar_ts") >= start, pl.col("bar_ts") < end).sort("symbol", "bar_ts")

    def fetch_splits(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        client = self._client()
        rows = []
        for symbol in symbols:
            splits = self._call(
                lambda: list(client.list_splits(ticker=symbol, execution_date_gte=start.isoformat(),
                                                execution_date_lte=end.isoformat(), limit=1000)),
                symbol, "splits",
            )
            for split in splits:
                if not (split.execution_date and split.split_from and split.split_to):
                    raise self._guard.malformed(f"splits for {symbol}", f"incomplete split {split!r}")
                rows.append((symbol, date.fromisoformat(split.execution_date), split.split_to / split.split_from))
        return pl.DataFrame(rows, schema=SPLIT_SCHEMA, orient="row").unique(["symbol", "ex_date"]).sort(
            "symbol", "ex_date"
        )

    def _client(self) -> RESTClient:
        """A massive client with its urllib3 retries off and its pool behind Quarry's guard.

        The key is passed explicitly: massive reads its environment default at import time.
        """
        client = RESTClient(api_key=self.api_key.get_secret_value(), base=self.base_url, retries=0,
                            connect_timeout=self.policy.timeout_s, read_timeout=self.policy.timeout_s)
        client.client = GuardedPool(client.client, self._guard, retries=urllib3.Retry(total=0, redirect=False))
        return client

    def _call(self, fetch, symbol: str, what: str):
        try:
            return fetch()
        except ProviderError as error:
            raise ProviderError(f"{error} (symbol: {symbol})", provider=PROVIDER, status=error.status,
                                symbol=symbol) from None
        except BadResponse as error:
            raise self._guard.failure(None, str(error), f"{what} for {symbol}") from None
        except (AttributeError, TypeError, ValueError) as error:
            raise self._guard.malformed(f"{what} for {symbol}", f"{type(error).__name__}: {error}") from None


def aggs_frame(symbol: str, aggs: list, guard: Guard) -> pl.DataFrame:
    """Polygon aggregates (`t` in epoch milliseconds) as BAR_SCHEMA rows; a value of the wrong kind (a string
    price, a fractional volume) is a ProviderError naming symbol, field and value, never a cast."""
    rows = []
    for agg in aggs:
        if agg.timestamp is None or None in (agg.open, agg.high, agg.low, agg.close, agg.volume):
            raise guard.malformed(f"aggregates for {symbol}", f"bar without t/o/h/l/c/v: {agg!r}")
        rows.append((symbol, bar_values.whole(PROVIDER, symbol, "t", agg.timestamp) * 1000,
                     *(bar_values.price(PROVIDER, symbol, key, getattr(agg, name))
                       for key, name in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"))),
                     bar_values.whole(PROVIDER, symbol, "v", agg.volume),
                     bar_values.price(PROVIDER, symbol, "vw", agg.vwap, optional=True),
                     bar_values.whole(PROVIDER, symbol, "n", agg.transactions, optional=True)))
    frame = pl.DataFrame(
        rows, orient="row",
        schema={"symbol": pl.String, "bar_ts": pl.Int64, "open_px": pl.Float64, "high_px": pl.Float64,
                "low_px": pl.Float64, "close_px": pl.Float64, "volume_qty": pl.Int64, "vwap_px": pl.Float64,
                "trade_count": pl.Int64},
    )
    return frame.with_columns(pl.col("bar_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")).select(
        pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items()
    )
