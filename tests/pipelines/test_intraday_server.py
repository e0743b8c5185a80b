"""A simulated trading day on a real Prefect server and process worker: `bars-hourly` ingests each hour that has
closed, each of its runs starts `intraday-pairs` through the deployment trigger of prefect.yaml, and the 19:00 UTC
cycle reads the 18:00 bar of the same day. The worker's `QUARRY_CLOCK` plays the hours.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from datetime import datetime, timezone

import polars as pl
import pytest
import yaml

from pipelines.trading.strategy import cycle_id_at
from tests.pipelines.prefect_server import (
    ROOT, api, deployment_id, final_state, prefect_cli, process_workers, runs_of, start_run,
)
from tests.trading.conftest import START, build_lake
from warehouse import Warehouse
from warehouse import ledger as tables
from warehouse.ledger import Ledger, LedgerConfig

pytestmark = [pytest.mark.slow, pytest.mark.server]
DAY = "2025-09-30"  # EDT: the session opens 13:30 UTC and closes 20:00 UTC


def _play_hour(env: dict, deployments: list[str], clock: str) -> None:
    """The next runs of these deployments (by id) see `clock` as the time (the workers start each run with it)."""
    for deployment in deployments:
        api(env, "PATCH", f"/deployments/{deployment}", json={"job_variables": {"env": {"QUARRY_CLOCK": clock}}})


def _wait_for(predicate, what: str, seconds: float = 90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def test_a_simulated_day_ingests_each_hour_and_the_triggered_cycle_reads_the_last_one(server, tmp_path):
    lake_root = tmp_path / "lake"
    build_lake(lake_root, end=datetime(2025, 9, 29).date()).close()
    env = {
        **server,
        "QUARRY_CATALOG": f"sqlite:{lake_root}/catalog.sqlite", "QUARRY_DATA_PATH": f"{lake_root}/lake/",
        "QUARRY_START_DATE": START.isoformat(), "QUARRY_REPORTS_DIR": str(tmp_path / "reports"),
        "QUARRY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.sqlite",
        "QUARRY_BROKER_PAPER_URL": f"sqlite:///{tmp_path}/paper.sqlite",
        "QUARRY_ALERTS_DB": str(tmp_path / "alerts.sqlite"),
    }
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    document["deployments"] = [d for d in document["deployments"] if d["name"] in ("bars-hourly", "intraday-pairs")]
    for deployment in document["deployments"]:
        deployment.pop("schedules", None)  # the test plays the hours itself
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(document, sort_keys=False))
    for pool in ("ingestion", "execution"):  # bars-hourly ingests, intraday-pairs trades: two pools, two workers
        prefect_cli(env, "work-pool", "create", pool, "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--all", timeout=180)
    pairs = deployment_id(env, "intraday-pairs-trading/intraday-pairs")
    hourly = deployment_id(env, "materialize/bars-hourly")

    with ExitStack() as workers:
        process_workers(workers, env, ["ingestion", "execution"], tmp_path)
        for hour in range(14, 20):
            clock = f"{DAY}T{hour:02d}:00:00+00:00"
            _play_hour(env, [hourly, pairs], clock)
            ingestion = final_state(env, start_run(env, "materialize/bars-hourly"))
            assert ingestion["type"] == "COMPLETED", ingestion
            with Warehouse.open(env["QUARRY_CATALOG"], env["QUARRY_DATA_PATH"], read_only=True) as warehouse:
                newest = warehouse.read("bars_hourly", [DAY])["bar_ts"].max()
            assert newest == datetime(2025, 9, 30, hour - 1, tzinfo=timezone.utc)  # the hour that closed last

            triggered = _wait_for(lambda: len(runs_of(env, pairs)) == hour - 13 and runs_of(env, pairs)[-1],
                                  f"the intraday-pairs run started by the {hour}:00 ingestion")
            cycle = final_state(env, triggered["id"])
            assert cycle["type"] == "COMPLETED", cycle

    with Warehouse.open(env["QUARRY_CATALOG"], env["QUARRY_DATA_PATH"], read_only=True) as warehouse:
        published = warehouse.current_versions(["bars_hourly", "pair_signals"]).filter(pl.col("partition_key") == DAY)
    ledger = Ledger.open(LedgerConfig(url=env["QUARRY_LEDGER_URL"]))
    at_19 = cycle_id_at("pairs", datetime(2025, 9, 30, 19, tzinfo=timezone.utc))
    [cycle] = ledger.rows(tables.cycles, tables.cycles.c.cycle_id == at_19)
    assert cycle["status"] == "done", cycle["reason"]
    read = {(v["asset"], v["partition_key"]): v["version_id"] for v in json.loads(cycle["asset_versions"])}
    for row in published.iter_rows(named=True):  # the versions the 19:00 ingestion published: through the 18:00 bar
        assert read[(row["asset"], DAY)] == row["version_id"]
    assert len(ledger.rows(tables.cycles)) == 6 and all(c["status"] == "done" for c in ledger.rows(tables.cycles))
