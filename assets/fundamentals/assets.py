"""The symbol universe and company fundamentals (profile, statistics, statements, holders, officers) as assets."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from assets.model import Check, asset
from assets.sources.base import SourceError
from assets.sources.fundamentals_schema import FUNDAMENTAL_SCHEMAS
from assets.sources.universe_file import UNIVERSE_SCHEMA, universe_of


#: Where this domain's contracts and checks live; named by string and imported only when a build audits.
CONTRACTS = "quality.contracts"
CHECKS = "quality.checks"


def fetch_universe(source, window) -> pl.DataFrame:
    return universe_of(source)


def fetch_fundamentals(dataset: str):
    """The fetch for one dataset: every symbol of the source's universe, from its fundamentals endpoint."""

    def fetch(source, window) -> pl.DataFrame:
        fetcher = getattr(source, "fetch_fundamentals", None)
        if fetcher is None:
            raise SourceError(f"{source.name}: has no fundamentals; materialize {dataset} with QUARRY_SOURCE=yahoo "
                              "or sample")
        return fetcher(dataset, source.symbols())

    fetch.__qualname__ = f"fetch_fundamentals[{dataset}]"
    return fetch


FUNDAMENTALS_CHECKS = (
    Check("unknown_symbols", "warn", f"{CHECKS}:unknown_symbols", "the provider does not know these symbols"),
    Check("missing_fields", "warn", f"{CHECKS}:missing_fields", "the provider stopped sending these fields"),
)


def _as_schema(fetched: pl.DataFrame, dataset: str) -> pl.DataFrame:
    return fetched.select(pl.col(name).cast(dtype) for name, dtype in FUNDAMENTAL_SCHEMAS[dataset].items())


@asset(contract=CONTRACTS + ":Universe", grain=("symbol", "active_from"), tags=("daily", "source", "reference"), fetch=fetch_universe)
def universe(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol and active period (null ends are open): which symbols the desk followed when."""
    return fetched.select(pl.col(name).cast(dtype) for name, dtype in UNIVERSE_SCHEMA.items()).unique(
        ["symbol", "active_from"], keep="last", maintain_order=True
    )


@asset(contract=CONTRACTS + ":CompanyInfo", checks=FUNDAMENTALS_CHECKS, grain=("symbol",), tags=("weekly", "fundamentals", "source"),
       fetch=fetch_fundamentals("company_info"), refresh_every=timedelta(days=7))
def company_info(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol: name, sector, industry, country, exchange, currency and headcount as the provider lists them."""
    return _as_schema(fetched, "company_info")


@asset(contract=CONTRACTS + ":KeyStatistics", checks=FUNDAMENTALS_CHECKS, grain=("symbol",), tags=("weekly", "fundamentals", "source"),
       fetch=fetch_fundamentals("key_statistics"), refresh_every=timedelta(days=7))
def key_statistics(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol: market cap, valuation ratios, beta, yield, margin and share counts; refreshed weekly."""
    return _as_schema(fetched, "key_statistics")


@asset(contract=CONTRACTS + ":FinancialStatements", checks=FUNDAMENTALS_CHECKS, grain=("symbol", "statement", "period_end_date", "line_item"),
       time_column="period_end_date", tags=("quarterly", "fundamentals", "source"),
       fetch=fetch_fundamentals("financial_statements"), refresh_every=timedelta(days=91))
def financial_statements(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol, statement (income, balance, cashflow), quarter end and line item; refreshed quarterly."""
    return _as_schema(fetched, "financial_statements")


@asset(contract=CONTRACTS + ":InstitutionalHolders", checks=FUNDAMENTALS_CHECKS, grain=("symbol", "holder"),
       tags=("monthly", "fundamentals", "source"), fetch=fetch_fundamentals("institutional_holders"),
       refresh_every=timedelta(days=30))
def institutional_holders(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol and institutional holder: shares, value and share of the float at the report date; monthly."""
    return _as_schema(fetched, "institutional_holders")


@asset(contract=CONTRACTS + ":CompanyOfficers", checks=FUNDAMENTALS_CHECKS, grain=("symbol", "officer_name", "title"),
       tags=("monthly", "fundamentals", "source"), fetch=fetch_fundamentals("company_officers"),
       refresh_every=timedelta(days=30))
def company_officers(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol, officer and title: age and total pay in the latest fiscal year; monthly."""
    return _as_schema(fetched, "company_officers")


#: The assets this module adds to the default graph.
FUNDAMENTALS_ASSETS = (universe, company_info, key_statistics, financial_statements, institutional_holders,
                       company_officers)
