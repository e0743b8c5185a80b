"""A contract failure's sample names the failing row by the asset's grain key, not by Pandera's row index."""

import json
from datetime import date

import polars as pl

from assets import default_graph
from quality.audit import audit


def test_a_contract_failure_sample_carries_the_rows_grain_key():
    rows = [("KO", date(2025, 3, d), 10.0, 11.0, 9.0, 10.5, 100, 10.2, 7, f"2025-03-0{d}") for d in (3, 4)]
    staged = pl.DataFrame(
        rows, orient="row",
        schema={"symbol": pl.String, "session_date": pl.Date, "open_px": pl.Float64, "high_px": pl.Float64,
                "low_px": pl.Float64, "close_px": pl.Float64, "volume_qty": pl.Int64, "vwap_px": pl.Float64,
                "bar_count": pl.Int64, "partition_key": pl.String},
    ).with_columns(close_px=pl.when(pl.col("session_date") == date(2025, 3, 4)).then(-1.0).otherwise(pl.col("close_px")))
    results = audit(default_graph()["bars_daily"], staged, ["2025-03-03", "2025-03-04"])
    contract = results.filter(pl.col("check_name").str.starts_with("contract"))
    assert contract.filter(pl.col("partition_key") == "2025-03-03")["passed"].item()
    failed = contract.filter(pl.col("partition_key") == "2025-03-04").row(0, named=True)
    assert not failed["passed"]
    sample = json.loads(failed["sample"])
    assert {"symbol": "KO", "session_date": "2025-03-04"}.items() <= sample[0].items() and "index" not in sample[0]
    assert any(s["column"] == "close_px" for s in sample)
