"""Materialization round trips on a real DuckLake: build, no-op, full refresh, quarantine, code change, as-of reads."""

import html
import json
from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from assets import AssetGraph, default_graph
from assets.model import AssetOut, multi_asset
from assets.market.assets import bars_hourly
from assets.sources import SampleSource
from pipelines.materialize import plan_run
from pipelines.planning import RunWindow
from tests.conftest import WINDOW_END, WINDOW_START, catalog_kinds

SESSIONS = 10
BAD_DAY = "2025-03-06"
BARS = "+bars_daily"  # the bar assets; the analytics graph has its own tests


def _current(lake, asset):
    return lake.warehouse.current_versions([asset]).sort("partition_key")



@pytest.fixture(params=catalog_kinds())
def lake(request, make_lake):
    """The parity suite: every test here runs on a SQLite and (when configured, always in CI) a PostgreSQL catalog."""
    return make_lake(catalog_kind=request.param)

def test_first_run_builds_everything_then_nothing_then_identical_on_full_refresh(lake):
    first = lake.materialize(BARS, run_id="r1")
    assert first.totals["built"] == 3 * SESSIONS + 1 and first.exit_code == 0
    assert {a: len(o.built) for a, o in first.outcomes.items()} == {
        "bars_raw": SESSIONS, "splits": 1, "bars_hourly": SESSIONS, "bars_daily": SESSIONS,
    }
    daily = lake.warehouse.read("bars_daily")
    assert daily.height == 20 * SESSIONS
    assert daily.select(pl.col("symbol").n_unique()).item() == 20

    second = lake.materialize(BARS, run_id="r2")
    assert second.totals["built"] == 0
    assert second.totals["up_to_date"] == 3 * SESSIONS + 1

    before = {a: _current(lake, a) for a in ("bars_raw", "bars_hourly", "bars_daily")}
    third = lake.materialize(BARS, full_refresh=True, run_id="r3")
    assert third.totals["built"] == 3 * SESSIONS + 1
    for asset, old in before.items():
        new = _current(lake, asset)
        assert new["data_version"].to_list() == old["data_version"].to_list()
        assert set(new["version_id"]).isdisjoint(old["version_id"])
        superseded = lake.warehouse.versions(asset).filter(pl.col("status") == "superseded")
        assert superseded.height == SESSIONS


class CorruptSource(SampleSource):
    """The sample market with a burst of bad ticks on one session: beyond what bars_hourly may repair."""

    def identity(self) -> str:
        return super().identity() + "+corrupt"

    def fetch_bars(self, symbols, timeframe, start, end):
        bars = super().fetch_bars(symbols, timeframe, start, end)
        hit = (pl.col("bar_ts").dt.date() == date.fromisoformat(BAD_DAY)) & pl.col("symbol").is_in(["KO", "PEP", "XOM"]) & (
            pl.col("bar_ts").dt.hour().is_in([15, 17])
        )
        spiked = pl.when(hit).then(pl.col("close_px") * 1.6).otherwise(pl.col("close_px"))
        return bars.with_columns(close_px=spiked).with_columns(high_px=pl.max_horizontal("high_px", "close_px"))


def test_bad_ticks_beyond_tolerance_quarantine_one_partition_only(lake):
    lake.materialize(BARS, run_id="clean")
    clean_rows = lake.warehouse.read("bars_hourly", [BAD_DAY]).sort("symbol", "bar_ts")
    clean_version = _current(lake, "bars_hourly").filter(pl.col("partition_key") == BAD_DAY)["version_id"][0]

    summary = lake.materialize(BARS, source=CorruptSource(), full_refresh=True, run_id="corrupt")

    hourly = summary.outcomes["bars_hourly"]
    assert hourly.quarantined == [BAD_DAY]
    assert len(hourly.built) == SESSIONS - 1
    assert summary.outcomes["bars_daily"].skipped == [(BAD_DAY, f"upstream bars_hourly {BAD_DAY} quarantined")]
    assert len(summary.outcomes["bars_daily"].built) == SESSIONS - 1
    assert summary.exit_code == 1

    assert lake.warehouse.read("bars_hourly", [BAD_DAY]).sort("symbol", "bar_ts").equals(clean_rows)
    still = _current(lake, "bars_hourly").filter(pl.col("partition_key") == BAD_DAY)
    assert still["version_id"][0] == clean_version

    quarantined = lake.warehouse.versions("bars_hourly", BAD_DAY).filter(pl.col("status") == "quarantined")
    assert quarantined.height == 1 and "bad_ticks_beyond_tolerance" in quarantined["failed_checks"][0]
    kept = lake.warehouse.query("SELECT * FROM lake.quarantine.bars_hourly WHERE version_id = ?", [quarantined["version_id"][0]])
    assert kept.height == 20 * 7 and kept.filter(pl.col("is_repaired")).height == 6

    failing = lake.warehouse.check_results("corrupt").filter(~pl.col("passed") & (pl.col("severity") == "error"))
    assert failing.select("asset", "partition_key", "check_name").rows() == [("bars_hourly", BAD_DAY, "bad_ticks_beyond_tolerance")]
    assert failing["failing_rows"][0] == 6 and "KO" in failing["sample"][0]


def _louder_hourly() -> AssetGraph:
    """bars_hourly with a real code change: volumes doubled."""

    def bars_hourly_v2(bars_raw, splits, sessions, *, bad_tick_log_deviation):
        """One row per symbol and regular-session hourly bar; volumes doubled."""
        out = bars_hourly.transform(bars_raw, splits, sessions, bad_tick_log_deviation=bad_tick_log_deviation)
        return out.with_columns(pl.col("volume_qty") * 2)

    graph = default_graph()
    assets = dict(graph.assets)
    assets["bars_hourly"] = replace(graph["bars_hourly"], transform=bars_hourly_v2)
    return AssetGraph.of(assets.values())


def test_code_change_makes_that_asset_and_downstream_stale_and_as_of_reads_still_work(lake):
    lake.materialize(BARS, run_id="v1")
    old = _current(lake, "bars_hourly").filter(pl.col("partition_key") == BAD_DAY).row(0, named=True)
    old_rows = lake.warehouse.read("bars_hourly", [BAD_DAY])
    changed = _louder_hourly()

    plans = {p.asset: p for p in plan_run(changed, lake.warehouse, BARS, RunWindow.between(WINDOW_START, WINDOW_END), source_identity=SampleSource().identity())}
    assert {a: {w.reason.partition(":")[0] for w in p.to_build} for a, p in plans.items()} == {
        "bars_raw": set(), "splits": set(), "bars_hourly": {"code changed"}, "bars_daily": {"upstream rebuilding"},
    }
    assert plans["bars_hourly"].to_build[0].reason.startswith("code changed: assets/market/assets.py:bars_hourly")

    summary = lake.materialize(BARS, graph=changed, run_id="v2")
    assert {a: len(o.built) for a, o in summary.outcomes.items()} == {
        "bars_raw": 0, "splits": 0, "bars_hourly": SESSIONS, "bars_daily": SESSIONS,
    }
    new_rows = lake.warehouse.read("bars_hourly", [BAD_DAY])
    assert new_rows["volume_qty"].sum() == 2 * old_rows["volume_qty"].sum()

    as_of_version = lake.warehouse.read_as_of("bars_hourly", version_id=old["version_id"])
    assert as_of_version.sort("symbol", "bar_ts").equals(old_rows.sort("symbol", "bar_ts"))
    as_of_time = lake.warehouse.read_as_of("bars_hourly", at=old["published_at"], partition_keys=[BAD_DAY])
    assert as_of_time["volume_qty"].sum() == old_rows["volume_qty"].sum()


def test_code_change_with_identical_output_causes_no_downstream_work(lake):
    lake.materialize(BARS, run_id="v1")
    graph = default_graph()
    assets = dict(graph.assets)
    assets["bars_hourly"] = replace(graph["bars_hourly"], params={"bad_tick_log_deviation": 0.16})
    summary = lake.materialize(BARS, graph=AssetGraph.of(assets.values()), run_id="v2")
    assert len(summary.outcomes["bars_hourly"].built) == SESSIONS
    assert summary.outcomes["bars_daily"].built == []
    assert len(summary.outcomes["bars_daily"].up_to_date) == SESSIONS


def test_new_session_builds_only_the_new_partitions(lake):
    lake.materialize(BARS, end=date(2025, 3, 13), run_id="day1")
    summary = lake.materialize(BARS, run_id="day2")
    assert {a: o.built for a, o in summary.outcomes.items()} == {
        "bars_raw": ["2025-03-14"], "splits": [], "bars_hourly": ["2025-03-14"], "bars_daily": ["2025-03-14"],
    }
    # splits was refetched for the new window and found unchanged: checked, not republished
    assert summary.outcomes["splits"].reasons == {"new session": 1} and summary.outcomes["splits"].up_to_date == ["all"]


def test_small_batches_give_the_same_data_versions(make_lake):
    one, many = make_lake("one"), make_lake("many")
    one.materialize(BARS, run_id="a")
    many.materialize(BARS, run_id="b", batch_partitions=3)
    for asset in ("bars_raw", "bars_hourly", "bars_daily"):
        assert _current(one, asset)["data_version"].to_list() == _current(many, asset)["data_version"].to_list()


def test_quarantine_shows_in_the_html_report_with_failing_rows(lake, tmp_path):
    from pipelines.runs import record_and_report
    from pipelines.settings import Settings, WarehouseConfig

    lake.materialize(BARS, run_id="clean")
    summary = lake.materialize(BARS, source=CorruptSource(), full_refresh=True, run_id="corrupt")
    settings = Settings(warehouse=WarehouseConfig(catalog=lake.catalog, data_path=lake.data_path), reports_dir=tmp_path / "reports")
    report = record_and_report(lake.warehouse, settings, summary)
    page = (tmp_path / "reports" / "corrupt.html").read_text()
    assert "bad_ticks_beyond_tolerance" in page and BAD_DAY in page and '"KO"' not in html.unescape(page)
    assert "<td>KO</td>" in page
    assert "quarantined" in report.markdown and lake.warehouse.run("corrupt")["status"] == "quarantined"


def test_attach_error_names_the_paths(lake):
    import pytest

    from warehouse import Warehouse, WarehouseError

    with pytest.raises(WarehouseError, match="data path"):
        Warehouse.open(lake.catalog, str(lake.root / "elsewhere") + "/")


def test_validation_sweep_reaudits_published_data_with_todays_checks(lake):
    from assets import Check
    from pipelines.validation import sweep

    lake.materialize(BARS, run_id="built")
    clean = sweep(default_graph(), lake.warehouse, BARS, "sweep-1")
    assert clean.filter(~pl.col("passed") & (pl.col("severity") == "error")).is_empty()
    assert set(clean["asset"]) == {"bars_raw", "splits", "bars_hourly", "bars_daily"}

    def volume_under_a_million(frame):
        return frame.filter(pl.col("volume_qty") >= 1_000_000).select("partition_key", "symbol", "session_date")

    graph = default_graph()
    tightened = dict(graph.assets)
    tightened["bars_daily"] = replace(graph["bars_daily"], checks=(Check("daily_volume_cap", "error", volume_under_a_million),))
    swept = sweep(AssetGraph.of(tightened.values()), lake.warehouse, "bars_daily", "sweep-2")
    failing = swept.filter(~pl.col("passed"))
    assert set(failing["check_name"]) == {"daily_volume_cap"} and failing.height == SESSIONS
    stored = lake.warehouse.check_results("sweep-2")
    assert stored.height == swept.height and stored["version_id"].null_count() == 0
    assert _current(lake, "bars_daily")["status"].unique().to_list() == ["published"]


def _extremes_graph(calls: list[int]) -> AssetGraph:
    """The default graph plus a multi-asset whose transform notes each time it runs."""

    @multi_asset(outputs={
        "close_highs": AssetOut("One row per symbol: its highest daily close in the window.", grain=("symbol",)),
        "close_lows": AssetOut("One row per symbol: its lowest daily close in the window.", grain=("symbol",)),
    })
    def close_extremes(bars_daily: pl.DataFrame) -> dict[str, pl.DataFrame]:
        """Highs and lows of one pass over the daily bars."""
        calls.append(bars_daily.height)
        by_symbol = bars_daily.group_by("symbol")
        return {"close_highs": by_symbol.agg(high_px=pl.col("close_px").max()),
                "close_lows": by_symbol.agg(low_px=pl.col("close_px").min())}

    return AssetGraph.of([*default_graph().assets.values(), *close_extremes])


def test_multi_asset_outputs_come_from_one_computation_published_in_one_transaction(lake):
    calls: list[int] = []
    graph = _extremes_graph(calls)
    summary = lake.materialize("+close_highs close_lows", graph=graph, run_id="extremes")
    assert summary.exit_code == 0 and calls == [20 * SESSIONS]
    daily = lake.warehouse.read("bars_daily")
    highs, lows = lake.warehouse.read("close_highs"), lake.warehouse.read("close_lows")
    assert highs.sort("symbol")["high_px"].to_list() == daily.group_by("symbol").agg(pl.col("close_px").max()).sort("symbol")["close_px"].to_list()
    assert lows.sort("symbol")["low_px"].to_list() == daily.group_by("symbol").agg(pl.col("close_px").min()).sort("symbol")["close_px"].to_list()
    rows = lake.warehouse.current_versions(["close_highs", "close_lows"])
    assert rows.height == 2 and rows["batch_id"].n_unique() == 1
    assert lake.warehouse.snapshot_of_batch(rows["batch_id"][0]) > 0
    for asset, version_id in rows.select("asset", "version_id").iter_rows():
        assert lake.warehouse.read_as_of(asset, version_id=version_id).height == 20

    again = lake.materialize("+close_highs close_lows", graph=graph, run_id="extremes-again")
    assert again.totals["built"] == 0 and calls == [20 * SESSIONS]


def test_a_look_back_is_recorded_as_its_first_and_last_partition(lake):
    lake.materialize("+indicators_daily", run_id="looks")
    current = lake.warehouse.current_versions(["indicators_daily", "bars_daily"]).sort("partition_key")
    daily = current.filter(pl.col("asset") == "bars_daily")
    keys = daily["partition_key"].to_list()
    for i, row in enumerate(current.filter(pl.col("asset") == "indicators_daily").iter_rows(named=True)):
        read = json.loads(row["upstream_versions"])["bars_daily"]
        if i == 0:
            assert read["partitions"] == [keys[0]] and read["data_version"] == daily["data_version"][0]
            continue
        assert (read["first"], read["last"], read["count"]) == (keys[0], keys[i], i + 1)
        assert "versions" not in read and len(row["upstream_versions"]) < 300


def test_a_source_that_did_not_change_on_a_new_session_publishes_no_new_version(lake):
    lake.materialize(BARS, end=date(2025, 3, 13), run_id="before")
    before = lake.warehouse.versions("splits")
    summary = lake.materialize(BARS, run_id="after")
    splits = summary.outcomes["splits"]
    assert splits.built == [] and splits.up_to_date == ["all"] and summary.outcomes["bars_daily"].built == [WINDOW_END.isoformat()]
    after = lake.warehouse.versions("splits")
    assert after["version_id"].to_list() == before["version_id"].to_list()
    assert after["data_version"].to_list() == before["data_version"].to_list()
    assert json.loads(after["upstream_versions"][0])["@window"]["data_version"] == WINDOW_END.isoformat()
    assert lake.materialize(BARS, run_id="again").totals["built"] == 0


def test_full_refresh_skips_every_level_below_a_quarantined_partition(lake):
    """bars_daily keeps its old BAD_DAY rows when bars_hourly is quarantined: indicators_daily must not
    be rebuilt from them either, under --full-refresh as in any run."""
    lake.materialize("+indicators_daily", run_id="clean")
    before = _current(lake, "indicators_daily").filter(pl.col("partition_key") == BAD_DAY)["version_id"][0]

    summary = lake.materialize("+indicators_daily", source=CorruptSource(), full_refresh=True, run_id="corrupt")

    assert summary.outcomes["bars_hourly"].quarantined == [BAD_DAY]
    assert BAD_DAY in dict(summary.outcomes["bars_daily"].skipped)
    skipped = dict(summary.outcomes["indicators_daily"].skipped)
    assert skipped.get(BAD_DAY) == f"upstream bars_daily {BAD_DAY} blocked", skipped
    assert BAD_DAY not in summary.outcomes["indicators_daily"].built
    assert _current(lake, "indicators_daily").filter(pl.col("partition_key") == BAD_DAY)["version_id"][0] == before
