"""Quarry's catalog inside the lake: version rows, runs and check results, and what one publish carries."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

VERSION_STATUSES = ("published", "quarantined", "superseded")


def new_id(prefix: str) -> str:
    """A time-ordered unique id: sorts by creation, never collides across processes."""
    return f"{prefix}{time.time_ns():x}{os.urandom(3).hex()}"


def data_version(frame: pl.DataFrame) -> str:
    """A content hash of a frame that ignores row order: identical data gives an identical version.

    Two independently seeded row hashes summed with wrap-around give 128 bits that do not
    depend on order; the schema is hashed in, so a renamed or retyped column is new data.
    """
    keyed = frame.with_columns(partition_key=pl.lit("all"))
    return data_versions_by_partition(keyed).get("all") or _digest(_schema_text(frame), 0, 0, 0)


def data_versions_by_partition(frame: pl.DataFrame) -> dict[str, str]:
    """`data_version` of each partition's rows (the partition column itself excluded), in one pass."""
    columns = [c for c in frame.columns if c != "partition_key"]
    schema = _schema_text(frame.select(columns))
    sums = (
        frame.select(
            "partition_key",
            a=pl.struct(columns).hash(0x51A7),
            b=pl.struct(columns).hash(0x0C0FFEE),
        )
        .group_by("partition_key")
        .agg(n=pl.len(), a=pl.col("a").sum(), b=pl.col("b").sum())
    )
    return {key: _digest(schema, n, a, b) for key, n, a, b in sums.iter_rows()}


def _schema_text(frame: pl.DataFrame) -> str:
    return ";".join(f"{name}:{dtype}" for name, dtype in frame.schema.items())


def _digest(schema: str, n_rows: int, hash_a: int, hash_b: int) -> str:
    return hashlib.sha256(f"{schema}|{n_rows}|{hash_a}|{hash_b}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PublishBatch:
    """Everything one publish transaction writes for one asset and a batch of its partitions."""

    asset: str
    batch_id: str
    partitioned: bool
    rows: pl.DataFrame
    quarantined_rows: pl.DataFrame
    version_rows: pl.DataFrame
    check_rows: pl.DataFrame
    published_at: datetime
    #: Version id -> upstream record: published versions a rebuild found unchanged, re-stamped in place.
    confirmed: dict[str, str] = field(default_factory=dict)

    @property
    def published_keys(self) -> list[str]:
        published = self.version_rows.filter(pl.col("status") == "published")
        return published["partition_key"].to_list()
