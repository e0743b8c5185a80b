"""Consistent backups of the warehouse (catalog + the Parquet files it references) and the ledger, and restores."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from loguru import logger

from warehouse.lake import WarehouseError
from warehouse.redaction import redact

MANIFEST = "manifest.json"
CATALOG_FILE = {"sqlite": "catalog.sqlite", "postgres": "catalog.dump"}
LEDGER_FILE = "ledger.sqlite"
LEDGER_DUMP = "ledger.dump"
BOOK_FILE = "paper_broker.sqlite"
DATA_DIR = "lake"

#: Where DuckLake keeps every file a snapshot may read, with the table and schema it belongs to.
FILE_PATHS_SQL = """
    SELECT s.path AS schema_path, s.path_is_relative AS schema_relative,
           t.path AS table_path, t.path_is_relative AS table_relative,
           f.path AS file_path, f.path_is_relative AS file_relative
    FROM {files} f
    JOIN ducklake_table t ON t.table_id = f.table_id
    JOIN ducklake_schema s ON s.schema_id = t.schema_id
"""


class BackupError(WarehouseError):
    """A backup could not be taken or restored; the message names the file or command."""


@dataclass(frozen=True)
class BackupFile:
    relative_path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Backup:
    """One timestamped backup directory and what it holds."""

    path: Path
    created_at: str
    catalog_kind: str
    source_catalog: str
    source_data_path: str
    latest_snapshot_id: int | None
    files: tuple[BackupFile, ...]
    ledger: bool
    #: The catalog copy, the ledger (SQLite file or `pg_dump -Fc`) and the paper broker's book, each with its digest.
    databases: tuple[BackupFile, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files + self.databases)

    def database(self, name: str) -> BackupFile | None:
        return next((f for f in self.databases if f.relative_path == name), None)

    @classmethod
    def load(cls, path: Path) -> Backup:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
        files = tuple(BackupFile(**f) for f in manifest.pop("files"))
        databases = tuple(BackupFile(**f) for f in manifest.pop("databases", ()))
        manifest.pop("path", None)
        return cls(path=Path(path), files=files, databases=databases, **manifest)


@dataclass(frozen=True)
class RestoredLake:
    """Settings that open a restored warehouse: `QUARRY_CATALOG`, `QUARRY_DATA_PATH`, and the ledger file."""

    catalog: str
    data_path: str
    ledger_path: Path | None
    ledger_url: str | None = None
    book_path: Path | None = None


def _catalog_kind(catalog: str) -> tuple[str, str]:
    kind, _, target = catalog.partition(":")
    kind = "postgres" if kind == "postgresql" else kind
    if kind not in CATALOG_FILE:
        raise BackupError(f"catalog {redact(catalog)!r}: backups support 'sqlite:PATH' and 'postgres:CONNINFO' catalogs")
    return kind, target


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup API: one consistent copy while other processes keep writing."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _join(base: str, part: str, relative: int | bool) -> str:
    return base + part if relative else part


def referenced_files(rows: list[tuple], data_path: str) -> list[str]:
    """Absolute-or-data-path-rooted paths of the files the catalog rows reference, resolved as DuckLake does."""
    paths = []
    for schema_path, schema_rel, table_path, table_rel, file_path, file_rel in rows:
        schema_root = _join(data_path, schema_path or "", schema_rel)
        table_root = _join(schema_root, table_path or "", table_rel)
        paths.append(_join(table_root, file_path, file_rel))
    return paths


def _catalog_rows(query) -> tuple[list[tuple], list[str], str, int | None]:
    """The file rows, files already scheduled for deletion, the stored data path, the latest snapshot."""
    rows = query(FILE_PATHS_SQL.format(files="ducklake_data_file")) + query(
        FILE_PATHS_SQL.format(files="ducklake_delete_file")
    )
    scheduled = [r[0] for r in query("SELECT path FROM ducklake_files_scheduled_for_deletion")]
    data_path = query("SELECT value FROM ducklake_metadata WHERE key = 'data_path'")[0][0]
    latest = query("SELECT max(snapshot_id) FROM ducklake_snapshot")[0][0]
    return rows, scheduled, data_path, latest


def _sqlite_query(path: Path):
    def run(sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(path) as con:
            result = con.execute(sql, params).fetchall()
        con.close()
        return result

    return run


def _postgres_query(conninfo: str):
    def run(sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(conninfo) as con:
            return con.execute(sql, params).fetchall()

    return run


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_data_files(paths: list[str], scheduled: set[str], data_path: str, target: Path) -> tuple[BackupFile, ...]:
    """Copy each referenced file under `target`, keeping its path relative to the data path."""
    root = Path(data_path).resolve()
    scheduled_names = {Path(s).name for s in scheduled}
    copied: dict[str, BackupFile] = {}
    for raw in paths:
        source = Path(raw).resolve()
        try:
            relative = source.relative_to(root)
        except ValueError:
            raise BackupError(f"data file {source} lies outside the data path {root}; cannot back it up") from None
        if str(relative) in copied:
            continue
        if not source.exists():
            if source.name in scheduled_names:
                continue  # expired and cleaned up since the catalog copy: no retained snapshot needs it
            raise BackupError(f"data file {source} is referenced by the catalog but missing")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        copied[str(relative)] = BackupFile(str(relative), destination.stat().st_size, _sha256(destination))
    return tuple(copied.values())


def backup(
    catalog: str, data_path: str, backups_dir: Path, ledger_path: Path | None = None, now: datetime | None = None,
    *, ledger_conninfo: str | None = None, book_path: Path | None = None,
) -> Backup:
    """Write `backups_dir/<UTC timestamp>/`: the catalog copied at one instant, then every file it references,
    the ledger (a SQLite file, or `pg_dump -Fc` of `ledger_conninfo`) and the paper broker's book.

    Data files are immutable and only removed by snapshot expiry, so copying the catalog
    first and the files after gives a consistent warehouse while writers keep publishing.
    Every file's SHA-256 goes into the manifest, which restore checks. The directory
    appears under its final name only once complete.
    """
    kind, target = _catalog_kind(catalog)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    final = Path(backups_dir) / stamp
    staging = Path(backups_dir) / f".{stamp}.partial"
    staging.mkdir(parents=True, exist_ok=False)
    try:
        catalog_copy = staging / CATALOG_FILE[kind]
        if kind == "sqlite":
            _sqlite_copy(Path(target), catalog_copy)
            query = _sqlite_query(catalog_copy)
        else:
            _pg_dump(target, catalog_copy)
            query = _postgres_query(target)  # files are only added, so the live list covers the dump
        rows, scheduled, stored_data_path, latest = _catalog_rows(query)
        files = _copy_data_files(referenced_files(rows, stored_data_path), set(scheduled), stored_data_path, staging / DATA_DIR)
        databases = [CATALOG_FILE[kind]]
        has_ledger = bool(ledger_conninfo) or bool(ledger_path and Path(ledger_path).exists())
        if ledger_conninfo:
            _pg_dump(ledger_conninfo, staging / LEDGER_DUMP)
            databases.append(LEDGER_DUMP)
        elif has_ledger:
            _sqlite_copy(Path(ledger_path), staging / LEDGER_FILE)
            databases.append(LEDGER_FILE)
        if book_path is not None and Path(book_path).exists():
            _sqlite_copy(Path(book_path), staging / BOOK_FILE)
            databases.append(BOOK_FILE)
        result = Backup(
            path=final, created_at=datetime.now(timezone.utc).isoformat(), catalog_kind=kind,
            source_catalog=catalog if kind == "sqlite" else "postgres:<conninfo>", source_data_path=stored_data_path,
            latest_snapshot_id=latest, files=files, ledger=has_ledger,
            databases=tuple(BackupFile(name, (staging / name).stat().st_size, _sha256(staging / name)) for name in databases),
        )
        manifest = asdict(result)
        manifest["path"] = str(final)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("backup {}: {} files, {} bytes, snapshot {}", final, len(files), result.total_bytes, latest)
    return result


@contextmanager
def libpq_address(conninfo: str) -> Iterator[str]:
    """A libpq address without its password, which waits instead in a password file of this process's own.

    A process's arguments are readable by every user of the machine (`ps`, /proc/PID/cmdline),
    so `pg_dump` and `pg_restore` get the password from a `passfile` (mode 0600, in a private
    temporary directory, deleted when the command is done), never in `--dbname`; the command
    inherits this process's environment unchanged. Both libpq forms are accepted:
    `postgresql://user:secret@host/db` and `host=… password=…`.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(conninfo)
    except Exception as error:
        raise BackupError(redact(f"not a PostgreSQL address: {conninfo!r} ({error})")) from None
    password = params.pop("password", None)
    if not password:
        yield make_conninfo(**params)
        return
    with tempfile.TemporaryDirectory(prefix="quarry-pgpass-") as private:
        passfile = Path(private) / "pgpass"
        passfile.touch(mode=0o600)
        escaped = str(password).replace("\\", "\\\\").replace(":", "\\:")
        passfile.write_text(f"*:*:*:*:{escaped}\n")
        yield make_conninfo(**params, passfile=str(passfile))


def _pg_run(program: str, arguments: list[str], conninfo: str) -> None:
    with libpq_address(conninfo) as address:
        try:
            completed = subprocess.run([program, f"--dbname={address}", *arguments], capture_output=True, text=True)
        except FileNotFoundError:
            raise BackupError(f"{program} is not installed (a PostgreSQL database is backed up with it)") from None
    if completed.returncode:
        reason = " ".join(completed.stderr.split())  # one line: libpq adds where the password came from
        raise BackupError(redact(f"{program} failed ({completed.returncode}): {reason}"))


def _pg_dump(conninfo: str, target: Path) -> None:
    _pg_run("pg_dump", ["-Fc", "--no-owner", f"--file={target}"], conninfo)


def _pg_restore(dump: Path, conninfo: str) -> None:
    _pg_run("pg_restore", ["--no-owner", "--exit-on-error", str(dump)], conninfo)


def verify_backup(backup_dir: Path) -> Backup:
    """Every file of the backup is there with the size and SHA-256 its manifest recorded, or a `BackupError` naming it."""
    taken = Backup.load(Path(backup_dir))
    expected = [(Path(backup_dir) / DATA_DIR / f.relative_path, f) for f in taken.files]
    expected += [(Path(backup_dir) / f.relative_path, f) for f in taken.databases]
    for path, item in expected:
        if not path.exists() or path.stat().st_size != item.bytes:
            raise BackupError(f"backup {backup_dir} is damaged: {path} is missing or truncated")
        digest = _sha256(path)
        if digest != item.sha256:
            raise BackupError(
                f"backup {backup_dir} is damaged: {path} has SHA-256 {digest[:12]}…, the manifest says {item.sha256[:12]}…"
            )
    return taken


def restore(backup_dir: Path, target_dir: Path, target_catalog: str | None = None,
            target_ledger: str | None = None) -> RestoredLake:
    """Restore a backup into a fresh directory (and, for PostgreSQL, empty databases `target_catalog`/`target_ledger`).

    Every file is checked against its manifest digest first: a damaged backup restores
    nothing. The restored catalog's stored data path is pointed at the restored files, so
    the warehouse opens with the returned settings and never touches the original location.
    """
    target_dir = Path(target_dir).resolve()
    if target_dir.exists() and any(target_dir.iterdir()):
        raise BackupError(f"restore target {target_dir} is not empty; restore into a fresh location")
    taken = verify_backup(Path(backup_dir))
    target_dir.mkdir(parents=True, exist_ok=True)
    data_path = f"{target_dir / DATA_DIR}{os.sep}"
    source_data = Path(backup_dir) / DATA_DIR
    if source_data.exists():
        shutil.copytree(source_data, target_dir / DATA_DIR)
    else:
        (target_dir / DATA_DIR).mkdir()
    if taken.catalog_kind == "sqlite":
        catalog_file = target_dir / CATALOG_FILE["sqlite"]
        _sqlite_copy(Path(backup_dir) / CATALOG_FILE["sqlite"], catalog_file)
        with sqlite3.connect(catalog_file) as con:
            con.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'", (data_path,))
        con.close()
        catalog = f"sqlite:{catalog_file}"
    else:
        if not target_catalog:
            raise BackupError("restoring a PostgreSQL catalog needs target_catalog='postgres:CONNINFO' of an empty database")
        _, conninfo = _catalog_kind(target_catalog)
        _pg_restore(Path(backup_dir) / CATALOG_FILE["postgres"], conninfo)
        import psycopg

        with psycopg.connect(conninfo) as con:
            con.execute("UPDATE ducklake_metadata SET value = %s WHERE key = 'data_path'", (data_path,))
        catalog = target_catalog
    ledger, ledger_url = None, None
    if (Path(backup_dir) / LEDGER_DUMP).exists():
        if not target_ledger:
            raise BackupError("this backup holds a PostgreSQL ledger: restoring it needs target_ledger='CONNINFO' "
                              "of an empty database")
        _pg_restore(Path(backup_dir) / LEDGER_DUMP, target_ledger)
        ledger_url = target_ledger
    elif taken.ledger:
        ledger = target_dir / LEDGER_FILE
        _sqlite_copy(Path(backup_dir) / LEDGER_FILE, ledger)
    book = None
    if (Path(backup_dir) / BOOK_FILE).exists():
        book = target_dir / BOOK_FILE
        _sqlite_copy(Path(backup_dir) / BOOK_FILE, book)
    logger.info("restored {} into {}", backup_dir, target_dir)
    return RestoredLake(catalog=catalog, data_path=data_path, ledger_path=ledger, ledger_url=ledger_url, book_path=book)


def list_backups(backups_dir: Path) -> list[Path]:
    """Complete backups, oldest first (a partial one never has its final name)."""
    root = Path(backups_dir)
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())
