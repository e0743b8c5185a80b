"""The `quarry` command line: the same library calls the flows make, with progress and tables."""

from __future__ import annotations

import json
import sys
import webbrowser
from pathlib import Path
from typing import Annotated, Optional

import duckdb
import polars as pl
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from assets import default_graph
from pipelines.cli_common import (
    ExcludeOption, InputError, SelectOption, open_existing, parse_timestamp, parse_window, quarry_prefect_settings,
    run_reporting_user_errors, selection_text,
)
from pipelines.logs import configure_console
from pipelines.materialize import RunSummary, catalog_state, plan_run, record_definitions
from pipelines.planning import plan_selection
from pipelines.resources import Resources
from pipelines.runs import default_window
from pipelines.settings import Settings
from warehouse import LAKE, Warehouse, attach_sql
from warehouse.redaction import redact
from pipelines.terminal import console

# no locals in tracebacks: they hold settings, and settings hold secrets
app = typer.Typer(help="Quarry: versioned, contract-checked market data assets on Prefect.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


def _open(settings: Settings, read_only: bool = False) -> Warehouse:
    return settings.warehouse.open(read_only=read_only)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="on an error, show the traceback instead of one line")] = False,
) -> None:
    """Quarry: versioned, contract-checked market data assets on Prefect."""


@app.command()
def materialize(
    selectors: Annotated[Optional[list[str]], typer.Argument(metavar="[SELECTOR]...", help="shorthand for --select")] = None,
    select: SelectOption = None,
    exclude: ExcludeOption = None,
    start: Annotated[Optional[str], typer.Option("--from", help="first session (YYYY-MM-DD)")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="last session (YYYY-MM-DD)")] = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="rebuild every partition")] = False,
    repair: Annotated[bool, typer.Option("--repair", help="rebuild partitions `quarry verify` found damaged")] = False,
    plan_only: Annotated[bool, typer.Option("--dry-run", help="show what would be built and why; build nothing")] = False,
    plan_alias: Annotated[bool, typer.Option("--plan", hidden=True, help="the old name of --dry-run")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="with --dry-run: print the plan as one JSON object, {\"assets\": [{\"asset\", \"to_build\", "
            "\"reasons\": {reason: partitions}, \"up_to_date\", \"blocked\", \"first\", \"last\", \"code_version\", "
            "\"downstream\"}], \"to_build\": total}, for scripts and CI",
        ),
    ] = False,
) -> None:
    """Build every stale partition of the selection, in dependency order.

    Selection is dbt's: `-s "+pair_signals tag:weekly"` (space: union), `bars_hourly+,tag:daily`
    (comma: intersection), `2+name`, `name+1`, `@name`, globs; `--exclude` takes assets away.
    """
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    plan_only = plan_only or plan_alias
    if as_json and not plan_only:
        raise InputError("--json prints a plan: use it with --dry-run")
    first, last = parse_window(start, end)
    selection, excluded = selection_text(selectors, select), selection_text(None, exclude)
    window = default_window(settings, first, last)
    resources = Resources.from_settings(settings)
    graph = default_graph()
    graph.select(selection, excluded)  # a selection naming nothing known fails before the warehouse is opened or created
    with _open(settings) as warehouse:
        plans = plan_run(
            graph, warehouse, selection, window,
            full_refresh=full_refresh, source_identity=resources.source.identity(), repair=repair,
            exclude=excluded, resources=resources.engine_resources,
        )
        last_run = warehouse.last_run()
        if not plan_only and not any(p.to_build for p in plans):
            record_definitions(warehouse, graph.select(selection, excluded))
    to_build = sum(len(p.to_build) for p in plans)
    if plan_only:
        if as_json:
            typer.echo(json.dumps(plan_json(graph, plans)))
        else:
            _print_plan(plans)
        return
    if to_build == 0:
        blocked = sum(len(p.blocked) for p in plans)
        console.print(
            f"[green]Everything up to date[/]: {sum(len(p.up_to_date) for p in plans)} partitions across "
            f"{len(plans)} assets" + (f", {blocked} blocked by upstream" if blocked else "") + "."
        )
        if last_run and last_run.get("report_path"):
            console.print(f"Last report: {last_run['report_path']}")
        return
    summary = _run_flow(selection, excluded, first, last, full_refresh, {p.asset: len(p.to_build) for p in plans}, repair)
    _print_summary(summary)
    if summary.stopped_by:
        console.print(f"[red]error[/]: {summary.stopped_by} (run {summary.run_id} recorded as failed)", soft_wrap=True)
    raise typer.Exit(summary.exit_code)


def _run_flow(selection, exclude, start, end, full_refresh, estimates: dict[str, int], repair: bool = False) -> RunSummary:
    """Run the Prefect flow in this process with a progress bar fed by the materializer's log records."""
    from loguru import logger
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    from pipelines.flows import RunNotClean, materialize_flow, task_runner
    from pipelines.prefect_server import bind_temporary_server_to_this_process

    bind_temporary_server_to_this_process()

    progress = Progress(
        TextColumn("[bold]materialize"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, transient=False,
    )
    planned = dict(estimates)
    bar = progress.add_task("starting Prefect", total=sum(planned.values()))

    def advance(message) -> None:
        """Move the bar on finished batches; correct its total as each asset is planned for real."""
        extra = message.record["extra"]
        if "planned" in extra:
            planned[extra["asset"]] = extra["planned"]
            progress.update(bar, total=sum(planned.values()))
        if "progress" in extra:
            progress.update(bar, advance=extra["progress"], description=extra.get("asset", ""))

    settings = Settings()
    startup = settings.prefect_startup_timeout_seconds
    prefect_settings = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: startup}
    sink = logger.add(advance, level="INFO", format="{message}")
    try:
        with progress, quarry_prefect_settings(prefect_settings):
            try:
                flow = materialize_flow.with_options(task_runner=task_runner(settings))
                return flow(selection=selection, exclude=exclude, start=start, end=end, full_refresh=full_refresh,
                            repair=repair)
            except RunNotClean as not_clean:
                return not_clean.summary
    except RuntimeError as error:
        if not is_server_startup_timeout(error):
            raise
        console.print(
            f"[red]error[/]: Prefect's temporary server did not answer within {startup} s (a busy machine?); "
            "nothing was built. Raise QUARRY_PREFECT_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to a running server."
        )
        raise typer.Exit(1) from None
    finally:
        logger.remove(sink)


def is_server_startup_timeout(error: BaseException) -> bool:
    """Prefect's ephemeral server gave up starting (its message, as Prefect 3 words it)."""
    return "Timed out while attempting to connect to ephemeral Prefect API server" in str(error)


def plan_json(graph, plans) -> dict:
    """The plan as `materialize --dry-run --json` prints it: per asset, partitions to build by reason."""
    assets = []
    for plan in plans:
        keys = sorted(w.partition_key for w in plan.to_build)
        assets.append(
            {
                "asset": plan.asset,
                "to_build": len(plan.to_build),
                "reasons": _reason_counts(plan),
                "up_to_date": len(plan.up_to_date),
                "blocked": len(plan.blocked),
                "first": keys[0] if keys else None,
                "last": keys[-1] if keys else None,
                "code_version": graph[plan.asset].code_version,
                "downstream": sorted(graph.downstream(plan.asset)) if plan.to_build else [],
            }
        )
    return {"assets": assets, "to_build": sum(a["to_build"] for a in assets)}


def _reason_counts(plan) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for w in plan.to_build:
        reasons[w.reason] = reasons.get(w.reason, 0) + 1
    return dict(sorted(reasons.items()))


def _print_plan(plans) -> None:
    table = Table(title="Plan (nothing is built)")
    for column in ("asset", "to build", "why", "up to date", "blocked", "downstream impact"):
        table.add_column(column)
    graph = default_graph()
    for plan in plans:
        impact = ", ".join(sorted(graph.downstream(plan.asset))) if plan.to_build else ""
        table.add_row(
            plan.asset, str(len(plan.to_build)), ", ".join(f"{r}: {n}" for r, n in _reason_counts(plan).items()),
            str(len(plan.up_to_date)), str(len(plan.blocked)), impact,
        )
    console.print(table)
    for plan in plans:
        for work in plan.to_build[:10]:
            console.print(f"  {work.asset} [{work.partition_key}] — {work.reason}")
        if len(plan.to_build) > 10:
            console.print(f"  {plan.asset}: … and {len(plan.to_build) - 10} more")


def _quarantine_reasons(summary: RunSummary) -> dict[tuple[str, str], str]:
    """(asset, partition) → the checks that quarantined it in this run, from the catalog's version rows."""
    settings = Settings()
    with _open(settings, read_only=True) as warehouse:
        rows = warehouse.query(
            f"SELECT asset, partition_key, failed_checks FROM {LAKE}.quarry.versions WHERE run_id = ? AND status = 'quarantined'",
            [summary.run_id],
        )
    return {(r["asset"], r["partition_key"]): r["failed_checks"] for r in rows.iter_rows(named=True) if r["failed_checks"]}


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"Run {summary.run_id}: {summary.status}")
    for column in ("asset", "built", "up to date", "quarantined", "skipped", "failed", "rows", "seconds"):
        table.add_column(column, justify="left" if column == "asset" else "right", no_wrap=column == "asset")
    for o in summary.outcomes.values():
        table.add_row(
            o.asset, str(len(o.built)), str(len(o.up_to_date)),
            f"[red]{len(o.quarantined)}[/]" if o.quarantined else "0", str(len(o.skipped)),
            f"[red]{len(o.failed)}[/]" if o.failed else "0", str(o.rows), f"{o.seconds:.2f}",
        )
    console.print(table)
    failed_checks = _quarantine_reasons(summary) if summary.totals["quarantined"] else {}
    for o in summary.outcomes.values():
        for key in o.quarantined[:10]:
            why = failed_checks.get((o.asset, key))
            console.print(f"[red]quarantined[/] {o.asset} [{key}]" + (f": failed {why}" if why else ""), soft_wrap=True)
        for key, error in o.failed[:5] if not summary.stopped_by else ():  # a full disk is said once, last
            console.print(f"[red]failed[/] {o.asset} [{key}]: {error}")
    console.print(f"Quality report: {summary.report_path}")
    settings = Settings()
    console.print(
        "Explore: quarry sql \"SELECT * FROM bars_daily LIMIT 5\"  ·  DuckDB's shell: quarry duckdb  ·  "
        f"in another DuckDB {duckdb.__version__} client: LOAD ducklake; {attach_sql(redact(settings.warehouse.catalog), settings.warehouse.data_path, read_only=True)}; USE {LAKE};",
        soft_wrap=True,
    )


@app.command("assets")
def list_assets(as_json: Annotated[bool, typer.Option("--json", help="the assets as a JSON list of objects")] = False) -> None:
    """Every asset: partitions, latest published version, stale or not, last check status."""
    settings = Settings()
    resources = Resources.from_settings(settings)
    configure_console(settings.log_level, quiet=True)
    graph = default_graph()
    window = default_window(settings)
    with open_existing(settings) as warehouse:
        state = catalog_state(warehouse, sorted(graph.assets))
    plans = {
        p.asset: p
        for p in plan_selection(graph, graph.select(None), state, window, source_identity=resources.source.identity(),
                                resources=resources.engine_resources)
    }
    current, latest = state.published, state.latest
    rows = []
    for a in graph:
        mine = current.filter(pl.col("asset") == a.name).sort("created_at")
        attempts = latest.filter(pl.col("asset") == a.name)
        plan = plans[a.name]
        rows.append(
            {
                "asset": a.name,
                "partitions": a.partitions,
                "published_partitions": mine.height,
                "latest_version": mine["version_id"][-1] if mine.height else None,
                "latest_published_at": str(mine["published_at"][-1]) if mine.height else None,
                "code_version": a.code_version,
                "metadata_hash": a.metadata_hash,
                "stale": bool(plan.to_build),
                "stale_partitions": len(plan.to_build),
                "quarantined_partitions": attempts.filter(pl.col("status") == "quarantined").height,
                "damaged_partitions": mine.filter(pl.col("damaged_at").is_not_null()).height
                if "damaged_at" in mine.columns else 0,
                "last_check_status": "failing" if attempts.filter(pl.col("status") == "quarantined").height else "passing",
                "tags": sorted(a.tags),
                "deps": list(a.deps),
                "params": dict(a.params),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="Assets")
    for column in ("asset", "partitions", "published", "latest version", "stale", "checks", "deps"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["asset"], r["partitions"], str(r["published_partitions"]), r["latest_version"] or "—",
            f"[yellow]{r['stale_partitions']} stale[/]" if r["stale"] else "[green]fresh[/]",
            ("[red]failing[/]" if r["last_check_status"] == "failing" else "[green]passing[/]")
            + (f" [red]{r['damaged_partitions']} damaged[/]" if r["damaged_partitions"] else ""),
            ", ".join(r["deps"]),
        )
    console.print(table)


@app.command()
def history(
    asset: str,
    partition: Annotated[Optional[str], typer.Option("--partition", help="one partition key, e.g. 2025-03-14")] = None,
    limit: Annotated[int, typer.Option(help="most recent versions shown")] = 30,
) -> None:
    """The versions of an asset (newest first): status, code and data version, rows, run."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    default_graph()[asset]
    with open_existing(settings) as warehouse:
        versions = warehouse.versions(asset, partition).head(limit)
    table = Table(title=f"History of {asset}" + (f" [{partition}]" if partition else ""))
    for column in ("version", "partition", "status", "code", "data version", "rows", "created", "failed checks"):
        table.add_column(column)
    for v in versions.iter_rows(named=True):
        table.add_row(
            v["version_id"], v["partition_key"], v["status"], v["code_version"], v["data_version"][:12],
            str(v["row_count"]), f"{v['created_at']:%Y-%m-%d %H:%M:%S}", v["failed_checks"] or "",
        )
    console.print(table)


@app.command()
def lineage(
    asset: str,
    svg: Annotated[Optional[Path], typer.Option("--svg", help="also draw the lineage to this SVG file")] = None,
) -> None:
    """Upstream and downstream of an asset, with the versions the latest build read."""
    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    graph = default_graph()
    graph[asset]
    with open_existing(settings) as warehouse:
        current = warehouse.current_versions()
    versions = {r["asset"]: r for r in current.sort("created_at").iter_rows(named=True)}

    def label(name: str) -> str:
        v = versions.get(name)
        return f"{name} [dim]({v['version_id']}, data {v['data_version'][:8]})[/]" if v else f"{name} [dim](never published)[/]"

    def add_upstream(node: Tree, name: str) -> None:
        for dep in graph[name].deps:
            add_upstream(node.add(label(dep)), dep)

    up = Tree(f"[bold]{label(asset)}[/] is built from")
    add_upstream(up, asset)
    console.print(up)
    down = sorted(graph.downstream(asset))
    console.print(f"[bold]downstream[/]: {', '.join(down) if down else 'nothing'}")
    if svg:
        from pipelines.cli_explore import draw_lineage

        console.print(f"Lineage drawn to {draw_lineage(asset, svg)}")


@app.command()
def backtest(
    start: Annotated[Optional[str], typer.Option("--from", help="first session (YYYY-MM-DD); default 90 days back")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="last session (YYYY-MM-DD); default the last published")] = None,
    pairs: Annotated[Optional[str], typer.Option("--pairs", help="comma-separated pair ids, symbols in alphabetical order, e.g. KO/PEP,GS/MS")] = None,
    entry_z: Annotated[float, typer.Option("--entry-z")] = 2.0,
    exit_z: Annotated[float, typer.Option("--exit-z")] = 0.5,
    stop_z: Annotated[float, typer.Option("--stop-z")] = 4.0,
    max_holding_bars: Annotated[int, typer.Option("--max-holding-bars")] = 70,
    commission_bps: Annotated[float, typer.Option("--commission-bps")] = 1.0,
    slippage_bps: Annotated[float, typer.Option("--slippage-bps")] = 2.0,
    kelly_fraction: Annotated[float, typer.Option("--kelly-fraction")] = 0.25,
    at: Annotated[Optional[str], typer.Option("--at", help="read the assets as published at this timestamp")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="metrics, versions read and result digest as one JSON object")] = False,
) -> None:
    """Rerun the pairs strategy over a window with chosen parameters, pinned to the asset versions it reads."""
    from datetime import timedelta

    from assets.backtests.simulation import BacktestParams
    from assets.pairs.spreads import SignalParams
    from pipelines.pinned_backtest import run_pinned_backtest

    settings = Settings()
    configure_console(settings.log_level, quiet=True)
    first, last = parse_window(start, end)
    last = last or default_window(settings).sessions["session_date"].max()
    first = first or last - timedelta(days=90)
    if first > last:
        raise InputError(f"--from {first} is after the last session {last}: the window would be empty")
    pinned_at = parse_timestamp(at, "--at")
    with open_existing(settings) as warehouse:
        try:
            run = run_pinned_backtest(
                warehouse, start=first, end=last,
                signal_params=SignalParams(entry_z=entry_z, exit_z=exit_z, stop_z=stop_z, max_holding_bars=max_holding_bars),
                backtest_params=BacktestParams(commission_bps=commission_bps, slippage_bps=slippage_bps, kelly_fraction=kelly_fraction),
                pairs=pairs.split(",") if pairs else None, at=pinned_at,
            )
        except ValueError as error:  # parameters the strategy refuses (an unknown pair, a z-score out of range)
            raise InputError(str(error)) from None
    if as_json:
        print(json.dumps({"window": [str(first), str(last)], "versions": run.versions, "result_digest": run.result_digest,
                          "strategy": run.strategy.to_dicts()[0], "pairs": run.pairs.to_dicts()}, default=str))
        return
    table = Table(title=f"Backtest {first} → {last}")
    table.add_column("metric")
    table.add_column("strategy", justify="right")
    for name, value in run.strategy.to_dicts()[0].items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    per_pair = Table(title="Per pair")
    for column in ("pair_id", "total_return_pct", "sharpe_ratio", "max_drawdown_pct", "trade_count", "win_rate_pct"):
        per_pair.add_column(column)
    for row in run.pairs.iter_rows(named=True):
        per_pair.add_row(*(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in
                           ("pair_id", "total_return_pct", "sharpe_ratio", "max_drawdown_pct", "trade_count", "win_rate_pct")))
    console.print(per_pair)
    for name, pinned in run.versions.items():
        console.print(f"read {name}: {pinned['partitions']} published partitions, data {pinned['data_version']}")
    console.print(f"result digest {run.result_digest} (same inputs and parameters give the same digest)")


@app.command()
def report(
    run_id: Annotated[Optional[str], typer.Argument(help="a run id; default the latest run")] = None,
    open_it: Annotated[bool, typer.Option("--open", help="open it in a browser")] = False,
) -> None:
    """Where a run's HTML quality report is."""
    settings = Settings()
    with open_existing(settings) as warehouse:
        run = warehouse.run(run_id) if run_id else warehouse.last_run()
    if run_id and not run:
        raise InputError(f"no run {run_id!r} in the catalog (quarry runs lists them)")
    if not run or not run.get("report_path"):
        console.print("no runs with a report yet: run `quarry materialize`")
        raise typer.Exit(1)
    path = Path(run["report_path"]).resolve()
    print(path)
    if open_it:
        webbrowser.open(path.as_uri())


def _register_command_groups() -> None:
    """Commands that live beside their libraries: exploration, operations, trading."""
    from pipelines import cli_explore, cli_ops, cli_trade

    cli_explore.register(app)
    cli_ops.register(app)
    cli_trade.register(app)


_register_command_groups()


def main() -> None:
    """The `quarry` entry point: secrets masked in every log line; a user error is one line with exit 2,
    an unexpected failure one redacted line with exit 1 (`--debug`: the traceback)."""
    from pipelines.logs import install_redaction
    from pipelines.settings import redactor

    install_redaction()
    sys.exit(run_reporting_user_errors(app, sys.argv[1:], redactor()))


if __name__ == "__main__":
    sys.exit(main())
