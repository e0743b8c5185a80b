"""Run plumbing shared by the CLI and the flows: the window, the run record and report."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

from loguru import logger

from assets import AssetGraph, default_graph
from assets.calendar import session_through
from pipelines.materialize import RunSummary
from pipelines.planning import RunWindow
from pipelines.settings import Settings
from quality.report import Report, build_report
from warehouse import Warehouse


def default_window(settings: Settings, start: date | None = None, end: date | None = None) -> RunWindow:
    """From the configured start (or `start`) to the newest session with data (or `end`, when earlier).

    The session in progress is included from the end of its first hourly bar, as a partial
    partition complete through its last closed bar; an `end` past the newest session with
    data is cut there, and the log says so.
    """
    now = settings.now()
    newest, through = session_through(now)
    if end is not None and end > newest:
        logger.info("window ends on {}: no session after it has data at {:%Y-%m-%d %H:%M} UTC", newest, now)
    last = newest if end is None else min(end, newest)
    return RunWindow.between(start or settings.start_date, last, through if last == newest else None)


def _strategy_equity(warehouse: Warehouse, summary: RunSummary):
    """The book's equity curve and metrics, when this run built the backtest's performance."""
    built = summary.outcomes.get("strategy_performance")
    if built is None or not built.built:
        return None, None
    from assets.backtests.performance import strategy_returns
    from assets.backtests.assets import BACKTEST_PARAMS

    book = strategy_returns(warehouse.read("backtest_equity"), BACKTEST_PARAMS["initial_capital"])
    metrics = warehouse.read("strategy_performance").to_dicts()
    return book.select("bar_ts", "equity_usd"), (metrics[0] if metrics else None)


def _trade_analysis(warehouse: Warehouse, summary: RunSummary):
    """Where the backtest's trades win and lose, when this run built the analysis."""
    built = summary.outcomes.get("trade_analysis")
    return warehouse.read("trade_analysis") if built is not None and built.built else None


def record_and_report(
    warehouse: Warehouse, settings: Settings, summary: RunSummary, flow_run_id: str | None = None,
    graph: AssetGraph | None = None,
) -> Report:
    """Write the HTML quality report and the run's row in `quarry.runs`, then sweep old orphaned files.

    The report draws the lineage of what ran from `graph`, the graph the run built (the default one unless given).
    """
    checks = warehouse.check_results(summary.run_id)
    equity, metrics = _strategy_equity(warehouse, summary)
    report = build_report(
        summary, checks, equity, metrics, graph=graph if graph is not None else default_graph(),
        trade_analysis=_trade_analysis(warehouse, summary),
    )
    path = settings.reports_dir / f"{summary.run_id}.html"
    try:
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(report.html, encoding="utf-8")
        summary.report_path = str(path)
    except OSError as error:  # the run is still recorded, with its summary, below
        logger.error("could not write the run report {}: {}", path, error)
        path.unlink(missing_ok=True)
    totals = summary.totals
    warehouse.record_run(
        {
            "run_id": summary.run_id,
            "flow_run_id": flow_run_id,
            "selection": summary.selection,
            "status": summary.status,
            "started_at": summary.started_at,
            "finished_at": summary.finished_at or datetime.now(timezone.utc),
            "built": totals["built"],
            "up_to_date": totals["up_to_date"],
            "quarantined": totals["quarantined"],
            "skipped": totals["skipped"],
            "failed": totals["failed"],
            "rows_written": totals["rows_written"],
            "report_path": summary.report_path,
            "summary": json.dumps(report.asset_rows, default=str),
        }
    )
    try:
        warehouse.delete_orphaned_files(older_than_hours=1.0)
    except Exception as error:  # housekeeping: the next run sweeps again
        logger.warning("could not delete orphaned files: {}", error)
    return report
