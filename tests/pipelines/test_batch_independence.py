"""Batch independence: however a range is split into runs and batches, every (asset, partition) gets the same data version.

The default graph is built once in one run and one batch per asset; hypothesis then draws
run boundaries and batch sizes, builds the same window that way into a fresh warehouse and
compares the published data version of every (asset, partition), the ledger-fed asset aside.
The pair scan and z-score windows are shortened so three months of the sample market hold
scans, entries, exits, stops and pairs leaving the candidates.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets import default_graph
from assets.graph import AssetGraph
from assets.sources import SampleSource
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.resources import LedgerOnUse
from pipelines.settings import Settings
from warehouse import Warehouse

pytestmark = pytest.mark.slow

START, END = date(2025, 1, 2), date(2025, 3, 31)
LEDGER_FED = {"live_performance"}
#: Assets whose values carry recursions or rolling windows over a look-back of sessions.
LOOK_BACK_MATHS = {"indicators_hourly", "indicators_daily", "market_regime"}
SESSIONS = RunWindow.between(START, END).sessions["session_date"].to_list()
_counter = itertools.count()


def short_window_graph() -> AssetGraph:
    """The default graph with scan and z-score windows a three-month window can fill."""
    shorter = {
        "pair_candidates": {"lookback_sessions": 25, "min_obs": 120},
        "pair_spreads": {"window": 60, "lookback_sessions": 12},
    }
    assets = []
    for asset in default_graph():
        if asset.name in shorter:
            lookback = {dep: min(n, shorter[asset.name]["lookback_sessions"]) for dep, n in asset.lookback.items()}
            asset = dataclasses.replace(asset, params={**asset.params, **shorter[asset.name]}, lookback=lookback)
        assets.append(asset)
    return AssetGraph.of(assets)


def build(warehouse: Warehouse, graph: AssetGraph, *, end: date, batch_partitions: int, run_id: str):
    submit, shutdown = thread_submitter(2)
    try:
        return run_materialization(
            graph, warehouse, SampleSource(), selection=None, window=RunWindow.between(START, end),
            run_id=run_id, submit=submit, batch_partitions=batch_partitions,
            resources={"ledger": LedgerOnUse(Settings().ledger)},
        )
    finally:
        shutdown()


def data_versions(warehouse: Warehouse, leave_out: set[str] = LEDGER_FED) -> dict[tuple[str, str], str]:
    rows = warehouse.current_versions().filter(~pl.col("asset").is_in(sorted(leave_out)))
    return {(a, p): v for a, p, v in rows.select("asset", "partition_key", "data_version").iter_rows()}


@pytest.fixture(scope="module")
def graph() -> AssetGraph:
    return short_window_graph()


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, graph):
    root = tmp_path_factory.mktemp("one-run")
    warehouse = Warehouse.open(f"sqlite:{root}/catalog.sqlite", f"{root}/lake/")
    try:
        summary = build(warehouse, graph, end=END, batch_partitions=10_000, run_id="one-run")
        assert summary.exit_code == 0, summary.totals
        signals = warehouse.read("pair_signals")
        yield data_versions(warehouse), set(signals["signal"])
    finally:
        warehouse.close()


def test_the_short_window_exercises_the_strategy(one_run):
    _, signals = one_run
    assert {"enter_long", "enter_short", "exit", "dropped"} <= signals


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ends=st.lists(st.sampled_from(SESSIONS[25:-1]), max_size=2, unique=True).map(sorted),
    batch_partitions=st.sampled_from([3, 7, 40]),
)
def test_any_runs_and_batches_publish_the_data_of_one_run(one_run, graph, tmp_path_factory, ends, batch_partitions):
    expected = one_run[0]
    root = tmp_path_factory.mktemp(f"split-{next(_counter)}")
    warehouse = Warehouse.open(f"sqlite:{root}/catalog.sqlite", f"{root}/lake/")
    try:
        for k, end in enumerate([*ends, END]):
            summary = build(warehouse, graph, end=end, batch_partitions=batch_partitions, run_id=f"run-{k}")
            assert summary.exit_code == 0, summary.totals
        got = data_versions(warehouse)
    finally:
        warehouse.close()
    assert got.keys() == expected.keys()
    differing = sorted({asset for key, version in got.items() if expected[key] != version for asset in [key[0]]})
    assert not differing, f"runs ending {ends}, batches of {batch_partitions}: different data in {differing}"


def test_indicators_and_regime_do_not_depend_on_batches(one_run, graph, tmp_path):
    """Two partitions a batch: every partition but the first of each batch reads a shorter history than in one batch.

    Six weeks are enough: the recursions' look-back spans the whole of them.
    """
    end = SESSIONS[29]
    warehouse = Warehouse.open(f"sqlite:{tmp_path}/catalog.sqlite", f"{tmp_path}/lake/")
    try:
        submit, shutdown = thread_submitter(2)
        try:
            run_materialization(
                graph, warehouse, SampleSource(), selection="+indicators_hourly +indicators_daily +market_regime",
                window=RunWindow.between(START, end), run_id="batches-of-2", submit=submit, batch_partitions=2,
            )
        finally:
            shutdown()
        got = {key: v for key, v in data_versions(warehouse).items() if key[0] in LOOK_BACK_MATHS}
    finally:
        warehouse.close()
    expected = {key: v for key, v in one_run[0].items() if key[0] in LOOK_BACK_MATHS and key[1] <= end.isoformat()}
    assert len(expected) == 3 * 30
    differing = sorted({key[0] for key in expected if got.get(key) != expected[key]})
    assert not differing, f"batches of 2 publish other data in {differing}"
