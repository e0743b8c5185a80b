"""Ad-hoc backtests over chosen parameters, pinned to the asset versions they read, reproducible run to run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import polars as pl

from assets.backtests.assets import simulate_book
from assets.backtests.performance import as_published, pair_performance, strategy_performance
from assets.backtests.simulation import BacktestParams
from assets.pairs.spreads import SignalParams, pair_signals
from assets.calendar import HOURLY_BARS_PER_YEAR, session_of
from warehouse import LAKE, Warehouse, WarehouseError
from warehouse.versions import data_version

INPUTS = ("pair_spreads", "pair_candidates", "bars_hourly")


@dataclass(frozen=True)
class BacktestRun:
    """What a backtest read (asset → data fingerprint and partitions) and what it found."""

    versions: dict[str, dict]
    strategy: pl.DataFrame
    pairs: pl.DataFrame
    trades: pl.DataFrame

    @property
    def result_digest(self) -> str:
        """A content hash of the results: two runs on the same inputs give the same digest."""
        return data_version(pl.concat([self.strategy.with_columns(pl.lit("*").alias("pair_id")), self.pairs], how="diagonal_relaxed"))


def pinned_versions(warehouse: Warehouse, at: datetime | None) -> pl.DataFrame:
    """The published versions of the backtest's inputs, now or as the catalog stood at `at`."""
    clause = "" if at is None else " AT (TIMESTAMP => ?::TIMESTAMPTZ)"
    sql = (
        f"SELECT asset, partition_key, version_id, data_version FROM {LAKE}.quarry.versions{clause} "
        "WHERE status = 'published' AND list_contains(?, asset)"
    )
    try:
        return warehouse.query(sql, ([at] if at is not None else []) + [list(INPUTS)])
    except duckdb.InvalidInputException as error:
        raise WarehouseError(f"no published version as of {at}: the warehouse has no snapshot that old ({error})") from None


def run_pinned_backtest(
    warehouse: Warehouse,
    *,
    start: date,
    end: date,
    signal_params: SignalParams,
    backtest_params: BacktestParams,
    pairs: list[str] | None = None,
    at: datetime | None = None,
) -> BacktestRun:
    """Recompute signals from published spreads with `signal_params` and simulate them over [start, end].

    Signals, simulation and metrics are the backtests domain's own (`simulate_book`, the published
    metrics), so a run with the assets' parameters reproduces the published tables over its window.
    """
    versions = pinned_versions(warehouse, at)
    read = {}
    for name in INPUTS:
        mine = versions.filter(pl.col("asset") == name)
        if mine.is_empty():
            raise WarehouseError(f"{name} has no published version{'' if at is None else f' as of {at}'}: run quarry materialize +strategy_performance")
        read[name] = warehouse.read_as_of(name, at=at) if at is not None else warehouse.read(name)
    in_window = session_of(pl.col("bar_ts")).is_between(start, end)
    spreads = read["pair_spreads"].filter(in_window)
    if pairs:
        known = sorted(set(spreads["pair_id"].unique().to_list()))
        unknown = [p for p in pairs if p not in known]
        if unknown:
            swapped = ["/".join(sorted(p.split("/"))) for p in unknown]
            hint = [f"{p} is written {s}" for p, s in zip(unknown, swapped) if s != p and s in known]
            raise ValueError(
                f"no pair {', '.join(unknown)} in pair_spreads between {start} and {end} "
                f"(a pair id is its two symbols in alphabetical order, e.g. KO/PEP"
                + (f": {'; '.join(hint)}" if hint else "") + f"); known: {', '.join(known) or 'none'}"
            )
        spreads = spreads.filter(pl.col("pair_id").is_in(pairs))
    if spreads.is_empty():
        raise WarehouseError(f"no pair spreads between {start} and {end}" + (f" for {', '.join(pairs)}" if pairs else ""))
    # The window ends at `end` or at the last published session before it, whichever is earlier:
    # a stream that stops there is open at the window's end, not dropped.
    published_through = max(
        (k for k in versions.filter(pl.col("asset") == "pair_spreads")["partition_key"].to_list() if k <= end.isoformat()),
        default=end.isoformat(),
    )
    known_scans = read["pair_candidates"].filter(pl.col("week_end_date") <= end)
    signals = pair_signals(
        spreads, signal_params, through=date.fromisoformat(published_through), candidates=known_scans
    )
    result = simulate_book(signals, read["bars_hourly"].filter(in_window), backtest_params)
    fingerprints = {
        name: {
            "partitions": versions.filter(pl.col("asset") == name).height,
            "data_version": hashlib.sha256(
                "|".join(versions.filter(pl.col("asset") == name).sort("partition_key")["data_version"]).encode()
            ).hexdigest()[:16],
        }
        for name in INPUTS
    }
    return BacktestRun(
        versions=fingerprints,
        strategy=as_published(
            strategy_performance(result.returns, result.trades, backtest_params.initial_capital, HOURLY_BARS_PER_YEAR)
        ),
        pairs=as_published(pair_performance(result.returns, result.trades, HOURLY_BARS_PER_YEAR)),
        trades=result.trades,
    )
