"""The validated reader: trading code reads only published, check-passing, fresh asset versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import polars as pl

from assets.calendar import sessions
from warehouse.lake import Warehouse
from warehouse.versions import AssetMetadata

__all__ = [
    "DamagedAssetError",
    "MissingAssetError",
    "QuarantinedAssetError",
    "StaleAssetError",
    "UnusableAssetError",
    "ValidatedFrame",
    "ValidatedReader",
    "VersionRead",
]


class UnusableAssetError(RuntimeError):
    """An asset version trading must not use; the message names asset, partition, version and reason."""

    def __init__(self, asset: str, partition_key: str | None, version_id: str | None, reason: str):
        self.asset, self.partition_key, self.version_id, self.reason = asset, partition_key, version_id, reason
        super().__init__(
            f"{asset} partition {partition_key or '-'} version {version_id or '-'}: {reason}"
        )


class StaleAssetError(UnusableAssetError):
    """The newest usable version is older than the asset's freshness allows."""

    def __init__(self, asset: str, partition_key: str, version_id: str, age: timedelta, freshness: timedelta):
        self.age, self.freshness = age, freshness
        super().__init__(
            asset, partition_key, version_id,
            f"stale by {_human(age - freshness)} (age {_human(age)}, freshness {_human(freshness)})",
        )


class QuarantinedAssetError(UnusableAssetError):
    """The latest attempt at the partition failed its audit; the published rows are not trusted either."""

    def __init__(self, asset: str, partition_key: str, version_id: str, failed_checks: str | None):
        self.failed_checks = failed_checks or "unknown check"
        super().__init__(asset, partition_key, version_id, f"quarantined by {self.failed_checks}")


class DamagedAssetError(UnusableAssetError):
    """`quarry verify` found the stored files no longer match the recorded data version (or gone)."""

    def __init__(self, asset: str, partition_key: str, version_id: str, damage: str | None):
        super().__init__(asset, partition_key, version_id,
                         f"damaged in storage ({damage or 'content differs'}); repair with `quarry materialize --repair`")


class MissingAssetError(UnusableAssetError):
    """No version exists for what was asked."""

    def __init__(self, asset: str, partition_key: str | None, detail: str = "missing"):
        super().__init__(asset, partition_key, None, detail)


@dataclass(frozen=True)
class VersionRead:
    """One (asset, partition) version a read used: what a decision can be reproduced from."""

    asset: str
    partition_key: str
    version_id: str
    data_version: str

    def as_dict(self) -> dict[str, str]:
        return {"asset": self.asset, "partition_key": self.partition_key, "version_id": self.version_id,
                "data_version": self.data_version}


@dataclass(frozen=True)
class ValidatedFrame:
    """Rows of the published versions read, and which versions they were."""

    frame: pl.DataFrame
    versions: tuple[VersionRead, ...]


@dataclass
class ValidatedReader:
    """Reads assets for one trading cycle at `now`; `versions_read` accumulates every version used.

    Freshness is measured from the end of a partition's data (the session close of a daily
    or weekly partition, the publish time of an unpartitioned asset) to the injected `now`,
    so a simulated session and a live one follow the same rule. Partitioning and freshness
    are the catalog's (`quarry.asset_metadata`, recorded at publish), not today's code's.
    """

    warehouse: Warehouse
    now: datetime
    versions_read: list[VersionRead] = field(default_factory=list)
    _metadata: dict[str, AssetMetadata] = field(default_factory=dict, repr=False)

    def read(self, asset: str, partition_keys: list[str] | None = None) -> ValidatedFrame:
        """The named partitions (all current ones of an unpartitioned asset), each validated."""
        declared = self._declared(asset)
        keys = partition_keys if declared.is_partitioned else ["all"]
        if not keys:
            raise MissingAssetError(asset, None, "no partitions asked for")
        attempts = self._attempts(asset, keys)
        for key in keys:
            self._validate(asset, key, attempts.get(key))
        self._check_failed_checks(asset, attempts)
        newest = max(keys) if declared.is_partitioned else "all"
        self._check_freshness(asset, newest, attempts[newest])
        expected = [VersionRead(asset, k, attempts[k]["version_id"], attempts[k]["data_version"]) for k in sorted(keys)]
        return self._read_consistent(asset, keys, declared.is_partitioned, expected)

    def read_latest(self, asset: str, sessions_back: int = 1) -> ValidatedFrame:
        """The newest `sessions_back` partitions dated on or before `now` (an unpartitioned asset whole)."""
        if not self._declared(asset).is_partitioned:
            return self.read(asset)
        today = self.now.astimezone(timezone.utc).date().isoformat()
        found = self.warehouse.query(
            "SELECT DISTINCT partition_key FROM lake.quarry.versions WHERE asset = ? AND partition_key <= ? "
            "ORDER BY partition_key DESC LIMIT ?",
            [asset, today, sessions_back],
        )
        if found.is_empty():
            raise MissingAssetError(asset, f"<= {today}", f"missing: no partition on or before {today}")
        return self.read(asset, sorted(found["partition_key"].to_list()))

    def versions_used(self) -> list[dict[str, str]]:
        """Every version read so far, once each, for the audit log."""
        unique = {(v.asset, v.partition_key): v for v in self.versions_read}
        return [unique[k].as_dict() for k in sorted(unique)]

    # ---- internals -----------------------------------------------------------------------

    def _declared(self, asset: str) -> AssetMetadata:
        """The asset's partitioning and freshness as its latest publish recorded them."""
        if asset not in self._metadata:
            found = self.warehouse.asset_metadata([asset]).get(asset)
            if found is None:
                raise MissingAssetError(asset, None, "missing: never published (no metadata in the catalog)")
            self._metadata[asset] = found
        return self._metadata[asset]

    def _attempts(self, asset: str, keys: list[str]) -> dict[str, dict]:
        rows = self.warehouse.query(
            "SELECT * FROM lake.quarry.versions WHERE asset = ? AND list_contains(?, partition_key) "
            "QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY created_at DESC, version_id DESC) = 1",
            [asset, keys],
        )
        return {row["partition_key"]: row for row in rows.iter_rows(named=True)}

    def _validate(self, asset: str, key: str, attempt: dict | None) -> None:
        if attempt is None:
            raise MissingAssetError(asset, key, "missing: never materialized")
        if attempt["status"] == "quarantined":
            raise QuarantinedAssetError(asset, key, attempt["version_id"], attempt["failed_checks"])
        if attempt["status"] != "published":
            raise MissingAssetError(asset, key, f"missing: latest version {attempt['version_id']} is {attempt['status']}")
        if attempt.get("damaged_at") is not None:
            raise DamagedAssetError(asset, key, attempt["version_id"], attempt.get("damage"))

    def _check_failed_checks(self, asset: str, attempts: dict[str, dict]) -> None:
        """A published version with a failed error-severity check is treated as quarantined."""
        failed = self.warehouse.query(
            "SELECT partition_key, version_id, string_agg(check_name, ', ' ORDER BY check_name) AS checks "
            "FROM lake.quarry.check_results WHERE list_contains(?, version_id) AND severity = 'error' AND NOT passed "
            "GROUP BY partition_key, version_id ORDER BY partition_key",
            [[a["version_id"] for a in attempts.values()]],
        )
        if failed.height:
            key, version_id, checks = failed.row(0)
            raise QuarantinedAssetError(asset, key, version_id, checks)

    def _check_freshness(self, asset: str, key: str, attempt: dict) -> None:
        freshness = self._declared(asset).freshness
        if freshness is None:
            return
        age = self.now - data_end(key, attempt["published_at"])
        if age > freshness:
            raise StaleAssetError(asset, key, attempt["version_id"], age, freshness)

    def _read_consistent(self, asset: str, keys: list[str], partitioned: bool,
                         expected: list[VersionRead]) -> ValidatedFrame:
        """Read the rows, then confirm the validated versions are still the published ones.

        A publish between the validation and the read would hand over rows nobody
        validated; then the read fails closed, and the next cycle validates afresh.
        """
        frame = self.warehouse.read(asset, keys if partitioned else None)
        if self._published(asset, keys) != expected:
            raise MissingAssetError(asset, ",".join(keys), "missing: a new version was published during the read")
        self.versions_read.extend(expected)
        return ValidatedFrame(frame, tuple(expected))

    def _published(self, asset: str, keys: list[str]) -> list[VersionRead]:
        rows = self.warehouse.query(
            "SELECT partition_key, version_id, data_version FROM lake.quarry.versions "
            "WHERE asset = ? AND status = 'published' AND list_contains(?, partition_key) ORDER BY partition_key",
            [asset, keys],
        )
        return [VersionRead(asset, *row) for row in rows.iter_rows()]


def data_end(partition_key: str, published_at: datetime | None) -> datetime:
    """When a partition's data ends: its session close (end of day if not a session), or the publish time."""
    if partition_key == "all":
        return published_at or datetime.min.replace(tzinfo=timezone.utc)
    day = date.fromisoformat(partition_key)
    session = sessions(day, day)
    if session.height:
        return session["close_ts"][0]
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)


def _human(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if abs(hours) >= 48 else f"{hours:.1f} h"
