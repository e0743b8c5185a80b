"""Every deployment of prefect.yaml, deployed with `prefect deploy --all` to a real Prefect server, run once on a
process worker of its own pool, completes: as an operator would see it on a Friday evening after the close, with
the sample market, the paper broker and a ledger that start empty. `backfill` runs first and builds the graph.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import ExitStack

import httpx
import pytest
import yaml

from pipelines.serving import load_deployments
from tests.pipelines.test_server_worker import PREFECT, ROOT, _flow_run, _prefect, server  # noqa: F401
from warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.server]
CLOCK = "2025-03-07T23:00:00+00:00"  # a Friday evening: the week's sessions have closed, the market is shut
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _api(method: str, url: str, **kwargs) -> dict:
    """One API call, retried on 503 as Prefect's own client does (a busy SQLite-backed server answers it)."""
    for _ in range(10):
        answer = httpx.request(method, url, timeout=30, **kwargs)
        if answer.status_code != 503:
            break
        time.sleep(1)
    answer.raise_for_status()
    return answer.json()


def _start_run(env: dict, flow_name: str, deployment_name: str) -> str:
    """A run of the deployment, created through the API as `prefect deployment run` does."""
    api = env["PREFECT_API_URL"]
    deployment = _api("GET", f"{api}/deployments/name/{flow_name}/{deployment_name}")
    return _api("POST", f"{api}/deployments/{deployment['id']}/create_flow_run", json={})["id"]


def _final_state(env: dict, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _flow_run(env, run_id)["state"]
        if state["type"] in FINAL:
            return state
        time.sleep(0.5)
    raise AssertionError(f"flow run {run_id} not finished after {timeout} s: {state}")


def _workers(stack: ExitStack, env: dict, pools: list[str], logs) -> None:
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


def test_every_deployment_completes_on_a_worker_of_its_pool(server, lake, tmp_path):  # noqa: F811
    env = {
        **server, **lake.env(), "QUARRY_CLOCK": CLOCK,
        "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
        "QUARRY_BROKER_PAPER_URL": f"sqlite:///{tmp_path}/paper.sqlite",
        "QUARRY_ALERTS_DB": str(tmp_path / "alerts.sqlite"), "QUARRY_LOGS_DIR": str(tmp_path / "logs"),
        "QUARRY_BACKUPS_DIR": str(tmp_path / "backups"), "QUARRY_ARCHIVE_DIR": str(tmp_path / "archive"),
    }
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in document["deployments"]:
        # runs are started one by one here: no schedule or trigger may start another in between
        deployment.pop("schedules", None)
        deployment.pop("triggers", None)
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(document, sort_keys=False))
    for pool in ("ingestion", "strategy", "execution"):
        _prefect(env, "work-pool", "create", pool, "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--all", timeout=300)

    specs = load_deployments()
    specs.sort(key=lambda s: s.name != "backfill")  # the whole graph first; then prefect.yaml's order
    outcomes = {}
    with ExitStack() as workers:
        _workers(workers, env, ["ingestion", "strategy", "execution"], tmp_path)
        for spec in specs:  # one at a time: each run sees what the ones before it published
            state = _final_state(env, _start_run(env, spec.load_flow().name, spec.name))
            outcomes[spec.name] = (state["type"], state.get("message") or "")
    failed = {name: outcome for name, outcome in outcomes.items() if outcome[0] != "COMPLETED"}
    assert not failed, failed
    assert len(outcomes) == len(document["deployments"])

    with Warehouse.open(lake.catalog, lake.data_path, read_only=True) as warehouse:
        published = set(warehouse.current_versions()["asset"].to_list())
    # a week of history is too short for an active pair (the scan needs 500 bars): no signals, no backtest yet
    assert {"bars_daily", "indicators_daily", "market_regime", "live_performance", "financial_statements",
            "company_officers", "key_statistics"} <= published, sorted(published)
    assert len(list((tmp_path / "backups").iterdir())) == 1
    # every kind of run wrote its lines to the one JSON log, from the worker's subprocesses
    modules = {json.loads(line)["record"]["name"] for line in (tmp_path / "logs" / "quarry.jsonl").read_text().splitlines()}
    for prefix in ("pipelines.materialize", "pipelines.maintenance", "pipelines.monitoring", "pipelines.trading",
                   "warehouse.backup"):
        # a worker imports a flow's entrypoint file under its bare name (`maintenance`), the modules it uses by package
        assert any(m.startswith(prefix) or m == prefix.rsplit(".", 1)[-1] for m in modules), (prefix, sorted(modules))
