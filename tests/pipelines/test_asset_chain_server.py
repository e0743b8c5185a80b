"""The daily chain on a real Prefect server and process workers, with prefect.yaml's triggers and no cron offsets:
a `bars-daily` run publishes `bars_daily`, whose asset event starts one `indicators` run; that run publishes
`market_regime`, whose asset event starts one `analytics` run. A `bars-daily` run that publishes nothing new
starts nothing.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from tests.pipelines.prefect_server import (
    PREFECT, ROOT, UUID, deployment_id, flow_run, prefect_cli, runs_of,
)
from warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.server]
CLOCK = "2025-03-07T23:00:00+00:00"  # a Friday evening: the week's sessions have closed


def _work_once(env: dict, pool: str) -> None:
    done = subprocess.run([PREFECT, "worker", "start", "--pool", pool, "--run-once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _runs_appear(env: dict, deployment: str, count: int, seconds: float = 90) -> list[dict]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        runs = runs_of(env, deployment)
        if len(runs) >= count:
            return runs
        time.sleep(1)
    pytest.fail(f"no run {count} of deployment {deployment} within {seconds:.0f} s")


def test_bars_daily_starts_indicators_which_start_analytics_through_asset_events(server, lake, tmp_path):
    env = {**server, **lake.env(), "QUARRY_CLOCK": CLOCK, "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
           "QUARRY_ALERTS_DB": str(tmp_path / "alerts.sqlite")}
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    chain = ("bars-daily", "indicators", "analytics")
    document["deployments"] = [d for d in document["deployments"] if d["name"] in chain]
    for deployment in document["deployments"]:
        deployment.pop("schedules", None)  # bars-daily is started by hand here; the others must need no cron
        assert deployment["name"] == "bars-daily" or deployment.get("triggers"), deployment["name"]
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(document, sort_keys=False))
    for pool in ("ingestion", "strategy"):
        prefect_cli(env, "work-pool", "create", pool, "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--all", timeout=180)
    indicators = deployment_id(env, "materialize/indicators")
    analytics = deployment_id(env, "materialize/analytics")

    bars = UUID.search(prefect_cli(env, "deployment", "run", "materialize/bars-daily")).group(0)
    _work_once(env, "ingestion")
    assert flow_run(env, bars)["state"]["type"] == "COMPLETED", flow_run(env, bars)["state"]
    [started] = _runs_appear(env, indicators, 1)
    assert runs_of(env, analytics) == []  # nothing downstream of the indicators before they ran

    _work_once(env, "strategy")
    assert flow_run(env, started["id"])["state"]["type"] == "COMPLETED", flow_run(env, started["id"])["state"]
    with Warehouse.open(env["QUARRY_CATALOG"], env["QUARRY_DATA_PATH"], read_only=True) as warehouse:
        assert {"indicators_daily", "market_regime"} <= set(warehouse.current_versions()["asset"].to_list())
    [follows] = _runs_appear(env, analytics, 1)
    assert follows["parameters"] == {"selection": "pair_spreads+"}

    # the same bars again: nothing new is published, so no asset event and no second indicators run
    again = UUID.search(prefect_cli(env, "deployment", "run", "materialize/bars-daily")).group(0)
    _work_once(env, "ingestion")
    assert flow_run(env, again)["state"]["type"] == "COMPLETED"
    time.sleep(15)  # an event, had one been emitted, would have started a run by now
    assert len(runs_of(env, indicators)) == 1 and len(runs_of(env, analytics)) == 1

