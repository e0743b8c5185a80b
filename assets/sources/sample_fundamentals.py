"""Deterministic offline fundamentals for the sample market, so the fundamentals assets build with no network."""

from __future__ import annotations

import hashlib
from datetime import date

import polars as pl

from assets.sources.fundamentals_schema import fundamentals_frame

QUARTER_ENDS = (date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31))
HOLDERS = ("Vanguard Group Inc", "Blackrock Inc.", "State Street Corporation")
OFFICERS = (("Chief Executive Officer", 58), ("Chief Financial Officer", 52))


def _unit(*parts: object) -> float:
    """A stable number in [0, 1) from its parts: same symbol, same fundamentals, in every process."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample_fundamentals(dataset: str, symbols: list[str], sectors: dict[str, str]) -> pl.DataFrame:
    """The sample market's fundamentals for `dataset`; symbols outside the sample universe are unknown."""
    known = [s for s in symbols if s in sectors]
    unknown = [s for s in symbols if s not in sectors]
    return fundamentals_frame(dataset, [row for s in known for row in _ROWS[dataset](s, sectors[s])], unknown)


def _company_info(symbol: str, sector: str) -> list[dict]:
    return [{
        "symbol": symbol, "short_name": f"{symbol} Sample Corp", "sector": sector, "industry": f"{sector} sample",
        "country": "United States", "exchange": "NYQ" if _unit(symbol, "x") < 0.5 else "NMS", "currency": "USD",
        "website": f"https://{symbol.lower()}.example.com", "employee_count": int(1_000 + 200_000 * _unit(symbol, "e")),
    }]


def _key_statistics(symbol: str, sector: str) -> list[dict]:
    shares = int(5e8 + 1e10 * _unit(symbol, "shares"))
    return [{
        "symbol": symbol, "market_cap_usd": shares * (20 + 300 * _unit(symbol, "px")),
        "enterprise_value_usd": shares * (25 + 300 * _unit(symbol, "ev")), "trailing_pe": 8 + 40 * _unit(symbol, "pe"),
        "forward_pe": 8 + 35 * _unit(symbol, "fpe"), "price_to_book": 0.8 + 12 * _unit(symbol, "pb"),
        "beta": 0.4 + 1.4 * _unit(symbol, "beta"), "dividend_yield_pct": 0.04 * _unit(symbol, "dy"),
        "profit_margin_pct": 0.02 + 0.3 * _unit(symbol, "pm"), "shares_outstanding_qty": shares,
        "float_shares_qty": int(shares * 0.97),
    }]


def _financial_statements(symbol: str, sector: str) -> list[dict]:
    """Dollar amounts, a per-share amount and a share count, as a filer's statements mix them."""
    rows = []
    shares = int(5e8 + 1e10 * _unit(symbol, "shares"))
    for period in QUARTER_ENDS:
        revenue = 1e9 + 2e10 * _unit(symbol, "rev", period)
        net_income = revenue * (0.02 + 0.25 * _unit(symbol, "ni", period))
        items = {
            ("income", "total_revenue"): revenue,
            ("income", "net_income"): net_income,
            ("income", "diluted_eps"): round(net_income / shares, 2),
            ("balance", "ordinary_shares_number"): float(shares),
            ("balance", "total_assets"): revenue * (3 + 4 * _unit(symbol, "ta")),
            ("balance", "total_liabilities"): revenue * (1 + 2 * _unit(symbol, "tl")),
            ("cashflow", "operating_cash_flow"): revenue * (0.05 + 0.3 * _unit(symbol, "ocf", period)),
        }
        rows += [{"symbol": symbol, "statement": statement, "period_end_date": period, "line_item": item, "value": value}
                 for (statement, item), value in items.items()]
    return rows


def _institutional_holders(symbol: str, sector: str) -> list[dict]:
    return [{
        "symbol": symbol, "holder": holder, "report_date": QUARTER_ENDS[-1],
        "shares_qty": int(1e7 + 4e8 * _unit(symbol, holder)), "market_value_usd": 1e9 + 5e10 * _unit(symbol, holder, "v"),
        "held_pct": 0.02 + 0.07 * _unit(symbol, holder, "p"),
    } for holder in HOLDERS]


def _company_officers(symbol: str, sector: str) -> list[dict]:
    return [{
        "symbol": symbol, "officer_name": f"{symbol} Officer {i + 1}", "title": title, "age": age,
        "total_pay_usd": 1e6 + 2e7 * _unit(symbol, title), "fiscal_year": 2024,
    } for i, (title, age) in enumerate(OFFICERS)]


_ROWS = {
    "company_info": _company_info, "key_statistics": _key_statistics,
    "financial_statements": _financial_statements, "institutional_holders": _institutional_holders,
    "company_officers": _company_officers,
}
