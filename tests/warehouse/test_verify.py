"""Damaged storage: a flipped bit or a deleted Parquet file is found by `verify`, flagged in health, refused by
the validated reader, and `--repair` rebuilds the original data version without reading the damaged file."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from assets import default_graph
from pipelines.monitoring import check_warehouse, health_alert
from pipelines.settings import Settings
from warehouse.validated import DamagedAssetError, ValidatedReader
from warehouse.verify import damaged_partitions, verify

ASSET = "bars_daily"
NOW = datetime(2025, 3, 14, 22, tzinfo=timezone.utc)


def _data_files(warehouse, asset: str) -> list[Path]:
    found = warehouse.query(f"SELECT data_file FROM ducklake_list_files('lake', '{asset}')")
    return [Path(p) for p in found["data_file"].to_list()]


def flip_a_bit_in_close_px(path: Path) -> None:
    """Flip one bit inside the `close_px` column chunk's bytes: the stored prices, not the file's framing."""
    import duckdb

    [(offset, size)] = duckdb.sql(
        f"SELECT data_page_offset, total_compressed_size FROM parquet_metadata('{path}') "
        "WHERE path_in_schema = 'close_px' AND row_group_id = 0"
    ).fetchall()
    data = bytearray(path.read_bytes())
    data[offset + size - 9] ^= 0x04
    path.write_bytes(bytes(data))


def _current(warehouse) -> dict[str, str]:
    return dict(warehouse.current_versions([ASSET]).select("partition_key", "data_version").iter_rows())


@pytest.mark.parametrize("catalog_kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("damage", ["flipped bit", "deleted file"])
def test_damaged_file_is_found_refused_flagged_and_repaired_to_the_original_version(make_lake, monkeypatch, damage,
                                                                                    catalog_kind):
    if catalog_kind == "postgres" and not os.environ.get("QUARRY_TEST_PG_DSN"):
        pytest.skip("PostgreSQL catalog: set QUARRY_TEST_PG_DSN")
    lake = make_lake(catalog_kind=catalog_kind)
    lake.materialize("+bars_daily")
    original = _current(lake.warehouse)
    assert not [c for c in verify(lake.warehouse, [ASSET]) if c.is_damaged]

    [victim] = _data_files(lake.warehouse, ASSET)[:1]
    if damage == "deleted file":
        victim.unlink()
    else:
        flip_a_bit_in_close_px(victim)

    found = [c for c in verify(lake.warehouse, [ASSET]) if c.is_damaged]
    assert found, "verify must notice the damage"
    flagged = damaged_partitions(lake.warehouse)
    assert set(flagged["partition_key"]) == {c.partition_key for c in found}

    for key, value in lake.env().items():
        monkeypatch.setenv(key, value)
    rows = check_warehouse(Settings(), default_graph(), NOW)
    storage = next(r for r in rows if r.check == "storage")
    assert storage.status == "fail" and found[0].partition_key in storage.detail
    assert "storage" in health_alert(rows).details

    with pytest.raises(DamagedAssetError, match="damaged"):
        ValidatedReader(lake.warehouse, NOW).read(ASSET, [found[0].partition_key])

    untouched = lake.materialize("bars_daily", full_refresh=True)  # a full refresh leaves damaged partitions alone
    assert found[0].partition_key in dict(untouched.outcomes[ASSET].skipped)

    repaired = lake.materialize("bars_daily", repair=True)
    assert not repaired.outcomes[ASSET].failed, repaired.outcomes[ASSET].failed
    assert _current(lake.warehouse) == original
    assert damaged_partitions(lake.warehouse).is_empty()
    assert not [c for c in verify(lake.warehouse, [ASSET]) if c.is_damaged]
    that_evening = datetime.fromisoformat(found[0].partition_key).replace(hour=22, tzinfo=timezone.utc)
    frame = ValidatedReader(lake.warehouse, that_evening).read(ASSET, [found[0].partition_key]).frame
    assert frame.height > 0 and frame["close_px"].is_finite().all()
    assert lake.warehouse.query(f"SELECT count(*) AS n FROM lake.{ASSET}")["n"][0] == sum(
        lake.warehouse.current_versions([ASSET])["row_count"]
    )


def test_rolling_sample_verifies_the_least_recently_verified_first(lake):
    lake.materialize("+bars_daily")
    total = lake.warehouse.current_versions().height
    first = {c.version_id for c in verify(lake.warehouse, limit=5)}
    second = {c.version_id for c in verify(lake.warehouse, limit=5)}
    assert len(first) == len(second) == 5 and not first & second
    rest = verify(lake.warehouse, limit=total)
    assert len({c.version_id for c in rest} - first - second) == total - 10
