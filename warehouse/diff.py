"""Differences between two versions of an asset: schema, and rows added, removed or changed by grain key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
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


def grain_key_sql(row_json: str, grain: str) -> str:
    """A row's grain key as the diff matches rows: the grain's values as text, in grain order."""
    return f"""list_transform({grain}, k -> json_extract_string({row_json}, '$."' || k || '"'))"""


def row_diff_sql(before: str, after: str, grain: str) -> str:
    """The one row diff, in DuckDB SQL: the `version_diff` macro runs it over two versions, `diff_rows` over two frames.

    One row per grain key that differs: change (added/removed/changed), key (the grain's
    values as text) and, for a changed key, the columns whose values differ. Rows compare
    as JSON, so values compare exactly, nulls equal nulls and NaN equals NaN. Each side's
    rows take an alias no column is likely to have, so a column cannot shadow the row.
    """
    return f"""WITH grain AS (SELECT {grain} AS grain),
           before AS (SELECT to_json(before_row) AS row_json FROM {before} before_row),
           after AS (SELECT to_json(after_row) AS row_json FROM {after} after_row),
           keyed_before AS (SELECT {grain_key_sql("row_json", "g.grain")} AS key, row_json FROM before, grain g),
           keyed_after AS (SELECT {grain_key_sql("row_json", "g.grain")} AS key, row_json FROM after, grain g)
           SELECT CASE WHEN b.key IS NULL THEN 'added' WHEN a.key IS NULL THEN 'removed' ELSE 'changed' END AS change,
                  coalesce(a.key, b.key) AS key,
                  CASE WHEN a.key IS NOT NULL AND b.key IS NOT NULL THEN list_filter(
                      list_distinct(list_concat(json_keys(b.row_json), json_keys(a.row_json))),
                      k -> k <> 'partition_key' AND json_extract(b.row_json, '$."' || k || '"')
                           IS DISTINCT FROM json_extract(a.row_json, '$."' || k || '"')) END AS changed_columns
           FROM keyed_before b FULL OUTER JOIN keyed_after a ON a.key = b.key
           WHERE a.key IS NULL OR b.key IS NULL OR a.row_json <> b.row_json"""


def diff_rows(before: pl.DataFrame, after: pl.DataFrame, key: tuple[str, ...]) -> RowDiff:
    """Match rows by `key` and count, per column both sides share, the rows whose value differs.

    The matching is `row_diff_sql`, the SQL of the `version_diff` macro, run over the
    columns both sides share; this returns the typed rows it names. Values compare exactly
    (a float that moved in the last bit has changed); nulls equal nulls and NaN equals NaN.
    An empty key treats each side as one row. Columns whose type changed compare as text.
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
    found, before_keys, after_keys = _run_row_diff(left, right, key)
    flags = (
        after.select(key).with_columns(key_text=after_keys)
        .join(found.filter(pl.col("change") == "changed").select("key_text", "changed_columns"),
              on="key_text", how="inner", maintain_order="left")
        .select(*key, *(pl.col("changed_columns").list.contains(c).alias(c) for c in shared))
    )
    column_changes = {c: int(flags[c].sum()) for c in shared}
    changed = flags.select(
        *key, changed_columns=pl.concat_list(pl.when(pl.col(c)).then(pl.lit(c)) for c in shared).list.drop_nulls()
        if shared else pl.lit([], dtype=pl.List(pl.String)),
    )
    added = after.filter(after_keys.is_in(found.filter(pl.col("change") == "added")["key_text"].implode()))
    removed = before.filter(before_keys.is_in(found.filter(pl.col("change") == "removed")["key_text"].implode()))
    drop = [WHOLE_TABLE_KEY] if WHOLE_TABLE_KEY in key else []
    return RowDiff(
        key=tuple(k for k in key if k != WHOLE_TABLE_KEY), before_rows=before.height, after_rows=after.height,
        added=added.drop(drop), removed=removed.drop(drop), changed=changed.drop(drop),
        column_changes={c: n for c, n in column_changes.items() if n},
    )


def _run_row_diff(
    before: pl.DataFrame, after: pl.DataFrame, key: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.Series, pl.Series]:
    """`row_diff_sql` over two frames in a DuckDB of its own, and each side's grain key as JSON text, row for row."""
    grain = "[" + ", ".join("'" + k.replace("'", "''") + "'" for k in key) + "]"
    con = duckdb.connect()
    try:
        con.register("before_side", before)
        con.register("after_side", after)
        found = con.sql(
            "SELECT change, to_json(key)::VARCHAR AS key_text, changed_columns "
            f"FROM ({row_diff_sql('before_side', 'after_side', grain)})"
        ).pl()
        before_keys, after_keys = (
            con.sql(f"SELECT to_json({grain_key_sql('to_json(side_row)', grain)})::VARCHAR AS key_text "
                    f"FROM {side} side_row").pl()["key_text"]
            for side in ("before_side", "after_side")
        )
    finally:
        con.close()
    return found, before_keys, after_keys


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
