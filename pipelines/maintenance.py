"""Maintenance flows: archive old versions, optimize the warehouse, back up the databases, clean up logs."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from loguru import logger
from prefect import flow
from prefect.artifacts import create_table_artifact

from pipelines.logs import LOG_FILE, route_run_logs
from pipelines.monitoring import REPORT_FAILURE
from pipelines.settings import BrokerConfig, LedgerConfig, Settings
from warehouse import Warehouse
from warehouse.archive import archive_old_versions
from warehouse.backup import backup
from warehouse.optimize import optimize
from warehouse.redaction import redact

def _table(key: str, rows: list[dict], description: str) -> None:
    try:
        create_table_artifact(key=key, table=rows, description=description)
    except Exception:  # an artifact is a view of the result; outside a run there is nowhere to put it
        pass


@flow(name="archive-old-data", log_prints=True, **REPORT_FAILURE)
def archive_old_data_flow(retention_days: float | None = None, dry_run: bool = False) -> dict:
    """Export superseded versions past retention to Parquet under `archive/`, then expire their snapshots."""
    settings = Settings()
    ops = settings.ops
    route_run_logs(settings)
    cutoff = datetime.now(timezone.utc) - timedelta(days=ops.retention_days if retention_days is None else retention_days)
    with settings.warehouse.open() as warehouse:
        result = archive_old_versions(warehouse, ops.archive_dir, cutoff, dry_run=dry_run)
    _table("archived-versions", [
        {"asset": v.asset, "partition": v.partition_key, "version": v.version_id, "rows": v.row_count, "path": v.path}
        for v in result.versions
    ], f"Versions archived before {cutoff:%Y-%m-%d %H:%M}")
    return {"archive_id": result.archive_id, "manifest": str(result.manifest) if result.manifest else None,
            "versions": len(result.versions), "snapshots_expired": len(result.snapshots_expired)}


@flow(name="optimize-warehouse", log_prints=True, **REPORT_FAILURE)
def optimize_warehouse_flow(retention_days: float | None = None) -> dict:
    """Merge small files, expire archived snapshots, delete old and orphaned files; VACUUM a PostgreSQL catalog."""
    settings = Settings()
    ops = settings.ops
    route_run_logs(settings)
    cutoff = datetime.now(timezone.utc) - timedelta(days=ops.retention_days if retention_days is None else retention_days)
    with settings.warehouse.open() as warehouse:
        result = optimize(warehouse, cutoff)
    return {"files_before": result.files_before, "files_after": result.files_after,
            "snapshots_expired": len(result.snapshots_expired), "vacuumed": result.vacuumed,
            "problems": list(result.problems)}


@flow(name="backup-databases", log_prints=True, **REPORT_FAILURE)
def backup_databases_flow(keep: int = 8) -> dict:
    """A timestamped, consistent backup of the warehouse and the ledger under `backups/`; older ones beyond `keep` go."""
    settings = Settings()
    ops = settings.ops
    route_run_logs(settings)
    taken = take_backup(settings)
    removed = prune_backups(ops.backups_dir, keep)
    _table("backup", [{"path": str(taken.path), "files": len(taken.files), "bytes": taken.total_bytes,
                       "snapshot": taken.latest_snapshot_id, "ledger": taken.ledger}], "Backup taken")
    return {"path": str(taken.path), "files": len(taken.files), "bytes": taken.total_bytes, "pruned": removed}


def take_backup(settings: Settings):
    """A backup of the warehouse, the ledger (its file, or `pg_dump -Fc` of its database) and the paper broker's book."""
    return backup(settings.warehouse.catalog, settings.warehouse.data_path, settings.ops.backups_dir,
                  ledger_file(settings.ledger), ledger_conninfo=ledger_conninfo(settings.ledger),
                  book_path=broker_book_file(settings.broker))


def ledger_conninfo(ledger: LedgerConfig) -> str | None:
    """A PostgreSQL ledger's libpq address for `pg_dump`; None for a SQLite ledger."""
    import sqlalchemy as sa

    url = sa.make_url(ledger.url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def broker_book_file(broker: BrokerConfig) -> Path | None:
    """The paper broker's SQLite book (its orders, fills and cash), when the paper broker keeps one."""
    import sqlalchemy as sa

    url = sa.make_url(broker.paper_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


@flow(name="restore-drill", log_prints=True, **REPORT_FAILURE)
def restore_drill_flow() -> dict:
    """Restore the newest backup into a temporary directory and re-verify it: every file's SHA-256 against the
    manifest, then every published partition's data version recomputed from the restored files.

    A team backup (PostgreSQL catalog, PostgreSQL ledger) is restored into scratch databases
    created for the drill on the same PostgreSQL servers (the role needs CREATEDB) and dropped
    afterwards. Fails (and so alerts) when the backup is damaged, a restored partition
    differs, or the restored ledger cannot be read.
    """
    import tempfile
    from contextlib import ExitStack

    from warehouse.backup import BackupError, list_backups, restore
    from warehouse.verify import verify

    settings = Settings()
    ops = settings.ops
    route_run_logs(settings)
    taken = list_backups(ops.backups_dir)
    if not taken:
        raise BackupError(f"no backup under {ops.backups_dir.resolve()} to drill")
    newest = taken[-1]
    from warehouse.backup import LEDGER_DUMP, Backup

    manifest = Backup.load(newest)
    with tempfile.TemporaryDirectory(prefix="quarry-restore-drill-") as scratch, ExitStack() as databases:
        target_catalog = target_ledger = None
        if manifest.catalog_kind == "postgres":
            target_catalog = "postgres:" + databases.enter_context(scratch_database(settings.warehouse.catalog.partition(":")[2]))
        if manifest.database(LEDGER_DUMP) is not None:
            target_ledger = databases.enter_context(scratch_database(ledger_conninfo(settings.ledger) or ""))
        restored = restore(newest, Path(scratch) / "restored", target_catalog, target_ledger)
        with Warehouse.open(restored.catalog, restored.data_path) as warehouse:
            checks = verify(warehouse)
        ledger_rows = restored_ledger_rows(restored)
    damaged = [f"{c.asset}[{c.partition_key}]: {c.damage}" for c in checks if c.is_damaged]
    result = {"backup": str(newest), "partitions": len(checks), "damaged": damaged,
              "ledger": restored.ledger_path is not None or restored.ledger_url is not None,
              "ledger_rows": ledger_rows, "broker_book": restored.book_path is not None}
    _table("restore-drill", [{**result, "ledger_rows": str(ledger_rows)}], f"Restore drill of {newest.name}")
    if damaged:
        raise BackupError(f"restore drill of {newest}: {len(damaged)} partitions differ: {'; '.join(damaged[:5])}")
    logger.info("restore drill of {}: {} partitions verified, ledger {}", newest, len(checks), ledger_rows)
    return result


#: Scratch databases a restore drill creates start with this, so a leftover one is recognisable.
DRILL_DATABASE_PREFIX = "quarry_restore_drill_"


@contextmanager
def scratch_database(conninfo: str):
    """An empty PostgreSQL database on the server `conninfo` points at, for one drill; dropped afterwards.

    Yields its libpq address (the same credentials, so a password stays where it was given).
    """
    import uuid

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from warehouse.backup import BackupError

    if not conninfo:
        raise BackupError("the backup holds a PostgreSQL database but no PostgreSQL address is configured to drill it on")
    name = f"{DRILL_DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise BackupError(redact(f"restore drill: cannot create a scratch database ({error}); the role needs CREATEDB"
                                 )) from None
    try:
        yield make_conninfo(**{**conninfo_to_dict(conninfo), "dbname": name})
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def restored_ledger_rows(restored) -> dict[str, int]:
    """Rows per ledger table in a restored ledger (SQLite file or PostgreSQL database): proof that it opens."""
    import sqlalchemy as sa

    from warehouse.ledger import metadata

    if restored.ledger_url:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(restored.ledger_url)
        url = sa.URL.create("postgresql+psycopg", username=params.get("user"), password=params.get("password"),
                            host=params.get("host"), port=int(params["port"]) if params.get("port") else None,
                            database=params.get("dbname"))
    elif restored.ledger_path:
        url = f"sqlite:///{restored.ledger_path}"
    else:
        return {}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    for name, table in sorted(metadata.tables.items()) if name in ("orders", "fills", "alerts", "pair_trades")}
    finally:
        engine.dispose()


def ledger_file(ledger: LedgerConfig) -> Path | None:
    """The ledger's SQLite file; None for a server ledger (backed up by its own database)."""
    import sqlalchemy as sa

    url = sa.make_url(ledger.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def prune_backups(backups_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete backups."""
    import shutil

    from warehouse.backup import list_backups

    old = list_backups(backups_dir)[:-keep] if keep > 0 else []
    for path in old:
        shutil.rmtree(path)
    return [str(p) for p in old]


def expired_logs(logs_dir: Path, retention: timedelta, now: float | None = None) -> list[Path]:
    """Rotated log files (never the live one) last written longer ago than `retention`."""
    if not logs_dir.exists():
        return []
    limit = (now or time.time()) - retention.total_seconds()
    return sorted(p for p in logs_dir.iterdir() if p.is_file() and p.name != LOG_FILE and p.stat().st_mtime < limit)


@flow(name="cleanup-logs", log_prints=True, **REPORT_FAILURE)
def cleanup_logs_flow(retention_days: float | None = None) -> dict:
    """Rotate the JSON log and delete rotated files past the log retention (30 days by default)."""
    settings = Settings()
    ops = settings.ops
    route_run_logs(settings)
    days = ops.log_retention_days if retention_days is None else retention_days
    old = expired_logs(ops.logs_dir, timedelta(days=days))
    for path in old:
        path.unlink()
    return {"deleted": [str(p) for p in old]}
