"""Audit on small hand-built frames: contract and check failures, their severity, and the partition each is charged to."""

from __future__ import annotations

import json

import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.model import Asset, Check
from quality.audit import audit, contract_columns, failed_checks_by_partition

KEYS = ["2025-03-03", "2025-03-04", "2025-03-05"]


class Prices(pa.DataFrameModel):
    """A tiny contract: a symbol and a positive price; one row per symbol and day is the asset's grain, not the contract's."""

    symbol: str = pa.Field()
    day: str = pa.Field()
    price_px: float = pa.Field(gt=0)

    class Config:
        strict = True


def negative_prices(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose price is below zero (the error check of these tests)."""
    return frame.filter(pl.col("price_px") < 0)


def large_prices(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose price is above 1000 (the warning check of these tests)."""
    return frame.filter(pl.col("price_px") > 1000)


def _asset(contract: type | str | None = Prices, checks: tuple[Check, ...] = ()) -> Asset:
    def prices() -> pl.DataFrame:
        """One row per symbol and day: a price."""
        return pl.DataFrame()

    return Asset(name="prices", description="One row per symbol and day: a price.", transform=prices,
                 partitions="daily", contract=contract, checks=checks, grain=("symbol", "day"), time_column="day")


def _staged(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    """Rows (symbol, day, price) with their partition key: the day itself."""
    frame = pl.DataFrame(rows, schema={"symbol": pl.String, "day": pl.String, "price_px": pl.Float64}, orient="row")
    return frame.with_columns(partition_key=pl.col("day"))


def _by(results: pl.DataFrame, check_name: str) -> dict[str, dict]:
    return {row["partition_key"]: row for row in results.filter(pl.col("check_name") == check_name).iter_rows(named=True)}


def test_a_passing_frame_passes_every_check_in_every_partition():
    checks = (Check("negative_prices", "error", negative_prices), Check("large_prices", "warn", large_prices))
    staged = _staged([("KO", day, 60.0) for day in KEYS] + [("PEP", day, 170.0) for day in KEYS])

    results = audit(_asset(checks=checks), staged, KEYS)

    assert results.height == len(KEYS) * 3  # the contract and two checks, per partition
    assert results["passed"].all() and (results["failing_rows"] == 0).all() and results["sample"].is_null().all()
    assert set(results["check_name"]) == {"contract:Prices", "negative_prices", "large_prices"}
    assert failed_checks_by_partition(results) == {}


def test_a_contract_failure_is_charged_to_its_partition_and_names_the_row_by_its_grain():
    staged = _staged([("KO", KEYS[0], 60.0), ("KO", KEYS[1], -1.0), ("PEP", KEYS[1], 0.0), ("KO", KEYS[2], 61.0)])

    results = audit(_asset(), staged, KEYS)

    contract = _by(results, "contract:Prices")
    assert [contract[k]["passed"] for k in KEYS] == [True, False, True]
    failed = contract[KEYS[1]]
    assert failed["severity"] == "error" and failed["failing_rows"] == 2 and "price_px" in failed["message"]
    assert {(s["symbol"], s["day"]) for s in json.loads(failed["sample"])} == {("KO", KEYS[1]), ("PEP", KEYS[1])}
    assert failed_checks_by_partition(results) == {KEYS[1]: ["contract:Prices"]}


def test_a_duplicate_grain_key_fails_the_contract_of_its_partition_only():
    """The contract declares no uniqueness: the asset's grain supplies it at audit."""
    staged = _staged([("KO", KEYS[0], 60.0), ("KO", KEYS[0], 60.5), ("KO", KEYS[2], 61.0)])

    results = audit(_asset(), staged, KEYS)

    assert failed_checks_by_partition(results) == {KEYS[0]: ["contract:Prices"]}


def test_a_missing_column_fails_the_contract_of_every_partition():
    staged = _staged([("KO", day, 60.0) for day in KEYS]).drop("price_px")

    results = audit(_asset(), staged, KEYS)

    assert failed_checks_by_partition(results) == {key: ["contract:Prices"] for key in KEYS}


def test_only_error_checks_quarantine_a_partition_and_warnings_are_still_reported():
    checks = (Check("negative_prices", "error", negative_prices),
              Check("large_prices", "warn", large_prices, "price above 1000"))
    staged = _staged([("KO", KEYS[0], -5.0), ("KO", KEYS[1], 5000.0), ("KO", KEYS[2], 60.0)])

    results = audit(_asset(contract=None, checks=checks), staged, KEYS)

    negative, large = _by(results, "negative_prices"), _by(results, "large_prices")
    assert [negative[k]["passed"] for k in KEYS] == [False, True, True]
    assert [large[k]["passed"] for k in KEYS] == [True, False, True]
    assert negative[KEYS[0]]["severity"] == "error" and large[KEYS[1]]["severity"] == "warn"
    assert large[KEYS[1]]["message"] == "price above 1000" and large[KEYS[1]]["failing_rows"] == 1
    assert large[KEYS[0]]["message"] == ""  # the description is shown only where the check failed
    assert json.loads(large[KEYS[1]]["sample"]) == [{"symbol": "KO", "day": KEYS[1], "price_px": 5000.0,
                                                     "partition_key": KEYS[1]}]
    assert failed_checks_by_partition(results) == {KEYS[0]: ["negative_prices"]}
    # with no contract declared, the audit says so and blocks nothing
    assert set(_by(results, "contract")) == set(KEYS) and _by(results, "contract")[KEYS[0]]["passed"]


def test_a_check_named_by_string_is_imported_when_audited():
    named = Check("negative_prices", "error", f"{__name__}:negative_prices")
    staged = _staged([("KO", KEYS[0], -5.0), ("KO", KEYS[1], 5.0)])

    results = audit(_asset(contract="tests.quality.test_audit:Prices", checks=(named,)), staged, KEYS[:2])

    # the contract (price > 0) and the check, both resolved from their names, fail the same row
    assert failed_checks_by_partition(results) == {KEYS[0]: ["contract:Prices", "negative_prices"]}


def test_contract_columns_are_the_declared_columns_with_their_dtypes():
    assert contract_columns(_asset()) == (("symbol", "String", False), ("day", "String", False),
                                          ("price_px", "Float64", False))
    assert contract_columns(_asset(contract=None)) == ()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.floats(-10, 10, allow_nan=False)), max_size=30))
def test_failing_rows_are_counted_in_the_partition_they_belong_to(rows):
    staged = pl.DataFrame(rows, schema={"partition_key": pl.String, "price_px": pl.Float64}, orient="row")
    expected = {key: sum(1 for k, price in rows if k == key and price < 0) for key in KEYS}

    results = audit(_asset(contract=None, checks=(Check("negative_prices", "error", negative_prices),)), staged, KEYS)

    counted = {key: row["failing_rows"] for key, row in _by(results, "negative_prices").items()}
    assert counted == expected
    assert set(failed_checks_by_partition(results)) == {key for key, n in expected.items() if n}


@pytest.mark.parametrize("severity", ["error", "warn"])
def test_every_partition_asked_for_gets_a_row_even_without_data(severity):
    results = audit(_asset(contract=None, checks=(Check("negative_prices", severity, negative_prices),)),
                    _staged([]), KEYS)

    assert _by(results, "negative_prices").keys() == set(KEYS)
    assert results["passed"].all()
