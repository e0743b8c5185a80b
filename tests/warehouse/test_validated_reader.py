"""The validated reader on a real DuckLake: what it refuses, the re-check after reading, and reads as of a moment."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta, timezone

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.graph import AssetGraph
from assets.model import Check, asset
from tests.conftest import WINDOW_START
from warehouse.validated import (
    MissingAssetError, QuarantinedAssetError, StaleAssetError, ValidatedReader,
)

WINDOW_END = WINDOW_START + timedelta(days=2)  # Monday to Wednesday, three sessions closing 21:00 UTC
KEYS = [(WINDOW_START + timedelta(days=i)).isoformat() for i in range(3)]
#: Wednesday evening, after the last session's close.
EVENING = datetime.combine(WINDOW_END, time(22), tzinfo=timezone.utc)
FRESHNESS = timedelta(days=2)


@asset(partitions="daily", time_column="session_date", grain=("session_date",), params={"level": 1.0},
       freshness=FRESHNESS)
def levels(sessions: pl.DataFrame, *, level: float) -> pl.DataFrame:
    """One row per session: a constant level."""
    return sessions.select("session_date", value=pl.lit(level))


@asset(grain=("name",))
def settings_table() -> pl.DataFrame:
    """One row per setting name: its value."""
    return pl.DataFrame({"name": ["a", "b"], "value": [1.0, 2.0]})


GRAPH = AssetGraph.of([levels, settings_table])


def _with(name: str, **changes) -> AssetGraph:
    return AssetGraph.of([dataclasses.replace(a, **changes) if a.name == name else a for a in GRAPH.in_order()])


def _build(lake, graph: AssetGraph = GRAPH, run_id: str = "run", full_refresh: bool = False):
    summary = lake.materialize(None, graph=graph, start=WINDOW_START, end=WINDOW_END, run_id=run_id,
                               full_refresh=full_refresh)
    assert summary.totals["failed"] == 0, summary.outcomes
    return summary


@pytest.fixture
def built(lake):
    _build(lake)
    return lake


def test_reads_published_partitions_and_records_the_versions_it_used(built):
    reader = ValidatedReader(built.warehouse, EVENING)

    read = reader.read("levels", KEYS[1:])
    whole = reader.read("settings_table")

    assert read.frame.sort("session_date")["session_date"].cast(pl.String).to_list() == KEYS[1:]
    current = built.warehouse.current_versions(["levels"]).filter(pl.col("partition_key").is_in(KEYS[1:]))
    assert {v.version_id for v in read.versions} == set(current["version_id"])
    assert whole.frame.sort("name")["value"].to_list() == [1.0, 2.0] and whole.versions[0].partition_key == "all"
    assert [(v["asset"], v["partition_key"]) for v in reader.versions_used()] == [
        ("levels", KEYS[1]), ("levels", KEYS[2]), ("settings_table", "all")
    ]


def test_a_partition_whose_latest_attempt_was_quarantined_is_refused(built):
    failing = Check("bad_day", "error", lambda frame: frame.filter(pl.col("partition_key") == KEYS[2]))
    _build(built, _with("levels", checks=(failing,), params={"level": 2.0}), run_id="bad")

    reader = ValidatedReader(built.warehouse, EVENING)

    with pytest.raises(QuarantinedAssetError, match=f"levels partition {KEYS[2]} .*quarantined by bad_day"):
        reader.read("levels", KEYS)
    # the published rows of the other days, rebuilt and passing, are still served
    assert reader.read("levels", KEYS[:2]).frame["value"].to_list() == [2.0, 2.0]


def test_a_published_version_that_later_failed_an_error_check_is_refused(built):
    version = built.warehouse.current_versions(["levels"]).filter(pl.col("partition_key") == KEYS[0]).row(0, named=True)
    built.warehouse.record_checks(pl.DataFrame([{
        "run_id": "sweep", "version_id": version["version_id"], "asset": "levels", "partition_key": KEYS[0],
        "check_name": "swept", "severity": "error", "passed": False, "failing_rows": 1, "sample": None,
        "message": "found later", "checked_at": EVENING,
    }]))

    with pytest.raises(QuarantinedAssetError, match="quarantined by swept"):
        ValidatedReader(built.warehouse, EVENING).read("levels", [KEYS[0]])
    # a warning alone does not stop a read
    assert ValidatedReader(built.warehouse, EVENING).read("levels", [KEYS[1]]).frame.height == 1


def test_missing_partitions_and_unpublished_assets_are_refused(built):
    reader = ValidatedReader(built.warehouse, EVENING)

    with pytest.raises(MissingAssetError, match="never materialized"):
        reader.read("levels", ["2025-03-06"])
    with pytest.raises(MissingAssetError, match="never published"):
        reader.read("pair_signals", KEYS)
    with pytest.raises(MissingAssetError, match="no partitions asked for"):
        reader.read("levels", [])


class PublishesDuringRead:
    """The warehouse, with a rebuild of every partition committed between the reader's checks and its read."""

    def __init__(self, lake):
        self.lake, self.rebuilt = lake, False

    def __getattr__(self, name):
        return getattr(self.lake.warehouse, name)

    def read(self, *args, **kwargs):
        if not self.rebuilt:
            self.rebuilt = True
            _build(self.lake, _with("levels", params={"level": 3.0}), run_id="concurrent")
        return self.lake.warehouse.read(*args, **kwargs)


def test_a_version_published_during_the_read_fails_the_read_closed(built):
    reader = ValidatedReader(PublishesDuringRead(built), EVENING)

    with pytest.raises(MissingAssetError, match="a new version was published during the read"):
        reader.read("levels", KEYS)
    assert reader.versions_read == []  # nothing unvalidated is recorded as used
    # the next read validates the new versions afresh
    assert ValidatedReader(built.warehouse, EVENING).read("levels", KEYS).frame["value"].to_list() == [3.0] * 3


def test_freshness_is_measured_from_the_session_close_to_the_readers_now(built):
    last_close = datetime.combine(WINDOW_END, time(21), tzinfo=timezone.utc)

    assert ValidatedReader(built.warehouse, last_close + FRESHNESS).read("levels", [KEYS[2]]).frame.height == 1
    with pytest.raises(StaleAssetError, match=r"stale by 1.0 h \(age 2.0 days, freshness 2.0 days\)"):
        ValidatedReader(built.warehouse, last_close + FRESHNESS + timedelta(hours=1)).read("levels", [KEYS[2]])


def test_partitioning_and_freshness_come_from_the_catalog_not_todays_code(built):
    recorded = built.warehouse.asset_metadata(["levels"])["levels"]
    assert (recorded.partitions, recorded.partition_column, recorded.freshness) == ("daily", "session_date", FRESHNESS)
    later = datetime.combine(WINDOW_END, time(21), tzinfo=timezone.utc) + timedelta(days=3)

    # code now declaring a week of freshness changes nothing until a publish records it
    with pytest.raises(StaleAssetError):
        ValidatedReader(built.warehouse, later).read("levels", [KEYS[2]])
    _build(built, _with("levels", freshness=timedelta(days=7)), run_id="relaxed", full_refresh=True)
    assert ValidatedReader(built.warehouse, later).read("levels", [KEYS[2]]).frame.height == 1
    history = built.warehouse.query("SELECT freshness_seconds FROM lake.quarry.asset_metadata "
                                    "WHERE asset = 'levels' ORDER BY recorded_at")
    assert history["freshness_seconds"].to_list() == [FRESHNESS.total_seconds(), 604800.0]  # the old row is kept, the new one is current


def test_versions_read_are_readable_as_of_after_a_rebuild_supersedes_them(built):
    reader = ValidatedReader(built.warehouse, EVENING)
    first = reader.read("levels", KEYS)
    _build(built, _with("levels", params={"level": 5.0}), run_id="rebuild")

    for version in first.versions:
        again = built.warehouse.read_as_of("levels", version_id=version.version_id)
        assert again["value"].to_list() == [1.0]
    assert ValidatedReader(built.warehouse, EVENING).read("levels", KEYS).frame["value"].to_list() == [5.0] * 3


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hours_after=st.integers(-30, 24 * 3), sessions_back=st.integers(1, 4))
def test_read_latest_serves_the_newest_partitions_dated_on_or_before_now(built, hours_after, sessions_back):
    now = datetime.combine(WINDOW_START, time(21), tzinfo=timezone.utc) + timedelta(hours=hours_after)
    eligible = [k for k in KEYS if k <= now.date().isoformat()]
    reader = ValidatedReader(built.warehouse, now)

    if not eligible:
        with pytest.raises(MissingAssetError, match="no partition on or before"):
            reader.read_latest("levels", sessions_back)
        return
    newest = eligible[-sessions_back:]
    age = now - datetime.combine(datetime.fromisoformat(newest[-1]).date(), time(21), tzinfo=timezone.utc)
    if age > FRESHNESS:
        with pytest.raises(StaleAssetError):
            reader.read_latest("levels", sessions_back)
        return
    read = reader.read_latest("levels", sessions_back)
    assert [v.partition_key for v in read.versions] == newest
