"""Every kind of run logs through the same sinks: materialize, trading and monitoring flows under Prefect's
harness all leave their loguru lines in `QUARRY_LOGS_DIR/quarry.jsonl`, each tagged with the module it came from."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

pytestmark = pytest.mark.slow


def test_materialize_trading_and_monitoring_runs_all_log_to_the_json_file(prefect_harness, lake, tmp_path, monkeypatch):
    from pipelines.flows import materialize_flow
    from pipelines.monitoring import monitor_system_health_flow
    from pipelines.trading.flows import update_positions_flow

    for key, value in lake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUARRY_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    monkeypatch.setenv("QUARRY_BROKER_PAPER_URL", f"sqlite:///{tmp_path}/paper.sqlite")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    assert materialize_flow(selection="bars_raw", start=date(2025, 3, 3), end=date(2025, 3, 3)).exit_code == 0
    update_positions_flow(now=datetime(2025, 3, 3, 21, tzinfo=timezone.utc))
    monitor_system_health_flow(detect_failed_runs=False)

    records = [json.loads(line)["record"] for line in (tmp_path / "logs" / "quarry.jsonl").read_text().splitlines()]
    modules = {r["name"] for r in records}
    assert any(m.startswith("pipelines.materialize") or m.startswith("pipelines.building") for m in modules), modules
    assert any(m.startswith("pipelines.trading") for m in modules), modules
    assert any(m.startswith("pipelines.monitoring") for m in modules), modules


def test_loguru_lines_of_materialize_the_pairs_cycle_and_monitoring_reach_prefects_run_logs(
    prefect_harness, lake, tmp_path, monkeypatch,
):
    """Each INFO-or-above loguru line a run writes to quarry.jsonl is also in that run's Prefect logs."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from pipelines.flows import materialize_flow
    from pipelines.monitoring import monitor_system_health_flow
    from pipelines.trading.flows import intraday_pairs_trading

    for key, value in lake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUARRY_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    monkeypatch.setenv("QUARRY_BROKER_PAPER_URL", f"sqlite:///{tmp_path}/paper.sqlite")
    monkeypatch.setenv("QUARRY_ALERTS_DB", str(tmp_path / "alerts.sqlite"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    log_file = tmp_path / "logs" / "quarry.jsonl"

    def lines() -> list[dict]:
        return [json.loads(line)["record"] for line in log_file.read_text().splitlines()] if log_file.exists() else []

    runs = {
        "materialize": lambda: materialize_flow(selection="bars_raw", start=date(2025, 3, 4), end=date(2025, 3, 4),
                                                return_state=True),
        "pairs cycle": lambda: intraday_pairs_trading(now=datetime(2025, 3, 4, 19, tzinfo=timezone.utc),
                                                      check_market=False, return_state=True),
        "monitoring": lambda: monitor_system_health_flow(detect_failed_runs=False, return_state=True),
    }
    for what, run in runs.items():
        before = len(lines())
        state = run()
        written = {r["message"] for r in lines()[before:] if r["level"]["no"] >= 20}
        assert written, f"{what}: no loguru line at INFO or above"
        flow_run_id = state.state_details.flow_run_id
        deadline, missing = time.time() + 30, written
        with get_client(sync_client=True) as client:
            while missing and time.time() < deadline:
                logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
                missing = written - {log.message for log in logs}
                time.sleep(0.5)
        assert not missing, f"{what}: loguru lines missing from the Prefect run's logs: {sorted(missing)[:5]}"
