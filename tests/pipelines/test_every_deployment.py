"""Every deployment of prefect.yaml, deployed with `prefect deploy --all` to a real Prefect server, run once on a
process worker of its own pool, completes: as an operator would see it on a Friday evening after the close, with
the sample market, the paper broker and a ledger that start empty. `backfill` runs first and builds the graph.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
import yaml

from pipelines.serving import load_deployments
from tests.pipelines.prefect_server import ROOT, final_state, prefect_cli, process_workers, start_run
from warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.server]
CLOCK = "2025-03-07T23:00:00+00:00"  # a Friday evening: the week's sessions have closed, the market is shut


def test_every_deployment_completes_on_a_worker_of_its_pool(server, lake, tmp_path):
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
        prefect_cli(env, "work-pool", "create", pool, "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--all", timeout=300)

    specs = load_deployments()
    specs.sort(key=lambda s: s.name != "backfill")  # the whole graph first; then prefect.yaml's order
    outcomes = {}
    with ExitStack() as workers:
        process_workers(workers, env, ["ingestion", "strategy", "execution"], tmp_path)
        for spec in specs:  # one at a time: each run sees what the ones before it published
            state = final_state(env, start_run(env, f"{spec.load_flow().name}/{spec.name}"))
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
