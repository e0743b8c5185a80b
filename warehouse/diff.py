"""Differences between two versions of an asset: schema, and rows added, removed or changed by grain key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

from warehouse.lake import LAKE, Warehouse, WarehouseError

#: The key column used when an asset's grain is a single row (an empty grain).
WHOLE_TABLE_KEY = "__whole_table__"


class DiffError(WarehouseError):
    """Two versions cannot be compared as asked; the message says which and why."""


@dataclass(frozen=True)
class SchemaChange:
    """Columns one side has and the other lacks, and columns whose type changed (name, before, after)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.retyped)


@dataclass(frozen=True)
class RowDiff:
    """Rows matched by key: keys only after (added), only before (removed), and both with different values."""

    key: tuple[str, ...]
    before_rows: int
    after_rows: int
    added: pl.DataFrame
    removed: pl.DataFrame
    changed: pl.DataFrame
    column_changes: dict[str, int]

    @property
    def is_empty(self) -> bool:
        return self.added.is_empty() and self.removed.is_empty() and self.changed.is_empty()


@dataclass(frozen=True)
class Side:
    """One side of a diff: a version of one partition, or the whole asset as of a time."""

    label: str
    version_id: str | None = None
    partition_key: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class AssetDiff:
    asset: str
    before: Side
    after: Side
    schema: SchemaChange
    rows: RowDiff

    @property
    def is_identical(self) -> bool:
        return self.schema.is_empty and self.rows.is_empty

    def summary(self) -> dict:
        """A plain dict for `--json` and notebooks."""
        return {
            "asset": self.asset,
            "before": self.before.label,
            "after": self.after.label,
            "partition_key": self.after.partition_key,
            "key": list(self.rows.key),
            "schema": {"added": list(self.schema.added), "removed": list(self.schema.removed),
                       "retyped": [list(r) for r in self.schema.retyped]},
            "before_rows": self.rows.before_rows,
            "after_rows": self.rows.after_rows,
            "added": self.rows.added.height,
            "removed": self.rows.removed.height,
            "changed": self.rows.changed.height,
            "column_changes": self.rows.column_changes,
        }


def schema_change(before: pl.Schema, after: pl.Schema) -> SchemaChange:
    return SchemaChange(
        added=tuple(c for c in after if c not in before),
        removed=tuple(c for c in before if c not in after),
        retyped=tuple((c, str(before[c]), str(after[c])) for c in after if c in before and before[c] != after[c]),
    )


def diff_rows(before: pl.DataFrame, after: pl.DataFrame, key: tuple[str, ...]) -> RowDiff:
    """Match rows by `key` and count, per column both sides share, the rows whose value differs.

    Values compare exactly (a float that moved in the last bit has changed); nulls equal
    nulls and NaN equals NaN. An empty key treats each side as one row. Columns whose type
    changed compare as text.
    """
    if not key:
        before, after = before.with_columns(pl.lit(1).alias(WHOLE_TABLE_KEY)), after.with_columns(pl.lit(1).alias(WHOLE_TABLE_KEY))
        key = (WHOLE_TABLE_KEY,)
    missing = [k for k in key if k not in before.columns or k not in after.columns]
    if missing:
        raise DiffError(f"grain columns {missing} are not on both sides; the versions cannot be matched by key")
    for side, frame in (("before", before), ("after", after)):
        duplicated = frame.select(key).is_duplicated().sum()
        if duplicated:
            raise DiffError(f"{duplicated} rows {side} share a key {list(key)}: the grain does not identify rows")
    shared = [c for c in after.columns if c in before.columns and c not in key]
    retyped = {c for c in shared if before.schema[c] != after.schema[c]}
    left = before.select(*key, *(pl.col(c).cast(pl.String) if c in retyped else pl.col(c) for c in shared))
    right = after.select(*key, *(pl.col(c).cast(pl.String) if c in retyped else pl.col(c) for c in shared))
    joined = left.with_columns(__in_before=pl.lit(True)).join(
        right.with_columns(__in_after=pl.lit(True)), on=list(key), how="full", suffix="__after",
        coalesce=True, nulls_equal=True,
    )
    both = joined.filter(pl.col("__in_before") & pl.col("__in_after"))
    flags = both.select(*key, *(_differs(c, both.schema[c]).alias(c) for c in shared))
    column_changes = {c: int(flags[c].sum()) for c in shared}
    changed = flags.filter(pl.any_horizontal(shared) if shared else pl.lit(False)).select(
        *key, changed_columns=pl.concat_list(pl.when(pl.col(c)).then(pl.lit(c)) for c in shared).list.drop_nulls()
        if shared else pl.lit([], dtype=pl.List(pl.String)),
    )
    added = after.join(before.select(key), on=list(key), how="anti", nulls_equal=True)
    removed = before.join(after.select(key), on=list(key), how="anti", nulls_equal=True)
    drop = [WHOLE_TABLE_KEY] if WHOLE_TABLE_KEY in key else []
    return RowDiff(
        key=tuple(k for k in key if k != WHOLE_TABLE_KEY), before_rows=before.height, after_rows=after.height,
        added=added.drop(drop), removed=removed.drop(drop), changed=changed.drop(drop),
        column_changes={c: n for c, n in column_changes.items() if n},
    )


def _differs(column: str, dtype: pl.DataType) -> pl.Expr:
    before, after = pl.col(column), pl.col(f"{column}__after")
    differs = before.ne_missing(after)
    if dtype.is_float():
        differs = differs & ~(before.is_nan() & after.is_nan()).fill_null(False)
    return differs


def diff_frames(before: pl.DataFrame, after: pl.DataFrame, key: tuple[str, ...]) -> tuple[SchemaChange, RowDiff]:
    return schema_change(before.schema, after.schema), diff_rows(before, after, key)


# ---- choosing and reading the two sides -------------------------------------------------


def parse_reference(reference: str) -> datetime | str:
    """A version id as given, or an ISO timestamp (naive means UTC)."""
    try:
        moment = datetime.fromisoformat(reference)
    except ValueError:
        return reference
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def latest_change(warehouse: Warehouse, asset: str, partition_key: str | None = None) -> tuple[str, str]:
    """(superseded, published): the most recently published version and the one it replaced."""
    found = warehouse.query(
        f"""SELECT s.version_id AS before_id, p.version_id AS after_id
            FROM {LAKE}.quarry.versions p
            JOIN {LAKE}.quarry.versions s
              ON s.asset = p.asset AND s.partition_key = p.partition_key AND s.status = 'superseded'
             AND s.created_at < p.created_at
            WHERE p.asset = ? AND p.status = 'published' AND (CAST(? AS VARCHAR) IS NULL OR p.partition_key = ?)
            QUALIFY row_number() OVER (ORDER BY p.created_at DESC, p.version_id DESC, s.created_at DESC) = 1""",
        [asset, partition_key, partition_key],
    )
    if found.is_empty():
        where = f" partition {partition_key}" if partition_key else ""
        raise DiffError(
            f"{asset}{where} has no superseded version to compare with: it was only ever published once. "
            "Pass --from and --to (version ids from `quarry history`, or timestamps)."
        )
    return found["before_id"][0], found["after_id"][0]


def _neighbour(warehouse: Warehouse, version: dict, later: bool) -> str:
    """The published version of `version`'s partition (later), or the last one published before it (earlier)."""
    if later:
        sql = f"""SELECT version_id FROM {LAKE}.quarry.versions
                  WHERE asset = ? AND partition_key = ? AND status = 'published'"""
        params = [version["asset"], version["partition_key"]]
    else:
        sql = f"""SELECT version_id FROM {LAKE}.quarry.versions
                  WHERE asset = ? AND partition_key = ? AND status IN ('published', 'superseded') AND created_at < ?
                  ORDER BY created_at DESC LIMIT 1"""
        params = [version["asset"], version["partition_key"], version["created_at"]]
    found = warehouse.query(sql, params)
    if found.is_empty():
        raise DiffError(
            f"{version['asset']} partition {version['partition_key']} has no "
            f"{'published version' if later else 'earlier published version'} to compare {version['version_id']} with"
        )
    return found["version_id"][0]


def _version_side(warehouse: Warehouse, asset: str, version_id: str) -> tuple[Side, pl.DataFrame]:
    row = warehouse.version(version_id)
    if row["asset"] != asset:
        raise DiffError(f"version {version_id} belongs to {row['asset']}, not {asset}")
    side = Side(f"{version_id} ({row['status']}, {row['partition_key']})", version_id, row["partition_key"])
    if row["status"] == "quarantined":
        rows = warehouse.query(
            f'SELECT * EXCLUDE (partition_key, version_id) FROM {LAKE}.quarantine."{asset}" WHERE version_id = ?',
            [version_id],
        )
        return side, rows
    return side, warehouse.read_as_of(asset, version_id=version_id)


def _time_side(warehouse: Warehouse, asset: str, at: datetime | None) -> tuple[Side, pl.DataFrame]:
    if at is None:
        return Side("published now"), warehouse.read(asset)
    return Side(f"as of {at.isoformat()}", at=at), warehouse.read_as_of(asset, at=at)


def diff_asset(
    warehouse: Warehouse,
    asset: str,
    key: tuple[str, ...],
    *,
    before: str | None = None,
    after: str | None = None,
    partition_key: str | None = None,
) -> AssetDiff:
    """Compare two versions of a partition (ids) or the whole asset at two times (ISO timestamps).

    With neither given: the latest published version against the one it superseded. With
    one version id: its neighbour in the same partition fills the other side. With one
    timestamp: the other side is what is published now.
    """
    first = parse_reference(before) if before else None
    second = parse_reference(after) if after else None
    if isinstance(first, datetime) or isinstance(second, datetime):
        if isinstance(first, str) or isinstance(second, str):
            raise DiffError("compare two version ids or two timestamps, not one of each")
        if first is None:
            raise DiffError("a timestamp diff needs --from (the --to side defaults to what is published now)")
        before_side, before_rows = _time_side(warehouse, asset, first)
        after_side, after_rows = _time_side(warehouse, asset, second)
    else:
        if first is None and second is None:
            first, second = latest_change(warehouse, asset, partition_key)
        elif second is None:
            second = _neighbour(warehouse, warehouse.version(first), later=True)
        elif first is None:
            first = _neighbour(warehouse, warehouse.version(second), later=False)
        before_side, before_rows = _version_side(warehouse, asset, first)
        after_side, after_rows = _version_side(warehouse, asset, second)
    schema, rows = diff_frames(before_rows, after_rows, key)
    return AssetDiff(asset, before_side, after_side, schema, rows)
