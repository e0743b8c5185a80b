"""The catalog as Quarry first shipped it: versions, runs, check results, archive records, quarantine schema."""

from __future__ import annotations

import duckdb

# Frozen: a warehouse written before numbered migrations has exactly these tables, so every
# statement keeps IF NOT EXISTS and step 1 is a no-op on it. Never edit; add a step instead.
STATEMENTS = (
    "CREATE SCHEMA IF NOT EXISTS lake.quarry",
    "CREATE SCHEMA IF NOT EXISTS lake.quarantine",
    """CREATE TABLE IF NOT EXISTS lake.quarry.versions (
        version_id VARCHAR, asset VARCHAR, partition_key VARCHAR, status VARCHAR,
        code_version VARCHAR, data_version VARCHAR, upstream_versions VARCHAR,
        row_count BIGINT, run_id VARCHAR, batch_id VARCHAR, snapshot_id BIGINT,
        build_seconds DOUBLE, created_at TIMESTAMPTZ, published_at TIMESTAMPTZ,
        superseded_at TIMESTAMPTZ, failed_checks VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS lake.quarry.runs (
        run_id VARCHAR, flow_run_id VARCHAR, selection VARCHAR, status VARCHAR,
        started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, built BIGINT, up_to_date BIGINT,
        quarantined BIGINT, skipped BIGINT, failed BIGINT, rows_written BIGINT,
        report_path VARCHAR, summary VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS lake.quarry.check_results (
        run_id VARCHAR, version_id VARCHAR, asset VARCHAR, partition_key VARCHAR,
        check_name VARCHAR, severity VARCHAR, passed BOOLEAN, failing_rows BIGINT,
        sample VARCHAR, message VARCHAR, checked_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS lake.quarry.archived_versions (
        version_id VARCHAR, asset VARCHAR, partition_key VARCHAR, snapshot_id BIGINT, data_version VARCHAR,
        row_count BIGINT, path VARCHAR, manifest VARCHAR, archive_id VARCHAR, archived_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS lake.quarry.archive_runs (
        archive_id VARCHAR, cutoff TIMESTAMPTZ, manifest VARCHAR, versions BIGINT, snapshots_expired BIGINT,
        archived_at TIMESTAMPTZ)""",
)


def migrate(cur: duckdb.DuckDBPyConnection) -> None:
    for statement in STATEMENTS:
        cur.execute(statement)
