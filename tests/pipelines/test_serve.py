"""`quarry serve` with no Prefect server: it starts one with its scheduler on and a `*/1` deployment of the working
directory's prefect.yaml gets a scheduled run that completes; bad input is one line and exit code 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[2]
QUARRY = str(Path(sys.executable).with_name("quarry"))


def _project(tmp_path: Path, marker: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "prefect.yaml").write_text(yaml.safe_dump({"name": "ticks", "deployments": [{
        "name": "tick-every-minute", "entrypoint": "tests/pipelines/tick_flow.py:tick", "tags": ["quarry", "test"],
        "parameters": {"marker": str(marker)}, "work_pool": {"name": "quarry"},
        "schedules": [{"cron": "*/1 * * * *", "timezone": "UTC", "active": True}],
    }]}))
    return project


def _env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "PREFECT_HOME": str(prefect_home), "PYTHONPATH": str(ROOT),
            "PREFECT_LOGGING_LEVEL": "WARNING"}


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, prefect_home):
    project = _project(tmp_path, tmp_path / "ticks")
    unknown = subprocess.run([QUARRY, "serve", "--only", "nope"], cwd=project, env=_env(prefect_home),
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stdout + unknown.stderr
    assert "no deployment named nope" in unknown.stdout and "tick-every-minute" in unknown.stdout
    elsewhere = subprocess.run([QUARRY, "serve"], cwd=tmp_path, env=_env(prefect_home), capture_output=True, text=True,
                               timeout=120)
    assert elsewhere.returncode == 2 and "no prefect.yaml at" in elsewhere.stdout


@pytest.mark.slow
def test_serve_without_a_server_runs_a_scheduled_run_of_a_per_minute_deployment(tmp_path, prefect_home):
    marker = tmp_path / "ticks"
    project = _project(tmp_path, marker)
    log = (tmp_path / "serve.log").open("w")
    started = time.monotonic()
    serving = subprocess.Popen([QUARRY, "serve"], cwd=project, env=_env(prefect_home), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # the acceptance bound: a server start, a scheduler pass, the next minute and the run, within two minutes
        while time.monotonic() - started < 120 and not marker.exists():
            assert serving.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(1)
        assert marker.exists(), f"no scheduled run within 120 s:\n{(tmp_path / 'serve.log').read_text()[-3000:]}"
    finally:
        serving.send_signal(signal.SIGINT)
        try:
            serving.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serving.pid, signal.SIGKILL)
        log.close()
    assert marker.read_text().startswith("tick")
    time.sleep(2)
    with pytest.raises(ProcessLookupError):  # the server it started went with it
        os.killpg(serving.pid, 0)


@pytest.mark.slow
@pytest.mark.server
def test_against_a_team_server_serve_leaves_the_workers_deployments_alone(server, tmp_path, prefect_home):
    import httpx

    from tests.pipelines.prefect_server import prefect_cli

    project = _project(tmp_path, tmp_path / "ticks")
    env = {**_env(prefect_home), "PREFECT_API_URL": server["PREFECT_API_URL"]}
    prefect_cli(env, "work-pool", "create", "quarry", "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--prefect-file", str(project / "prefect.yaml"), "--all", timeout=180)
    api = server["PREFECT_API_URL"]
    before = httpx.get(f"{api}/deployments/name/tick/tick-every-minute", timeout=10).json()

    serving = subprocess.Popen([QUARRY, "serve"], cwd=project, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            served = httpx.get(f"{api}/deployments/name/tick/serve-tick-every-minute", timeout=10)
            if served.status_code == 200:
                break
            time.sleep(2)
        assert served.status_code == 200 and served.json()["entrypoint"].endswith("tick_flow.py:tick")
    finally:
        serving.send_signal(signal.SIGINT)
        serving.wait(timeout=60)
    after = httpx.get(f"{api}/deployments/name/tick/tick-every-minute", timeout=10).json()
    assert {k: after[k] for k in ("id", "entrypoint", "paused", "pull_steps", "work_pool_name", "updated")} == {
        k: before[k] for k in ("id", "entrypoint", "paused", "pull_steps", "work_pool_name", "updated")}
