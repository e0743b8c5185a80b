"""A warehouse for the notebooks and the report: seven months of the sample market, one bad day, one repair.

The whole graph is built over 2025-01-02..2025-07-31 (the pair scan needs about 250 hourly
bars) with a burst of bad ticks on 2025-07-30 that quarantines that bars_hourly partition;
a second run rebuilds only bars_raw for that session from the clean market, so bars_raw
2025-07-30 has a superseded version and a published one that differ in six rows, while the
bars_hourly partition stays quarantined (stale, waiting for the next run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from assets import default_graph
from assets.sources import SampleSource
from pipelines.materialize import RunSummary, run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.resources import LedgerOnUse
from warehouse import Warehouse
from warehouse.ledger import LedgerConfig

START, END = date(2025, 1, 2), date(2025, 7, 31)
BAD_DAY = date(2025, 7, 30)


class BadDaySource(SampleSource):
    """The sample market with spikes on KO, PEP and XOM at two hours of one session: beyond repair."""

    def identity(self) -> str:
        return super().identity() + "+bad-day"

    def fetch_bars(self, symbols, timeframe, start, end):
        bars = super().fetch_bars(symbols, timeframe, start, end)
        hit = (pl.col("bar_ts").dt.date() == BAD_DAY) & pl.col("symbol").is_in(["KO", "PEP", "XOM"]) & (
            pl.col("bar_ts").dt.hour().is_in([15, 17])
        )
        spiked = pl.when(hit).then(pl.col("close_px") * 1.6).otherwise(pl.col("close_px"))
        return bars.with_columns(close_px=spiked).with_columns(high_px=pl.max_horizontal("high_px", "close_px"))


@dataclass
class ResearchMarket:
    root: Path
    catalog: str
    data_path: str
    warehouse: Warehouse
    market_run: RunSummary
    repair_run: RunSummary

    def env(self) -> dict[str, str]:
        return {"QUARRY_CATALOG": self.catalog, "QUARRY_DATA_PATH": self.data_path, "QUARRY_REPORTS_DIR": str(self.root / "reports")}


def _run(warehouse, source, selection, start, end, run_id, full_refresh=False, ledger=None) -> RunSummary:
    submit, shutdown = thread_submitter(4)
    try:
        return run_materialization(
            default_graph(), warehouse, source, selection=selection, window=RunWindow.between(start, end),
            run_id=run_id, submit=submit, full_refresh=full_refresh, batch_partitions=40,
            resources={"ledger": ledger} if ledger else None,
        )
    finally:
        shutdown()


def build_research_market(root: Path) -> ResearchMarket:
    catalog, data_path = f"sqlite:{root}/catalog.sqlite", f"{root}/lake/"
    warehouse = Warehouse.open(catalog, data_path)
    ledger = LedgerOnUse(LedgerConfig(url=f"sqlite:///{root}/ledger.sqlite"))  # the live book: an empty ledger
    market = _run(warehouse, BadDaySource(), None, START, END, "market", ledger=ledger)
    repair = _run(warehouse, SampleSource(), "bars_raw", BAD_DAY, BAD_DAY, "repair", full_refresh=True)
    return ResearchMarket(root, catalog, data_path, warehouse, market, repair)
