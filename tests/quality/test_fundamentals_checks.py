"""The fundamentals checks on rows as the source builds them: unknown symbols and missing fields, each found once."""

from __future__ import annotations

import polars as pl

from assets.sources.fundamentals_schema import fundamentals_frame
from quality.checks import missing_fields, unknown_symbols

PROFILE = {"short_name": "Apple", "sector": "Tech", "industry": "Hardware", "country": "US", "exchange": "NMS",
           "currency": "USD"}


def _company_info() -> pl.DataFrame:
    rows = [{"symbol": "AAPL", **PROFILE}, {"symbol": "MSFT", **PROFILE, "sector": None}]
    return fundamentals_frame("company_info", rows, unknown=["ZZZZ"]).with_columns(partition_key=pl.lit("2025-03-07"))


def test_unknown_symbols_are_the_source_s_placeholder_rows():
    assert unknown_symbols(_company_info())["symbol"].to_list() == ["ZZZZ"]


def test_missing_fields_are_the_rows_lacking_an_expected_field():
    found = missing_fields(_company_info())
    assert found["symbol"].to_list() == ["MSFT"]
    assert found["issue"].to_list() == ["missing: sector"]


def test_a_complete_frame_passes_both():
    complete = fundamentals_frame("company_info", [{"symbol": "AAPL", **PROFILE}], unknown=[]).with_columns(
        partition_key=pl.lit("2025-03-07")
    )
    assert unknown_symbols(complete).is_empty() and missing_fields(complete).is_empty()
