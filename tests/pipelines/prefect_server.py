"""A real Prefect server for the server suites, and the calls they make to it and its workers."""

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

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_cli(env: dict, *args: str, timeout: float = 60) -> str:
    done = subprocess.run([PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def server(tmp_path, prefect_home):
    """A Prefect server of its own for one test, on a free port; its environment points clients at it."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
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
        stop_process(process)
        log.close()


def flow_run(env: dict, flow_run_id: str) -> dict:
    return api(env, "GET", f"/flow_runs/{flow_run_id}")


def api(env: dict, method: str, path: str, **kwargs) -> dict | list | None:
    """One call to the server's API, retried on 503 as Prefect's own client does (a busy SQLite-backed server
    answers it)."""
    for _ in range(10):
        answer = httpx.request(method, env["PREFECT_API_URL"] + path, timeout=30, **kwargs)
        if answer.status_code != 503:
            break
        time.sleep(1)
    answer.raise_for_status()
    return answer.json() if answer.content else None


def deployment_id(env: dict, name: str) -> str:
    """The id of deployment `flow/deployment`."""
    return api(env, "GET", f"/deployments/name/{name}")["id"]


def start_run(env: dict, name: str) -> str:
    """A run of deployment `flow/deployment`, created through the API as `prefect deployment run` does."""
    return api(env, "POST", f"/deployments/{deployment_id(env, name)}/create_flow_run", json={})["id"]


def final_state(env: dict, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = flow_run(env, run_id)["state"]
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
        stack.callback(stop_process, worker)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def runs_of(env: dict, deployment: str) -> list[dict]:
    """The runs of the deployment with this id, oldest first."""
    return api(env, "POST", "/flow_runs/filter",
               json={"flow_runs": {"deployment_id": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_ASC"})
