"""Retention: superseded versions exported to Parquet with a manifest, their snapshots expired, and where they went."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from loguru import logger

from warehouse.lake import LAKE, Warehouse
from warehouse.redaction import redact
from warehouse.versions import data_version, new_id

ARCHIVE_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {LAKE}.quarry.archived_versions (
        version_id VARCHAR, asset VARCHAR, partition_key VARCHAR, snapshot_id BIGINT, data_version VARCHAR,
        row_count BIGINT, path VARCHAR, manifest VARCHAR, archive_id VARCHAR, archived_at TIMESTAMPTZ)""",
    f"""CREATE TABLE IF NOT EXISTS {LAKE}.quarry.archive_runs (
        archive_id VARCHAR, cutoff TIMESTAMPTZ, manifest VARCHAR, versions BIGINT, snapshots_expired BIGINT,
        archived_at TIMESTAMPTZ)""",
)



@dataclass(frozen=True)
class RetentionPlan:
    """Which snapshots may expire and which superseded versions must be exported first."""

    expire_snapshots: tuple[int, ...]
    archive_versions: tuple[str, ...]


def plan_retention(versions: pl.DataFrame, snapshots: pl.DataFrame, cutoff: datetime, archived: set[str]) -> RetentionPlan:
    """Snapshots older than the cutoff may go, except the latest one and any a published version was written in.

    Keeping the snapshot of every published version keeps `read_as_of(version_id=...)`
    working for all current data; a superseded version whose snapshot goes is exported.
    `versions` needs version_id, status and a resolved snapshot_id; `snapshots` needs
    snapshot_id and snapshot_time.
    """
    if snapshots.is_empty():
        return RetentionPlan((), ())
    latest = snapshots["snapshot_id"].max()
    pinned = set(versions.filter(pl.col("status") == "published")["snapshot_id"].drop_nulls().to_list())
    old = snapshots.filter(pl.col("snapshot_time") < cutoff)["snapshot_id"].to_list()
    expire = sorted(s for s in old if s != latest and s not in pinned)
    doomed = versions.filter(
        (pl.col("status") == "superseded") & pl.col("snapshot_id").is_in(expire) & ~pl.col("version_id").is_in(sorted(archived))
    )
    return RetentionPlan(tuple(int(s) for s in expire), tuple(doomed.sort("version_id")["version_id"].to_list()))


def ensure_archive_tables(warehouse: Warehouse) -> None:
    warehouse.transaction(lambda cur: [cur.execute(ddl) for ddl in ARCHIVE_DDL], "create archive tables")


def _snapshots(warehouse: Warehouse) -> pl.DataFrame:
    return warehouse.query(
        f"SELECT snapshot_id, snapshot_time, commit_extra_info FROM {LAKE}.snapshots() ORDER BY snapshot_id"
    )


def _versions_with_snapshots(warehouse: Warehouse, snapshots: pl.DataFrame) -> pl.DataFrame:
    """Version rows with the snapshot that published them, found by batch id where the stamp is missing."""
    by_batch = snapshots.select(pl.col("commit_extra_info").alias("batch_id"), pl.col("snapshot_id").alias("batch_snapshot"))
    versions = warehouse.query(
        f"SELECT version_id, asset, partition_key, status, data_version, row_count, batch_id, snapshot_id "
        f"FROM {LAKE}.quarry.versions WHERE status IN ('published', 'superseded')"
    )
    return versions.join(by_batch.drop_nulls("batch_id"), on="batch_id", how="left").with_columns(
        snapshot_id=pl.coalesce("snapshot_id", "batch_snapshot")
    ).drop("batch_snapshot")


def archived_ids(warehouse: Warehouse) -> set[str]:
    ensure_archive_tables(warehouse)
    return set(warehouse.query(f"SELECT version_id FROM {LAKE}.quarry.archived_versions")["version_id"].to_list())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ArchivedVersion:
    version_id: str
    asset: str
    partition_key: str
    snapshot_id: int
    data_version: str
    row_count: int
    path: str
    sha256: str
    data_version_matches: bool


@dataclass(frozen=True)
class ArchiveResult:
    archive_id: str
    manifest: Path | None
    versions: tuple[ArchivedVersion, ...]
    snapshots_expired: tuple[int, ...]


def archive_old_versions(warehouse: Warehouse, archive_dir: Path, cutoff: datetime, dry_run: bool = False) -> ArchiveResult:
    """Export superseded versions whose snapshots are past retention, record where, then expire those snapshots.

    The order makes a crash harmless: files and manifest first, then the catalog rows that
    point at them (one transaction), and only then the expiry that makes the lake forget.
    """
    ensure_archive_tables(warehouse)
    snapshots = _snapshots(warehouse)
    versions = _versions_with_snapshots(warehouse, snapshots)
    plan = plan_retention(versions, snapshots, cutoff, archived_ids(warehouse))
    archive_id = new_id("archive-")
    if dry_run or not plan.expire_snapshots:
        return ArchiveResult(archive_id, None, (), plan.expire_snapshots if dry_run else ())
    root = Path(archive_dir) / archive_id
    exported = []
    doomed = versions.filter(pl.col("version_id").is_in(list(plan.archive_versions)))
    for row, frame in _rows_as_published(warehouse, doomed):
        path = root / row["asset"] / row["partition_key"] / f"{row['version_id']}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        exported.append(
            ArchivedVersion(
                row["version_id"], row["asset"], row["partition_key"], int(row["snapshot_id"]), row["data_version"],
                int(row["row_count"]), str(path.resolve()), _sha256(path), data_version(frame) == row["data_version"],
            )
        )
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.json"
    archived_at = datetime.now(timezone.utc)
    manifest.write_text(json.dumps({
        "archive_id": archive_id, "cutoff": cutoff.isoformat(), "archived_at": archived_at.isoformat(),
        "catalog": redact(warehouse.catalog), "snapshots_expired": list(plan.expire_snapshots),
        "versions": [asdict(v) for v in exported],
    }, indent=2))
    _record(warehouse, archive_id, cutoff, manifest, exported, plan, archived_at)
    expire_snapshots(warehouse, plan.expire_snapshots)
    logger.info("archived {} versions to {}; expired {} snapshots", len(exported), root, len(plan.expire_snapshots))
    return ArchiveResult(archive_id, manifest, tuple(exported), plan.expire_snapshots)


def _rows_as_published(warehouse: Warehouse, doomed: pl.DataFrame):
    """Each version row with its rows as published: one time-travel read per (asset, snapshot), not per version.

    A batch publishes many partitions in one snapshot, so this is a few reads for thousands of versions.
    """
    for (asset, snapshot), group in doomed.sort("asset", "snapshot_id", "partition_key").group_by(
        "asset", "snapshot_id", maintain_order=True
    ):
        keys = group["partition_key"].to_list()
        published = warehouse.query(
            f'SELECT * FROM {LAKE}.main."{asset}" AT (VERSION => ?) WHERE list_contains(?, partition_key)',
            [int(snapshot), keys],
        )
        by_key = published.partition_by("partition_key", as_dict=True) if published.height else {}
        for row in group.iter_rows(named=True):
            rows = by_key.get((row["partition_key"],), published.clear())
            yield row, rows.drop("partition_key")


def _record(warehouse, archive_id, cutoff, manifest, exported, plan, archived_at) -> None:
    rows = pl.DataFrame(
        [{**{k: getattr(v, k) for k in ("version_id", "asset", "partition_key", "snapshot_id", "data_version", "row_count", "path")},
          "manifest": str(manifest.resolve()), "archive_id": archive_id, "archived_at": archived_at} for v in exported],
        schema={"version_id": pl.String, "asset": pl.String, "partition_key": pl.String, "snapshot_id": pl.Int64,
                "data_version": pl.String, "row_count": pl.Int64, "path": pl.String, "manifest": pl.String,
                "archive_id": pl.String, "archived_at": pl.Datetime("us", "UTC")},
    )

    def write(cur) -> None:
        cur.register("archived_rows", rows)
        cur.execute(f"INSERT INTO {LAKE}.quarry.archived_versions BY NAME SELECT * FROM archived_rows")
        cur.unregister("archived_rows")
        cur.execute(
            f"INSERT INTO {LAKE}.quarry.archive_runs VALUES (?, ?, ?, ?, ?, ?)",
            [archive_id, cutoff, str(manifest.resolve()), len(exported), len(plan.expire_snapshots), archived_at],
        )

    warehouse.transaction(write, "record archive")


def expire_snapshots(warehouse: Warehouse, snapshot_ids: tuple[int, ...] | list[int]) -> None:
    """Forget the given DuckLake snapshots; their files become eligible for `ducklake_cleanup_old_files`."""
    if not snapshot_ids:
        return
    warehouse.execute(f"CALL ducklake_expire_snapshots('{LAKE}', versions => ?::UBIGINT[])", [list(snapshot_ids)])
