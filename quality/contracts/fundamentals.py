"""Pandera contracts (Polars backend) for the universe and the fundamentals assets."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

ISSUE = {"nullable": True}


def _periods_ordered(data: PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(
        pl.col("active_from").is_null() | pl.col("active_to").is_null() | (pl.col("active_from") <= pl.col("active_to"))
    )


class Universe(pa.DataFrameModel):
    """One row per symbol and active period; open ends are null."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    sector: str = pa.Field()
    active_from: pl.Date = pa.Field(nullable=True)
    active_to: pl.Date = pa.Field(nullable=True)

    class Config:
        strict = True

    @pa.dataframe_check(error="a period starts before it ends")
    def periods_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return _periods_ordered(data)


class CompanyInfo(pa.DataFrameModel):
    """A company's profile; fields the provider did not send are null and named in `issue`."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    short_name: str = pa.Field(nullable=True)
    sector: str = pa.Field(nullable=True)
    industry: str = pa.Field(nullable=True)
    country: str = pa.Field(nullable=True)
    exchange: str = pa.Field(nullable=True)
    currency: str = pa.Field(nullable=True)
    website: str = pa.Field(nullable=True)
    employee_count: int = pa.Field(nullable=True, ge=0)
    issue: str = pa.Field(**ISSUE)

    class Config:
        strict = True


class KeyStatistics(pa.DataFrameModel):
    """Valuation and share statistics per symbol."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    market_cap_usd: float = pa.Field(nullable=True, ge=0)
    enterprise_value_usd: float = pa.Field(nullable=True)
    trailing_pe: float = pa.Field(nullable=True)
    forward_pe: float = pa.Field(nullable=True)
    price_to_book: float = pa.Field(nullable=True)
    beta: float = pa.Field(nullable=True)
    dividend_yield_pct: float = pa.Field(nullable=True, ge=0)
    profit_margin_pct: float = pa.Field(nullable=True)
    shares_outstanding_qty: int = pa.Field(nullable=True, ge=0)
    float_shares_qty: int = pa.Field(nullable=True, ge=0)
    issue: str = pa.Field(**ISSUE)

    class Config:
        strict = True


class FinancialStatements(pa.DataFrameModel):
    """Quarterly statement line items in long form; `unit` says what `value` counts (dollars, dollars per share, shares or a ratio)."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    statement: str = pa.Field(nullable=True, isin=["income", "balance", "cashflow"])
    period_end_date: pl.Date = pa.Field(nullable=True)
    line_item: str = pa.Field(nullable=True)
    value: float = pa.Field(nullable=True)
    issue: str = pa.Field(**ISSUE)
    # Last, where catalog step 7 added it to stored tables: a partition's data version hashes its columns in order.
    unit: str = pa.Field(nullable=True, isin=["usd", "usd_per_share", "shares", "ratio"])

    class Config:
        strict = True

    @pa.dataframe_check(error="a line item has a unit, and a row without a line item has none")
    def line_items_have_units(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("line_item").is_null() == pl.col("unit").is_null())


class InstitutionalHolders(pa.DataFrameModel):
    """The largest institutional holders per symbol, as of their report date."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    holder: str = pa.Field(nullable=True)
    report_date: pl.Date = pa.Field(nullable=True)
    shares_qty: int = pa.Field(nullable=True, ge=0)
    market_value_usd: float = pa.Field(nullable=True, ge=0)
    held_pct: float = pa.Field(nullable=True, ge=0, le=1)
    issue: str = pa.Field(**ISSUE)

    class Config:
        strict = True


class CompanyOfficers(pa.DataFrameModel):
    """Named officers per symbol with title and pay."""

    symbol: str = pa.Field(str_length={"min_value": 1, "max_value": 16})
    officer_name: str = pa.Field(nullable=True)
    title: str = pa.Field(nullable=True)
    age: int = pa.Field(nullable=True, ge=0)
    total_pay_usd: float = pa.Field(nullable=True, ge=0)
    fiscal_year: int = pa.Field(nullable=True)
    issue: str = pa.Field(**ISSUE)

    class Config:
        strict = True
