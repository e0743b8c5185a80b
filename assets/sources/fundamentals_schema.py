"""The frames a source returns for each fundamentals dataset, and how a gap in them is recorded."""

from __future__ import annotations

from typing import Literal

import polars as pl

Dataset = Literal["company_info", "key_statistics", "financial_statements", "institutional_holders", "company_officers"]
UNKNOWN_SYMBOL = "unknown symbol"

#: Each dataset's columns; `issue` is null on a complete row, names missing fields, or marks an unknown symbol.
FUNDAMENTAL_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "company_info": {
        "symbol": pl.String, "short_name": pl.String, "sector": pl.String, "industry": pl.String,
        "country": pl.String, "exchange": pl.String, "currency": pl.String, "website": pl.String,
        "employee_count": pl.Int64, "issue": pl.String,
    },
    "key_statistics": {
        "symbol": pl.String, "market_cap_usd": pl.Float64, "enterprise_value_usd": pl.Float64,
        "trailing_pe": pl.Float64, "forward_pe": pl.Float64, "price_to_book": pl.Float64, "beta": pl.Float64,
        "dividend_yield_pct": pl.Float64, "profit_margin_pct": pl.Float64, "shares_outstanding_qty": pl.Int64,
        "float_shares_qty": pl.Int64, "issue": pl.String,
    },
    "financial_statements": {
        "symbol": pl.String, "statement": pl.String, "period_end_date": pl.Date, "line_item": pl.String,
        "value": pl.Float64, "issue": pl.String,
    },
    "institutional_holders": {
        "symbol": pl.String, "holder": pl.String, "report_date": pl.Date, "shares_qty": pl.Int64,
        "market_value_usd": pl.Float64, "held_pct": pl.Float64, "issue": pl.String,
    },
    "company_officers": {
        "symbol": pl.String, "officer_name": pl.String, "title": pl.String, "age": pl.Int64,
        "total_pay_usd": pl.Float64, "fiscal_year": pl.Int64, "issue": pl.String,
    },
}
#: The fields a provider is expected to send for each dataset; a row without one is flagged, not dropped.
EXPECTED_FIELDS: dict[str, tuple[str, ...]] = {
    "company_info": ("short_name", "sector", "industry", "country", "exchange", "currency"),
    "key_statistics": ("market_cap_usd", "trailing_pe", "beta", "shares_outstanding_qty"),
    "financial_statements": ("value",),
    "institutional_holders": ("report_date", "shares_qty", "market_value_usd"),
    "company_officers": ("title",),
}


def fundamentals_frame(dataset: str, rows: list[dict], unknown: list[str]) -> pl.DataFrame:
    """Rows as the dataset's frame, with `issue` naming missing expected fields, plus one row per unknown symbol."""
    schema = FUNDAMENTAL_SCHEMAS[dataset]
    expected = EXPECTED_FIELDS[dataset]
    complete = []
    for row in rows:
        missing = [f for f in expected if row.get(f) is None]
        complete.append({**{c: row.get(c) for c in schema}, "issue": "missing: " + ", ".join(missing) if missing else None})
    complete += [{**{c: None for c in schema}, "symbol": s, "issue": UNKNOWN_SYMBOL} for s in unknown]
    return pl.DataFrame(complete, schema=schema)


def empty_fundamentals(dataset: str) -> pl.DataFrame:
    return pl.DataFrame(schema=FUNDAMENTAL_SCHEMAS[dataset])
