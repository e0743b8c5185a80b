"""Re-verify stored data: re-read published partitions, recompute their data versions, mark what no longer matches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import polars as pl
from loguru import logger

from warehouse.lake import LAKE, Warehouse
from warehouse.redaction import redact
from warehouse.versions import data_versions_by_partition


@dataclass(frozen=True)
class PartitionCheck:
    """One published partition re-read: the data version recorded at publish and the one its files give now."""

    asset: str
    partition_key: str
    version_id: str
    recorded: str
    found: str | None
    damage: str | None

    @property
    def is_damaged(self) -> bool:
        return self.damage is not None


def compare(published: pl.DataFrame, found: dict[str, str], unreadable: dict[str, str]) -> list[PartitionCheck]:
    """Checks for published version rows given the data versions recomputed from storage (pure)."""
    checks = []
    for row in published.iter_rows(named=True):
        key = row["partition_key"]
        now_version = found.get(key)
        if key in unreadable:
            damage = f"unreadable: {unreadable[key]}"
        elif now_version is None and row["row_count"]:
            damage = f"its {row['row_count']} rows are gone from storage"
        elif now_version is not None and now_version != row["data_version"]:
            damage = f"content hash {now_version[:12]} differs from the recorded data version {row['data_version'][:12]}"
        else:
            damage = None
        checks.append(PartitionCheck(row["asset"], key, row["version_id"], row["data_version"], now_version, damage))
    return checks


def _one_line(error: Exception) -> str:
    return redact(" ".join(str(error).split()))[:300]


def _recompute(warehouse: Warehouse, asset: str, keys: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Data versions of the stored partitions, reading all at once and, if that fails, one partition at a time."""
    sql = f'SELECT * FROM {LAKE}.main."{asset}" WHERE list_contains(?, partition_key)'
    try:
        return data_versions_by_partition(warehouse.query(sql, [keys])), {}
    except duckdb.Error:
        pass
    found, unreadable = {}, {}
    for key in keys:
        try:
            found.update(data_versions_by_partition(warehouse.query(sql, [[key]])))
        except duckdb.Error as error:
            unreadable[key] = _one_line(error)
    return found, unreadable


def verify(warehouse: Warehouse, assets: list[str] | None = None, limit: int | None = None,
           now: datetime | None = None) -> list[PartitionCheck]:
    """Re-read published partitions (the `limit` least recently verified, or all) and mark mismatches damaged.

    Every partition read gets `verified_at`; a damaged one also `damaged_at` and the reason,
    which the validated reader refuses and `quarry materialize --repair` rebuilds.
    """
    now = now or datetime.now(timezone.utc)
    sql = f"SELECT * FROM {LAKE}.quarry.versions WHERE status = 'published'"
    params: list = []
    if assets is not None:
        sql += " AND list_contains(?, asset)"
        params.append(assets)
    sql += " ORDER BY verified_at NULLS FIRST, asset, partition_key"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    published = warehouse.query(sql, params)
    checks: list[PartitionCheck] = []
    for (asset,), rows in published.partition_by("asset", as_dict=True, maintain_order=True).items():
        found, unreadable = _recompute(warehouse, asset, rows["partition_key"].to_list())
        checks += compare(rows, found, unreadable)
    record(warehouse, checks, now)
    damaged = [c for c in checks if c.is_damaged]
    if damaged:
        logger.error("verify: {} of {} partitions damaged", len(damaged), len(checks))
    return checks


def record(warehouse: Warehouse, checks: list[PartitionCheck], now: datetime) -> None:
    """Stamp every checked version verified; damaged ones keep the first time and reason they were found."""
    if not checks:
        return
    damaged = pl.DataFrame(
        {"version_id": [c.version_id for c in checks if c.is_damaged], "damage": [c.damage for c in checks if c.is_damaged]},
        schema={"version_id": pl.String, "damage": pl.String},
    )

    def write(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute(
            f"UPDATE {LAKE}.quarry.versions SET verified_at = ? WHERE list_contains(?, version_id)",
            [now, [c.version_id for c in checks]],
        )
        if damaged.height:
            cur.register("damaged_versions", damaged)
            cur.execute(
                f"""UPDATE {LAKE}.quarry.versions AS v SET damaged_at = coalesce(v.damaged_at, ?),
                        damage = coalesce(v.damage, d.damage)
                    FROM damaged_versions AS d WHERE v.version_id = d.version_id""",
                [now],
            )
            cur.unregister("damaged_versions")

    warehouse.transaction(write, "record verification")


def damaged_partitions(warehouse: Warehouse, assets: list[str] | None = None) -> pl.DataFrame:
    """Published versions marked damaged (what status commands show and `--repair` rebuilds)."""
    sql = f"SELECT asset, partition_key, version_id, damaged_at, damage FROM {LAKE}.quarry.versions " \
          "WHERE status = 'published' AND damaged_at IS NOT NULL"
    params: list = []
    if assets is not None:
        sql += " AND list_contains(?, asset)"
        params.append(assets)
    return warehouse.query(sql + " ORDER BY asset, partition_key", params)


# ---- repair --------------------------------------------------------------------------------------

METADATA = f"__ducklake_metadata_{LAKE}"


def _files_of(warehouse: Warehouse, asset: str) -> pl.DataFrame:
    """The table's live data files with the partition-key range each holds (from DuckLake's column stats)."""
    return warehouse.query(
        f"""SELECT f.data_file_id, f.path, f.path_is_relative, f.record_count, f.file_size_bytes,
                   s.min_value AS first_key, s.max_value AS last_key, t.table_id
            FROM {METADATA}.ducklake_data_file f
            JOIN {METADATA}.ducklake_table t ON t.table_id = f.table_id AND t.end_snapshot IS NULL
            JOIN {METADATA}.ducklake_schema sc ON sc.schema_id = t.schema_id AND sc.end_snapshot IS NULL
            JOIN {METADATA}.ducklake_column c ON c.table_id = t.table_id AND c.column_name = 'partition_key'
                 AND c.end_snapshot IS NULL
            LEFT JOIN {METADATA}.ducklake_file_column_stats s
                 ON s.data_file_id = f.data_file_id AND s.column_id = c.column_id
            WHERE f.end_snapshot IS NULL AND t.table_name = ? AND sc.schema_name = 'main'""",
        [asset],
    )


def files_holding(files: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Files whose partition-key range covers any of `keys` (a file with no stats is assumed to hold them)."""
    def covers(first, last) -> bool:
        return first is None or last is None or any(first <= k <= last for k in keys)

    mask = [covers(f, l) for f, l in zip(files["first_key"], files["last_key"])]
    return files.filter(pl.Series(mask, dtype=pl.Boolean))


def retire_damaged_files(warehouse: Warehouse, now: datetime | None = None) -> dict[str, list[str]]:
    """Take the files of damaged partitions out of their tables without reading them; returns what to rebuild.

    Every published partition whose key range falls in such a file is marked damaged first
    (it loses its rows with the file), so a crash between the two steps still leaves each
    affected partition flagged for `--repair`. The files stay on disk, out of every live
    snapshot, until snapshot expiry and cleanup remove them.
    """
    now = now or datetime.now(timezone.utc)
    damaged = damaged_partitions(warehouse)
    rebuild: dict[str, list[str]] = {}
    for (asset,), rows in damaged.partition_by("asset", as_dict=True, maintain_order=True).items():
        doomed = files_holding(_files_of(warehouse, asset), rows["partition_key"].to_list())
        published = warehouse.query(
            f"SELECT version_id, partition_key FROM {LAKE}.quarry.versions WHERE asset = ? AND status = 'published'",
            [asset],
        )
        affected = sorted(
            key for key in published["partition_key"].to_list()
            if not files_holding(doomed, [key]).is_empty()
        )
        collateral = [k for k in affected if k not in set(rows["partition_key"].to_list())]
        if collateral:
            versions = published.filter(pl.col("partition_key").is_in(collateral))["version_id"].to_list()
            record(warehouse, [PartitionCheck(asset, k, v, "", None, "shares a data file with a damaged partition")
                               for k, v in zip(collateral, versions)], now)
        if doomed.height:
            _retire(warehouse, doomed)
            logger.warning("{}: took {} damaged data files out of the table", asset, doomed.height)
        rebuild[asset] = sorted(set(affected) | set(rows["partition_key"].to_list()))
    return rebuild


def _retire(warehouse: Warehouse, files: pl.DataFrame) -> None:
    """End the files (and their delete files) at the current snapshot and take their rows out of the table stats."""
    ids = files["data_file_id"].to_list()

    def write(cur: duckdb.DuckDBPyConnection) -> None:
        latest = cur.execute(f"SELECT max(snapshot_id) FROM {METADATA}.ducklake_snapshot").fetchone()[0]
        cur.execute(f"UPDATE {METADATA}.ducklake_data_file SET end_snapshot = ? WHERE list_contains(?, data_file_id)",
                    [latest, ids])
        cur.execute(f"""UPDATE {METADATA}.ducklake_delete_file SET end_snapshot = ?
                        WHERE end_snapshot IS NULL AND list_contains(?, data_file_id)""", [latest, ids])
        for (table_id,), group in files.partition_by("table_id", as_dict=True).items():
            cur.execute(
                f"""UPDATE {METADATA}.ducklake_table_stats
                    SET record_count = record_count - ?, file_size_bytes = file_size_bytes - ? WHERE table_id = ?""",
                [int(group["record_count"].sum()), int(group["file_size_bytes"].sum()), table_id],
            )

    warehouse.transaction(write, "retire damaged files")
