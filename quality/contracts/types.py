"""Column types the contracts of several domains share."""

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")
