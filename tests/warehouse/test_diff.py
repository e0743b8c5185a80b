"""Version diffs: the pure row matcher on inline frames, and `diff_asset` on hand-built version pairs in a real lake."""

from datetime import datetime, timezone

import polars as pl
import pytest

from assets import default_graph
from tests.warehouse.edited_market import EDITED_DAY, _at, build_two_versions
from warehouse.diff import DiffError, diff_asset, diff_frames, diff_rows

KEY = ("symbol", "bar_ts")


def _frame(rows):
    return pl.DataFrame(rows, schema={"symbol": pl.String, "n": pl.Int64, "px": pl.Float64}, orient="row")


def test_rows_are_matched_by_key_and_changes_counted_per_column():
    before = _frame([("A", 1, 1.0), ("B", 2, 2.0), ("C", 3, float("nan")), ("D", 4, None)])
    after = _frame([("A", 1, 1.0000001), ("B", 5, 2.0), ("C", 3, float("nan")), ("D", 4, None), ("E", 6, 6.0)])
    found = diff_rows(before, after, ("symbol",))
    assert found.added["symbol"].to_list() == ["E"]
    assert found.removed.is_empty()
    assert sorted(found.changed.rows()) == [("A", ["px"]), ("B", ["n"])]
    assert found.column_changes == {"n": 1, "px": 1}


def test_a_null_key_and_columns_named_like_sql_aliases_match_like_any_other():
    """The SQL matcher names each side's row; a column called `b`, `a` or `s` must not stand in for it."""
    before = pl.DataFrame({"s": [None, "A", "B"], "x": [1.0, None, float("nan")], "a": [1, 2, 3], "b": [1, 2, 3]})
    after = pl.DataFrame({"s": [None, "A", "B"], "x": [2.0, None, float("nan")], "a": [1, 2, 3], "b": [1, 2, 4]})
    found = diff_rows(before, after, ("s",))
    assert found.changed.rows() == [(None, ["x"]), ("B", ["b"])]
    assert found.column_changes == {"x": 1, "b": 1} and found.added.is_empty() and found.removed.is_empty()


def test_schema_changes_and_an_empty_grain():
    before = pl.DataFrame({"sharpe": [1.0], "trades": [3]})
    after = pl.DataFrame({"sharpe": [1.5], "trades": [3.0], "sortino": [2.0]})
    schema, rows = diff_frames(before, after, ())
    assert schema.added == ("sortino",) and schema.removed == () and schema.retyped == (("trades", "Int64", "Float64"),)
    assert rows.key == () and rows.changed["changed_columns"].to_list() == [["sharpe", "trades"]]


def test_a_key_that_does_not_identify_rows_is_refused():
    twice = _frame([("A", 1, 1.0), ("A", 2, 1.0)])
    with pytest.raises(DiffError, match="share a key"):
        diff_rows(twice, twice, ("symbol",))


def test_default_diff_is_the_latest_publish_against_the_version_it_superseded(lake):
    build_two_versions(lake)
    found = diff_asset(lake.warehouse, "bars_raw", KEY)
    # the latest publish is one of the rebuilt sessions; ask for the edited one explicitly too
    assert found.before.label.split()[0] != found.after.label.split()[0]
    edited = diff_asset(lake.warehouse, "bars_raw", KEY, partition_key=EDITED_DAY)
    rows = edited.rows
    assert edited.schema.is_empty and edited.after.partition_key == EDITED_DAY
    assert rows.added.select(KEY).rows() == [("PEP", _at(16))]
    assert rows.removed.select(KEY).rows() == [("XOM", _at(15))]
    assert rows.changed.rows() == [("KO", _at(17), ["high_px", "close_px"])]  # the moved close is above the old high
    assert rows.column_changes == {"high_px": 1, "close_px": 1}
    assert rows.after_rows == rows.before_rows  # one bar in, one bar out

    versions = lake.warehouse.versions("bars_raw", EDITED_DAY)
    old = versions.filter(pl.col("status") == "superseded")["version_id"][0]
    new = versions.filter(pl.col("status") == "published")["version_id"][0]
    assert diff_asset(lake.warehouse, "bars_raw", KEY, before=old).summary() == edited.summary()
    assert diff_asset(lake.warehouse, "bars_raw", KEY, after=new).summary() == edited.summary()
    backwards = diff_asset(lake.warehouse, "bars_raw", KEY, before=new, after=old).rows
    assert backwards.added.select(KEY).rows() == [("XOM", _at(15))] and backwards.changed.height == 1

    unchanged_day = diff_asset(lake.warehouse, "bars_daily", default_graph()["bars_daily"].grain, partition_key="2025-03-03")
    assert unchanged_day.is_identical


def test_timestamps_compare_the_whole_asset(lake):
    build_two_versions(lake)
    first_publish = lake.warehouse.query(
        "SELECT max(published_at) AS t FROM lake.quarry.versions WHERE run_id = 'edit1' AND asset = 'bars_raw'"
    )["t"][0]
    whole = diff_asset(lake.warehouse, "bars_raw", KEY, before=first_publish.isoformat())
    assert whole.after.label == "published now" and whole.after.partition_key is None
    assert (whole.rows.added.height, whole.rows.removed.height, whole.rows.changed.height) == (1, 1, 1)
    with pytest.raises(DiffError, match="not one of each"):
        diff_asset(lake.warehouse, "bars_raw", KEY, before=first_publish.isoformat(), after="v123")
    with pytest.raises(DiffError, match="only ever published once"):
        diff_asset(lake.warehouse, "splits", ("symbol", "ex_date"), partition_key="no-such-partition")
    assert datetime.now(timezone.utc) > first_publish
