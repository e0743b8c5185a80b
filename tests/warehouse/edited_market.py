"""Two hand-built versions of one session of the sample market, differing in known rows."""

from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl

from assets.sources import SampleSource

EDITED_DAY = "2025-03-05"
WINDOW = (date(2025, 3, 3), date(2025, 3, 7))


def _at(hour: int) -> datetime:
    day = date.fromisoformat(EDITED_DAY)
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


class EditedSource(SampleSource):
    """The sample market without one bar on the edited day, and (in the second edit) one close moved by 1%.

    The first edit drops PEP's 16:00 bar; the second drops XOM's 15:00 bar instead and moves
    KO's 17:00 close, so between them one row is added, one removed and one changed.
    """

    def __init__(self, edit: int):
        super().__init__()
        self.edit = edit

    def identity(self) -> str:
        return super().identity() + f"+edit{self.edit}"

    def fetch_bars(self, symbols, timeframe, start, end):
        bars = super().fetch_bars(symbols, timeframe, start, end)
        dropped = ("PEP", _at(16)) if self.edit == 1 else ("XOM", _at(15))
        bars = bars.filter(~((pl.col("symbol") == dropped[0]) & (pl.col("bar_ts") == dropped[1])))
        if self.edit == 2:
            moved = (pl.col("symbol") == "KO") & (pl.col("bar_ts") == _at(17))
            bars = bars.with_columns(close_px=pl.when(moved).then(pl.col("close_px") * 1.01).otherwise(pl.col("close_px")))
            bars = bars.with_columns(high_px=pl.max_horizontal("high_px", "close_px"))
        return bars


def build_two_versions(lake) -> None:
    """Build the bar assets twice over the window: edit 1, then edit 2 with a full refresh."""
    start, end = WINDOW
    first = lake.materialize("+bars_daily", source=EditedSource(1), start=start, end=end, run_id="edit1")
    second = lake.materialize("+bars_daily", source=EditedSource(2), start=start, end=end, run_id="edit2", full_refresh=True)
    assert first.exit_code == 0 and second.exit_code == 0, (first.totals, second.totals)
