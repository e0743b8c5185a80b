"""Yahoo Finance bars, splits and fundamentals through yfinance, on a session Quarry guards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import polars as pl

from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA, Timeframe
from assets.sources.fundamentals_schema import empty_fundamentals, fundamentals_frame
from assets.sources.resilience import Guard, GuardedSession, ProviderError, RateLimiter, Redactor, RequestPolicy
from assets.sources.universe_file import Member, universe_digest

PROVIDER = "yahoo"
#: Yahoo endpoints that always answer JSON: anything else there is a malformed body, not "no data".
JSON_APIS = ("/v8/finance/chart/", "/v10/finance/quoteSummary/", "/ws/fundamentals-timeseries/", "/v7/finance/quote")
INTERVALS = {"1h": "1h", "1d": "1d"}
STATEMENTS = {"income": "get_income_stmt", "balance": "get_balance_sheet", "cashflow": "get_cashflow"}


class YahooSession(GuardedSession):
    """A guarded session that, given a `base_url`, sends every *.yahoo.com request there instead.

    yfinance has no base-URL option but accepts a session: this is how a local server
    stands in for Yahoo and yfinance's own request and parsing code still runs.
    """

    def __init__(self, guard: Guard, base_url: str | None):
        super().__init__(guard, raise_client_errors=False)
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        if self.base_url:
            parts = urlsplit(url)
            if parts.hostname and parts.hostname.endswith("yahoo.com"):
                base = urlsplit(self.base_url)
                url = urlunsplit((base.scheme, base.netloc, parts.path or "/", parts.query, ""))
        response = super().request(method, url, *args, **kwargs)
        path = urlsplit(url).path
        if response.status_code < 400 and path.startswith(JSON_APIS):
            try:
                response.json()
            except ValueError as error:  # yfinance would read this as "no data" and return an empty frame
                raise self.guard.malformed(f"{method} {path}", f"{error}: {response.text[:80]!r}") from None
        return response


@dataclass(frozen=True, repr=False)
class YahooSource:
    """Unadjusted bars (`auto_adjust=False`), splits and the five fundamentals datasets, one symbol at a time."""

    universe: tuple[Member, ...]
    base_url: str | None = None
    requests_per_minute: float = 60.0
    policy: RequestPolicy = RequestPolicy()
    name: str = "yahoo"
    _guard: Guard = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_guard", Guard(PROVIDER, self.policy, RateLimiter(self.requests_per_minute), Redactor([])))

    def __repr__(self) -> str:
        return f"YahooSource({self.identity()})"

    @property
    def requests_sent(self) -> int:
        return self._guard.requests_sent

    def identity(self) -> str:
        return f"yahoo(url={self.base_url or 'yahoo.com'},universe={universe_digest(self.universe)})"

    def symbols(self) -> list[str]:
        return list(dict.fromkeys(m.symbol for m in self.universe))

    def sectors(self) -> dict[str, str]:
        return {m.symbol: m.sector for m in self.universe}

    def _ticker(self, symbol: str):
        import yfinance

        return yfinance.Ticker(symbol, session=YahooSession(self._guard, self.base_url))

    def fetch_bars(self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime) -> pl.DataFrame:
        frames = []
        for symbol in symbols:
            history = self._call(
                symbol, "bars",
                lambda: _history_or_empty(self._ticker(symbol), start=start, end=end, interval=INTERVALS[timeframe],
                                          auto_adjust=False, actions=False, raise_errors=True),
            )
            frames.append(history_frame(symbol, history))
        bars = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=BAR_SCHEMA)
        return bars.filter(pl.col("bar_ts") >= start, pl.col("bar_ts") < end).sort("symbol", "bar_ts")

    def fetch_splits(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        rows = []
        for symbol in symbols:
            history = self._call(
                symbol, "splits",
                lambda: self._ticker(symbol).history(start=start, end=end + timedelta(days=1), interval="1d",
                                                     auto_adjust=False, actions=True, raise_errors=True),
            )
            if "Stock Splits" in history:
                for ts, ratio in history["Stock Splits"].items():
                    if ratio and ratio > 0:
                        rows.append((symbol, ts.date(), float(ratio)))
        return pl.DataFrame(rows, schema=SPLIT_SCHEMA, orient="row").sort("symbol", "ex_date")

    def fetch_fundamentals(self, dataset: str, symbols: list[str]) -> pl.DataFrame:
        """The dataset for every symbol; a symbol Yahoo does not know becomes an `unknown symbol` row, not an error."""
        rows: list[dict] = []
        unknown: list[str] = []
        for symbol in symbols:
            try:
                found = self._call(symbol, dataset, lambda: _DATASETS[dataset](self._ticker(symbol), symbol))
            except ProviderError as error:
                if error.status in (404, 422):
                    unknown.append(symbol)
                    continue
                raise
            if found:
                rows.extend(found)
            else:
                unknown.append(symbol)
        return fundamentals_frame(dataset, rows, unknown) if rows or unknown else empty_fundamentals(dataset)

    def _call(self, symbol: str, what: str, fetch):
        try:
            return fetch()
        except ProviderError as error:
            raise ProviderError(f"{error} (symbol: {symbol})", provider=PROVIDER, status=error.status,
                                symbol=symbol) from None
        except Exception as error:  # yfinance signals an unknown symbol or a changed payload by exceptions of its own
            kind = type(error).__name__
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status in (404, 422) or any(word in kind for word in ("Missing", "NotFound", "Delisted", "Tz")):
                raise ProviderError(
                    f"yahoo: {what} for {symbol}: unknown symbol or no data in the window ({kind}); "
                    "check the symbol in the universe file", provider=PROVIDER, symbol=symbol, status=status or 404,
                ) from None
            raise ProviderError(
                f"yahoo: {what} for {symbol} could not be read ({kind}: {error}); Yahoo may have changed its "
                "payload; try again later or pin yfinance", provider=PROVIDER, symbol=symbol,
            ) from None


def _history_or_empty(ticker, **kwargs) -> pd.DataFrame:
    """A known symbol with no prices in the window is an empty history; an unknown one still raises (HTTP 404)."""
    try:
        return ticker.history(**kwargs)
    except Exception as error:
        if type(error).__name__ == "YFPricesMissingError":
            return pd.DataFrame()
        raise


def history_frame(symbol: str, history: pd.DataFrame) -> pl.DataFrame:
    """yfinance's history (exchange-local index; Open, High, Low, Close, Volume) as BAR_SCHEMA; Yahoo has no VWAP."""
    if history is None or history.empty:
        return pl.DataFrame(schema=BAR_SCHEMA)
    index = history.index.tz_convert("UTC") if history.index.tz is not None else history.index.tz_localize("UTC")
    return pl.DataFrame({
        "symbol": symbol,
        "bar_ts": pl.Series(index.as_unit("us").asi8, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "open_px": history["Open"].to_numpy(), "high_px": history["High"].to_numpy(),
        "low_px": history["Low"].to_numpy(), "close_px": history["Close"].to_numpy(),
        "volume_qty": history["Volume"].fillna(0).astype("int64").to_numpy(),
        "vwap_px": pl.Series([None] * len(history), dtype=pl.Float64),
        "trade_count": pl.Series([None] * len(history), dtype=pl.Int64),
    }).select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items()).drop_nulls("close_px")


def snake_case(name: str) -> str:
    """Yahoo's `TotalRevenue` as `total_revenue`, the naming every Quarry column follows."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _info(ticker) -> dict:
    info = ticker.get_info() or {}
    return info if len(info) > 1 else {}  # yfinance answers an unknown symbol with {'trailingPegRatio': None}


def _company_info(ticker, symbol: str) -> list[dict]:
    info = _info(ticker)
    if not info:
        return []
    return [{"symbol": symbol, "short_name": info.get("shortName"), "sector": info.get("sector"),
             "industry": info.get("industry"), "country": info.get("country"), "exchange": info.get("exchange"),
             "currency": info.get("currency"), "website": info.get("website"),
             "employee_count": info.get("fullTimeEmployees")}]


def _key_statistics(ticker, symbol: str) -> list[dict]:
    info = _info(ticker)
    if not info:
        return []
    return [{"symbol": symbol, "market_cap_usd": info.get("marketCap"),
             "enterprise_value_usd": info.get("enterpriseValue"),
             "trailing_pe": info.get("trailingPE"), "forward_pe": info.get("forwardPE"),
             "price_to_book": info.get("priceToBook"), "beta": info.get("beta"),
             "dividend_yield_pct": info.get("dividendYield"), "profit_margin_pct": info.get("profitMargins"),
             "shares_outstanding_qty": info.get("sharesOutstanding"), "float_shares_qty": info.get("floatShares")}]


def _company_officers(ticker, symbol: str) -> list[dict]:
    info = _info(ticker)
    if not info:
        return []
    return [{"symbol": symbol, "officer_name": officer.get("name"), "title": officer.get("title"),
             "age": officer.get("age"), "total_pay_usd": officer.get("totalPay"), "fiscal_year": officer.get("fiscalYear")}
            for officer in info.get("companyOfficers") or []] or [{"symbol": symbol}]


def _institutional_holders(ticker, symbol: str) -> list[dict]:
    holders = ticker.get_institutional_holders()
    if holders is None or holders.empty:
        return []
    return [{"symbol": symbol, "holder": row.get("Holder"),
             "report_date": row["Date Reported"].date() if pd.notna(row.get("Date Reported")) else None,
             "shares_qty": int(row["Shares"]) if pd.notna(row.get("Shares")) else None,
             "market_value_usd": float(row["Value"]) if pd.notna(row.get("Value")) else None,
             "held_pct": float(row["pctHeld"]) if pd.notna(row.get("pctHeld")) else None}
            for row in holders.to_dict("records")]


def _financial_statements(ticker, symbol: str) -> list[dict]:
    rows = []
    for statement, method in STATEMENTS.items():
        table = getattr(ticker, method)(freq="quarterly")
        if table is None or table.empty:
            continue
        for line_item, values in table.iterrows():
            for period, value in values.items():
                rows.append({"symbol": symbol, "statement": statement, "period_end_date": pd.Timestamp(period).date(),
                             "line_item": snake_case(str(line_item)), "value": float(value) if pd.notna(value) else None})
    return rows


_DATASETS = {
    "company_info": _company_info, "key_statistics": _key_statistics, "company_officers": _company_officers,
    "institutional_holders": _institutional_holders, "financial_statements": _financial_statements,
}
