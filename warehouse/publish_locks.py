"""Per-(asset, partition) locks that writers hold across a publish transaction, on every kind of catalog."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from loguru import logger

from warehouse.redaction import redact

#: The first key of PostgreSQL's two-key advisory locks for publishes ("qp"); the ledger uses 0x7175.
PUBLISH_LOCK_NAMESPACE = 0x7170
#: POSIX record locks belong to the process, not the thread: one thread of this process at a time holds
#: file-catalog publish locks, so a second thread's open/close of the lock file never drops the first's.
_FILE_LOCKS_IN_PROCESS = threading.Lock()


class PublishLockUnavailable(RuntimeError):
    """The catalog database could not be reached to lock the partitions; nothing was published."""


def publish_lock_key(asset: str, partition_key: str) -> int:
    """A stable 31-bit number for one (asset, partition): an advisory-lock key and a byte offset in the lock file.

    Two partitions that share a number only wait for each other; they never skip a wait.
    """
    digest = hashlib.blake2b(f"{asset}\0{partition_key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF


def lock_file_of(catalog_path: Path) -> Path:
    """The file whose bytes are the publish locks of a SQLite or DuckDB catalog: beside the catalog."""
    return catalog_path.with_name(catalog_path.name + ".publish-lock")


@contextmanager
def partitions_locked(catalog: str, partitions: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Hold an exclusive lock on each (asset, partition) for the block, taken in one global order (no deadlock).

    A publish reads the partition's current version and supersedes it in a DuckLake transaction;
    DuckLake's optimistic concurrency lets two transactions that only insert (a partition with no
    rows to delete and no version to supersede yet) both commit, each with a version marked
    published. Holding the lock from before the transaction's first read until after its commit
    makes the writers of one partition take turns: each reads what the previous one committed.

    On PostgreSQL, transaction-level advisory locks on a side connection to the catalog database
    (released when it ends, or when the process dies); on a file catalog, one-byte POSIX record
    locks in a file beside it (released when it is closed, or when the process dies).
    """
    keys = sorted({publish_lock_key(asset, key) for asset, key in partitions})
    kind, _, target = catalog.partition(":")
    if not keys:
        yield
    elif kind in ("postgres", "postgresql"):
        with _advisory_locks(target, keys):
            yield
    else:
        with _record_locks(lock_file_of(Path(target)), keys):
            yield


@contextmanager
def _advisory_locks(conninfo: str, keys: list[int]) -> Iterator[None]:
    import psycopg

    try:
        side = psycopg.connect(conninfo)
    except psycopg.Error as error:
        raise PublishLockUnavailable(redact(f"cannot open the catalog database to lock partitions for publishing: {error}")) from None
    with side:  # commits (releasing the transaction's advisory locks) and closes on the way out
        for key in keys:
            side.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PUBLISH_LOCK_NAMESPACE, key])
        logger.debug("holding {} partition publish locks on the catalog database", len(keys))
        yield


@contextmanager
def _record_locks(path: Path, keys: list[int]) -> Iterator[None]:
    import fcntl

    with _FILE_LOCKS_IN_PROCESS, open(path, "a+b") as handle:
        for key in keys:
            fcntl.lockf(handle, fcntl.LOCK_EX, 1, key)
        logger.debug("holding {} partition publish locks in {}", len(keys), path)
        yield
