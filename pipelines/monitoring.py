"""System health, failed-run detection and the daily report: checks, Prefect events, alerts and artifacts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import polars as pl
from loguru import logger
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from assets import AssetGraph, default_graph
from assets.calendar import EXCHANGE_TIMEZONE
from pipelines.logs import route_run_logs
from pipelines.notify import Alert, DailySummary, Notifier, failed_run_alert, render_daily_summary
from pipelines.resources import Resources
from pipelines.settings import Settings, redactor
from warehouse import LAKE, Warehouse
from warehouse.redaction import redact

if TYPE_CHECKING:
    from warehouse.ledger import Ledger

Status = Literal["ok", "warn", "fail"]
EXCHANGE_TZ = ZoneInfo(EXCHANGE_TIMEZONE)
#: An optional check of an outside system (the ledger, the broker): returns a detail or raises.
Probe = Callable[[], str]
FAILED_RUN_EVENT = "quarry.flow-run.failed"


@dataclass(frozen=True)
class HealthRow:
    check: str
    status: Status
    detail: str


def freshness_rows(current: pl.DataFrame, graph: AssetGraph, now: datetime) -> list[HealthRow]:
    """For each asset that declares a freshness: is the data recent enough, judged by data time, not publish time.

    A partitioned asset is as old as its newest published partition's session close (as
    the validated reader measures it), and the detail says how many exchange sessions it
    is behind; an unpartitioned one is as old as its last publish.
    """
    rows = []
    for asset in graph:
        if asset.freshness is None:
            continue
        mine = current.filter(pl.col("asset") == asset.name) if current.height else current
        if mine.is_empty():
            rows.append(HealthRow(f"fresh:{asset.name}", "fail", "never published"))
            continue
        if asset.is_partitioned:
            newest = max(mine["partition_key"].to_list())
            data_end, behind = _session_close_and_lag(newest, now)
            age = now - data_end
            detail = (f"newest partition {newest} (data to {data_end:%Y-%m-%d %H:%M} UTC), {_age(age)} old, "
                      f"{behind} completed sessions behind (limit {_age(asset.freshness)})")
        else:
            published = mine["published_at"].max()
            age = now - published
            detail = f"last published {published:%Y-%m-%d %H:%M} UTC, {_age(age)} ago (limit {_age(asset.freshness)})"
        rows.append(HealthRow(f"fresh:{asset.name}", "ok" if age <= asset.freshness else "fail", detail))
    return rows


def _session_close_and_lag(key: str, now: datetime) -> tuple[datetime, int]:
    """The close of the session `key` and how many sessions have completed after it by `now`."""
    from datetime import date

    from assets.calendar import sessions

    day = date.fromisoformat(key)
    span = sessions(day, max(day, now.date()))
    close = span.filter(pl.col("session_date") == day)["close_ts"]
    data_end = close[0] if close.len() else datetime(day.year, day.month, day.day, 21, tzinfo=timezone.utc)
    behind = span.filter((pl.col("session_date") > day) & (pl.col("close_ts") <= now)).height
    return data_end, behind


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d {hours % 24}h" if hours >= 24 else f"{int(delta.total_seconds() // 60)}m"


def check_warehouse(settings: Settings, graph: AssetGraph, now: datetime) -> list[HealthRow]:
    """The warehouse opens read-only and answers; then each asset's freshness from its last publish."""
    try:
        with settings.warehouse.open(read_only=True) as warehouse:
            current = warehouse.current_versions()
    except Exception as error:
        return [HealthRow("warehouse", "fail", redact(f"cannot read {settings.warehouse.catalog}: {error}"))]
    return ([HealthRow("warehouse", "ok", f"{current.height} published partitions"), storage_row(current)]
            + freshness_rows(current, graph, now))


def storage_row(current: pl.DataFrame) -> HealthRow:
    """Published partitions `quarry verify` found damaged (their files no longer give their data version)."""
    if "damaged_at" not in current.columns:
        return HealthRow("storage", "ok", "never verified (run `quarry verify`)")
    damaged = current.filter(pl.col("damaged_at").is_not_null()).sort("asset", "partition_key")
    if damaged.is_empty():
        verified = current.filter(pl.col("verified_at").is_not_null()).height
        return HealthRow("storage", "ok", f"{verified} of {current.height} partitions verified, none damaged")
    shown = ", ".join(f"{a}[{k}]" for a, k in damaged.select("asset", "partition_key").head(10).iter_rows())
    return HealthRow("storage", "fail", f"{damaged.height} partitions damaged: {shown}"
                     + (" …" if damaged.height > 10 else "") + "; repair with `quarry materialize --repair`")


def verify_sample(settings: Settings) -> None:
    """Re-verify the least recently verified published partitions (a rolling sample over successive runs)."""
    from warehouse.verify import verify

    if not settings.ops.verify_sample:
        return
    try:
        with settings.warehouse.open() as warehouse:
            checks = verify(warehouse, limit=settings.ops.verify_sample)
        logger.info("verified {} partitions, {} damaged", len(checks), sum(c.is_damaged for c in checks))
    except Exception as error:  # the health rows report the warehouse itself
        logger.warning("could not verify stored partitions: {}", redact(str(error)))


def check_prefect_api(api_url: str | None) -> HealthRow:
    """The configured Prefect API answers its health endpoint; with no API configured there is nothing to reach."""
    if not api_url:
        return HealthRow("prefect-api", "ok", "not configured (ephemeral Prefect)")
    import httpx

    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=5)
        response.raise_for_status()
    except httpx.HTTPError as error:
        return HealthRow("prefect-api", "fail", redact(f"{api_url}: {error}"))
    return HealthRow("prefect-api", "ok", redact(api_url))


def check_orchestration(api_url: str | None, now: datetime, stalled_after: timedelta) -> list[HealthRow]:
    """What stops schedules from running: Late runs, work pools with no live worker, runs stuck Pending or Running.

    Only against a Prefect server (a temporary one has no workers and no lateness to speak of).
    """
    if not api_url:
        return []
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter, FlowRunFilterStartTime, FlowRunFilterState, FlowRunFilterStateName, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    try:
        with get_client(sync_client=True) as client:
            late = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"]))),
                limit=200)
            stuck = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
                    start_time=FlowRunFilterStartTime(before_=now - stalled_after)),
                limit=200)
            deployments = {d.id: d.name for d in client.read_deployments(limit=200)}
            pools = [(pool, client.read_workers_for_work_pool(pool.name)) for pool in client.read_work_pools()]
    except Exception as error:
        return [HealthRow("orchestration", "fail", redact(f"{api_url}: {type(error).__name__}: {error}"))]

    def runs(found) -> str:
        names = sorted({deployments.get(r.deployment_id, r.name) for r in found})
        return f"{len(found)} runs: " + ", ".join(names[:10])

    idle = [pool.name for pool, workers in pools
            if not pool.is_paused and not any(str(w.status).upper().endswith("ONLINE") for w in workers)]
    return [
        HealthRow("late-runs", "fail" if late else "ok", runs(late) if late else "none"),
        HealthRow("stalled-runs", "fail" if stuck else "ok",
                  f"{runs(stuck)} pending or running for over {_age(stalled_after)}" if stuck else "none"),
        HealthRow("work-pools", "fail" if idle else "ok",
                  f"no live worker in {', '.join(sorted(idle))}" if idle else f"{len(pools)} pools with live workers"),
    ]


def run_probes(probes: Mapping[str, Probe]) -> list[HealthRow]:
    rows = []
    for name, probe in probes.items():
        try:
            rows.append(HealthRow(name, "ok", probe()))
        except Exception as error:
            rows.append(HealthRow(name, "fail", redact(f"{type(error).__name__}: {error}")))
    return rows


def system_health(settings: Settings, graph: AssetGraph | None = None,
                  probes: Mapping[str, Probe] | None = None, now: datetime | None = None) -> list[HealthRow]:
    """Every health check, in the order a person reads them."""
    now = now or datetime.now(timezone.utc)
    ops = settings.ops
    rows = check_warehouse(settings, graph or default_graph(), now)
    rows.append(check_prefect_api(ops.prefect_api_url))
    rows += check_orchestration(ops.prefect_api_url, now, timedelta(minutes=ops.stalled_run_minutes))
    return rows + run_probes(probes or {})


def health_alert(rows: list[HealthRow]) -> Alert | None:
    """One alert for all failing checks, keyed by which checks fail (a persisting failure mails once per window)."""
    failing = [r for r in rows if r.status == "fail"]
    if not failing:
        return None
    return Alert(
        kind="health", severity="critical" if any(r.check in ("warehouse", "storage", "prefect-api") for r in failing) else "warning",
        title=f"{len(failing)} health checks failing", body="\n".join(f"{r.check}: {r.detail}" for r in failing),
        dedup_key="health:" + ",".join(sorted(r.check for r in failing)), details={r.check: r.detail for r in failing},
    )


# ---- failed runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedRun:
    flow_run_id: str
    flow_name: str
    run_name: str
    state: str
    message: str
    ended_at: datetime | None
    deployment: str | None = None
    url: str | None = None


def flow_run_url(flow_run_id: str) -> str | None:
    """The run's page in the Prefect UI, when a UI address is known."""
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def find_failed_runs(since: datetime) -> list[FailedRun]:
    """Flow runs that ended Failed or Crashed since `since`, from the Prefect API, with their deployment and UI link."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterEndTime, FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED])),
                end_time=FlowRunFilterEndTime(after_=since),
            ),
            limit=200,
        )
        names = {f.id: f.name for f in client.read_flows(limit=200)} if runs else {}
        deployment_ids = sorted({r.deployment_id for r in runs if r.deployment_id}, key=str)
        deployments = {
            d.id: d.name for d in client.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)), limit=200)
        } if deployment_ids else {}
    return [
        FailedRun(str(r.id), names.get(r.flow_id, "?"), r.name, r.state.name if r.state else "Failed",
                  (r.state.message or "") if r.state else "", r.end_time, deployments.get(r.deployment_id),
                  flow_run_url(str(r.id)))
        for r in runs
    ]


def report_failed_run(run: FailedRun, notifier: Notifier, now: datetime | None = None) -> bool:
    """Once per run, whoever sees it first: a Prefect event for automations and an alert for people.

    Returns False when the run was reported before (by an earlier health pass or a hook).
    """
    from prefect.events import emit_event

    if not notifier.store.first_report(run.flow_run_id, now or datetime.now(timezone.utc)):
        return False
    related = [{"prefect.resource.id": f"quarry.flow.{run.flow_name}", "prefect.resource.role": "flow"}]
    if run.deployment:
        related.append({"prefect.resource.id": f"quarry.deployment.{run.deployment}",
                        "prefect.resource.role": "deployment", "prefect.resource.name": run.deployment})
    emit_event(
        event=FAILED_RUN_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{run.flow_run_id}", "prefect.resource.name": run.run_name},
        related=related,
        payload={"flow": run.flow_name, "deployment": run.deployment, "state": run.state,
                 "message": redact(run.message)[:500], "url": run.url},
    )
    notifier.send(failed_run_alert(run.flow_name, run.flow_run_id, run.state, run.message, run.url, run.deployment))
    return True


def alert_on_failure(flow, flow_run, state) -> None:
    """A flow `on_failure`/`on_crashed` hook: the same event and alert as detection, at once (still once per run)."""
    from prefect.runtime import deployment

    report_failed_run(
        FailedRun(str(flow_run.id), flow.name, flow_run.name, state.name, state.message or "", None,
                  deployment.name, flow_run_url(str(flow_run.id))),
        Resources.from_settings(Settings()).notifier(),
    )


#: The hooks every deployed flow carries: a run that fails or crashes is reported as it ends, and a health
#: pass that finds it later reports nothing more (`report_failed_run` keeps one report per run).
REPORT_FAILURE = {"on_failure": [alert_on_failure], "on_crashed": [alert_on_failure]}


def _publish_health(rows: list[HealthRow]) -> None:
    try:
        table = [{**asdict(r), "detail": redactor()(r.detail)} for r in rows]
        create_table_artifact(key="system-health", table=table, description="Quarry system health")
    except Exception as error:
        logger.warning("could not publish the health artifact: {}", error)


@flow(name="monitor-system-health", log_prints=True, **REPORT_FAILURE)
def monitor_system_health_flow(detect_failed_runs: bool = True) -> list[dict]:
    """Check the warehouse, freshness, the Prefect API and optional probes; alert on failures and failed runs."""
    settings = Settings()
    ops = settings.ops
    route_run_logs(settings)
    verify_sample(settings)
    rows = system_health(settings)
    notifier = Resources.from_settings(settings).notifier()
    notifier.flush()  # alerts queued while the relay was down
    if detect_failed_runs:
        since = datetime.now(timezone.utc) - timedelta(minutes=ops.failed_run_lookback_minutes)
        failed = find_failed_runs(since)
        for run in failed:
            report_failed_run(run, notifier)
        # each failed run has its own alert; the row is for the artifact, not a second email
        rows.append(HealthRow("failed-runs", "warn" if failed else "ok",
                              ", ".join(f"{r.deployment or r.flow_name}/{r.run_name} {r.state}" for r in failed) or "none"))
    _publish_health(rows)
    alert = health_alert(rows)
    if alert is not None:
        notifier.send(alert)
    for row in rows:
        logger.info("{} {}: {}", row.status.upper(), row.check, row.detail)
    return [asdict(r) for r in rows]


# ---- daily summary ------------------------------------------------------------------------

#: What the ledger knows about the day, once it exists: P&L by book and the number of trades.
BookProbe = Callable[[datetime, datetime], tuple[Mapping[str, float], int]]


def gather_daily_summary(warehouse: Warehouse, graph: AssetGraph, now: datetime, book: BookProbe | None = None) -> DailySummary:
    """The last 24 hours: runs, partitions built, quarantines, stale assets, and the book when a probe is given."""
    since = now - timedelta(days=1)
    runs = warehouse.query(f"SELECT status, built FROM {LAKE}.quarry.runs WHERE started_at >= ?", [since])
    quarantined = warehouse.query(
        f"SELECT asset, partition_key, coalesce(failed_checks, '') AS checks FROM {LAKE}.quarry.versions "
        "WHERE status = 'quarantined' AND created_at >= ? ORDER BY asset, partition_key", [since],
    )
    current = warehouse.current_versions()
    stale = [r for r in freshness_rows(current, graph, now) if r.status != "ok"]
    pnl, trades = book(since, now) if book else (None, None)
    performance, sources = published_performance(warehouse, current)
    return DailySummary(
        day=f"{now.astimezone(EXCHANGE_TZ):%Y-%m-%d}",  # 19:00 in New York is already tomorrow in UTC
        runs_completed=runs.filter(pl.col("status") == "completed").height,
        runs_failed=runs.filter(pl.col("status") != "completed").height,
        partitions_built=int(runs["built"].sum() or 0),
        quarantines=tuple(quarantined.iter_rows()),
        stale_assets=tuple((r.check.removeprefix("fresh:"), r.detail) for r in stale),
        pnl=pnl, trades=trades, performance=performance, performance_sources=sources,
    )


#: The books whose performance the daily summary shows, and the asset that measures each.
PERFORMANCE_ASSETS = {"live": "live_performance", "backtest": "strategy_performance"}


def published_performance(warehouse: Warehouse, current: pl.DataFrame) -> tuple[dict[str, dict], dict[str, str]]:
    """Each book's metrics from the published version of its performance asset (a book never built is left out),
    and which version they come from."""
    metrics, sources = {}, {}
    for book, asset in PERFORMANCE_ASSETS.items():
        published = current.filter(pl.col("asset") == asset) if current.height else current
        if published.is_empty():
            continue
        rows = warehouse.read(asset).to_dicts()
        if not rows:
            continue
        version = published.sort("published_at").row(-1, named=True)
        metrics[book] = rows[0]
        sources[book] = f"{asset} version {version['version_id']}, published {version['published_at']:%Y-%m-%d %H:%M} UTC"
    return metrics, sources


def ledger_book(ledger: Ledger, since: datetime, now: datetime) -> tuple[Mapping[str, float], int]:
    """The day's book from the ledger: realized P&L of the pair trades closed in [since, now), the unrealized P&L
    of the positions held (as last marked), both always shown (0.00 on a quiet day), and the fills in the window."""
    from warehouse.ledger import fills, pair_trades, positions

    closed = ledger.rows(pair_trades, pair_trades.c.exit_ts >= since, pair_trades.c.exit_ts < now)
    realized = sum(trade["realized_pnl"] or 0.0 for trade in closed)
    unrealized = sum(p["unrealized_pnl"] or 0.0 for p in ledger.rows(positions))
    return ({"realized": realized, "unrealized": unrealized},
            ledger.count(fills, fills.c.filled_at >= since, fills.c.filled_at < now))


def _summary(resources: Resources, now: datetime | None = None) -> DailySummary:
    with resources.warehouse(read_only=True) as warehouse:
        return gather_daily_summary(warehouse, default_graph(), now or datetime.now(timezone.utc),
                                    book=partial(ledger_book, resources.ledger))


@flow(name="daily-report", log_prints=True, **REPORT_FAILURE)
def daily_report_flow() -> str:
    """The end-of-day report as a Prefect artifact and an HTML file in the reports directory."""
    settings = Settings()
    route_run_logs(settings)
    summary = _summary(Resources.from_settings(settings))
    subject, text, body_html = render_daily_summary(summary)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / f"daily-{summary.day}.html"
    path.write_text(body_html, encoding="utf-8")
    try:
        create_markdown_artifact(key="daily-report", markdown=f"# {subject}\n\n```\n{text}\n```", description=str(path))
    except Exception as error:
        logger.warning("could not publish the daily report artifact: {}", error)
    return str(path)


@flow(name="daily-summary", log_prints=True, **REPORT_FAILURE)
def daily_summary_flow() -> bool:
    """Email the end-of-day summary (text + HTML) to the configured recipients."""
    settings = Settings()
    resources = Resources.from_settings(settings)
    route_run_logs(settings)
    return resources.notifier().send_daily_summary(_summary(resources))
