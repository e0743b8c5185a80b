"""Prefect flows of the trading desk: the hourly pairs cycle, execution, orders, positions, reconciliation, risk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

from loguru import logger
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.logs import route_run_logs
from pipelines.monitoring import REPORT_FAILURE
from pipelines.resources import Resources
from pipelines.settings import Settings
from pipelines.trading import operations as ops
from pipelines.trading.runtime import TradingRuntime, open_runtime

T = TypeVar("T")

__all__ = [
    "execute_trades",
    "generate_risk_alerts",
    "intraday_pairs_trading",
    "manage_orders_flow",
    "monitor_portfolio_risk_flow",
    "reconcile_trades_flow",
    "update_positions_flow",
]


def _now(now: datetime | None, settings: Settings) -> datetime:
    """The cycle's moment: the `now` parameter, else the configured clock (QUARRY_CLOCK), else the wall clock."""
    return (now or settings.now()).astimezone(timezone.utc)


def _relay_alerts(runtime) -> None:
    """Email the run's fills and alerts at once; on failure they wait for the `risk-alerts` sweep."""
    try:
        ops.relay_alerts(runtime.ledger, runtime.relay_notifier())
    except Exception as error:
        logger.error("alerts not relayed now (the risk-alerts sweep retries): {}", error)


def _publish_cycle(report) -> None:
    try:
        rows = ops.cycle_rows(report)
        if rows:
            create_table_artifact(key="pairs-cycle", table=rows, description=f"cycle {report.cycle_id}")
        create_markdown_artifact(
            key="pairs-cycle-summary",
            markdown=f"**{report.cycle_id}**: {report.status}"
                     + (f" ({report.reason})" if report.reason else "")
                     + f"\n\nversions: {ops.versions_text(report)}",
        )
    except Exception as error:  # artifacts are a view; a failure to write one must not fail the cycle
        logger.warning("could not publish cycle artifacts: {}", error)


def _raise_if_failed(report) -> None:
    """A cycle the broker stopped fails its flow run too, so Prefect retries it (the same cycle resumes)."""
    if report.status == "failed":
        raise RuntimeError(f"cycle {report.cycle_id} failed: {report.reason}")


@flow(name="intraday-pairs-trading", retries=1, timeout_seconds=600, log_prints=True, **REPORT_FAILURE)
def intraday_pairs_trading(now: datetime | None = None, dry_run: bool = False, check_market: bool = True):
    """One hourly pairs cycle from validated assets; a retry re-runs the same cycle and reuses its orders."""
    settings = Settings()
    route_run_logs(settings)
    with open_runtime(Resources.from_settings(settings)) as runtime:
        report = ops.run_pairs_cycle(runtime, _now(now, settings), dry_run=dry_run, check_market=check_market)
        _relay_alerts(runtime)
    _publish_cycle(report)
    _raise_if_failed(report)
    return report


@flow(name="execute-trades", log_prints=True, **REPORT_FAILURE)
def execute_trades(strategy: str = "pairs", now: datetime | None = None, dry_run: bool = False):
    """One cycle of the named strategy (`pairs` or `momentum`)."""
    settings = Settings()
    route_run_logs(settings)
    with open_runtime(Resources.from_settings(settings)) as runtime:
        report = ops.run_strategy_cycle(runtime, strategy, _now(now, settings), dry_run=dry_run)
        _relay_alerts(runtime)
    _publish_cycle(report)
    _raise_if_failed(report)
    return report


def _ledger_operation(operation: Callable[[TradingRuntime, datetime], T], now: datetime | None) -> T:
    """One operation on the book in a runtime of its own, then the alerts it raised relayed."""
    settings = Settings()
    route_run_logs(settings)
    with open_runtime(Resources.from_settings(settings)) as runtime:
        result = operation(runtime, _now(now, settings))
        _relay_alerts(runtime)
    return result


@flow(name="manage-orders", log_prints=True, **REPORT_FAILURE)
def manage_orders_flow(now: datetime | None = None):
    """Refresh live orders, cancel timed-out remainders, settle or repair half-filled pairs."""
    return _ledger_operation(ops.run_manage_orders, now)


@flow(name="update-positions", log_prints=True, **REPORT_FAILURE)
def update_positions_flow(now: datetime | None = None):
    """Positions and P&L from fills, marked at validated prices."""
    return _ledger_operation(ops.run_update_positions, now)


@flow(name="reconcile-trades", log_prints=True, **REPORT_FAILURE)
def reconcile_trades_flow(now: datetime | None = None):
    """Ledger against broker: every discrepancy recorded and alerted, safe ones repaired."""
    return _ledger_operation(ops.run_reconcile, now)


@flow(name="monitor-portfolio-risk", log_prints=True, **REPORT_FAILURE)
def monitor_portfolio_risk_flow(now: datetime | None = None):
    """Book-level limits (exposure, daily loss, drawdown, open pairs) checked as the book stands."""
    return _ledger_operation(ops.run_monitor_portfolio_risk, now)


@flow(name="generate-risk-alerts", log_prints=True, **REPORT_FAILURE)
def generate_risk_alerts(now: datetime | None = None):
    """Email new fills and unacknowledged alerts (and any queued while the relay was down); list them as an artifact."""
    settings = Settings()
    route_run_logs(settings)
    with open_runtime(Resources.from_settings(settings)) as runtime:
        pending = ops.run_generate_risk_alerts(runtime, _now(now, settings))
    try:
        if pending:
            create_table_artifact(key="risk-alerts", table=[
                {k: str(v) for k, v in a.items() if k in ("at", "level", "source", "subject", "message")}
                for a in pending])
    except Exception as error:
        logger.warning("could not publish alert artifact: {}", error)
    return pending
