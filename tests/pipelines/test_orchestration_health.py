"""On a real Prefect server: a stopped worker shows as a pool with no live worker and a Late run, a run stuck in
Running as stalled; once a worker is up the pool is green again."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from pipelines.monitoring import check_orchestration, health_alert
from tests.pipelines.prefect_server import PREFECT, ROOT, prefect_cli

pytestmark = [pytest.mark.slow, pytest.mark.server]


def _rows(api_url: str, stalled_after: timedelta) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        return {r.check: r for r in check_orchestration(api_url, datetime.now(timezone.utc), stalled_after)}


def _until(predicate, seconds: float = 90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(2)
    return predicate()


def test_late_runs_idle_pools_and_stalled_runs_raise_alerts(server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Running, Scheduled

    api_url = server["PREFECT_API_URL"]
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump({"name": "ticks", "deployments": [{
        "name": "tick", "entrypoint": "tests/pipelines/tick_flow.py:tick", "tags": ["quarry", "test"],
        "parameters": {"marker": str(tmp_path / "ticks")}, "work_pool": {"name": "quarry"}}]}))
    prefect_cli(server, "work-pool", "create", "quarry", "--type", "process")
    prefect_cli(server, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--all", timeout=180)

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("tick/tick")
        client.create_flow_run_from_deployment(
            deployment.id, state=Scheduled(scheduled_time=datetime.now(timezone.utc) - timedelta(minutes=2)))
        stuck = client.create_flow_run_from_deployment(deployment.id)
        client.set_flow_run_state(stuck.id, Running(), force=True)

    rows = _until(lambda: (r := _rows(api_url, timedelta(seconds=1)))["late-runs"].status == "fail" and r)
    assert rows["late-runs"].status == "fail" and "tick" in rows["late-runs"].detail
    assert rows["work-pools"].status == "fail" and "no live worker in quarry" in rows["work-pools"].detail
    assert rows["stalled-runs"].status == "fail" and "1 runs" in rows["stalled-runs"].detail
    alert = health_alert(list(rows.values()))
    assert alert is not None and "late-runs" in alert.dedup_key and "work-pools" in alert.dedup_key
    assert _rows(api_url, timedelta(hours=1))["stalled-runs"].status == "ok"  # not stuck for an hour yet

    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "quarry"], cwd=ROOT, env=server,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        healthy = _until(lambda: (r := _rows(api_url, timedelta(hours=1)))["work-pools"].status == "ok" and r)
        assert healthy and healthy["work-pools"].status == "ok"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
