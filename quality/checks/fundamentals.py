"""Cross-row checks of the fundamentals domain on the `issue` column the provider's rows carry."""

from __future__ import annotations

import polars as pl

#: The issues a fundamentals row can carry, as assets/sources/fundamentals_schema.py writes them.
UNKNOWN_SYMBOL = "unknown symbol"
MISSING_FIELDS_PREFIX = "missing"


def unknown_symbols(frame: pl.DataFrame) -> pl.DataFrame:
    """Symbols the provider did not know: a placeholder row each."""
    return frame.filter(pl.col("issue") == UNKNOWN_SYMBOL).select("partition_key", "symbol", "issue")


def missing_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows missing a field the provider used to send: it may have changed its API."""
    return frame.filter(pl.col("issue").str.starts_with(MISSING_FIELDS_PREFIX)).select("partition_key", "symbol", "issue")
