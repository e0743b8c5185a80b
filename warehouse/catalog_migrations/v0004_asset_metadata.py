"""Add quarry.asset_metadata: the grain, partitioning, freshness and contract each asset's versions were published under."""

from __future__ import annotations

import duckdb

STATEMENTS = (
    # One row each time an asset is published under metadata that differs from its latest row,
    # written in the publish transaction: the row in force at a version's publish describes it.
    """CREATE TABLE IF NOT EXISTS lake.quarry.asset_metadata (
        asset VARCHAR, code_version VARCHAR, metadata_hash VARCHAR, grain VARCHAR[], partitions VARCHAR,
        partition_column VARCHAR, time_column VARCHAR, freshness_seconds DOUBLE, contract VARCHAR,
        contract_columns VARCHAR, recorded_at TIMESTAMPTZ)""",
    # Assets published before this step: what their latest recorded definition says. Whether they
    # are partitioned shows in their partition keys, daily or weekly does not (NULL until the next
    # publish), nor do the contract's columns; no metadata_hash, so that publish writes a full row.
    """INSERT INTO lake.quarry.asset_metadata
        SELECT d.asset, d.code_version, NULL,
               from_json(json_extract(d.metadata, '$.grain'), '["VARCHAR"]'),
               CASE WHEN k.partitioned THEN NULL ELSE 'none' END,
               CASE WHEN k.partitioned THEN json_extract_string(d.metadata, '$.time_column') END,
               json_extract_string(d.metadata, '$.time_column'),
               TRY_CAST(json_extract_string(d.metadata, '$.freshness_seconds') AS DOUBLE),
               json_extract_string(d.metadata, '$.contract'),
               NULL, d.recorded_at
        FROM lake.quarry.asset_definitions d
        JOIN (SELECT asset, bool_or(partition_key <> 'all') AS partitioned FROM lake.quarry.versions GROUP BY asset) k
          ON k.asset = d.asset
        QUALIFY row_number() OVER (PARTITION BY d.asset ORDER BY d.recorded_at DESC) = 1""",
)


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    for statement in STATEMENTS:
        cur.execute(statement)
