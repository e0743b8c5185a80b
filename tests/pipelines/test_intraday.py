"""A simulated trading day with the sample market's clock: the open session is a partial partition, republished
each hour, final at the close, and the hourly pairs cycle reads the hour that closed last or trades nothing.

The lake holds nine months of history to the day before (active pairs need 500 bars); then the day
2025-09-30 (EDT: open 13:30 UTC, close 20:00 UTC) is played hour by hour.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from assets import default_graph
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import INCOMPLETE, NEW_HOUR
from pipelines.resources import Resources
from pipelines.runs import default_window
from pipelines.settings import Settings, WarehouseConfig
from pipelines.trading import operations as ops
from pipelines.brokers import BrokerMaker
from pipelines.trading.runtime import TradingRuntime
from tests.trading.conftest import START, build_lake
from warehouse import Warehouse
from warehouse.ledger import Ledger, LedgerConfig
from pipelines.settings import BrokerConfig, RiskLimits, TradingConfig

pytestmark = pytest.mark.slow
DAY = date(2025, 9, 30)
KEY = DAY.isoformat()


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("intraday-lake")
    warehouse = build_lake(root, end=DAY - timedelta(days=1))
    yield warehouse, root
    warehouse.close()


def settings_at(root, clock: datetime) -> Settings:
    return Settings(warehouse=WarehouseConfig(catalog=f"sqlite:{root}/catalog.sqlite", data_path=f"{root}/lake/"), start_date=START, clock=clock)


def run_hour(warehouse: Warehouse, settings: Settings, selection: str = "+pair_signals"):
    submit, shutdown = thread_submitter(2)
    try:
        return run_materialization(
            default_graph(), warehouse, Resources.from_settings(settings).source, selection=selection, window=default_window(settings),
            run_id=f"hourly-{settings.clock:%H%M}", submit=submit,
        )
    finally:
        shutdown()


def published(warehouse: Warehouse, asset: str) -> dict:
    versions = warehouse.current_versions([asset]).filter(pl.col("partition_key") == KEY)
    return versions.row(0, named=True) if versions.height else {}


def runtime(warehouse, tmp_path) -> TradingRuntime:
    return TradingRuntime(
        warehouse, Ledger.open(LedgerConfig(url=f"sqlite:///{tmp_path}/ledger.sqlite")),
        BrokerMaker(BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite")), RiskLimits(), TradingConfig(),
    )


def test_window_includes_the_open_session_and_honours_an_end_inside_it(tmp_path):
    before_first_bar = default_window(settings_at(tmp_path, at(13, 45)))
    assert before_first_bar.partition_keys[-1] == "2025-09-29" and before_first_bar.through is None
    mid_day = default_window(settings_at(tmp_path, at(15, 30)))
    assert mid_day.partition_keys[-1] == KEY and mid_day.partial_key == KEY and mid_day.through == at(15)
    asked_today = default_window(settings_at(tmp_path, at(15, 30)), end=DAY)
    assert asked_today.partition_keys[-1] == KEY and asked_today.through == at(15)
    asked_tomorrow = default_window(settings_at(tmp_path, at(15, 30)), end=DAY + timedelta(days=1))
    assert asked_tomorrow.partition_keys[-1] == KEY
    asked_yesterday = default_window(settings_at(tmp_path, at(15, 30)), end=DAY - timedelta(days=1))
    assert asked_yesterday.partition_keys[-1] == "2025-09-29" and asked_yesterday.through is None
    after_close = default_window(settings_at(tmp_path, at(20, 5)))
    assert after_close.partition_keys[-1] == KEY and after_close.partial_key is None


def test_a_simulated_day_ingests_each_hour_and_the_cycle_reads_the_last_one(lake, tmp_path):
    warehouse, root = lake
    seen_versions = set()
    for hour in range(14, 20):  # the 13:00 bar closes at 14:00 ... the 18:00 bar at 19:00
        summary = run_hour(warehouse, settings_at(root, at(hour)))
        assert summary.exit_code == 0, summary.totals
        assert summary.outcomes["bars_raw"].reasons == ({"missing": 1} if hour == 14 else {NEW_HOUR: 1})
        bars = warehouse.read("bars_hourly", [KEY])
        assert bars["bar_ts"].max() == at(hour - 1)
        assert bars.group_by("symbol").agg(pl.col("bar_ts").max())["bar_ts"].unique().to_list() == [at(hour - 1)]
        signals = warehouse.read("pair_signals", [KEY])
        assert signals["bar_ts"].max() == at(hour - 1)  # pairs are active that week
        seen_versions.add(published(warehouse, "pair_signals")["version_id"])
    assert len(seen_versions) == 6  # republished every hour

    again = run_hour(warehouse, settings_at(root, at(19, 30)))
    assert again.totals["built"] == 0  # no new hour, nothing to do

    report = ops.run_pairs_cycle(runtime(warehouse, tmp_path), at(19))
    assert report.status in ("done", "skipped"), report.reason
    read = {(v["asset"], v["partition_key"]): v["version_id"] for v in report.versions}
    assert read[("bars_hourly", KEY)] == published(warehouse, "bars_hourly")["version_id"]
    assert read[("pair_signals", KEY)] == published(warehouse, "pair_signals")["version_id"]


def test_a_cycle_without_the_last_hour_trades_nothing(lake, tmp_path):
    warehouse, root = lake
    run_hour(warehouse, settings_at(root, at(16)))  # through the 15:00 bar only
    report = ops.run_pairs_cycle(runtime(warehouse, tmp_path), at(17))
    assert report.status == "blocked"
    assert "bars_hourly" in report.reason and "missing the 2025-09-30 16:00 UTC bar" in report.reason


def test_the_close_makes_the_partition_final_and_equal_to_one_built_after_the_close(lake, tmp_path, make_lake):
    warehouse, root = lake
    run_hour(warehouse, settings_at(root, at(17)))
    final = run_hour(warehouse, settings_at(root, at(20, 30)))
    assert final.outcomes["bars_raw"].reasons == {INCOMPLETE: 1}
    assert warehouse.read("bars_hourly", [KEY])["bar_ts"].max() == at(19)
    assert run_hour(warehouse, settings_at(root, at(21))).totals["built"] == 0  # final: never rebuilt again

    after_close = make_lake("after-close")
    fresh = settings_at(after_close.root, at(23))
    fresh = fresh.model_copy(update={"catalog": after_close.catalog, "data_path": after_close.data_path,
                                     "start_date": DAY})
    assert run_hour(after_close.warehouse, fresh, "+bars_hourly").exit_code == 0
    for asset in ("bars_raw", "bars_hourly"):
        rebuilt = after_close.warehouse.current_versions([asset]).filter(pl.col("partition_key") == KEY)
        assert rebuilt["data_version"][0] == published(warehouse, asset)["data_version"]


def test_the_momentum_cycle_respects_the_market_clock(lake, tmp_path):
    warehouse, _ = lake
    night = ops.run_strategy_cycle(runtime(warehouse, tmp_path), "momentum", at(3, 7))
    assert night.status == "skipped" and night.reason == "market closed" and not night.orders
    before_close = ops.run_strategy_cycle(runtime(warehouse, tmp_path), "momentum", at(19, 30))
    assert before_close.status == "done"
