"""Audit staged data: the contract and the declared checks, attributed to the partition each failure is in."""

from __future__ import annotations

from functools import cache

import polars as pl

from assets.model import Asset

SAMPLE_ROWS = 5
RESULT_SCHEMA = {
    "partition_key": pl.String,
    "check_name": pl.String,
    "severity": pl.String,
    "passed": pl.Boolean,
    "failing_rows": pl.Int64,
    "sample": pl.String,
    "message": pl.String,
}


def audit(asset: Asset, staged: pl.DataFrame, partition_keys: list[str]) -> pl.DataFrame:
    """One row per partition and check (contract checks included): passed or not, with a sample of failures."""
    results = [_contract_results(asset, staged, partition_keys)]
    for check in asset.checks:
        failures = check.failures(staged)
        results.append(_results_for(check.name, check.severity, failures, partition_keys, check.description))
    return pl.concat(results, how="vertical")


def contract_columns(asset: Asset) -> tuple[tuple[str, str, bool], ...]:
    """(name, Polars dtype, nullable) of each column the asset's contract promises, in declaration order."""
    return _schema_columns(asset.contract_model) if asset.contract is not None else ()


@cache
def _schema_columns(model: type) -> tuple[tuple[str, str, bool], ...]:
    return tuple((name, str(column.dtype), bool(column.nullable)) for name, column in model.to_schema().columns.items())


def contract_schema(asset: Asset):
    """The asset's contract, unique on the asset's grain: the grain is declared once, on the asset, and enforced here."""
    return _unique_on(asset.contract_model, asset.grain)


@cache
def _unique_on(model: type, grain: tuple[str, ...]):
    import copy

    schema = copy.deepcopy(model.to_schema())
    schema.unique = list(grain) or None
    return schema


def failed_checks_by_partition(results: pl.DataFrame) -> dict[str, list[str]]:
    """The error-severity checks each failing partition failed: those partitions are quarantined."""
    failing = results.filter(~pl.col("passed") & (pl.col("severity") == "error"))
    return {key: sorted(set(group["check_name"].to_list())) for (key,), group in failing.group_by("partition_key")}


def _contract_results(asset: Asset, staged: pl.DataFrame, partition_keys: list[str]) -> pl.DataFrame:
    name = f"contract:{asset.contract_name}" if asset.contract is not None else "contract"
    if asset.contract is None:
        return _results_for(name, "error", staged.clear(), partition_keys, "no contract declared")
    import pandera.errors  # only a build validates; planning never loads pandera

    try:
        contract_schema(asset).validate(staged.drop("partition_key"), lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return _contract_failures(name, errors.failure_cases, staged, partition_keys, asset.grain)
    return _results_for(name, "error", staged.clear(), partition_keys, "")


def _contract_failures(
    name: str, cases: pl.DataFrame, staged: pl.DataFrame, partition_keys: list[str], grain: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Map Pandera's failure cases back to partitions; a failure without a row (a missing column) fails every partition.

    A sample names the failing row by the asset's grain key (symbol, bar_ts, …), not by
    Pandera's positional index, which means nothing once the batch is gone.
    """
    keys = staged["partition_key"]
    grain_columns = [c for c in grain if c in staged.columns]
    cases = cases.with_columns(
        check_label=pl.concat_str(pl.col("column").fill_null(""), pl.lit(": "), pl.col("check").fill_null("")),
        partition_key=pl.col("index").map_elements(lambda i: keys[i], return_dtype=pl.String)
        if cases["index"].null_count() < cases.height
        else pl.lit(None, pl.String),
    )
    rowless = cases.filter(pl.col("partition_key").is_null())
    if rowless.height:
        cases = pl.concat(
            [
                cases.filter(pl.col("partition_key").is_not_null()),
                rowless.drop("partition_key").join(pl.DataFrame({"partition_key": partition_keys}), how="cross"),
            ],
            how="diagonal_relaxed",
        )
    rows = []
    failing = {}
    for (key,), group in cases.group_by("partition_key"):
        failing[key] = group
    for key in partition_keys:
        group = failing.get(key)
        if group is None:
            rows.append((key, name, "error", True, 0, None, ""))
            continue
        labels = sorted(set(group["check_label"].to_list()))
        sample = _keyed_sample(group.head(SAMPLE_ROWS), staged, grain_columns).write_json()
        rows.append((key, name, "error", False, group["index"].n_unique(), sample, "; ".join(labels)))
    return pl.DataFrame(rows, schema=RESULT_SCHEMA, orient="row")


def _keyed_sample(cases: pl.DataFrame, staged: pl.DataFrame, grain: list[str]) -> pl.DataFrame:
    """Failure cases with the grain key of the row each one is about (null for a failure without a row)."""
    cases = cases.select("column", "check", "failure_case", pl.col("index").cast(pl.Int64))
    if not grain:
        return cases
    keyed = staged.select(grain).with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
    return cases.join(keyed, on="index", how="left").select(*grain, "column", "check", "failure_case")


def _results_for(
    check_name: str, severity: str, failures: pl.DataFrame, partition_keys: list[str], description: str
) -> pl.DataFrame:
    counts: dict[str, int] = {}
    samples: dict[str, str] = {}
    if failures.height:
        for (key,), group in failures.group_by("partition_key"):
            counts[key] = group.height
            samples[key] = group.head(SAMPLE_ROWS).write_json()
    return pl.DataFrame(
        [
            (
                key,
                check_name,
                severity,
                key not in counts,
                counts.get(key, 0),
                samples.get(key),
                description if key in counts else "",
            )
            for key in partition_keys
        ],
        schema=RESULT_SCHEMA,
        orient="row",
    )
