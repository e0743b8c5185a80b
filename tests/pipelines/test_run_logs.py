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
