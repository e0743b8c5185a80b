"""Versions record when their stored files were last verified and when (and why) they were found damaged."""

from __future__ import annotations

import duckdb

STATEMENTS = (
    "ALTER TABLE lake.quarry.versions ADD COLUMN IF NOT EXISTS verified_at TIMESTAMPTZ",
    "ALTER TABLE lake.quarry.versions ADD COLUMN IF NOT EXISTS damaged_at TIMESTAMPTZ",
    "ALTER TABLE lake.quarry.versions ADD COLUMN IF NOT EXISTS damage VARCHAR",
)


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    for statement in STATEMENTS:
        cur.execute(statement)
