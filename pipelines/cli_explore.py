"""Exploration commands for the `quarry` CLI: `diff` between versions and the SQL surface script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from assets import SelectionError, default_graph
from pipelines.logs import configure_console
from pipelines.settings import Settings
from quality.lineage import write_asset_lineage_svg
from warehouse import Warehouse, WarehouseError
from warehouse.diff import AssetDiff, diff_asset
from warehouse.sql_surface import surface_markdown, surface_script

SAMPLE_ROWS = 10


def diff(
    asset: str,
    before: Annotated[Optional[str], typer.Option("--from", help="version id or ISO timestamp (default: the version the latest publish superseded)")] = None,
    after: Annotated[Optional[str], typer.Option("--to", help="version id or ISO timestamp (default: published now)")] = None,
    partition: Annotated[Optional[str], typer.Option("--partition", help="with no --from/--to: the latest change of this partition")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Schema and row differences between two versions of an asset, rows matched by its grain key."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    console = Console()
    try:
        grain = default_graph()[asset].grain
        with Warehouse.open(settings.catalog, settings.data_path, read_only=True) as warehouse:
            found = diff_asset(warehouse, asset, grain, before=before, after=after, partition_key=partition)
    except (SelectionError, WarehouseError) as error:
        console.print(f"[red]error[/]: {error}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(found.summary(), default=str))
        return
    print_diff(console, found)


def print_diff(console: Console, found: AssetDiff) -> None:
    rows = found.rows
    console.print(f"[bold]{found.asset}[/]: {found.before.label} → {found.after.label}")
    console.print(f"key: {', '.join(rows.key) or '(one row)'}; rows {rows.before_rows} → {rows.after_rows}")
    if found.is_identical:
        console.print("[green]identical[/]: same schema, same rows")
        return
    schema = found.schema
    for column in schema.added:
        console.print(f"[green]+ column[/] {column}")
    for column in schema.removed:
        console.print(f"[red]- column[/] {column}")
    for column, old, new in schema.retyped:
        console.print(f"[yellow]~ column[/] {column}: {old} → {new}")
    console.print(f"added {rows.added.height}, removed {rows.removed.height}, changed {rows.changed.height}")
    if rows.column_changes:
        table = Table(title="Changed values by column")
        table.add_column("column")
        table.add_column("rows changed", justify="right")
        for column, count in sorted(rows.column_changes.items(), key=lambda item: -item[1]):
            table.add_row(column, str(count))
        console.print(table)
    with pl.Config(tbl_rows=SAMPLE_ROWS, tbl_cols=12, fmt_str_lengths=40):
        for title, frame in (("added", rows.added), ("removed", rows.removed), ("changed", rows.changed)):
            if frame.height:
                console.print(f"[bold]{title}[/] (first {min(SAMPLE_ROWS, frame.height)}):")
                console.print(str(frame.head(SAMPLE_ROWS)), markup=False, highlight=False)


def sql_surface(
    markdown: Annotated[bool, typer.Option("--markdown", help="the reference table instead of the script")] = False,
) -> None:
    """The SQL views and macros as a script for the DuckDB CLI (`.read` it after ATTACH … AS lake)."""
    print(surface_markdown() if markdown else surface_script(), end="")


def draw_lineage(asset: str, path: Path) -> Path:
    """`quarry lineage ASSET --svg PATH`: the asset, its upstream and downstream, drawn to an SVG file."""
    return write_asset_lineage_svg(default_graph(), asset, path)


def register(app: typer.Typer) -> None:
    """Add `diff` and `sql-surface` to the `quarry` app."""
    app.command("diff")(diff)
    app.command("sql-surface")(sql_surface)
