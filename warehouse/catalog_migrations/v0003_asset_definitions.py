"""Add quarry.asset_definitions: each asset's code version with its per-definition digests, and its metadata."""

from __future__ import annotations

import duckdb


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    # One row each time an asset's code version or metadata changes: the plan names the
    # functions that changed since the published code version; the latest row is the asset's record.
    cur.execute(
        """CREATE TABLE IF NOT EXISTS lake.quarry.asset_definitions (
            asset VARCHAR, code_version VARCHAR, metadata_hash VARCHAR, code_digests VARCHAR,
            metadata VARCHAR, recorded_at TIMESTAMPTZ)"""
    )
