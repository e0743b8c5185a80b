"""Retention round trip: superseded versions exported with a manifest, snapshots expired, version reads served from the archive."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from tests.conftest import WINDOW_START, catalog_kinds
from warehouse.archive import RetentionPlan, archive_old_versions, plan_retention
from warehouse.lake import VersionArchived
from warehouse.optimize import optimize

END = WINDOW_START + timedelta(days=2)


def _superseded(lake):
    return lake.warehouse.query(
        "SELECT * FROM lake.quarry.versions WHERE status = 'superseded' AND asset = 'bars_hourly' ORDER BY partition_key"
    )


@pytest.fixture(params=catalog_kinds())
def lake(request, make_lake):
    """Retention is part of the parity suite: SQLite and (when configured, always in CI) PostgreSQL catalogs."""
    return make_lake(catalog_kind=request.param)


@pytest.mark.slow
def test_archive_exports_expires_and_serves_version_reads_from_the_archive(lake, tmp_path):
    lake.materialize("+bars_hourly", start=WINDOW_START, end=END, run_id="first")
    lake.materialize("+bars_hourly", start=WINDOW_START, end=END, run_id="second", full_refresh=True)
    old = _superseded(lake).row(0, named=True)
    before = lake.warehouse.read_as_of("bars_hourly", version_id=old["version_id"])
    current = lake.warehouse.read("bars_hourly")
    published = lake.warehouse.current_versions(["bars_hourly"]).row(0, named=True)

    result = archive_old_versions(lake.warehouse, tmp_path / "archive", cutoff=datetime.now(timezone.utc))

    assert result.snapshots_expired and old["version_id"] in {v.version_id for v in result.versions}
    assert all(v.data_version_matches for v in result.versions)
    manifest = json.loads(result.manifest.read_text())
    entry = next(v for v in manifest["versions"] if v["version_id"] == old["version_id"])
    assert pl.read_parquet(entry["path"]).equals(before)

    # the lake itself can no longer answer (the snapshot is gone); the version id reads its archive file
    assert lake.warehouse.version_location("bars_hourly", old["version_id"]).archive_path == entry["path"]
    assert lake.warehouse.read_as_of("bars_hourly", version_id=old["version_id"]).equals(before)
    with pytest.raises(VersionArchived, match="before the retention cutoff") as raised:
        lake.warehouse.read_as_of("bars_hourly", at=datetime.now(timezone.utc) - timedelta(days=1))
    assert "manifest" in str(raised.value)

    # current data and every published version are untouched
    assert lake.warehouse.read("bars_hourly").sort(["symbol", "bar_ts"]).equals(current.sort(["symbol", "bar_ts"]))
    assert lake.warehouse.read_as_of("bars_hourly", version_id=published["version_id"]).height == published["row_count"]

    again = archive_old_versions(lake.warehouse, tmp_path / "archive", cutoff=datetime.now(timezone.utc))
    assert again.versions == ()  # nothing archived twice

    tidy = optimize(lake.warehouse, cutoff=datetime.now(timezone.utc), orphan_age_hours=0)
    assert tidy.files_after <= tidy.files_before
    assert tidy.vacuumed == lake.catalog.startswith("postgres")  # VACUUM ANALYZE is for a PostgreSQL catalog
    assert lake.warehouse.read("bars_hourly").sort(["symbol", "bar_ts"]).equals(current.sort(["symbol", "bar_ts"]))
    assert lake.warehouse.read_as_of("bars_hourly", version_id=published["version_id"]).height == published["row_count"]
    # after the archive the lake still builds incrementally
    assert lake.materialize("+bars_hourly", start=WINDOW_START, end=END, run_id="third").totals["built"] == 0


@pytest.mark.slow
def test_optimize_never_expires_an_unarchived_superseded_version(lake):
    lake.materialize("bars_raw", start=WINDOW_START, end=WINDOW_START, run_id="first")
    lake.materialize("bars_raw", start=WINDOW_START, end=WINDOW_START, run_id="second", full_refresh=True)
    old = lake.warehouse.query("SELECT version_id FROM lake.quarry.versions WHERE status = 'superseded'")["version_id"][0]
    expected = lake.warehouse.read_as_of("bars_raw", version_id=old)
    optimize(lake.warehouse, cutoff=datetime.now(timezone.utc), orphan_age_hours=0)
    assert lake.warehouse.read_as_of("bars_raw", version_id=old).equals(expected)


def test_plan_keeps_latest_and_published_snapshots():
    t = datetime(2025, 3, 14, tzinfo=timezone.utc)
    snapshots = pl.DataFrame({"snapshot_id": [1, 2, 3, 4, 5], "snapshot_time": [t + timedelta(hours=h) for h in range(5)]})
    versions = pl.DataFrame({
        "version_id": ["v1", "v2", "v3", "v4"],
        "status": ["superseded", "published", "superseded", "superseded"],
        "snapshot_id": [1, 2, 3, 5],
    })
    plan = plan_retention(versions, snapshots, cutoff=t + timedelta(hours=10), archived={"v3"})
    assert plan == RetentionPlan(expire_snapshots=(1, 3, 4), archive_versions=("v1",))
    assert plan_retention(versions, snapshots, cutoff=t, archived=set()) == RetentionPlan((), ())
