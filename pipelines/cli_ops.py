"""Operations commands for the `quarry` CLI: serve, backup, restore, archive, optimize, health."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from warehouse import require_warehouse
from pipelines.cli_common import quarry_prefect_settings
from pipelines.terminal import console



def _existing_warehouse_and_cutoff(retention_days: float | None):
    """The settings, once the warehouse is known to exist, and the moment before which versions are past retention
    (`retention_days`, else QUARRY_RETENTION_DAYS)."""
    from pipelines.settings import Settings

    settings = Settings()
    require_warehouse(settings.warehouse.catalog)  # only `quarry materialize` creates a warehouse
    days = settings.ops.retention_days if retention_days is None else retention_days
    return settings, datetime.now(timezone.utc) - timedelta(days=days)


def register(app: typer.Typer) -> None:
    """Add the operations commands to the `quarry` app."""

    @app.command()
    def serve(
        only: Annotated[Optional[list[str]], typer.Option("--only", help="serve just these deployments")] = None,
        limit: Annotated[Optional[int], typer.Option(help="at most this many runs at once")] = None,
    ) -> None:
        """Run every schedule of the working directory's prefect.yaml in this process (Ctrl-C stops).

        Without PREFECT_API_URL a local Prefect server is started for it, scheduler on; with one,
        only deployments named serve-<name> are created and served.
        """
        from pipelines.serving import ServeError, serve as serve_all

        try:
            with quarry_prefect_settings():
                serve_all(only=only, limit=limit)
        except ServeError as error:
            console.print(f"[red]error[/]: {error}")
            raise typer.Exit(2) from None

    @app.command()
    def backup() -> None:
        """Back up the warehouse (catalog + Parquet files) and the ledger under the backups directory."""
        from pipelines.maintenance import take_backup
        from pipelines.settings import Settings

        settings = Settings()
        require_warehouse(settings.warehouse.catalog)  # only `quarry materialize` creates a warehouse
        taken = take_backup(settings)
        held = ", ".join(f.relative_path for f in taken.databases)
        console.print(f"backup {taken.path}: {len(taken.files)} files, {taken.total_bytes:,} bytes, "
                      f"snapshot {taken.latest_snapshot_id}; {held}")

    @app.command()
    def restore(
        backup_dir: Annotated[Path, typer.Argument(metavar="BACKUP", help="a directory under backups/")],
        target: Annotated[Path, typer.Option("--to", help="a fresh directory to restore into")] = Path("restored"),
        target_catalog: Annotated[Optional[str], typer.Option("--catalog", help="empty PostgreSQL catalog for a PostgreSQL backup")] = None,
        target_ledger: Annotated[Optional[str], typer.Option("--ledger", help="empty PostgreSQL database (libpq address) for a PostgreSQL ledger")] = None,
    ) -> None:
        """Check every file's SHA-256, restore the backup into a fresh location and print the settings that open it."""
        from warehouse.backup import BackupError, restore as restore_backup

        try:
            restored = restore_backup(backup_dir, target, target_catalog, target_ledger)
        except (BackupError, FileNotFoundError) as error:
            console.print(f"[red]error[/]: {error}")
            raise typer.Exit(2) from None
        from warehouse.redaction import redact

        console.print(f"restored into {target.resolve()}; open it with:")
        print(f"QUARRY_CATALOG={redact(restored.catalog)}")  # a PostgreSQL catalog's password stays off the screen
        print(f"QUARRY_DATA_PATH={restored.data_path}")
        if restored.ledger_path:
            print(f"QUARRY_LEDGER_URL=sqlite:///{restored.ledger_path}")
        if restored.ledger_url:
            print("QUARRY_LEDGER_URL=postgresql+psycopg://… (the --ledger database)")
        if restored.book_path:
            print(f"QUARRY_BROKER_PAPER_URL=sqlite:///{restored.book_path}")

    @app.command()
    def archive(
        retention_days: Annotated[Optional[float], typer.Option(help="default QUARRY_RETENTION_DAYS")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would expire; change nothing")] = False,
    ) -> None:
        """Archive superseded versions past retention to Parquet, then expire their snapshots."""
        from warehouse.archive import archive_old_versions

        settings, cutoff = _existing_warehouse_and_cutoff(retention_days)
        with settings.warehouse.open() as warehouse:
            result = archive_old_versions(warehouse, settings.ops.archive_dir, cutoff, dry_run=dry_run)
        if dry_run:
            console.print(f"would expire {len(result.snapshots_expired)} snapshots older than {cutoff:%Y-%m-%d %H:%M} UTC")
            return
        console.print(f"archived {len(result.versions)} versions, expired {len(result.snapshots_expired)} snapshots"
                      + (f"; manifest {result.manifest}" if result.manifest else ""))

    @app.command()
    def optimize(
        retention_days: Annotated[Optional[float], typer.Option(help="default QUARRY_RETENTION_DAYS")] = None,
    ) -> None:
        """Merge small files, expire archived snapshots, delete old and orphaned files."""
        from warehouse.optimize import optimize as optimize_lake

        settings, cutoff = _existing_warehouse_and_cutoff(retention_days)
        with settings.warehouse.open() as warehouse:
            result = optimize_lake(warehouse, cutoff)
        console.print(f"live files {result.files_before} -> {result.files_after}, "
                      f"{len(result.snapshots_expired)} snapshots expired" + (", catalog vacuumed" if result.vacuumed else ""))
        for problem in result.problems:
            console.print(f"[red]could not[/] {problem}", soft_wrap=True)
        if result.problems:
            raise typer.Exit(1)

    @app.command()
    def health() -> None:
        """Warehouse readable, assets fresh, Prefect API reachable; exits 1 when a check fails."""
        from pipelines.monitoring import system_health
        from pipelines.settings import Settings

        with quarry_prefect_settings():  # it asks the Prefect API about runs
            rows = system_health(Settings())
        table = Table(title="Quarry health")
        for column in ("check", "status", "detail"):
            table.add_column(column)
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        for row in rows:
            table.add_row(row.check, f"[{colour[row.status]}]{row.status}[/]", row.detail)
        console.print(table)
        if any(r.status == "fail" for r in rows):
            raise typer.Exit(1)

    @app.command()
    def verify(
        selection: Annotated[Optional[str], typer.Argument(help="assets to verify (same grammar as materialize); default all")] = None,
        limit: Annotated[Optional[int], typer.Option(help="only the N least recently verified partitions")] = None,
    ) -> None:
        """Re-read published partitions and compare their content hash with the recorded data version.

        A mismatch or a missing file marks the partition damaged: the validated reader refuses it,
        `quarry health` and `quarry assets` show it, an alert goes out, and
        `quarry materialize --repair` rebuilds it. Exits 1 when anything is damaged.
        """
        from assets import SelectionError, default_graph
        from pipelines.notify import Alert
        from pipelines.resources import Resources
        from pipelines.settings import Settings
        from warehouse.verify import verify as verify_lake

        settings = Settings()
        require_warehouse(settings.warehouse.catalog)  # only `quarry materialize` creates a warehouse
        graph = default_graph()
        try:
            assets = sorted(a.name for a in graph.select(selection)) if selection else None
        except SelectionError as error:
            console.print(f"[red]error[/]: {error}")
            raise typer.Exit(2) from None
        with settings.warehouse.open() as warehouse:
            checks = verify_lake(warehouse, assets, limit=limit)
        damaged = [c for c in checks if c.is_damaged]
        if damaged:
            table = Table(title="Damaged partitions")
            for column in ("asset", "partition", "version", "damage"):
                table.add_column(column)
            for c in damaged:
                table.add_row(c.asset, c.partition_key, c.version_id, c.damage)
            console.print(table)
            Resources.from_settings(settings).notifier().send(Alert(
                kind="data", severity="critical", title=f"{len(damaged)} stored partitions damaged",
                body="\n".join(f"{c.asset}[{c.partition_key}] {c.version_id}: {c.damage}" for c in damaged[:50])
                     + "\nRepair: quarry materialize --repair",
                dedup_key="damaged:" + ",".join(sorted({c.version_id for c in damaged}))[:200],
            ))
        console.print(f"verified {len(checks)} published partitions: "
                      + (f"[red]{len(damaged)} damaged[/] (repair with `quarry materialize --repair`)" if damaged
                         else "[green]all match their recorded data versions[/]"))
        if damaged:
            raise typer.Exit(1)
