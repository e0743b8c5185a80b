"""Open a DuckLake warehouse and run Quarry's catalog reads and atomic publishes against it."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from assets.retrying import Retry, RetryPolicy
from warehouse import catalog_migrations
from warehouse.publish_locks import partitions_locked
from warehouse.redaction import redact
from warehouse.versions import AssetMetadata, PublishBatch

LAKE = "lake"
EXTENSIONS = ("ducklake", "sqlite_scanner", "postgres_scanner")
COMMIT_RETRIES = 8
#: One statement or transaction on any lake at a time in this process, across Warehouse objects (see `Warehouse._cursor`).
LAKE_LOCK = threading.RLock()
#: The catalog step that adds quarry.asset_definitions (warehouse/catalog_migrations/v0003_asset_definitions.py).
ASSET_DEFINITIONS_SINCE = 3
#: The catalog step that adds quarry.asset_metadata (warehouse/catalog_migrations/v0004_asset_metadata.py).
ASSET_METADATA_SINCE = 4
#: The columns of quarry.asset_metadata, as a publish writes a row.
ASSET_METADATA_SCHEMA = pl.Schema({
    "asset": pl.String, "code_version": pl.String, "metadata_hash": pl.String, "grain": pl.List(pl.String),
    "partitions": pl.String, "partition_column": pl.String, "time_column": pl.String,
    "freshness_seconds": pl.Float64, "contract": pl.String, "contract_columns": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"),
})
#: Each asset's latest row of quarry.asset_metadata: the grain, partitioning and contract it is published under.
LATEST_ASSET_METADATA_SQL = """
    SELECT * FROM {lake}.quarry.asset_metadata
    QUALIFY row_number() OVER (PARTITION BY asset ORDER BY recorded_at DESC) = 1"""


class WarehouseConfig(BaseModel):
    """Where the warehouse lives: its DuckLake catalog and the directory of its Parquet data files."""

    model_config = ConfigDict(frozen=True)

    catalog: str = Field(
        "sqlite:data/catalog.sqlite",
        description="DuckLake catalog: 'sqlite:PATH', 'postgres:CONNINFO' or 'duckdb:PATH'.",
    )
    data_path: str = Field("data/lake/", description="Where DuckLake writes Parquet data files.")

    def open(self, read_only: bool = False) -> Warehouse:
        return Warehouse.open(self.catalog, self.data_path, read_only=read_only)


class WarehouseError(RuntimeError):
    """The warehouse refused an operation; the message names the asset, partition or version."""


class VersionArchived(WarehouseError):
    """The version (or the moment) asked for left the lake by retention; the message says where it went."""


class WarehouseMissing(WarehouseError):
    """No warehouse exists at the configured catalog: nothing has been materialized there yet."""


@dataclass(frozen=True)
class VersionLocation:
    """Where one published or superseded version's rows are read: the snapshot that published them, or the archive file.

    Retention expires a superseded version's snapshot only after exporting its rows, so
    every version the catalog calls readable has exactly one of the two.
    """

    version_id: str
    asset: str
    partition_key: str
    snapshot_id: int | None
    archive_path: str | None

    def select_sql(self, lake: str = LAKE) -> str:
        """The version's rows with their partition_key as one constant SELECT (DuckDB's `query()` takes only constants)."""
        if self.archive_path is not None:
            return (f"SELECT *, {sql_literal(self.partition_key)} AS partition_key "
                    f"FROM read_parquet({sql_literal(self.archive_path)})")
        table = '"' + self.asset.replace('"', '""') + '"'
        return (f"SELECT * FROM {lake}.main.{table} AT (VERSION => {int(self.snapshot_id)}) "
                f"WHERE partition_key = {sql_literal(self.partition_key)}")


#: A version's catalog row, the snapshot its publish batch committed and, if archived, its file.
VERSION_LOCATION_SQL = """
    SELECT v.asset, v.partition_key, v.status, coalesce(v.snapshot_id, s.snapshot_id) AS snapshot_id, a.path AS archive_path
    FROM {lake}.quarry.versions v
    LEFT JOIN (SELECT snapshot_id, commit_extra_info FROM {lake}.snapshots()) s ON s.commit_extra_info = v.batch_id
    LEFT JOIN {lake}.quarry.archived_versions a ON a.version_id = v.version_id
    WHERE v.version_id = ?"""


def locate_version(cur: duckdb.DuckDBPyConnection, asset: str, version_id: str, lake: str = LAKE) -> VersionLocation:
    """Where a version of `asset` is read from; a clear `WarehouseError` for any version that cannot be read."""
    found = cur.execute(VERSION_LOCATION_SQL.format(lake=lake), [version_id]).fetchone()
    if found is None:
        raise WarehouseError(
            f"no published or superseded version {version_id!r} of {asset} "
            f"(list them: SELECT * FROM asset_versions('{asset}'))"
        )
    owner, partition_key, status, snapshot_id, archive_path = found
    if owner != asset:
        raise WarehouseError(f"version {version_id} belongs to {owner}, not {asset}")
    if status not in ("published", "superseded"):
        raise WarehouseError(
            f"version {version_id} of {asset} partition {partition_key} was {status}; "
            f"its rows are in {LAKE}.quarantine.{asset}, never published"
        )
    if archive_path is None and snapshot_id is None:
        raise WarehouseError(f"version {version_id} of {asset} partition {partition_key} has no DuckLake snapshot "
                             "and no archive file: its snapshot was expired without an export")
    if archive_path is not None and not Path(archive_path).exists():
        raise VersionArchived(f"version {version_id} of {asset} partition {partition_key} was archived to "
                              f"{archive_path}, which is missing; restore the archive directory to read it")
    return VersionLocation(version_id, asset, partition_key, snapshot_id, archive_path)


def catalog_file(catalog: str) -> Path | None:
    """The file a SQLite or DuckDB catalog lives in; None for a catalog served by a database server."""
    kind, _, target = catalog.partition(":")
    return Path(target) if kind in ("sqlite", "duckdb") else None


def require_warehouse(catalog: str) -> None:
    """Refuse to go on where no warehouse exists, rather than create an empty one by accident.

    Only `quarry materialize` creates a warehouse; every reader and maintenance command
    calls this first, so a command run outside the project directory says so in one line.
    """
    path = catalog_file(catalog)
    if path is not None and not path.is_file():
        raise WarehouseMissing(
            f"no warehouse at {path} (QUARRY_CATALOG={catalog}): run `quarry materialize` to build one, "
            "or run from the project directory, or set QUARRY_CATALOG to an existing catalog"
        )


def ducklake_uri(catalog: str) -> str:
    """Map Quarry's catalog setting (`sqlite:PATH`, `postgres:CONNINFO`, `duckdb:PATH`) to a DuckLake URI."""
    kind, _, target = catalog.partition(":")
    if kind == "sqlite":
        return f"ducklake:sqlite:{target}"
    if kind in ("postgres", "postgresql"):
        return f"ducklake:postgres:{target}"
    if kind == "duckdb":
        return f"ducklake:{target}"
    raise WarehouseError(f"catalog {redact(catalog)!r}: expected 'sqlite:PATH', 'postgres:CONNINFO' or 'duckdb:PATH'")


def sql_literal(value: str) -> str:
    """A SQL string literal: ATTACH takes no parameters, so a `'` in a password or path is doubled, never spliced."""
    return "'" + value.replace("'", "''") + "'"


def attach_sql(catalog: str, data_path: str, read_only: bool = False) -> str:
    """The one ATTACH statement a notebook or the DuckDB CLI needs (after `LOAD ducklake`)."""
    options = f"DATA_PATH {sql_literal(data_path)}" + (", READ_ONLY" if read_only else "")
    return f"ATTACH {sql_literal(ducklake_uri(catalog))} AS {LAKE} ({options})"


def needed_extensions(catalog: str) -> list[str]:
    """The extensions a connection needs to attach this catalog: DuckLake and the catalog database's scanner."""
    kind = catalog.partition(":")[0]
    return ["ducklake"] + (["sqlite_scanner"] if kind == "sqlite" else []) + (
        ["postgres_scanner"] if kind in ("postgres", "postgresql") else []
    )


def load_extensions(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """Load DuckLake and the catalog's scanner, installing them from their registry wheels the first time."""
    for name in needed_extensions(catalog):
        try:
            con.execute(f"LOAD {name}")
        except duckdb.Error:
            import duckdb_extensions

            duckdb_extensions.import_extension(name, con=con)
            con.execute(f"LOAD {name}")


def use_write_ahead_log(catalog_file: Path) -> None:
    """Put a SQLite catalog in WAL mode (persistent in the file) so readers never block the writer.

    In SQLite's default rollback-journal mode a long catalog read holds a lock that makes
    a concurrent publish fail with "database is locked"; in WAL mode readers and one
    writer proceed together, in this process and in others (a notebook, the DuckDB CLI).
    """
    with sqlite3.connect(catalog_file, timeout=30) as connection:
        if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
    connection.close()


#: Failures no retry can fix, by what the operator must do; checked before anything is called a conflict.
PERMANENT_FAILURES = {
    "disk-full": ("No space left on device", "database or disk is full", "Disk quota exceeded", " is full ("),
    "read-only": ("Read-only file system", "attempt to write a readonly database", " is read-only ("),
    "permission": ("Permission denied", "permission denied on "),
    "missing-file": ("No such file or directory", "Cannot open file"),
}
CONFLICT_MARKERS = ("Failed to commit", "conflict", "Conflict", "database is locked", "could not serialize")


def failure_kind(error: BaseException) -> str:
    """'disk-full', 'read-only', 'permission', 'missing-file', 'conflict' (worth retrying) or 'other'."""
    text = str(error)
    for kind, markers in PERMANENT_FAILURES.items():
        if any(marker in text for marker in markers):
            return kind
    return "conflict" if any(marker in text for marker in CONFLICT_MARKERS) else "other"


def is_commit_conflict(error: Exception) -> bool:
    """A concurrent commit got in first: running the whole transaction again will succeed."""
    return failure_kind(error) == "conflict"


def _is_locked_read(error: BaseException) -> bool:
    return isinstance(error, duckdb.Error) and "database is locked" in str(error)


def _is_conflicted_commit(error: BaseException) -> bool:
    return isinstance(error, duckdb.Error) and is_commit_conflict(error)


#: A transaction that lost a commit race is run again whole; backoff from 0.1 s doubling to 2 s, with jitter
#: (x0.5 to x1.5) so concurrent writers spread out. Disk full, read-only and the like are never conflicts.
COMMIT_RETRY = RetryPolicy(COMMIT_RETRIES, _is_conflicted_commit, first_wait_s=0.1, max_wait_s=2.0, jitter=(0.5, 1.5))
#: A read that found a SQLite catalog locked by a concurrent commit, the same way.
LOCKED_READ_RETRY = replace(COMMIT_RETRY, retry_on=_is_locked_read)


class StorageError(WarehouseError):
    """The disk refused: full, read-only, no permission or a file gone. Retrying cannot help; one line says why."""

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind if kind != "other" else failure_kind(Exception(message))


def _mount_of(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() or not os.path.ismount(path):
        if path.parent == path:
            return path
        path = path.parent
    return path


def storage_failure(kind: str, error: BaseException, fallback: str) -> StorageError:
    """One line naming the disk (its mount point and free space) or the file, and what to do about it."""
    import re
    import shutil

    quoted = re.search(r'"(/[^"]+)"', str(error)) or re.search(r"'(/[^']+)'", str(error))
    where = Path(quoted.group(1) if quoted else fallback)
    mount = _mount_of(where)
    if kind == "disk-full":
        usage = shutil.disk_usage(mount)
        message = (f"the disk at {mount} is full ({usage.free / 2**20:.1f} MiB free of {usage.total / 2**20:.1f} MiB) "
                   f"while writing {where}: free space there or move QUARRY_DATA_PATH to a larger disk; "
                   "nothing published changed")
    elif kind == "read-only":
        message = (f"the disk at {mount} is read-only ({where}): remount it read-write or open the warehouse "
                   "read-only; nothing published changed")
    elif kind == "permission":
        message = f"permission denied on {where}: give this user write access to it; nothing published changed"
    else:
        message = (f"{where} is missing: {redact(' '.join(str(error).split()))[:200]}; "
                   "run `quarry verify` and `quarry materialize --repair`")
    return StorageError(message, kind)


def _catalog_file_state(catalog: str) -> str:
    """'missing', 'read-only' (the file or its directory cannot be written) or 'writable', for a file catalog."""
    kind, _, target = catalog.partition(":")
    if kind not in ("sqlite", "duckdb"):
        return "remote"
    path = Path(target)
    if not path.exists():
        return "missing"
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    return "writable" if writable else "read-only"


def attach_failure(catalog: str, data_path: str, read_only: bool, error: str, file_state: str) -> str:
    """One line saying why the lake could not be attached and what fixes it; never a password."""
    detail = " ".join(error.split())
    where = f"catalog {redact(catalog)}, data path {data_path}"
    if file_state == "read-only" and "unable to open" in detail:
        return (
            f"cannot open the warehouse ({where}): the SQLite catalog is on read-only media and in WAL mode, "
            "which needs its -wal/-shm files beside it. Fix: copy the catalog to writable storage, or before "
            "mounting it read-only run `sqlite3 CATALOG 'PRAGMA journal_mode=DELETE'` on a writable copy."
        )
    if file_state == "missing" and read_only:
        return f"no warehouse at {where}: run `quarry materialize` first, or set QUARRY_CATALOG to an existing catalog"
    hint = ""
    if file_state == "remote" and any(m in detail for m in ("Unable to connect", "Connection refused", "could not connect")):
        hint = " Is the catalog database running and reachable?"
    elif file_state != "remote" and not Path(catalog.partition(":")[2]).is_absolute():
        hint = (" Relative paths resolve from the working directory: run from the project directory "
                "or set QUARRY_CATALOG and QUARRY_DATA_PATH to absolute paths.")
    return redact(f"cannot attach the warehouse ({where}): {detail}.{hint}")


class Warehouse:
    """A DuckLake attached in this process; every method is safe to call from several threads."""

    def __init__(self, catalog: str, data_path: str, read_only: bool = False):
        self.catalog = catalog
        self.data_path = data_path
        self.read_only = read_only
        kind, _, target = catalog.partition(":")
        if read_only:
            require_warehouse(catalog)
        if kind in ("sqlite", "duckdb") and not read_only:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite" and not read_only:
            try:
                use_write_ahead_log(Path(target))
            except sqlite3.OperationalError as error:
                if _catalog_file_state(catalog) != "read-only":
                    raise
                raise WarehouseError(
                    f"the catalog {target} is on read-only media ({error}): this command writes to the warehouse; "
                    "read-only commands (history, lineage, assets, sql) work once the catalog is out of WAL mode, "
                    "or copy the warehouse to writable storage"
                ) from None
        if not read_only and "://" not in data_path:
            Path(data_path).mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect()
        self._cursors_lock = threading.Lock()
        self._local = threading.local()
        self._thread_cursors: list[duckdb.DuckDBPyConnection] = []
        load_extensions(self._con, catalog)
        self._con.execute("SET TimeZone = 'UTC'")
        try:
            self._con.execute(attach_sql(catalog, data_path, read_only))
        except duckdb.Error as error:
            raise WarehouseError(attach_failure(catalog, data_path, read_only, str(error), _catalog_file_state(catalog))) from None
        self._publish_lock = threading.Lock()
        #: Tables known to exist, with their columns once a publish has checked them: (schema, name) -> columns.
        self._known_tables: dict[tuple[str, str], dict[str, str] | None] = {}
        #: Asset -> digest of its latest quarry.asset_metadata row, as this process last read or wrote it.
        self._recorded_metadata: dict[str, str | None] = {}
        try:
            self._upgrade_catalog()
        except BaseException:
            self._con.close()
            raise

    def _upgrade_catalog(self) -> None:
        """Bring the catalog tables to this code's schema version (see `warehouse.catalog_migrations`).

        A read-only open upgrades nothing; any open refuses a catalog newer than this code.
        """
        with self._cursor() as cur:
            found = catalog_migrations.schema_version(cur)
        latest = catalog_migrations.latest_version()
        if found > latest:
            raise WarehouseError(
                f"catalog {self.catalog!r} is at schema version {found}, newer than this Quarry's {latest}: "
                "upgrade Quarry to open it"
            )
        self._schema_version = found
        if found == latest or self.read_only:
            return
        applied = self.transaction(catalog_migrations.upgrade, "upgrade the catalog")
        self._schema_version = latest
        if applied:
            logger.info("catalog upgraded to schema version {} ({})", latest, ", ".join(step.name for step in applied))

    def schema_version(self) -> int:
        """The last numbered catalog migration applied to this warehouse."""
        with self._cursor() as cur:
            return catalog_migrations.schema_version(cur)

    @classmethod
    def open(cls, catalog: str, data_path: str, read_only: bool = False) -> Warehouse:
        return cls(catalog, data_path, read_only)

    def close(self) -> None:
        with self._cursors_lock:
            for cur in self._thread_cursors:
                cur.close()
            self._thread_cursors.clear()
        self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for this thread, sharing the attached lake."""
        with self._cursors_lock:  # the parent connection's list of cursors is not safe to change from two threads
            cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    def execute(self, sql: str, params: list | None = None) -> None:
        """Run one statement (a maintenance CALL) under the lake lock, in its own implicit transaction."""
        with self._cursor() as cur:
            cur.execute(sql, params or [])

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """Run a read; a SQLite catalog briefly locked by a concurrent commit is retried, not surfaced."""

        def read() -> pl.DataFrame:
            with self._cursor() as cur:
                try:
                    return cur.execute(sql, params or []).pl()
                except duckdb.Error as error:
                    if not _is_locked_read(error):
                        raise
                    locked = error
            raise locked  # outside the cursor's block: a locked read leaves the cursor clean, so this thread keeps it

        def log(retry: Retry) -> None:
            logger.debug("read found the catalog locked (attempt {}); retrying", retry.attempt)

        return LOCKED_READ_RETRY.call(read, on_retry=log)

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's own cursor, opened once and closed with the warehouse, used under the lake lock.

        DuckLake 1.5 is not safe against itself inside one process: a read on one cursor while
        another thread commits on a second cursor of the same connection has crashed the
        process (SIGSEGV in the catalog's name maps), and so has opening and closing cursors
        during a commit. So every statement and transaction on the lake runs under one
        process-wide lock, shared by every Warehouse object: the transforms still run in parallel, only the lake's own work is
        serialized. Each thread keeps one cursor; a nested use on the same thread gets a
        short-lived cursor of its own (its own transaction); a cursor that saw an error is set
        aside, so the next use starts clean.
        """
        with LAKE_LOCK:
            with self._thread_cursor() as cur:
                yield cur

    @contextmanager
    def _thread_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        local = self._local
        if getattr(local, "busy", False):
            cur = self.cursor()
            try:
                yield cur
            finally:
                with self._cursors_lock:
                    cur.close()
            return
        cur = getattr(local, "cursor", None)
        if cur is None:
            cur = local.cursor = self.cursor()
            with self._cursors_lock:
                self._thread_cursors.append(cur)
        local.busy = True
        try:
            yield cur
        except BaseException:
            local.cursor = None
            raise
        finally:
            local.busy = False

    def transaction(self, work, what: str):
        """Run `work(cursor)` in one transaction, retrying the whole transaction on a commit conflict.

        DuckLake on a SQLite catalog reports concurrent commits as failures that succeed
        when the transaction is simply run again; backoff with jitter spreads the writers.
        A failure of the disk (full, read-only, ...) leaves at once as a StorageError.
        """

        def attempt():
            with self._cursor() as cur:
                try:
                    cur.execute("BEGIN TRANSACTION")
                    result = work(cur)
                    cur.execute("COMMIT")
                    return result
                except duckdb.Error as error:
                    try:
                        cur.execute("ROLLBACK")
                        rolled_back = True
                    except duckdb.Error:
                        rolled_back = False
                    kind = failure_kind(error)
                    if kind in PERMANENT_FAILURES:
                        raise storage_failure(kind, error, self.data_path) from None
                    if kind != "conflict" or not rolled_back:
                        raise  # inside the cursor's block: a cursor that saw this error is set aside
                    conflict = error
            raise conflict  # outside it: the rolled-back cursor stays this thread's for the next attempt

        def log(retry: Retry) -> None:  # the wait runs outside the lake lock, so this process's other threads go on
            logger.debug("{} conflicted (attempt {}): {}; retrying in {:.2f}s", what, retry.attempt, retry.error,
                         retry.wait_s)

        return COMMIT_RETRY.call(attempt, on_retry=log)

    # ---- catalog reads -------------------------------------------------------------------

    def has_table(self, schema: str, table: str) -> bool:
        """Whether the lake has the table; a table once seen is remembered (Quarry never drops one)."""
        if (schema, table) in self._known_tables:
            return True
        found = self.query(
            "SELECT count(*) AS n FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [LAKE, schema, table],
        )
        if found["n"][0] > 0:
            self._known_tables[(schema, table)] = None
            return True
        return False

    def current_versions(self, assets: list[str] | None = None) -> pl.DataFrame:
        """The published version of every (asset, partition).

        The asset filter runs in Polars: binding any parameter makes DuckDB import pandas,
        which a run that only plans otherwise never needs.
        """
        found = self.query(f"SELECT * FROM {LAKE}.quarry.versions WHERE status = 'published'")
        return found if assets is None else found.filter(pl.col("asset").is_in(assets))

    def latest_attempts(self, assets: list[str] | None = None) -> pl.DataFrame:
        """The most recent version of every (asset, partition), whatever its status."""
        found = self.query(
            f"""SELECT * FROM {LAKE}.quarry.versions
                QUALIFY row_number() OVER (PARTITION BY asset, partition_key ORDER BY created_at DESC, version_id DESC) = 1"""
        )
        return found if assets is None else found.filter(pl.col("asset").is_in(assets))

    def versions(self, asset: str, partition_key: str | None = None) -> pl.DataFrame:
        sql = f"SELECT * FROM {LAKE}.quarry.versions WHERE asset = ?"
        params: list = [asset]
        if partition_key is not None:
            sql += " AND partition_key = ?"
            params.append(partition_key)
        return self.query(sql + " ORDER BY created_at DESC, version_id DESC", params)

    def version(self, version_id: str) -> dict:
        found = self.query(f"SELECT * FROM {LAKE}.quarry.versions WHERE version_id = ?", [version_id])
        if found.is_empty():
            raise WarehouseError(f"no version {version_id!r} in the catalog")
        return found.row(0, named=True)

    def check_results(self, run_id: str) -> pl.DataFrame:
        return self.query(
            f"SELECT * FROM {LAKE}.quarry.check_results WHERE run_id = ? ORDER BY asset, partition_key, check_name",
            [run_id],
        )

    def run(self, run_id: str) -> dict | None:
        found = self.query(f"SELECT * FROM {LAKE}.quarry.runs WHERE run_id = ?", [run_id])
        return None if found.is_empty() else found.row(0, named=True)

    def last_run(self) -> dict | None:
        found = self.query(f"SELECT * FROM {LAKE}.quarry.runs ORDER BY started_at DESC LIMIT 1")
        return None if found.is_empty() else found.row(0, named=True)

    def asset_definitions(self, assets: list[str] | None = None) -> pl.DataFrame:
        """Every recorded definition (code version, digests, metadata) of the assets, oldest first."""
        if self._schema_version < ASSET_DEFINITIONS_SINCE:  # a read-only open of a catalog not upgraded yet
            return pl.DataFrame(schema={"asset": pl.String, "code_version": pl.String, "code_digests": pl.String})
        found = self.query(f"SELECT * FROM {LAKE}.quarry.asset_definitions ORDER BY recorded_at, asset")
        return found if assets is None else found.filter(pl.col("asset").is_in(assets))

    def record_asset_definitions(self, rows: pl.DataFrame) -> None:
        """Append definitions that changed (see `pipelines.materialize.record_definitions`)."""
        if rows.is_empty():
            return

        def write(cur: duckdb.DuckDBPyConnection) -> None:
            cur.register("definition_rows", rows)
            cur.execute(f"INSERT INTO {LAKE}.quarry.asset_definitions BY NAME SELECT * FROM definition_rows")
            cur.unregister("definition_rows")

        self.transaction(write, "record asset definitions")

    def asset_metadata(self, assets: list[str] | None = None) -> dict[str, AssetMetadata]:
        """Each asset's grain, partitioning, freshness and contract as its latest publish recorded them."""
        if self._schema_version < ASSET_METADATA_SINCE:  # a read-only open of a catalog not upgraded yet
            return {}
        sql = LATEST_ASSET_METADATA_SQL.format(lake=LAKE)
        params: list = []
        if assets is not None:
            sql = f"SELECT * FROM ({sql}) WHERE list_contains(?, asset)"
            params.append(assets)
        return {row["asset"]: AssetMetadata.from_row(row) for row in self.query(sql, params).iter_rows(named=True)}

    # ---- data reads ----------------------------------------------------------------------

    def read(
        self, asset: str, partition_keys: list[str] | None = None, *, spans: list[tuple[str, str]] | None = None
    ) -> pl.DataFrame:
        """The published rows of an asset, without the partition column.

        Optionally only some partitions: named one by one, or as inclusive (first, last)
        key ranges (a look-back window is one range, however many sessions it spans).
        """
        if not self.has_table("main", asset):
            raise WarehouseError(f"asset {asset!r} has never been published")
        sql = f'SELECT * EXCLUDE (partition_key) FROM {LAKE}.main."{asset}"'
        params: list = []
        if partition_keys is not None:
            sql += " WHERE list_contains(?, partition_key)"
            params.append(partition_keys)
        elif spans is not None:
            sql += " WHERE " + (" OR ".join(["partition_key BETWEEN ? AND ?"] * len(spans)) or "false")
            params.extend(key for span in spans for key in span)
        return self.query(sql, params)

    def read_as_of(
        self, asset: str, *, version_id: str | None = None, at: datetime | None = None,
        partition_keys: list[str] | None = None,
    ) -> pl.DataFrame:
        """An asset as it was published: as of one version (its partition) or as of a timestamp (all of it).

        A version past retention is read from the Parquet file it was archived to, so a
        version id stays readable through `optimize` and `archive`; a timestamp before the
        retention cutoff is refused (see `raise_if_archived`).
        """
        if (version_id is None) == (at is None):
            raise WarehouseError("read_as_of needs exactly one of version_id or at")
        if version_id is not None:
            location = self.version_location(asset, version_id)
            return self.query(f"SELECT * EXCLUDE (partition_key) FROM ({location.select_sql()})")
        self.raise_if_archived(at=at)
        sql = f'SELECT * EXCLUDE (partition_key) FROM {LAKE}.main."{asset}" AT (TIMESTAMP => ?::TIMESTAMPTZ)'
        params: list = [at]
        if partition_keys is not None:
            sql += " WHERE list_contains(?, partition_key)"
            params.append(partition_keys)
        return self.query(sql, params)

    def version_location(self, asset: str, version_id: str) -> VersionLocation:
        """Where a version's rows are read: its publish snapshot, or its archive file once retention took the snapshot."""
        with self._cursor() as cur:
            return locate_version(cur, asset, version_id)

    def retention_horizon(self) -> dict | None:
        """The latest archive run: time travel to before its cutoff is no longer answered by the lake."""
        if not self.has_table("quarry", "archive_runs"):
            return None
        found = self.query(f"SELECT * FROM {LAKE}.quarry.archive_runs ORDER BY cutoff DESC LIMIT 1")
        return None if found.is_empty() else found.row(0, named=True)

    def raise_if_archived(self, at: datetime) -> None:
        """Refuse an as-of read by timestamp that the lake can no longer answer, naming the archive manifest.

        With the snapshots before the retention cutoff expired, DuckLake would silently
        answer from an older retained snapshot; a version id is still read, from its archive file.
        """
        horizon = self.retention_horizon()
        moment = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        if horizon is not None and moment < horizon["cutoff"]:
            raise VersionArchived(
                f"{moment.isoformat()} is before the retention cutoff {horizon['cutoff'].isoformat()}: snapshots "
                f"from then were expired; superseded versions are archived under {Path(horizon['manifest']).parent} "
                f"(manifest {horizon['manifest']}), each readable by its version id"
            )

    def snapshot_of_batch(self, batch_id: str) -> int:
        """The DuckLake snapshot a publish batch committed (its id is in the commit's extra info)."""
        found = self.query(
            f"SELECT snapshot_id FROM {LAKE}.snapshots() WHERE commit_extra_info = ?", [batch_id]
        )
        if found.is_empty():
            raise WarehouseError(f"publish batch {batch_id} has no DuckLake snapshot (expired or never committed)")
        return int(found["snapshot_id"][0])

    # ---- writes --------------------------------------------------------------------------

    def publish(self, *batches: PublishBatch) -> None:
        """Write-audit-publish, the publish step: one DuckLake transaction for the batches (one or several assets).

        Passed partitions replace their rows in the asset table and become the published
        version (the previous one superseded, also one a concurrent writer just committed: see
        `partitions_locked`); quarantined partitions keep their rows in
        `quarantine.<asset>` and leave the published table untouched. Check results, version
        rows and the snapshot's record (the batch id in the commit's extra info) commit in
        the same transaction, so readers never see one without the other.
        """
        if not batches:
            return
        names = ", ".join(b.asset for b in batches)
        message = f"publish {names} ({sum(len(b.published_keys) for b in batches)} partitions)"
        batch_ids = {b.batch_id for b in batches}
        if len(batch_ids) != 1:
            raise WarehouseError(f"one publish carries one batch id (its snapshot is found by it), got {sorted(batch_ids)}")

        def publish_all(cur: duckdb.DuckDBPyConnection) -> dict:
            checked = {}
            for batch in batches:
                checked.update(self._publish_in(cur, batch))
            cur.execute(f"CALL {LAKE}.set_commit_message('quarry', ?, extra_info => ?)", [message, batches[0].batch_id])
            # DuckLake stamps the snapshot with the time this transaction first touched the lake,
            # which is before now: as of `published_at`, readers see these batches. The snapshot id
            # is only known once the commit is done; `snapshot_of_batch` finds it by the batch id.
            now = datetime.now(timezone.utc)
            for batch in batches:
                cur.register("version_rows", batch.version_rows)
                cur.execute(
                    f"""INSERT INTO {LAKE}.quarry.versions BY NAME
                        SELECT * REPLACE (CASE WHEN status = 'published' THEN ?::TIMESTAMPTZ END AS published_at)
                        FROM version_rows""",
                    [now],
                )
                cur.unregister("version_rows")
            for batch in batches:
                if batch.metadata is not None:
                    self._record_metadata_in(cur, batch.metadata, now)
            return checked

        # The partitions' locks are taken before the transaction's first read and released after its
        # commit, so a concurrent writer of the same partition reads this publish and supersedes it.
        partitions = [(b.asset, key) for b in batches for key in b.version_rows["partition_key"]]
        with self._publish_lock, partitions_locked(self.catalog, partitions):
            checked = self.transaction(publish_all, f"publish {names}")
        self._known_tables.update(checked)
        self._recorded_metadata.update({b.asset: b.metadata.digest for b in batches if b.metadata is not None})

    def _record_metadata_in(self, cur: duckdb.DuckDBPyConnection, metadata: AssetMetadata, now: datetime) -> None:
        """Append the asset's metadata row when it differs from the latest one (looked up once per process)."""
        if metadata.asset not in self._recorded_metadata:
            latest = cur.execute(
                f"SELECT metadata_hash FROM ({LATEST_ASSET_METADATA_SQL.format(lake=LAKE)}) WHERE asset = ?",
                [metadata.asset],
            ).fetchone()
            self._recorded_metadata[metadata.asset] = latest[0] if latest else None
        if self._recorded_metadata[metadata.asset] == metadata.digest:
            return
        cur.register("metadata_row", pl.DataFrame([metadata.row(now)], schema=ASSET_METADATA_SCHEMA))
        cur.execute(f"INSERT INTO {LAKE}.quarry.asset_metadata BY NAME SELECT * FROM metadata_row")
        cur.unregister("metadata_row")

    def _publish_in(self, cur: duckdb.DuckDBPyConnection, batch: PublishBatch) -> dict:
        table = f'{LAKE}.main."{batch.asset}"'
        published_keys = batch.published_keys
        checked: dict[tuple[str, str], dict[str, str]] = {}
        if published_keys:
            cur.register("staged_rows", batch.rows)
            checked["main", batch.asset] = self._ensure_table(cur, "main", batch.asset, "staged_rows")
            if batch.partitioned:
                cur.execute(f"DELETE FROM {table} WHERE list_contains(?, partition_key)", [published_keys])
            else:
                cur.execute(f"DELETE FROM {table}")
            cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged_rows")
            cur.execute(
                f"""UPDATE {LAKE}.quarry.versions SET status = 'superseded', superseded_at = ?
                    WHERE asset = ? AND status = 'published' AND list_contains(?, partition_key)""",
                [batch.published_at, batch.asset, published_keys],
            )
            cur.unregister("staged_rows")
        if batch.quarantined_rows.height:
            cur.register("quarantined_rows", batch.quarantined_rows)
            checked["quarantine", batch.asset] = self._ensure_table(cur, "quarantine", batch.asset, "quarantined_rows")
            cur.execute(f'INSERT INTO {LAKE}.quarantine."{batch.asset}" BY NAME SELECT * FROM quarantined_rows')
            cur.unregister("quarantined_rows")
        for version_id, upstream in batch.confirmed.items():
            cur.execute(f"UPDATE {LAKE}.quarry.versions SET upstream_versions = ? WHERE version_id = ?", [upstream, version_id])
        if batch.check_rows.height:
            cur.register("check_rows", batch.check_rows)
            cur.execute(f"INSERT INTO {LAKE}.quarry.check_results BY NAME SELECT * FROM check_rows")
            cur.unregister("check_rows")
        return checked

    def _ensure_table(self, cur: duckdb.DuckDBPyConnection, schema: str, name: str, view: str) -> dict[str, str]:
        """Create the table from a registered frame's schema, or add the columns it has and the table lacks.

        Returns the staged columns; once a publish with them has committed they are remembered,
        and a later publish of the same columns skips the catalog round trips.
        """
        staged = dict(cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {view})").fetchall())
        if self._known_tables.get((schema, name)) == staged:
            return staged
        cur.execute(f'CREATE TABLE IF NOT EXISTS {LAKE}.{schema}."{name}" AS SELECT * FROM {view} LIMIT 0')
        existing = dict(
            cur.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
                [LAKE, schema, name],
            ).fetchall()
        )
        for column in (c for c in staged if c not in existing):
            cur.execute(f'ALTER TABLE {LAKE}.{schema}."{name}" ADD COLUMN "{column}" {staged[column]}')
        dropped = [c for c in existing if c not in staged]
        if dropped and schema == "main":
            raise WarehouseError(
                f"asset {name}: the new version lacks columns {dropped} that the published table has; "
                f"drop the table (quarry sql 'DROP TABLE {LAKE}.main.{name}') and rebuild with --full-refresh"
            )
        return staged

    def record_checks(self, check_rows: pl.DataFrame) -> None:
        """Append check results that belong to no publish (a validation sweep of published data)."""

        def write(cur: duckdb.DuckDBPyConnection) -> None:
            cur.register("swept_checks", check_rows)
            cur.execute(f"INSERT INTO {LAKE}.quarry.check_results BY NAME SELECT * FROM swept_checks")
            cur.unregister("swept_checks")

        self.transaction(write, "record checks")

    def record_run(self, run: dict) -> None:
        """Insert or replace the run's row in `quarry.runs`."""
        frame = pl.DataFrame([run])

        def write(cur: duckdb.DuckDBPyConnection) -> None:
            cur.register("run_row", frame)
            cur.execute(f"DELETE FROM {LAKE}.quarry.runs WHERE run_id = ?", [run["run_id"]])
            cur.execute(f"INSERT INTO {LAKE}.quarry.runs BY NAME SELECT * FROM run_row")
            cur.unregister("run_row")

        self.transaction(write, "record run")

    def delete_orphaned_files(self, older_than_hours: float | None = 1.0) -> None:
        """Remove Parquet files no snapshot references (left by a writer killed mid-commit).

        Only files older than `older_than_hours` go, so a concurrent writer's files that
        are not committed yet are never taken; `None` removes every orphan (no writers running).
        """
        with self._cursor() as cur:
            if older_than_hours is None:
                cur.execute(f"CALL ducklake_delete_orphaned_files('{LAKE}', cleanup_all => true)")
            else:
                cur.execute(
                    f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => now() - to_microseconds(?::BIGINT))",
                    [int(older_than_hours * 3_600_000_000)],
                )
