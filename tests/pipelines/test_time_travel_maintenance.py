"""Time travel through maintenance: every way of reading a version gives the same rows before and after
`quarry optimize` and `quarry archive` (SQL macros, the `quarry diff` command and Python's `read_as_of`)."""

from __future__ import annotations

import json
from datetime import date
from itertools import combinations

import polars as pl
import pytest

from tests.conftest import catalog_kinds
from tests.pipelines.test_cli_first_hour import quarry
from tests.warehouse.edited_market import EDITED_DAY, WINDOW, EditedSource
from warehouse.explore import Explorer

KEY = ["symbol", "bar_ts"]


@pytest.fixture(params=catalog_kinds())
def lake(request, make_lake):
    return make_lake(catalog_kind=request.param)


def three_versions(lake) -> list[str]:
    """bars_raw over a week, rebuilt with a second edit, then the edited day alone from the unedited market.

    The edited day ends with three versions, oldest first, each with different rows; the last
    was published in a snapshot of its own, so the other two share snapshots with the rest of the week.
    """
    start, end = WINDOW
    day = date.fromisoformat(EDITED_DAY)
    lake.materialize("bars_raw", source=EditedSource(1), start=start, end=end, run_id="tt-1")
    lake.materialize("bars_raw", source=EditedSource(2), start=start, end=end, run_id="tt-2", full_refresh=True)
    lake.materialize("bars_raw", start=day, end=day, run_id="tt-3", full_refresh=True)
    versions = lake.warehouse.versions("bars_raw", EDITED_DAY)
    assert versions["status"].to_list() == ["published", "superseded", "superseded"]
    return versions["version_id"].reverse().to_list()


def observe(lake, versions: list[str]) -> dict:
    """Each version's rows from SQL and from Python (which must agree), and every pairwise diff, SQL and CLI."""
    seen: dict = {}
    explorer = Explorer.open(lake.catalog, lake.data_path)
    try:
        for version in versions:
            sql = explorer.sql("SELECT * EXCLUDE (partition_key) FROM asset_at_version('bars_raw', ?)", [version]).sort(KEY)
            python = lake.warehouse.read_as_of("bars_raw", version_id=version).sort(KEY)
            assert python.height > 0 and sql.equals(python), version
            seen[version] = python
        for before, after in combinations(versions, 2):
            sql = explorer.sql(
                "SELECT change, key, changed_columns FROM version_diff('bars_raw', ?, ?)", [before, after]
            ).rows()
            cli = quarry(lake.root, lake.env(), "diff", "bars_raw", "--from", before, "--to", after, "--json")
            assert cli.returncode == 0, cli.stderr
            summary = json.loads(cli.stdout)
            counts = {c: sum(1 for change, _, _ in sql if change == c) for c in ("added", "removed", "changed")}
            assert {c: summary[c] for c in counts} == counts and sql, (before, after, sql, summary)
            seen[before, after] = (sql, summary)
    finally:
        explorer.close()
    return seen


def same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(
        a.equals(b) if isinstance(a, pl.DataFrame) else a == b for a, b in ((first[k], second[k]) for k in first)
    )


@pytest.mark.slow
def test_versions_read_the_same_before_and_after_optimize_and_archive(lake):
    versions = three_versions(lake)
    env = lake.env() | {"QUARRY_ARCHIVE_DIR": str(lake.root / "archive"), "QUARRY_RETENTION_DAYS": "0"}
    before = observe(lake, versions)

    optimized = quarry(lake.root, env, "optimize")
    assert optimized.returncode == 0, optimized.stdout + optimized.stderr
    assert same(observe(lake, versions), before)

    archived = quarry(lake.root, env, "archive")
    assert archived.returncode == 0, archived.stdout + archived.stderr
    # the first version left the lake; the second stays, its snapshot still holds the week's other published days
    locations = [lake.warehouse.version_location("bars_raw", version) for version in versions]
    assert [location.archive_path is not None for location in locations] == [True, False, False]
    assert same(observe(lake, versions), before)
