"""Numbered migrations of Quarry's own catalog tables (`lake.quarry.*`), applied in order when a warehouse opens.

A step is a module `vNNNN_<what>.py` in this package: a one-line docstring saying what
changes and `migrate(cur)`, which runs its statements on the cursor it is given (tables
are named `lake.quarry.<table>`). `lake.quarry.schema_version` records each step applied.
Opening a warehouse for writing applies the steps it lacks in one DuckLake transaction
together with their `schema_version` rows, so a crash leaves the catalog at its old
version, and a second process upgrading at the same moment conflicts, retries and finds
nothing left to do.

To change the catalog, add the next number (`v0003_<what>.py`) and never edit a step that
has shipped. Give existing rows what the change needs (a column default, a backfill
UPDATE). Numbers run 1, 2, 3… with no gap or repeat (two branches adding the same number
fail `tests/warehouse/test_catalog_migrations.py` until one renumbers). Use SQL DuckLake
runs on SQLite and PostgreSQL catalogs alike (CREATE TABLE, ALTER TABLE … ADD COLUMN,
UPDATE, INSERT; `rename_asset_columns` for a published asset's columns); that test upgrades a
warehouse written before migrations existed on both.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import duckdb
import polars as pl

from warehouse.versions import data_versions_by_partition

SCHEMA_VERSION_TABLE = "lake.quarry.schema_version"
_STEP_NAME = re.compile(r"v(\d{4})_\w+")


class MigrationError(RuntimeError):
    """The catalog's migrations are misnumbered, or the catalog is newer than this code."""


@dataclass(frozen=True)
class Step:
    """One numbered change to the catalog tables."""

    number: int
    name: str
    summary: str
    migrate: Callable[[duckdb.DuckDBPyConnection], None]


@cache
def steps() -> tuple[Step, ...]:
    """Every step in this package, in order; refuses a gap or a repeated number."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        matched = _STEP_NAME.fullmatch(module.name)
        if not matched:
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        summary = (loaded.__doc__ or "").strip().splitlines()[0] if loaded.__doc__ else ""
        found.append(Step(int(matched.group(1)), module.name, summary, loaded.migrate))
    found.sort(key=lambda step: (step.number, step.name))
    numbers = [step.number for step in found]
    if numbers != list(range(1, len(found) + 1)):
        raise MigrationError(
            f"catalog migrations must be numbered 1..{len(found)} with no gap or repeat; found "
            + ", ".join(step.name for step in found)
        )
    return tuple(found)


def latest_version() -> int:
    return len(steps())


def schema_version(cur: duckdb.DuckDBPyConnection) -> int:
    """The last step applied to this catalog: 0 for a new lake or one written before migrations existed."""
    recorded = cur.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = 'lake' AND schema_name = 'quarry' AND table_name = 'schema_version'"
    ).fetchone()[0]
    if not recorded:
        return 0
    return cur.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA_VERSION_TABLE}").fetchone()[0]


def upgrade(cur: duckdb.DuckDBPyConnection) -> list[Step]:
    """Apply, inside the caller's transaction, every step the catalog lacks; returns the steps applied."""
    current = schema_version(cur)
    if current > latest_version():
        raise MigrationError(
            f"the catalog is at schema version {current} but this Quarry knows only {latest_version()}: "
            "upgrade Quarry before opening this warehouse"
        )
    pending = [step for step in steps() if step.number > current]
    if pending and current:
        # Appends alone never conflict in DuckLake; rewriting the current row makes two
        # upgrades from the same version collide at commit, so the loser retries and finds none left.
        cur.execute(f"UPDATE {SCHEMA_VERSION_TABLE} SET applied_at = applied_at WHERE version = ?", [current])
    for step in pending:
        step.migrate(cur)
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version INTEGER, step VARCHAR, applied_at TIMESTAMPTZ)"
        )
        cur.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE} VALUES (?, ?, now())", [step.number, step.name])
    return pending


# Published rows live in `main`, rows that failed their audit in `quarantine`; both hold the asset's columns.
_ASSET_SCHEMAS = ("main", "quarantine")


def rename_asset_columns(cur: duckdb.DuckDBPyConnection, renames: dict[str, dict[str, str]]) -> None:
    """Rename columns of published assets (per asset, old name to new) in their tables and recorded contracts.

    A table not yet written, or one already renamed, is left as it is, so a step using this runs
    on any warehouse; the asset's earlier snapshots keep the old name for time travel.
    """
    for asset, columns in renames.items():
        for schema in _ASSET_SCHEMAS:
            present = {
                row[0]
                for row in cur.execute(
                    "SELECT column_name FROM duckdb_columns() "
                    "WHERE database_name = 'lake' AND schema_name = ? AND table_name = ?",
                    [schema, asset],
                ).fetchall()
            }
            for old, new in columns.items():
                if old in present and new not in present:
                    cur.execute(f'ALTER TABLE lake.{schema}."{asset}" RENAME COLUMN "{old}" TO "{new}"')
        for old, new in columns.items():  # the recorded contracts describe the tables as they now are
            cur.execute(
                "UPDATE lake.quarry.asset_metadata SET contract_columns = replace(contract_columns, ?, ?) "
                "WHERE asset = ? AND contract_columns IS NOT NULL",
                [f'"name": "{old}"', f'"name": "{new}"', asset],
            )


def rerecord_data_versions(
    cur: duckdb.DuckDBPyConnection, asset: str, as_published: Callable[[pl.DataFrame], pl.DataFrame]
) -> None:
    """Give each published partition of `asset` the data version of its rows now, if its rows are those it was published with.

    A data version hashes the column names, so renaming or adding a column changes it although no
    row did: without this `quarry verify` would mark every such partition damaged. `as_published`
    turns the table's rows back into the columns they were published with. A partition whose rows
    match neither its recorded version nor the renamed one keeps its recorded version, so `quarry
    verify` still finds it damaged.
    """
    stored = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'main' AND table_name = ?",
        [asset],
    ).fetchone()[0]
    if not stored:
        return
    published = cur.execute(
        "SELECT version_id, partition_key, data_version FROM lake.quarry.versions WHERE asset = ? AND status = 'published'",
        [asset],
    ).fetchall()
    if not published:
        return
    rows = cur.execute(f'SELECT * FROM lake.main."{asset}"').pl()
    now, then = data_versions_by_partition(rows), data_versions_by_partition(as_published(rows))
    for version_id, key, recorded in published:
        if key in now and recorded == then.get(key) and recorded != now[key]:
            cur.execute(  # a verify run between the rename and this step found it damaged; it was not
                "UPDATE lake.quarry.versions SET data_version = ?, damaged_at = NULL, damage = NULL WHERE version_id = ?",
                [now[key], version_id],
            )
