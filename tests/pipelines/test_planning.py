"""Planning on a two-asset graph and a real DuckLake: why each partition is stale (or not), from the catalog alone."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import polars as pl

from assets.graph import AssetGraph
from assets.model import Check, asset
from pipelines.materialize import plan_run
from pipelines.planning import (
    CODE_CHANGED, MISSING, UPSTREAM_CHANGED, UPSTREAM_PENDING, AssetPlan, RunWindow,
)
from tests.conftest import WINDOW_START

WINDOW_END = WINDOW_START + timedelta(days=2)  # Monday to Wednesday: three sessions
WINDOW = RunWindow.between(WINDOW_START, WINDOW_END)
KEYS = WINDOW.partition_keys


@asset(partitions="daily", time_column="session_date", grain=("session_date",), params={"level": 1.0})
def levels(sessions: pl.DataFrame, *, level: float) -> pl.DataFrame:
    """One row per session: a constant level."""
    return sessions.select("session_date", value=pl.lit(level))


@asset(partitions="daily", time_column="session_date", grain=("session_date",))
def doubled(levels: pl.DataFrame) -> pl.DataFrame:
    """One row per session: twice the level."""
    return levels.with_columns(value=pl.col("value") * 2)


def tripled(levels: pl.DataFrame) -> pl.DataFrame:
    """One row per session: three times the level (an edit of `doubled`)."""
    return levels.with_columns(value=pl.col("value") * 3)


GRAPH = AssetGraph.of([levels, doubled])


def _with(graph: AssetGraph, name: str, **changes) -> AssetGraph:
    return AssetGraph.of([dataclasses.replace(a, **changes) if a.name == name else a for a in graph.in_order()])


def _plans(lake, graph: AssetGraph, selection: str | None = None) -> dict[str, AssetPlan]:
    return {p.asset: p for p in plan_run(graph, lake.warehouse, selection, WINDOW)}


def _reasons(plan: AssetPlan) -> dict[str, str]:
    return {w.partition_key: w.reason for w in plan.to_build}


def _build(lake, graph: AssetGraph, selection: str | None = None, run_id: str = "run"):
    summary = lake.materialize(selection, graph=graph, start=WINDOW_START, end=WINDOW_END, run_id=run_id)
    assert summary.totals["failed"] == 0, summary.outcomes
    return summary


def test_an_empty_warehouse_is_missing_every_partition(lake):
    plans = _plans(lake, GRAPH)

    assert _reasons(plans["levels"]) == dict.fromkeys(KEYS, MISSING)
    # doubled waits for levels, which this run builds first
    assert _reasons(plans["doubled"]) == dict.fromkeys(KEYS, MISSING)
    assert plans["levels"].up_to_date == plans["doubled"].up_to_date == ()


def test_after_a_build_everything_is_up_to_date(lake):
    _build(lake, GRAPH)

    plans = _plans(lake, GRAPH)

    assert all(plan.is_noop for plan in plans.values())
    assert plans["levels"].up_to_date == plans["doubled"].up_to_date == tuple(KEYS)


def test_a_changed_parameter_is_a_code_change_and_downstream_waits_for_it(lake):
    _build(lake, GRAPH)
    edited = _with(GRAPH, "levels", params={"level": 2.0})

    plans = _plans(lake, edited)

    assert _reasons(plans["levels"]) == dict.fromkeys(KEYS, f"{CODE_CHANGED}: params")
    assert _reasons(plans["doubled"]) == dict.fromkeys(KEYS, UPSTREAM_PENDING)


def test_an_upstream_that_published_new_data_makes_downstream_stale(lake):
    _build(lake, GRAPH)
    edited = _with(GRAPH, "levels", params={"level": 2.0})
    _build(lake, edited, "levels", run_id="levels-only")

    plans = _plans(lake, edited)

    assert plans["levels"].is_noop
    assert _reasons(plans["doubled"]) == dict.fromkeys(KEYS, UPSTREAM_CHANGED)


def test_an_upstream_rebuilt_to_the_same_data_leaves_downstream_up_to_date(lake):
    _build(lake, GRAPH)
    pinned = _with(GRAPH, "levels", pinned_code_version="pinned")  # a new code version, the same rows
    _build(lake, pinned, "levels", run_id="same-data")

    plans = _plans(lake, pinned)

    assert plans["levels"].is_noop and plans["doubled"].up_to_date == tuple(KEYS)


def test_an_edited_transform_names_what_changed(lake):
    _build(lake, GRAPH)
    edited = _with(GRAPH, "doubled", transform=tripled)

    plans = _plans(lake, edited)

    assert plans["levels"].is_noop
    reasons = set(_reasons(plans["doubled"]).values())
    assert len(reasons) == 1 and reasons.pop().startswith(f"{CODE_CHANGED}: ")


def test_a_quarantined_upstream_partition_blocks_only_its_own_downstream_partition(lake):
    bad_day = KEYS[1]
    failing = Check("bad_day", "error", lambda frame: frame.filter(pl.col("partition_key") == bad_day))
    checked = _with(GRAPH, "levels", checks=(failing,))
    _build(lake, checked, "levels")

    plans = _plans(lake, checked, "doubled")

    assert _reasons(plans["doubled"]) == {KEYS[0]: MISSING, KEYS[2]: MISSING}
    assert plans["doubled"].blocked == ((bad_day, f"upstream levels {bad_day} quarantined"),)
