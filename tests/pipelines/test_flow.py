"""The materialize flow under Prefect's test harness: it builds, records the run, and emits asset events with lineage."""

import time
from datetime import date

import pytest

pytestmark = pytest.mark.slow


def _asset_events(client, prefix: str) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter

    page = client.read_events(filter=EventFilter(event=EventNameFilter(prefix=[prefix])), limit=50)
    events = list(page.events)
    while page.next_page and len(events) < 1000:
        page = client.read_events_page(page.next_page)
        events.extend(page.events)
    return events


def test_flow_materializes_and_emits_asset_events_with_upstream_links(prefect_harness, lake, monkeypatch):
    from prefect.client.orchestration import get_client

    from pipelines.flows import materialize_flow

    for key, value in lake.env().items():
        monkeypatch.setenv(key, value)

    summary = materialize_flow(selection="+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 7))
    assert summary.exit_code == 0
    assert {a: len(o.built) for a, o in summary.outcomes.items()} == {
        "bars_raw": 5, "splits": 1, "bars_hourly": 5, "bars_daily": 5,
    }
    run = lake.warehouse.run(summary.run_id)
    assert run["status"] == "completed" and run["built"] == 16
    assert (lake.root / "reports" / f"{summary.run_id}.html").exists()

    again = materialize_flow(selection="+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 7))
    assert again.totals["built"] == 0

    with get_client(sync_client=True) as client:
        this_run = f"prefect.flow-run.{summary.run_id}"  # the harness is shared: keep this run's events only
        deadline = time.time() + 60
        events = []
        while time.time() < deadline:
            events = [
                e for e in _asset_events(client, "prefect.asset.materialization")
                if any(r.id == this_run for r in e.related)
            ]
            if {e.resource.id for e in events} >= {"quarry://bars_raw", "quarry://bars_hourly", "quarry://bars_daily"}:
                break
            time.sleep(1)
        by_asset = {e.resource.id: e for e in events if e.event == "prefect.asset.materialization.succeeded"}
        assert set(by_asset) >= {"quarry://bars_raw", "quarry://splits", "quarry://bars_hourly", "quarry://bars_daily"}
        hourly = by_asset["quarry://bars_hourly"]
        upstream = {r.id for r in hourly.related if r.role == "asset"}
        assert upstream == {"quarry://bars_raw", "quarry://splits"}
        assert hourly.payload["partitions_published"] == 5 and hourly.payload["rows"] > 0

        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        flow_run = client.read_flow_run(summary.run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
        assert any("bars_hourly: published 5 partitions" in log.message for log in logs)
        artifacts = client.read_artifacts()
        keys = {a.key for a in artifacts if a.flow_run_id == flow_run.id}
        assert {"quality-report", "materialization", "quality-report-html"} <= keys
