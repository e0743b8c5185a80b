"""A real Prefect server and process worker: prefect.yaml deployed, runs triggered, assets published, a failed run retried."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.server]

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect(env: dict, *args: str, timeout: float = 60) -> str:
    done = subprocess.run([PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 180  # a busy CI machine starts it slowly
        while time.time() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prefect server did not answer within 180 s")
        yield env
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _flow_run(env: dict, flow_run_id: str) -> dict:
    return httpx.get(f"{env['PREFECT_API_URL']}/flow_runs/{flow_run_id}", timeout=10).json()


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _api(method: str, url: str, **kwargs) -> dict | None:
    """One API call, retried on 503 as Prefect's own client does (a busy SQLite-backed server answers it)."""
    for _ in range(10):
        answer = httpx.request(method, url, timeout=30, **kwargs)
        if answer.status_code != 503:
            break
        time.sleep(1)
    answer.raise_for_status()
    return answer.json() if answer.content else None


def start_run(env: dict, flow_name: str, deployment_name: str) -> str:
    """A run of the deployment, created through the API as `prefect deployment run` does."""
    api = env["PREFECT_API_URL"]
    deployment = _api("GET", f"{api}/deployments/name/{flow_name}/{deployment_name}")
    return _api("POST", f"{api}/deployments/{deployment['id']}/create_flow_run", json={})["id"]


def final_state(env: dict, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _flow_run(env, run_id)["state"]
        if state["type"] in FINAL:
            return state
        time.sleep(0.5)
    raise AssertionError(f"flow run {run_id} not finished after {timeout} s: {state}")


def process_workers(stack: ExitStack, env: dict, pools: list[str], logs: Path) -> None:
    """One process worker per pool for the whole test, polling every second, one run at a time."""
    for pool in pools:
        log = stack.enter_context((logs / f"worker-{pool}.log").open("w"))
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", pool, "--limit", "1"], cwd=ROOT,
                                  env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, stdout=log,
                                  stderr=subprocess.STDOUT)
        stack.callback(_stop, worker)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


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

    _prefect(env, "work-pool", "create", bars["work_pool"]["name"], "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--name", "bars-daily", "--name", "flaky",
             timeout=120)
    runs = {
        name: UUID.search(_prefect(env, "deployment", "run", name)).group(0)
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
        states = {name: _flow_run(env, run_id) for name, run_id in runs.items()}
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
