"""prefect.yaml is the one list of deployments: entrypoints import, crons parse, no flow in pipelines/ is forgotten."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import yaml
from prefect.flows import Flow
from prefect.schedules import Cron

import pipelines
from pipelines.serving import PREFECT_YAML, load_deployments, runner_deployments

SPECS = load_deployments()


def _flows_in_pipelines() -> set[str]:
    """Entrypoints (`pipelines/x/y.py:name`) of every flow defined in any module under pipelines/, subpackages too."""
    found = set()
    root = Path(pipelines.__file__).parent
    for module_info in pkgutil.walk_packages([str(root)], prefix="pipelines."):
        module = importlib.import_module(module_info.name)
        for attribute, value in vars(module).items():
            if isinstance(value, Flow) and getattr(value.fn, "__module__", None) == module.__name__:
                path = module.__name__.replace(".", "/") + ("/__init__.py" if module_info.ispkg else ".py")
                found.add(f"{path}:{attribute}")
    return found


def test_every_flow_in_pipelines_has_a_deployment():
    deployed = {spec.entrypoint for spec in SPECS}
    forgotten = _flows_in_pipelines() - deployed
    assert not forgotten, f"flows without a deployment in prefect.yaml: {sorted(forgotten)}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_entrypoint_imports_a_flow_and_schedules_parse(spec):
    assert Path(PREFECT_YAML.parent / spec.entrypoint.split(":")[0]).exists()
    assert isinstance(spec.load_flow(), Flow)
    assert spec.work_pool in ("ingestion", "strategy", "execution") and "quarry" in spec.tags
    assert spec.schedules or spec.triggers, f"{spec.name} has no schedule and no trigger"
    for schedule in spec.schedules:
        Cron(schedule.cron, timezone=schedule.timezone)  # raises on a bad cron or time zone
    flow = spec.load_flow()
    import inspect

    accepted = set(inspect.signature(flow.fn).parameters)
    assert set(spec.parameters) <= accepted, f"{spec.name}: parameters the flow does not take"


def test_names_are_unique_and_the_design_schedules_are_there():
    document = yaml.safe_load(PREFECT_YAML.read_text())
    names = [d["name"] for d in document["deployments"]]
    assert len(names) == len(set(names))
    by_name = {s.name: s for s in SPECS}
    expected = {
        "bars-daily": ("15 22 * * 1-5", True), "bars-hourly": ("0 14-21 * * 1-5", True),
        "pair-discovery": ("0 4 * * 6", True),
        "archive-old-data": ("0 3 * * 0", True), "backup-databases": ("0 4 * * 0", True),
        "restore-drill": ("0 5 * * 0", True), "fundamentals-quarterly": ("0 9 8 1,4,7,10 *", True),
        "backfill": ("0 3 1 1 *", False), "live-performance": ("20 22 * * 1-5", True),
        "cleanup-logs": ("0 1 * * *", True), "monitor-system-health": ("*/5 * * * *", True),
        "daily-report": ("0 18 * * 1-5", True), "daily-summary": ("0 19 * * 1-5", True),
        "reconcile": ("0 */6 * * *", True),
        "portfolio-risk": ("*/15 * * * *", True),
    }
    for name, (cron, active) in expected.items():
        assert (by_name[name].schedules[0].cron, by_name[name].schedules[0].active) == (cron, active), name
    assert by_name["daily-report"].schedules[0].timezone == "America/New_York"
    assert by_name["pair-discovery"].parameters == {"selection": "pair_candidates"}
    [started_by] = by_name["intraday-pairs"].triggers  # the cycle follows each hourly ingestion run
    assert started_by["match_related"] == {"prefect.resource.role": "deployment", "prefect.resource.name": "bars-hourly"}
    assert "prefect.flow-run.Completed" in started_by["expect"]


#: Events a trigger in prefect.yaml may wait for: a flow run's end, or an asset's materialization.
TRIGGER_EVENTS = {"prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Crashed",
                  "prefect.asset.materialization.succeeded"}


@pytest.mark.parametrize("spec", [s for s in SPECS if s.triggers], ids=lambda s: s.name)
def test_triggers_parse_and_name_events_and_resources_that_exist(spec):
    """A trigger is Prefect's own `DeploymentEventTrigger`, waits for an event Prefect emits, names a deployment
    of prefect.yaml and, for an asset event, an asset of the graph that the named deployment's selection builds."""
    from prefect.events import DeploymentEventTrigger

    from assets import default_graph

    by_name = {s.name: s for s in SPECS}
    graph = default_graph()
    for raw in spec.triggers:
        trigger = DeploymentEventTrigger(**raw)  # raises on a misspelt field or a bad posture
        assert trigger.enabled and set(trigger.expect) <= TRIGGER_EVENTS, trigger.expect
        related = raw["match_related"]
        assert related["prefect.resource.role"] == "deployment"
        upstream = by_name[related["prefect.resource.name"]]
        assert upstream.name != spec.name
        if "prefect.asset.materialization.succeeded" in trigger.expect:
            key = raw["match"]["prefect.resource.id"]
            assert key.startswith("quarry://") and key.removeprefix("quarry://") in {a.name for a in graph}
            built = {a.name for a in graph.select(upstream.parameters["selection"])}
            assert key.removeprefix("quarry://") in built, f"{upstream.name} never materializes {key}"
            assert trigger.within.total_seconds() >= 300, "one upstream run (several batches) starts one run"


def test_the_daily_chain_follows_asset_events_not_cron_offsets():
    """bars-daily -> indicators -> analytics: each downstream deployment starts when its upstream publishes, and each
    reads what its upstream built (indicators read the daily bars; the trade analysis reads the market regime)."""
    from assets import default_graph

    graph = default_graph()
    by_name = {s.name: s for s in SPECS}
    chain = [("bars-daily", "indicators", "bars_daily"), ("indicators", "analytics", "market_regime")]
    for upstream, downstream, asset in chain:
        spec = by_name[downstream]
        assert not spec.schedules, f"{downstream} still runs on a cron offset"
        [trigger] = spec.triggers
        assert trigger["match"] == {"prefect.resource.id": f"quarry://{asset}"}
        assert trigger["match_related"]["prefect.resource.name"] == upstream
        needs = {d for a in graph.select(spec.parameters["selection"]) for d in a.deps}
        assert asset in needs


def test_each_deployment_runs_in_the_pool_of_its_work():
    """Trading flows (the only ones needing broker keys) on `execution`; the rest never there."""
    for spec in SPECS:
        trading = spec.entrypoint.startswith("pipelines/trading/") or spec.name == "live-performance"
        assert (spec.work_pool == "execution") == trading, spec.name
    by_name = {s.name: s.work_pool for s in SPECS}
    assert by_name["bars-daily"] == by_name["backup-databases"] == by_name["monitor-system-health"] == "ingestion"
    assert by_name["analytics"] == by_name["pair-discovery"] == by_name["indicators"] == "strategy"


def test_no_two_deployments_start_at_the_same_minute_on_the_weekend():
    """Maintenance and the weekly fetches used to collide at 02:00 on Sunday."""
    sunday = [(s.schedules[0].cron, s.schedules[0].timezone) for s in SPECS
              if s.schedules and s.schedules[0].active and s.schedules[0].cron.endswith(" 0")]
    assert len(sunday) == len(set(sunday)), sunday


def test_serve_builds_the_same_deployments_from_prefect_yaml():
    deployments = runner_deployments(SPECS)
    assert [d.name for d in deployments] == [s.name for s in SPECS]
    for deployment, spec in zip(deployments, SPECS):
        assert deployment.parameters == spec.parameters and set(deployment.tags) == set(spec.tags)
        assert len(deployment.triggers) == len(spec.triggers)
        if not spec.schedules:
            continue
        [schedule] = deployment.schedules
        assert schedule.schedule.cron == spec.schedules[0].cron and schedule.active == spec.schedules[0].active
        assert schedule.schedule.timezone == spec.schedules[0].timezone


def test_selections_of_materialize_deployments_resolve():
    from assets import default_graph

    graph = default_graph()
    for spec in SPECS:
        if "selection" in spec.parameters:
            assert graph.select(spec.parameters["selection"]), spec.name
