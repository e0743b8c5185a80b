"""Prefect's temporary server: a SIGKILLed `quarry materialize` takes it along; with a server configured, none is loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _server_children(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "uvicorn" in " ".join(p.cmdline())]


def test_sigkilled_materialize_leaves_no_temporary_prefect_server(tmp_path, prefect_home):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_API"))},
           "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(prefect_home),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300", "QUARRY_START_DATE": "2025-03-03"}
    run = subprocess.Popen([sys.executable, "-c", "from pipelines.cli import main; main()", "materialize", "--to",
                            "2025-03-07"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    servers: list[psutil.Process] = []
    try:
        for line in run.stderr:  # Prefect announces the server before it starts the flow
            if "Starting temporary server" in line:
                break
        deadline = time.monotonic() + 300
        while not servers and time.monotonic() < deadline and run.poll() is None:
            servers = _server_children(run.pid)
            time.sleep(0.2)
        assert servers, "the temporary server never started"
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    gone, alive = psutil.wait_procs(servers, timeout=60)
    for survivor in alive:
        survivor.kill()
    assert not alive, f"temporary Prefect server outlived its SIGKILLed parent: {[p.pid for p in alive]}"


BINDING_PROBE = """
import json, sys
from pipelines.prefect_server import bind_temporary_server_to_this_process

bind_temporary_server_to_this_process()
loaded = "prefect.server.api.server" in sys.modules
bound = loaded and sys.modules["prefect.server.api.server"].subprocess.Popen.__name__ == "PopenBoundToParent"
print(json.dumps({"loaded": loaded, "bound": bound}))
"""


@pytest.mark.parametrize("api_url, expected", [
    (None, {"loaded": True, "bound": True}),  # ephemeral mode: Prefect starts the server, bound to this process
    ("http://127.0.0.1:9/api", {"loaded": False, "bound": False}),  # a configured server: its code stays unloaded
])
def test_server_code_is_loaded_and_bound_only_when_prefect_would_start_a_temporary_server(tmp_path, api_url, expected):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_API"))},
           "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    probe = subprocess.run([sys.executable, "-c", BINDING_PROBE], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == expected
