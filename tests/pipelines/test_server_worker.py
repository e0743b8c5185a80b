"""A real Prefect server and process worker: prefect.yaml deployed, runs triggered, assets published, a failed run retried."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from tests.pipelines.prefect_server import PREFECT, ROOT, UUID, flow_run, prefect_cli
from warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.server]

def test_deployed_runs_complete_on_a_process_worker(server, lake, tmp_path):
    env = {**server, **lake.env()}
    marker = tmp_path / "flaky-attempts"
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [bars] = [d for d in document["deployments"] if d["name"] == "bars-daily"]
    bars["parameters"] = {"selection": "+bars_daily", "start": "2025-03-03", "end": "2025-03-05"}
    flaky = {
        "name": "flaky", "entrypoint": "tests/pipelines/flaky_flow.py:flaky_flow", "tags": ["quarry", "test"],
        "parameters": {"marker": str(marker)}, "work_pool": bars["work_pool"],
    }
    document["deployments"] = [bars, flaky]
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(document, sort_keys=False))

    prefect_cli(env, "work-pool", "create", bars["work_pool"]["name"], "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--name", "bars-daily", "--name", "flaky",
             timeout=120)
    runs = {
        name: UUID.search(prefect_cli(env, "deployment", "run", name)).group(0)
        for name in ("materialize/bars-daily", "flaky/flaky")
    }
    worker = subprocess.run(
        [PREFECT, "worker", "start", "--pool", bars["work_pool"]["name"], "--run-once", "--limit", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr

    states = {}
    deadline = time.time() + 60
    while time.time() < deadline:
        states = {name: flow_run(env, run_id) for name, run_id in runs.items()}
        if all(s["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") for s in states.values()):
            break
        time.sleep(1)
    bars_run, flaky_run = states["materialize/bars-daily"], states["flaky/flaky"]
    assert bars_run["state"]["type"] == "COMPLETED", bars_run["state"]
    assert flaky_run["state"]["type"] == "COMPLETED", flaky_run["state"]
    assert flaky_run["run_count"] == 2 and marker.read_text() == "2"  # failed once, retried, succeeded

    with Warehouse.open(lake.catalog, lake.data_path, read_only=True) as warehouse:
        published = warehouse.current_versions()
        run = warehouse.run(runs["materialize/bars-daily"])
    by_asset = {a: sorted(published.filter(published["asset"] == a)["partition_key"].to_list())
                for a in ("bars_raw", "bars_hourly", "bars_daily")}
    assert by_asset["bars_daily"] == ["2025-03-03", "2025-03-04", "2025-03-05"]
    assert by_asset["bars_raw"] == by_asset["bars_hourly"] == by_asset["bars_daily"]
    assert set(published["run_id"].to_list()) == {runs["materialize/bars-daily"]}
    assert run is not None and run["status"] == "completed" and run["built"] == 10
