"""A `quarry materialize` killed with SIGKILL takes Prefect's temporary server with it (a real process tree)."""

from __future__ import annotations

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


def test_sigkilled_materialize_leaves_no_temporary_prefect_server(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_API"))},
           "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect"),
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
