"""Views and table macros a notebook or DuckDB CLI user calls in plain SQL: versions, time travel, checks, diffs.

They are temporary (installed on each connection by `install_sql_surface`), not stored in
the lake. DuckLake 1.5 can persist a macro in its catalog, but a stored macro names the lake
by the alias it was created under, needs a writable attach to create or change, and would
turn every edit here into a catalog migration; a read-only notebook installs them in a
millisecond instead. For the DuckDB CLI, `python -m warehouse.sql_surface > quarry.sql`
writes the same statements to `.read` after attaching.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import duckdb

from warehouse.diff import row_diff_sql
from warehouse.lake import LAKE, LATEST_ASSET_METADATA_SQL, WarehouseError, locate_version


@dataclass(frozen=True)
class SqlObject:
    """A view or table macro of the SQL surface: how to call it, what one row is, and its body."""

    name: str
    kind: str  # "view", "table macro" or "macro" (scalar)
    call: str
    returns: str
    body: str
    #: The body in a plain DuckDB CLI, where the Python lookup `quarry_version_sql` does not exist.
    cli_body: str | None = None

    def statement(self, lake: str, cli: bool = False) -> str:
        body = ((self.cli_body if cli else None) or self.body).replace("{lake}", lake)
        if self.kind == "view":
            return f"CREATE OR REPLACE TEMP VIEW {self.name} AS {body}"
        if self.kind == "macro":
            return f"CREATE OR REPLACE TEMP MACRO {self.call} AS {body}"
        return f"CREATE OR REPLACE TEMP MACRO {self.call} AS TABLE {body}"


# Table functions bind their arguments before the query runs, so a macro that time-travels
# cannot look a snapshot up in a subquery: `asset_as_of` hands the timestamp (cast, so only a
# timestamp can get in) to DuckDB's `query()`, and `asset_at_version` hands it the SELECT that
# `quarry_version_sql` (a Python function installed beside the macros, folded to a constant
# while the query binds) writes for the version: its publish snapshot read with `AT (VERSION => n)`,
# or the Parquet file retention archived it to. That is the read `Warehouse.read_as_of` runs, so
# SQL and Python agree through `optimize` and `archive`. The DuckDB CLI has no Python: there the
# macro reads DuckLake's change feed, which holds only versions whose snapshots are retained.
# The guards below make a misspelt asset, a version id that cannot be read or an unknown run an
# error instead of an empty answer (or, in `version_diff`, every row "added"): `error()` inside a
# one-row aggregate runs even when the table being filtered is empty.
SURFACE: tuple[SqlObject, ...] = (
    SqlObject(
        "asset_metadata", "view", "asset_metadata",
        "One row per asset in the catalog: the grain, partitioning (and partition column), time column, freshness "
        "and contract (name, and columns as JSON) its latest publish recorded, and that code version.",
        f"""WITH latest AS ({LATEST_ASSET_METADATA_SQL}),
           known AS (SELECT DISTINCT asset FROM {{lake}}.quarry.versions UNION SELECT asset FROM latest)
           SELECT k.asset, m.grain, m.partitions, m.partition_column, m.time_column, m.freshness_seconds,
                  m.contract, m.contract_columns, m.code_version, m.recorded_at
           FROM known k LEFT JOIN latest m ON m.asset = k.asset
           ORDER BY k.asset""",
    ),
    SqlObject(
        "known_asset", "macro", "known_asset(asset_name)",
        "The name itself if the catalog has that asset; otherwise an error naming the known assets.",
        """(SELECT CASE WHEN count(*) > 0 THEN asset_name ELSE error('no asset named ''' || asset_name
                || '''; known: ' || (SELECT string_agg(asset, ', ' ORDER BY asset) FROM asset_metadata)) END
            FROM asset_metadata WHERE asset = asset_name)""",
    ),
    SqlObject(
        "readable_version", "macro", "readable_version(asset_name, version)",
        "The version id itself if it is a published or superseded version of the asset; otherwise an error.",
        """(SELECT CASE WHEN count(*) > 0 THEN version ELSE error('no published or superseded version '''
                || coalesce(version, 'NULL') || ''' of ' || known_asset(asset_name)
                || ' (list them: SELECT * FROM asset_versions(''' || asset_name || '''))') END
            FROM {lake}.quarry.versions
            WHERE version_id = version AND asset = asset_name AND status IN ('published', 'superseded'))""",
    ),
    SqlObject(
        "version_grain", "macro", "version_grain(asset_name, version)",
        "The grain key a version was published under: the asset's metadata in force at its publish.",
        """coalesce(
            (SELECT m.grain FROM {lake}.quarry.asset_metadata m JOIN {lake}.quarry.versions v
                 ON v.version_id = version AND m.asset = v.asset AND m.recorded_at <= v.published_at
             WHERE m.asset = asset_name ORDER BY m.recorded_at DESC LIMIT 1),
            (SELECT grain FROM {lake}.quarry.asset_metadata WHERE asset = asset_name ORDER BY recorded_at LIMIT 1))""",
    ),
    SqlObject(
        "known_run", "macro", "known_run(run)",
        "The run id itself if the catalog has that run (or its check results); otherwise an error.",
        """(SELECT CASE WHEN count(*) > 0 THEN run ELSE error('no run ''' || coalesce(run, 'NULL')
                || ''' in the catalog (list them: quarry runs)') END
            FROM (SELECT run_id FROM {lake}.quarry.runs UNION ALL SELECT run_id FROM {lake}.quarry.check_results)
            WHERE run_id = run)""",
    ),
    SqlObject(
        "asset_catalog", "view", "asset_catalog",
        "One row per asset: grain, partitioning, published partitions and rows, partitions whose latest "
        "attempt is quarantined, last publish and its age in seconds.",
        """WITH latest AS (
               SELECT asset, status FROM {lake}.quarry.versions
               QUALIFY row_number() OVER (PARTITION BY asset, partition_key ORDER BY created_at DESC, version_id DESC) = 1),
           published AS (
               SELECT asset, count(*) AS partitions, sum(row_count) AS row_count, max(published_at) AS last_published_at
               FROM {lake}.quarry.versions WHERE status = 'published' GROUP BY asset),
           quarantined AS (SELECT asset, count(*) AS partitions FROM latest WHERE status = 'quarantined' GROUP BY asset)
           SELECT g.asset, g.grain, g.partitions,
                  coalesce(p.partitions, 0) AS published_partitions,
                  coalesce(q.partitions, 0) AS quarantined_partitions,
                  coalesce(p.row_count, 0)::BIGINT AS published_rows,
                  p.last_published_at,
                  date_diff('second', p.last_published_at, now()) AS age_seconds
           FROM asset_metadata g
           LEFT JOIN published p ON p.asset = g.asset
           LEFT JOIN quarantined q ON q.asset = g.asset
           ORDER BY g.asset""",
    ),
    SqlObject(
        "current_versions", "view", "current_versions",
        "One row per (asset, partition): the published version's catalog row.",
        "SELECT * FROM {lake}.quarry.versions WHERE status = 'published' ORDER BY asset, partition_key",
    ),
    SqlObject(
        "asset_versions", "table macro", "asset_versions(asset_name)",
        "One row per version of the asset (every partition and status), newest first.",
        """SELECT v.version_id, v.partition_key, v.status, v.code_version, v.data_version, v.row_count, v.run_id,
                  coalesce(v.snapshot_id, s.snapshot_id) AS snapshot_id, v.created_at, v.published_at,
                  v.superseded_at, v.failed_checks, v.build_seconds
           FROM {lake}.quarry.versions v
           LEFT JOIN (SELECT snapshot_id, commit_extra_info FROM {lake}.snapshots()) s
             ON v.status IN ('published', 'superseded') AND s.commit_extra_info = v.batch_id
           WHERE v.asset = known_asset(asset_name)
           ORDER BY v.created_at DESC, v.version_id DESC""",
    ),
    SqlObject(
        "asset_current", "table macro", "asset_current(asset_name)",
        "The published rows of the asset, with their partition_key.",
        "SELECT * FROM query_table('{lake}.main.\"' || replace(asset_name, '\"', '\"\"') || '\"')",
    ),
    SqlObject(
        "asset_as_of", "table macro", "asset_as_of(asset_name, as_of_ts)",
        "The whole asset as it was published at a timestamp (a literal or constant expression).",
        """SELECT * FROM query('SELECT * FROM {lake}.main."' || replace(asset_name, '"', '""')
               || '" AT (TIMESTAMP => TIMESTAMPTZ ''' || CAST(CAST(as_of_ts AS TIMESTAMPTZ) AS VARCHAR) || ''')')""",
    ),
    SqlObject(
        "asset_at_snapshot", "table macro", "asset_at_snapshot(asset_name, snapshot)",
        "The whole asset as of a DuckLake snapshot id (the `snapshot_id` `asset_versions` shows for a version: the snapshot whose commit carries the version's `batch_id`).",
        """SELECT * FROM query('SELECT * FROM {lake}.main."' || replace(asset_name, '"', '""')
               || '" AT (VERSION => ' || CAST(CAST(snapshot AS BIGINT) AS VARCHAR) || ')')""",
    ),
    SqlObject(
        "asset_at_version", "table macro", "asset_at_version(asset_name, version)",
        "The rows of one published or superseded version (one partition), with their partition_key; "
        "read from its archive file once retention expired its snapshot.",
        "SELECT * FROM query(quarry_version_sql(asset_name, version))",
        cli_body="""SELECT c.* EXCLUDE (snapshot_id, rowid, change_type)
           FROM ducklake_table_changes('{lake}', 'main', asset_name, TIMESTAMPTZ '1970-01-01', now()) c
           JOIN (SELECT v.partition_key,
                        coalesce(v.snapshot_id, (SELECT s.snapshot_id FROM {lake}.snapshots() s
                                                 WHERE s.commit_extra_info = v.batch_id)) AS snapshot_id
                 FROM {lake}.quarry.versions v
                 WHERE v.version_id = readable_version(asset_name, version) AND v.asset = asset_name
                   AND v.status IN ('published', 'superseded')) w
             ON c.snapshot_id = w.snapshot_id AND c.partition_key = w.partition_key
           WHERE c.change_type = 'insert'""",
    ),
    SqlObject(
        "run_checks", "table macro", "run_checks(run)",
        "One row per check evaluated in the run: asset, partition, check, severity, passed, failing rows, sample.",
        """SELECT asset, partition_key, check_name, severity, passed, failing_rows, message, sample, version_id, checked_at
           FROM {lake}.quarry.check_results WHERE run_id = known_run(run)
           ORDER BY passed, severity, asset, partition_key, check_name""",
    ),
    SqlObject(
        "check_history", "view", "check_history",
        "One row per (run, asset, check): how many partitions it checked and failed, and the failing rows.",
        """SELECT c.run_id, min(c.checked_at) AS checked_at, c.asset, c.check_name, c.severity,
                  count(*) AS partitions_checked, count(*) FILTER (WHERE NOT c.passed) AS partitions_failed,
                  coalesce(sum(c.failing_rows), 0)::BIGINT AS failing_rows
           FROM {lake}.quarry.check_results c
           GROUP BY c.run_id, c.asset, c.check_name, c.severity
           ORDER BY checked_at, c.asset, c.check_name""",
    ),
    SqlObject(
        "version_diff", "table macro", "version_diff(asset_name, from_version, to_version)",
        "One row per grain key that differs between two versions: change (added/removed/changed), "
        "key (grain values as text, by the grain `to_version` was published under), changed_columns.",
        row_diff_sql("asset_at_version(asset_name, from_version)", "asset_at_version(asset_name, to_version)",
                     "version_grain(asset_name, to_version)") + " ORDER BY change, key",
    ),
)


def install_sql_surface(con: duckdb.DuckDBPyConnection, lake: str = LAKE) -> None:
    """Create every view and macro of the surface on this connection (the lake must be attached as `lake`)."""
    install_version_lookup(con, lake)
    for item in SURFACE:
        con.execute(item.statement(lake))


def install_version_lookup(con: duckdb.DuckDBPyConnection, lake: str = LAKE) -> None:
    """Register `quarry_version_sql(asset, version)`: the constant SELECT that reads one version's rows.

    It runs once per call while DuckDB binds the query (it has no side effects, so DuckDB
    folds it), on a cursor of its own; a version that cannot be read becomes a SELECT that
    raises the reason, so the error is one line naming what to do.
    """
    from duckdb.sqltypes import VARCHAR

    lookup = con.cursor()

    def version_sql(asset: str, version: str) -> str:
        known = [name for (name,) in lookup.execute(
            f"SELECT DISTINCT asset FROM {lake}.quarry.versions ORDER BY asset").fetchall()]
        if asset not in known:
            return _raising(f"no asset named '{asset}'; known: {', '.join(known)}")
        try:
            return locate_version(lookup, asset, version, lake).select_sql(lake)
        except WarehouseError as error:
            return _raising(str(error))

    try:
        con.remove_function("quarry_version_sql")
    except duckdb.Error:
        pass  # a fresh connection has none yet
    con.create_function("quarry_version_sql", version_sql, [VARCHAR, VARCHAR], VARCHAR, side_effects=False)


def _raising(message: str) -> str:
    return f"SELECT error({_literal(message)}) AS error"


def surface_script(lake: str = LAKE) -> str:
    """The same surface as a SQL script, for the DuckDB CLI (`.read` it after ATTACH)."""
    return ";\n\n".join(item.statement(lake, cli=True) for item in SURFACE) + ";\n"


def _literal(value: str) -> str:
    """A SQL string literal of an error message."""
    return "'" + value.replace("'", "''") + "'"


def surface_markdown() -> str:
    """The reference table of the surface, as it appears in the README."""
    lines = ["| call | kind | returns |", "|---|---|---|"]
    lines += [f"| `{item.call}` | {item.kind} | {item.returns} |" for item in SURFACE]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(surface_markdown() if "--markdown" in sys.argv else surface_script())
