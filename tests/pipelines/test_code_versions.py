"""Code versions on a real DuckLake: a helper edited in another module rebuilds, naming it; a docstring edit rebuilds nothing."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from assets import AssetGraph
from pipelines.materialize import catalog_state
from pipelines.planning import CODE_CHANGED, UPSTREAM_PENDING, plan_selection

HELPERS = '''
"""Arithmetic the test graph's transforms call."""

import polars as pl

SCALE = 2.0


def scaled(frame: pl.DataFrame) -> pl.DataFrame:
    """Values times the scale."""
    return frame.with_columns(value=pl.col("value") * SCALE)  # the one formula under test


def unused(frame: pl.DataFrame) -> pl.DataFrame:
    return frame
'''

GRAPH = '''
"""A three-asset graph whose middle transform calls a helper in another module."""

import polars as pl

from assets.model import asset


@asset(tags=("test",))
def numbers() -> pl.DataFrame:
    """One row per number: the input."""
    return pl.DataFrame({"n": [1, 2, 3], "value": [1.0, 2.0, 3.0]})


@asset(tags=("test",))
def scaled_numbers(numbers: pl.DataFrame) -> pl.DataFrame:
    """One row per number, scaled."""
    from HELPERS_MODULE import scaled

    return scaled(numbers)


@asset(tags=("test",))
def total(scaled_numbers: pl.DataFrame) -> pl.DataFrame:
    """One row per graph: the sum of the scaled values."""
    return scaled_numbers.select(pl.col("value").sum())
'''


class GraphOnDisk:
    """The test graph as two modules under tmp_path, importable and editable like project code."""

    def __init__(self, root: Path):
        suffix = uuid.uuid4().hex[:8]
        self.root = root
        self.helpers, self.graph_module = f"fp_helpers_{suffix}", f"fp_graph_{suffix}"
        self.helpers_source = HELPERS
        self.graph_source = GRAPH.replace("HELPERS_MODULE", self.helpers)
        self.write()

    def write(self) -> None:
        (self.root / f"{self.helpers}.py").write_text(textwrap.dedent(self.helpers_source))
        (self.root / f"{self.graph_module}.py").write_text(textwrap.dedent(self.graph_source))
        for name in (self.helpers, self.graph_module):
            sys.modules.pop(name, None)
        importlib.invalidate_caches()

    def edit_helpers(self, old: str, new: str) -> None:
        assert old in self.helpers_source
        self.helpers_source = self.helpers_source.replace(old, new)
        self.write()

    def edit_graph(self, old: str, new: str) -> None:
        assert old in self.graph_source
        self.graph_source = self.graph_source.replace(old, new)
        self.write()

    def load(self) -> AssetGraph:
        module = importlib.import_module(self.graph_module)
        return AssetGraph.of([module.numbers, module.scaled_numbers, module.total])


@pytest.fixture
def on_disk(tmp_path: Path, monkeypatch) -> GraphOnDisk:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within the same second must be re-read
    return GraphOnDisk(tmp_path)


def _plan(lake, graph: AssetGraph) -> dict[str, dict[str, int]]:
    state = catalog_state(lake.warehouse, sorted(graph.assets))
    plans = plan_selection(graph, graph.select(None), state, _window())
    return {p.asset: {w.reason: sum(1 for x in p.to_build if x.reason == w.reason) for w in p.to_build} for p in plans}


def _window():
    from pipelines.planning import RunWindow
    from tests.conftest import WINDOW_END, WINDOW_START

    return RunWindow.between(WINDOW_START, WINDOW_END)


def _published(lake) -> dict[str, tuple[str, str]]:
    rows = lake.warehouse.current_versions(["numbers", "scaled_numbers", "total"])
    return {r["asset"]: (r["version_id"], r["data_version"]) for r in rows.iter_rows(named=True)}


def test_editing_a_helper_in_another_module_rebuilds_the_asset_and_names_the_helper(lake, on_disk):
    graph = on_disk.load()
    first = lake.materialize(graph=graph, run_id="first")
    assert first.totals["built"] == 3
    before = _published(lake)
    assert lake.warehouse.read("total")["value"].to_list() == [12.0]

    on_disk.edit_helpers('return frame.with_columns(value=pl.col("value") * SCALE)',
                         'return frame.with_columns(value=pl.col("value") * SCALE + 1.0)')
    edited = on_disk.load()
    assert edited["numbers"].code_version == graph["numbers"].code_version
    assert edited["scaled_numbers"].code_version != graph["scaled_numbers"].code_version

    plan = _plan(lake, edited)
    assert plan["numbers"] == {}
    assert plan["scaled_numbers"] == {f"{CODE_CHANGED}: {on_disk.helpers}.py:scaled": 1}
    assert plan["total"] == {UPSTREAM_PENDING: 1}

    second = lake.materialize(graph=edited, run_id="second")
    assert second.outcomes["scaled_numbers"].built == ["all"] and second.outcomes["total"].built == ["all"]
    assert second.outcomes["numbers"].built == []
    assert lake.warehouse.read("total")["value"].to_list() == [15.0]
    assert _published(lake)["numbers"] == before["numbers"]

    # a module-level constant the helper reads is part of it too
    on_disk.edit_helpers("SCALE = 2.0", "SCALE = 3.0")
    assert _plan(lake, on_disk.load())["scaled_numbers"] == {f"{CODE_CHANGED}: {on_disk.helpers}.py:SCALE": 1}


def test_docstring_comment_and_metadata_edits_rebuild_no_data_and_update_the_record(lake, on_disk):
    graph = on_disk.load()
    lake.materialize(graph=graph, run_id="first")
    before = _published(lake)

    on_disk.edit_helpers('"""Values times the scale."""', '"""Values multiplied by SCALE (documented better)."""')
    on_disk.edit_helpers("# the one formula under test", "# a different comment")
    on_disk.edit_graph('"""One row per number, scaled."""', '"""One row per number, scaled by the helper."""')
    on_disk.edit_graph('@asset(tags=("test",))\ndef total', '@asset(tags=("test", "reporting"))\ndef total')
    on_disk.edit_helpers("def unused(frame: pl.DataFrame) -> pl.DataFrame:\n    return frame",
                         "def unused(frame: pl.DataFrame) -> pl.DataFrame:\n    return frame.head(1)")
    edited = on_disk.load()
    assert {a.name: a.code_version for a in edited} == {a.name: a.code_version for a in graph}
    assert edited["scaled_numbers"].metadata_hash != graph["scaled_numbers"].metadata_hash
    assert edited["total"].metadata_hash != graph["total"].metadata_hash

    assert _plan(lake, edited) == {"numbers": {}, "scaled_numbers": {}, "total": {}}
    again = lake.materialize(graph=edited, run_id="metadata-only")
    assert again.totals["built"] == 0 and _published(lake) == before

    records = lake.warehouse.asset_definitions(["scaled_numbers", "total"])
    latest = {r["asset"]: r for r in records.iter_rows(named=True)}  # oldest first: the last row wins
    assert json.loads(latest["scaled_numbers"]["metadata"])["description"] == "One row per number, scaled by the helper."
    assert json.loads(latest["total"]["metadata"])["tags"] == ["reporting", "test"]
    assert records.filter(records["asset"] == "total").height == 2  # the first run's record is kept
