"""Data versions: content hashes that ignore row order and change with any value or column."""

import polars as pl

from warehouse.versions import data_version, data_versions_by_partition


def test_data_version_ignores_row_order():
    frame = pl.DataFrame({"symbol": ["A", "B", "C"], "close_px": [1.0, 2.0, 3.0]})
    assert data_version(frame) == data_version(frame.reverse()) == data_version(frame.sample(fraction=1.0, shuffle=True, seed=1))


def test_data_version_changes_with_values_columns_and_duplicates():
    frame = pl.DataFrame({"symbol": ["A", "B"], "close_px": [1.0, 2.0]})
    assert data_version(frame) != data_version(frame.with_columns(close_px=pl.Series([1.0, 2.5])))
    assert data_version(frame) != data_version(frame.rename({"close_px": "open_px"}))
    assert data_version(frame) != data_version(pl.concat([frame, frame.head(1)]))
    assert data_version(frame) != data_version(frame.with_columns(pl.col("close_px").cast(pl.Float32)))


def test_partition_versions_equal_whole_frame_versions():
    frame = pl.DataFrame({"x": [1, 2, 3, 4], "partition_key": ["p", "q", "p", "q"]})
    by_partition = data_versions_by_partition(frame)
    assert by_partition["p"] == data_version(pl.DataFrame({"x": [3, 1]}))
    assert by_partition["q"] == data_version(pl.DataFrame({"x": [2, 4]}))
