"""Warehouse upkeep: merge small files, expire snapshots retention allows, delete old and orphaned files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from loguru import logger

from warehouse.archive import _snapshots, _versions_with_snapshots, archived_ids, expire_snapshots, plan_retention
from warehouse.lake import LAKE, Warehouse
from warehouse.redaction import redact


@dataclass(frozen=True)
class OptimizeResult:
    files_before: int
    files_after: int
    snapshots_expired: tuple[int, ...]
    vacuumed: bool
    #: Steps that failed, each "step: one-line reason"; the other steps still ran.
    problems: tuple[str, ...] = ()


def _file_count(warehouse: Warehouse) -> int:
    tables = warehouse.query(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE]
    )
    total = 0
    for schema, table in tables.iter_rows():
        total += warehouse.query(
            f"SELECT count(*) AS n FROM ducklake_list_files('{LAKE}', ?, schema => ?)", [table, schema]
        )["n"][0]
    return int(total)


def expirable_without_loss(warehouse: Warehouse, cutoff: datetime) -> tuple[int, ...]:
    """Snapshots past retention whose expiry loses nothing: no superseded version in them is still unarchived."""
    snapshots = _snapshots(warehouse)
    versions = _versions_with_snapshots(warehouse, snapshots)
    plan = plan_retention(versions, snapshots, cutoff, archived_ids(warehouse))
    unarchived = versions.filter(pl.col("version_id").is_in(list(plan.archive_versions)))
    held = set(unarchived["snapshot_id"].to_list())
    return tuple(s for s in plan.expire_snapshots if s not in held)


def optimize(warehouse: Warehouse, cutoff: datetime, orphan_age_hours: float = 1.0) -> OptimizeResult:
    """DuckLake's small-file merge, snapshot expiry (never of an unarchived version), old and orphaned file cleanup.

    A PostgreSQL catalog also gets `VACUUM ANALYZE`, since DuckLake's catalog churns rows on every commit.
    Each step runs even when an earlier one failed (a merge that meets a full disk must not
    stop the cleanup that frees it); what failed is returned in `problems`, one line each.
    """
    problems: list[str] = []

    def attempt(step: str, work, default=None):
        try:
            return work()
        except Exception as error:
            problems.append(f"{step}: {redact(' '.join(str(error).split()))[:300]}")
            logger.error("optimize could not {}: {}", step, problems[-1])
            return default

    def call(sql: str):
        warehouse.execute(sql)

    before = _file_count(warehouse)
    attempt("merge adjacent files", lambda: call(f"CALL ducklake_merge_adjacent_files('{LAKE}')"))
    expired = attempt("plan snapshot expiry", lambda: expirable_without_loss(warehouse, cutoff), ())
    if attempt("expire snapshots", lambda: expire_snapshots(warehouse, expired) or True) is None:
        expired = ()
    attempt("clean up old files", lambda: call(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)"))
    attempt("delete orphaned files", lambda: warehouse.delete_orphaned_files(older_than_hours=orphan_age_hours))
    vacuumed = bool(attempt("vacuum the catalog", lambda: vacuum_postgres_catalog(warehouse.catalog), False))
    after = attempt("count files", lambda: _file_count(warehouse), before)
    logger.info("optimized: {} -> {} live files, {} snapshots expired", before, after, len(expired))
    return OptimizeResult(before, after, tuple(expired), vacuumed, tuple(problems))


def vacuum_postgres_catalog(catalog: str) -> bool:
    """`VACUUM ANALYZE` on a PostgreSQL catalog (outside a transaction, as PostgreSQL requires)."""
    kind, _, conninfo = catalog.partition(":")
    if kind not in ("postgres", "postgresql"):
        return False
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute("VACUUM ANALYZE")
    return True
