"""Operations commands and flows on a real lake: backup/restore/archive/optimize/health, freshness, failed-run alerts."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from assets import default_graph
from pipelines.cli_ops import register
from pipelines.maintenance import expired_logs
from pipelines.monitoring import HealthRow, freshness_rows, health_alert
from tests.conftest import WINDOW_START


def _flat(output: str) -> str:
    """Rich wraps long lines at the terminal width; compare words, not line breaks."""
    return " ".join(output.split())


@pytest.fixture
def cli(lake, tmp_path, monkeypatch):
    for key, value in lake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUARRY_BACKUPS_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("QUARRY_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    ledger = tmp_path / "ledger.sqlite"
    with sqlite3.connect(ledger) as con:
        con.execute("CREATE TABLE orders (order_id TEXT)")
    con.close()
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{ledger}")
    app = typer.Typer()
    register(app)
    return app


@pytest.mark.slow
def test_cli_backup_restore_archive_optimize_and_health(cli, lake, tmp_path):
    runner = CliRunner()
    lake.materialize("bars_raw", start=WINDOW_START, end=WINDOW_START + timedelta(days=1))
    lake.materialize("bars_raw", start=WINDOW_START, end=WINDOW_START + timedelta(days=1), full_refresh=True, run_id="again")

    taken = runner.invoke(cli, ["backup"])
    assert taken.exit_code == 0, taken.output
    [backup_dir] = list((tmp_path / "backups").iterdir())
    restored = runner.invoke(cli, ["restore", str(backup_dir), "--to", str(tmp_path / "restored")])
    assert restored.exit_code == 0, restored.output
    assert f"QUARRY_CATALOG=sqlite:{tmp_path / 'restored' / 'catalog.sqlite'}" in restored.output
    assert f"QUARRY_LEDGER_URL=sqlite:///{tmp_path / 'restored' / 'ledger.sqlite'}" in restored.output
    refused = runner.invoke(cli, ["restore", str(backup_dir), "--to", str(tmp_path / "restored")])
    assert refused.exit_code == 2 and "is not empty" in _flat(refused.output)

    archived = runner.invoke(cli, ["archive", "--retention-days", "0"])
    assert archived.exit_code == 0 and "archived 2 versions" in _flat(archived.output), archived.output
    manifest = json.loads(next((tmp_path / "archive").glob("*/manifest.json")).read_text())
    assert {v["asset"] for v in manifest["versions"]} == {"bars_raw"}
    optimized = runner.invoke(cli, ["optimize", "--retention-days", "0"])
    assert optimized.exit_code == 0 and "live files" in _flat(optimized.output), optimized.output

    health = runner.invoke(cli, ["health"])
    assert health.exit_code == 1  # bars_raw is fresh, but most assets were never published
    assert "fresh:bars_raw" in health.output and "never published" in health.output


def test_freshness_is_judged_by_the_newest_partition_against_the_exchange_calendar():
    now = datetime(2026, 12, 1, 15, tzinfo=timezone.utc)  # a Tuesday; the last completed session is 2026-11-30
    just_now = now - timedelta(minutes=5)
    current = pl.DataFrame({
        "asset": ["bars_daily", "bars_raw", "pair_candidates", "universe"],
        "partition_key": ["2026-11-20", "2026-11-30", "2026-11-27", "all"],
        "published_at": [just_now, now - timedelta(days=20), now - timedelta(days=3), now - timedelta(days=5)],
    })
    rows = {r.check: r for r in freshness_rows(current, default_graph(), now)}
    # published five minutes ago, but its newest session is 2026-11-20: 11-23, 24, 25, 27 (Thanksgiving) and 30 since
    assert rows["fresh:bars_daily"].status == "fail" and "5 completed sessions behind" in rows["fresh:bars_daily"].detail
    assert rows["fresh:bars_raw"].status == "ok"  # published long ago, and holds the last completed session
    assert rows["fresh:pair_candidates"].status == "ok"  # the last complete week, within its 10 days
    assert rows["fresh:bars_hourly"].detail == "never published"
    assert "fresh:backtest_trades" not in rows  # no freshness declared


def test_health_alert_is_keyed_by_the_failing_checks():
    rows = [HealthRow("warehouse", "ok", ""), HealthRow("fresh:bars_raw", "fail", "5d"), HealthRow("broker", "fail", "down")]
    alert = health_alert(rows)
    assert alert.dedup_key == "health:broker,fresh:bars_raw" and alert.severity == "warning"
    assert health_alert(rows[:1]) is None


def test_expired_logs_keeps_the_live_file_and_recent_rotations(tmp_path):
    import os

    live, recent, old = tmp_path / "quarry.jsonl", tmp_path / "quarry.2025-03-13.jsonl", tmp_path / "quarry.2025-01-01.jsonl"
    for path in (live, recent, old):
        path.write_text("{}\n")
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    os.utime(live, (month_ago, month_ago))
    assert expired_logs(tmp_path, timedelta(days=30)) == [old]


def test_file_logging_writes_json_lines(tmp_path):
    from loguru import logger

    from pipelines.logs import configure_file_logging

    sink = configure_file_logging(tmp_path / "logs" / "quarry.jsonl")
    assert configure_file_logging(tmp_path / "logs" / "quarry.jsonl") == sink
    logger.info("archived {} versions", 3)
    logger.remove(sink)
    record = json.loads((tmp_path / "logs" / "quarry.jsonl").read_text().splitlines()[-1])
    assert record["record"]["message"] == "archived 3 versions" and record["record"]["level"]["name"] == "INFO"


@pytest.mark.slow
def test_failed_run_is_detected_emitted_as_event_and_alerted_once(prefect_harness, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    from pipelines.monitoring import FAILED_RUN_EVENT, find_failed_runs, report_failed_run
    from pipelines.notify import AlertStore, Notifier, SmtpConfig

    @flow(name="broken-feed")
    def broken_feed():
        raise RuntimeError("source answered HTTP 500")

    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    state = broken_feed(return_state=True)
    assert state.is_failed()
    failed = [r for r in find_failed_runs(since) if r.flow_name == "broken-feed"]
    assert len(failed) == 1 and "HTTP 500" in failed[0].message

    store = AlertStore(tmp_path / "alerts.sqlite")
    notifier = Notifier(SmtpConfig(host=None), store)
    for _ in range(3):  # the monitor sees the same failure on every pass
        report_failed_run(failed[0], notifier)
    assert [a["dedup_key"] for a in store.alerts()] == [f"failed-run:{failed[0].flow_run_id}"]

    with get_client(sync_client=True) as client:
        deadline, events = time.time() + 30, []
        while time.time() < deadline and not events:
            events = [e for e in client.read_events(filter=EventFilter(event=EventNameFilter(name=[FAILED_RUN_EVENT])),
                                                    limit=50).events
                      if e.resource.id == f"prefect.flow-run.{failed[0].flow_run_id}"]  # the shared harness has others
            time.sleep(0.5)
    assert len(events) == 1  # three passes, one event
    assert events[0].payload["flow"] == "broken-feed"
