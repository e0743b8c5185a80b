"""`quarry trade`: the trading flows' operations from the command line, with a dry run that explains itself."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from pipelines.cli_common import quarry_prefect_settings
from pipelines.terminal import console

if TYPE_CHECKING:
    from pipelines.settings import Settings


def _at(value: str | None, settings: Settings) -> datetime:
    """`--at` as an aware UTC time (ISO 8601); when absent, the configured clock (QUARRY_CLOCK) or now."""
    from pipelines.cli_common import parse_timestamp

    if value is None:
        return settings.now()
    parsed = parse_timestamp(value, "--at")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _exit_if_failed(report) -> None:
    """A cycle the broker stopped: one line naming the call and what to check, exit code 1."""
    if report.status == "failed":
        console.print(f"[red]cycle {report.cycle_id} failed[/]: {escape(report.reason or '')}", soft_wrap=True)
        raise typer.Exit(1)


AtOption = Annotated[Optional[str], typer.Option("--at", help="act as of this UTC time (ISO 8601); default QUARRY_CLOCK, else now")]


def register(app: typer.Typer) -> None:
    """Add the `trade` command group to the `quarry` app."""
    trade = typer.Typer(help="Trade the pairs book from validated assets; orders, positions, risk.", no_args_is_help=True)
    app.add_typer(trade, name="trade")

    @trade.callback()
    def _on_prefect(ctx: typer.Context) -> None:
        """A ledger or source keys kept in Prefect blocks are loaded through Prefect, under Quarry's Prefect settings.

        Otherwise no trade command imports Prefect (about a second of start-up): they run the
        trading operations directly, not as flows.
        """
        from pipelines.settings import Settings

        settings = Settings()
        if settings.ledger.connector_block or settings.source.secret_blocks:
            ctx.with_resource(quarry_prefect_settings())

    @trade.command("pairs")
    def pairs(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="decide and explain, place nothing")] = False,
        at: AtOption = None,
        ignore_clock: Annotated[bool, typer.Option("--ignore-clock", help="trade whatever the market clock says")] = False,
    ) -> None:
        """Run one intraday pairs cycle (the `intraday-pairs-trading` flow's work)."""
        from pipelines.trading import operations as ops
        from pipelines.resources import Resources
        from pipelines.settings import Settings
        from pipelines.trading.runtime import open_runtime

        settings = Settings()
        with open_runtime(Resources.from_settings(settings)) as runtime:
            report = ops.run_pairs_cycle(runtime, _at(at, settings), dry_run=dry_run, check_market=False if ignore_clock else None)
        _exit_if_failed(report)
        table = Table(title=f"{report.cycle_id}: {report.status}" + (" (dry run)" if dry_run else ""))
        for column in ("pair", "signal", "z-score", "action", "legs and sizes", "risk verdict"):
            table.add_column(column)
        for row in ops.cycle_rows(report):
            z = "" if row["zscore"] is None else f"{row['zscore']:+.2f}"
            table.add_row(row["pair"], row["signal"] or "", z, row["action"], row["legs"],
                          f"{row['verdict']}: {row['reason']}")
        console.print(table)
        if report.reason:
            console.print(f"[red]{report.status}[/]: {report.reason}")
        console.print(f"regime: {report.regime}; asset versions: {ops.versions_text(report) or 'none'}")
        if report.status == "blocked":
            raise typer.Exit(1)

    @trade.command("momentum")
    def momentum(dry_run: Annotated[bool, typer.Option("--dry-run")] = False, at: AtOption = None) -> None:
        """Run one daily momentum cycle."""
        from pipelines.trading import operations as ops
        from pipelines.resources import Resources
        from pipelines.settings import Settings
        from pipelines.trading.runtime import open_runtime

        settings = Settings()
        with open_runtime(Resources.from_settings(settings)) as runtime:
            report = ops.run_strategy_cycle(runtime, "momentum", _at(at, settings), dry_run=dry_run)
        _exit_if_failed(report)
        for row in ops.cycle_rows(report):
            console.print(f"{row['pair']}: {row['action']} {row['legs']} — {row['verdict']}: {row['reason']}")
        console.print(f"{report.cycle_id}: {report.status} {report.reason or ''}")

    @trade.command("kill-switch")
    def kill_switch(state: Annotated[str, typer.Argument(help="on | off | status")] = "status") -> None:
        """Block (on) or allow (off) every new entry; exits keep running."""
        from pipelines.resources import Resources
        from pipelines.settings import Settings

        resources = Resources.from_settings(Settings())
        ledger = resources.ledger
        if state not in ("on", "off", "status"):
            console.print("[red]error[/]: expected on, off or status")
            raise typer.Exit(2)
        if state != "status":
            ledger.set_kill_switch(state == "on")
            ledger.raise_alert(at=datetime.now(timezone.utc), level="critical" if state == "on" else "info",
                               source="kill-switch", message=f"kill switch turned {state} from the CLI")
            from pipelines.trading import operations as ops

            ops.relay_alerts(ledger, resources.notifier(record_alert=lambda alert: None))
        console.print(f"kill switch: {'on' if ledger.kill_switch() else 'off'}")

    def _simple(name: str, operation: str, help_text: str, describe) -> None:
        """A command that runs one ledger operation; the trading modules load only when it runs."""

        @trade.command(name, help=help_text)
        def command(at: AtOption = None) -> None:
            from pipelines.trading import operations as ops
            from pipelines.brokers import BrokerError
            from pipelines.resources import Resources
            from pipelines.settings import Settings
            from pipelines.trading.runtime import open_runtime

            settings = Settings()
            with open_runtime(Resources.from_settings(settings)) as runtime:
                try:
                    result = getattr(ops, operation)(runtime, _at(at, settings))
                except BrokerError as error:
                    console.print(f"[red]{name} failed[/]: {escape(str(error))}", soft_wrap=True)
                    raise typer.Exit(1) from None
                console.print(describe(result))

    _simple("orders", "run_manage_orders",
            "Resolve orders whose outcome is unknown, refresh live ones, settle and repair pair trades.",
            lambda counts: f"orders: {counts or 'none live'}")
    _simple("positions", "run_update_positions",
            "Positions marked at validated prices; with unusable prices nothing is marked and an alert says why.",
            lambda rows: "\n".join(f"{r['strategy']} {r['symbol']} {r['qty']:+g} @ {r['avg_cost_px']:.2f} "
                                   f"unrealized {r['unrealized_pnl'] or 0:,.2f} realized {r['realized_pnl']:,.2f}"
                                   for r in rows) or "no positions")
    _simple("reconcile", "run_reconcile",
            "Ledger against broker both ways: orders, pair trades and positions; every difference alerted.",
            lambda report: "\n".join(report.discrepancies) or "ledger and broker agree")
    _simple("risk", "run_monitor_portfolio_risk",
            "Book-level limits as the book stands; every breach is a risk event and an alert.",
            lambda breaches: "\n".join(b.reason for b in breaches) or "within every limit")
    _simple("alerts", "run_generate_risk_alerts",
            "Email every new fill and unacknowledged ledger alert; lists the alerts, newest first.",
            lambda alerts: "\n".join(f"[{a['level']}] {a['source']}: {a['message']}" for a in alerts) or "no new alerts")
