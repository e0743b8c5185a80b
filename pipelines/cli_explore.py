"""Exploration commands for the `quarry` CLI: read-only SQL and shell, runs, diffs, the SQL surface script."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional, TextIO

import duckdb

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from assets import default_graph
from pipelines.cli_common import InputError, one_line, open_existing
from pipelines.logs import configure_console
from pipelines.settings import Settings
from quality.lineage import write_asset_lineage_svg
from warehouse import WarehouseError, require_warehouse
from warehouse.diff import AssetDiff, diff_asset
from warehouse.redaction import redact
from warehouse.duckdb_shell import cli_binary, cli_version, init_script, require_same_version, shell_arguments
from warehouse.explore import Explorer
from warehouse.sql_surface import surface_markdown, surface_script

SAMPLE_ROWS = 10


class OutputFormat(str, Enum):
    """How `quarry sql` and `quarry shell` print a result."""

    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def render(relation: duckdb.DuckDBPyRelation | None, fmt: OutputFormat, out: TextIO, max_rows: int) -> None:
    """Print a result: DuckDB's own box renderer at the terminal's width, or CSV, JSON rows, a Markdown table."""
    if relation is None:
        return
    if fmt is OutputFormat.table:
        width = shutil.get_terminal_size((120, 24)).columns
        with contextlib.redirect_stdout(out):  # show() prints through Python's print
            relation.show(max_width=width, max_rows=max_rows)
        return
    frame = relation.pl()
    if fmt is OutputFormat.csv:
        out.write(frame.write_csv())
    elif fmt is OutputFormat.json:
        out.write(frame.write_json() + "\n")
    else:
        out.write(markdown_table(frame.columns, frame.rows()))


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """A GitHub-flavoured Markdown table; pipes inside values are escaped."""
    def cell(value: object) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="table (DuckDB's box renderer), csv, json or markdown")]
JsonOption = Annotated[bool, typer.Option("--json", help="the rows as a JSON list of objects (same as --format json)")]
MaxRowsOption = Annotated[int, typer.Option("--max-rows", help="rows the table format shows (the rest are elided)")]


def sql(query: str, fmt: FormatOption = OutputFormat.table, as_json: JsonOption = False, max_rows: MaxRowsOption = 40) -> None:
    """Read-only SQL on the warehouse (attached as `lake` and in use, with the SQL surface); writes are refused."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    require_warehouse(settings.warehouse.catalog)
    explorer = Explorer.open(settings.warehouse.catalog, settings.warehouse.data_path)
    try:
        render(explorer.reader_query(query), OutputFormat.json if as_json else fmt, sys.stdout, max_rows)
    finally:
        explorer.close()


def shell(fmt: FormatOption = OutputFormat.table, max_rows: MaxRowsOption = 40) -> None:
    """An interactive read-only SQL session on the warehouse with the SQL surface installed (.help for commands)."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    require_warehouse(settings.warehouse.catalog)
    explorer = Explorer.open(settings.warehouse.catalog, settings.warehouse.data_path)
    try:
        run_shell(explorer, sys.stdin, sys.stdout, fmt, max_rows)
    finally:
        explorer.close()


DuckDBArgs = Annotated[Optional[list[str]], typer.Argument(
    help="arguments for DuckDB's shell, after `--` (e.g. -- -c \"SELECT count(*) FROM bars_daily\", or -- -csv)",
    show_default=False)]


def duckdb_shell(args: DuckDBArgs = None) -> None:
    """DuckDB's own shell (the CLI of the pinned DuckDB) on the warehouse: read-only, `lake` in use, the SQL surface installed."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    require_warehouse(settings.warehouse.catalog)
    binary = cli_binary()
    version = cli_version(binary)
    require_same_version(version, duckdb.__version__)
    with tempfile.TemporaryDirectory(prefix="quarry-duckdb-") as scratch:
        init = Path(scratch) / "init.sql"
        init.write_text(init_script(settings.warehouse.catalog, settings.warehouse.data_path, Path(scratch) / "extensions", version),
                        encoding="utf-8")
        if not args and sys.stdin.isatty():
            print(f"DuckDB {version} on {redact(settings.warehouse.catalog)} (read-only, attached as `lake` and in use, the SQL surface "
                  "installed); data changes go through `quarry materialize`. .quit or Ctrl-D leaves.", file=sys.stderr)
        code = run_foreground(shell_arguments(binary, init, args or []))
    raise typer.Exit(code)


def run_foreground(argv: list[str]) -> int:
    """Run a terminal program to its end: Ctrl-C belongs to it (it cancels a query there), not to this process."""
    child = subprocess.Popen(argv)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


SHELL_HELP = """Statements end with `;` and may span lines. Read-only: data changes go through `quarry materialize`.
  .tables              the assets and views
  .surface             the SQL surface (views and macros) and what each returns
  .format FMT          table, csv, json or markdown
  .quit                leave (or Ctrl-D)
"""


def run_shell(explorer: Explorer, stdin: TextIO, out: TextIO, fmt: OutputFormat, max_rows: int) -> None:
    """Read statements until end of input; each result is printed, each error is one line and the session goes on."""
    interactive = stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        out.write(f"quarry shell on {explorer.warehouse.catalog} (read-only). .help for commands, Ctrl-D to leave.\n")
    pending: list[str] = []
    while True:
        prompt = ("quarry> " if not pending else "   ...> ") if interactive else ""
        line = _read_line(stdin, prompt, interactive)
        if line is None:
            break
        if not pending and line.strip().startswith("."):
            command, _, argument = line.strip().partition(" ")
            if command in (".quit", ".exit"):
                break
            if command == ".help":
                out.write(SHELL_HELP)
            elif command == ".tables":
                render(explorer.reader_query("SHOW TABLES"), fmt, out, max_rows=1000)
            elif command == ".surface":
                out.write(surface_markdown())
            elif command == ".format" and argument.strip() in OutputFormat.__members__:
                fmt = OutputFormat(argument.strip())
            else:
                out.write(f"error: unknown command {line.strip()!r} (.help lists them)\n")
            out.flush()
            continue
        pending.append(line)
        statement = "\n".join(pending).strip()
        if not statement.endswith(";"):
            continue
        pending = []
        try:
            render(explorer.reader_query(statement), fmt, out, max_rows)
        except (duckdb.Error, WarehouseError) as error:
            out.write(f"error: {one_line(error)}\n")
        out.flush()


def _read_line(stdin: TextIO, prompt: str, interactive: bool) -> str | None:
    if interactive:
        try:
            return input(prompt)
        except EOFError:
            return None
    line = stdin.readline()
    return None if line == "" else line.rstrip("\n")


def runs(limit: Annotated[int, typer.Option(help="most recent runs shown")] = 20,
         as_json: Annotated[bool, typer.Option("--json", help="the runs as a JSON list of objects")] = False) -> None:
    """The materialization runs, newest first: status, the sessions they built, counts, report."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    with open_existing(settings) as warehouse:
        found = warehouse.query(
            """SELECT r.run_id, r.status, r.selection, r.started_at,
                      min(TRY_CAST(v.partition_key AS DATE)) AS first_session,
                      max(TRY_CAST(v.partition_key AS DATE)) AS last_session,
                      r.built, r.up_to_date, r.quarantined, r.skipped, r.failed, r.rows_written, r.report_path
               FROM lake.quarry.runs r LEFT JOIN lake.quarry.versions v ON v.run_id = r.run_id
               GROUP BY ALL ORDER BY r.started_at DESC LIMIT ?""",
            [limit],
        )
    if as_json:
        print(found.write_json())
        return
    console = Console()
    if found.is_empty():
        console.print("no runs yet: run `quarry materialize`")
        return
    table = Table(title="Runs (newest first)")
    for column in ("run", "status", "selection", "started", "sessions built", "built", "up to date", "quarantined",
                   "skipped", "failed", "rows", "report"):
        table.add_column(column, no_wrap=column in ("run", "sessions built"), overflow="fold")
    colour = {"completed": "green", "quarantined": "yellow", "failed": "red"}
    for r in found.iter_rows(named=True):
        window = f"{r['first_session']} → {r['last_session']}" if r["first_session"] else "—"
        table.add_row(
            r["run_id"], f"[{colour.get(r['status'], 'white')}]{r['status']}[/]", r["selection"],
            f"{r['started_at']:%Y-%m-%d %H:%M}", window, *(str(r[c]) for c in ("built", "up_to_date", "quarantined",
                                                                                "skipped", "failed", "rows_written")),
            r["report_path"] or "—",
        )
    console.print(table)


def diff(
    asset: str,
    before: Annotated[Optional[str], typer.Option("--from", help="version id or ISO timestamp (default: the version the latest publish superseded)")] = None,
    after: Annotated[Optional[str], typer.Option("--to", help="version id or ISO timestamp (default: published now)")] = None,
    partition: Annotated[Optional[str], typer.Option("--partition", help="with no --from/--to: the latest change of this partition")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the summary as JSON")] = False,
) -> None:
    """Schema and row differences between two versions of an asset, rows matched by its grain key."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    console = Console()
    grain = default_graph()[asset].grain
    with open_existing(settings) as warehouse:
        found = diff_asset(warehouse, asset, grain, before=before, after=after, partition_key=partition)
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


def docs(
    write: Annotated[Optional[Path], typer.Option("--write", help="refresh the generated sections of this Markdown file")] = None,
    check: Annotated[Optional[Path], typer.Option("--check", help="exit 1 if this file's generated sections are stale")] = None,
) -> None:
    """The asset graph (Mermaid) and asset table as Markdown, generated from the declarations (README sections)."""
    from pipelines.docs import refresh, sections

    graph = default_graph()
    for path in (write, check):
        if path is not None and not path.is_file():
            raise InputError(f"no file {path}")
    if check is not None:
        text = check.read_text(encoding="utf-8")
        try:
            fresh = refresh(text, graph)
        except ValueError as error:
            raise InputError(str(error)) from None
        if fresh != text:
            print(f"{check}: the generated asset sections are stale; run `quarry docs --write {check}`", file=sys.stderr)
            raise typer.Exit(1)
        print(f"{check}: the generated asset sections match the graph")
        return
    if write is not None:
        try:
            write.write_text(refresh(write.read_text(encoding="utf-8"), graph), encoding="utf-8")
        except ValueError as error:
            raise InputError(str(error)) from None
        print(f"refreshed the asset graph and table in {write}")
        return
    print("\n".join(sections(graph).values()), end="")


def export_notebook(
    notebook: Annotated[Path, typer.Argument(help="a marimo notebook, e.g. notebooks/explore_assets.py")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the HTML page to write")],
) -> None:
    """Run a notebook on the warehouse (read-only) and write its outputs as one page that renders offline."""
    from pipelines.notebook_export import export_notebook as export

    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    if not notebook.is_file():
        raise InputError(f"no notebook at {notebook}")
    require_warehouse(settings.warehouse.catalog)
    output.write_text(export(notebook), encoding="utf-8")
    print(f"wrote {output} (self-contained: no scripts, fonts or images to fetch)")


def draw_lineage(asset: str, path: Path) -> Path:
    """`quarry lineage ASSET --svg PATH`: the asset, its upstream and downstream, drawn to an SVG file."""
    return write_asset_lineage_svg(default_graph(), asset, path)


def register(app: typer.Typer) -> None:
    """Add `sql`, `shell`, `duckdb`, `runs`, `diff`, `sql-surface` and `docs` to the `quarry` app."""
    app.command("sql")(sql)
    app.command("shell")(shell)
    app.command("duckdb")(duckdb_shell)
    app.command("runs")(runs)
    app.command("diff")(diff)
    app.command("sql-surface")(sql_surface)
    app.command("docs")(docs)
    app.command("export-notebook")(export_notebook)
