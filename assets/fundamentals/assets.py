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


#: The unit of each statement line item whose value is not an amount of dollars, by Quarry's name
#: for the item (Yahoo's key in snake case); every other item is dollars (the US listings Quarry
#: follows file in dollars). Catalog step v0007 states this mapping as it stood when the `unit`
#: column was added; an item added here needs a catalog step that labels the rows already stored.
LINE_ITEM_UNITS: dict[str, str] = {
    **dict.fromkeys((
        "basic_eps", "diluted_eps", "normalized_basic_eps", "normalized_diluted_eps", "reported_normalized_basic_eps",
        "reported_normalized_diluted_eps", "continuing_and_discontinued_basic_eps",
        "continuing_and_discontinued_diluted_eps", "basic_continuous_operations", "diluted_continuous_operations",
        "basic_discontinuous_operations", "diluted_discontinuous_operations", "basic_extraordinary",
        "diluted_extraordinary", "basic_accounting_change", "diluted_accounting_change", "basic_epsother_gains_losses",
        "diluted_epsother_gains_losses", "tax_loss_carryforward_basic_eps", "tax_loss_carryforward_diluted_eps",
        "dividend_per_share",
    ), "usd_per_share"),
    **dict.fromkeys((
        "basic_average_shares", "diluted_average_shares", "ordinary_shares_number", "preferred_shares_number",
        "share_issued", "treasury_shares_number",
    ), "shares"),
    "tax_rate_for_calcs": "ratio",
}
DOLLARS = "usd"


def line_item_unit(line_item: pl.Expr) -> pl.Expr:
    """The unit of a line item's value: its entry in `LINE_ITEM_UNITS`, else dollars; null for no line item."""
    unit = line_item.replace_strict(LINE_ITEM_UNITS, default=DOLLARS, return_dtype=pl.String)
    return pl.when(line_item.is_not_null()).then(unit)


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
    """One row per symbol, statement (income, balance, cashflow), quarter end and line item, with the unit of its value (usd, usd_per_share, shares or ratio); refreshed quarterly."""
    return _as_schema(fetched, "financial_statements").with_columns(unit=line_item_unit(pl.col("line_item")))


@asset(contract=CONTRACTS + ":InstitutionalHolders", checks=FUNDAMENTALS_CHECKS, grain=("symbol", "holder"),
       tags=("monthly", "fundamentals", "source"), fetch=fetch_fundamentals("institutional_holders"),
       refresh_every=timedelta(days=30))
def institutional_holders(fetched: pl.DataFrame) -> pl.DataFrame:
    """One row per symbol and institutional holder: shares, their market value in dollars and share of the float at the report date; monthly."""
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
