"""Quarry's catalog inside the lake: version rows, runs and check results, and what one publish carries."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

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
class ContractColumn:
    """One column a contract promises: its name, Polars dtype and whether it may be null."""

    name: str
    dtype: str
    nullable: bool = False


@dataclass(frozen=True)
class AssetMetadata:
    """What an asset's versions are published under: grain, partitioning, freshness and contract.

    Kept in `quarry.asset_metadata`, a row each time it changes, written in the publish
    transaction; so the catalog says what grain built a version, even after the code changed it.
    `partitions` is None only for an asset published before the catalog kept it (partitioned,
    daily or weekly not recorded).
    """

    asset: str
    code_version: str | None = None
    grain: tuple[str, ...] = ()
    partitions: str | None = "none"
    partition_column: str | None = None
    time_column: str | None = None
    freshness_seconds: float | None = None
    contract: str | None = None
    contract_columns: tuple[ContractColumn, ...] = ()

    @property
    def is_partitioned(self) -> bool:
        return self.partitions != "none"

    @property
    def freshness(self) -> timedelta | None:
        return timedelta(seconds=self.freshness_seconds) if self.freshness_seconds is not None else None

    @property
    def digest(self) -> str:
        """Changes exactly when a field does: a publish writes a row only when it differs from the latest."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]

    def row(self, recorded_at: datetime) -> dict:
        """The `quarry.asset_metadata` row, recorded at `recorded_at`."""
        columns = [asdict(c) for c in self.contract_columns]
        return {
            "asset": self.asset, "code_version": self.code_version, "metadata_hash": self.digest,
            "grain": list(self.grain), "partitions": self.partitions, "partition_column": self.partition_column,
            "time_column": self.time_column, "freshness_seconds": self.freshness_seconds, "contract": self.contract,
            "contract_columns": json.dumps(columns) if self.contract is not None else None,
            "recorded_at": recorded_at,
        }

    @classmethod
    def from_row(cls, row: dict) -> AssetMetadata:
        columns = json.loads(row["contract_columns"]) if row.get("contract_columns") else []
        return cls(
            asset=row["asset"], code_version=row["code_version"], grain=tuple(row["grain"] or ()),
            partitions=row["partitions"], partition_column=row["partition_column"], time_column=row["time_column"],
            freshness_seconds=row["freshness_seconds"], contract=row["contract"],
            contract_columns=tuple(ContractColumn(**c) for c in columns),
        )


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
    #: The asset's grain, partitioning and contract, recorded with the publish when they changed.
    metadata: AssetMetadata | None = None

    @property
    def published_keys(self) -> list[str]:
        published = self.version_rows.filter(pl.col("status") == "published")
        return published["partition_key"].to_list()
