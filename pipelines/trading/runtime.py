"""Everything one trading run needs, from the process's resources: warehouse, ledger, broker, limits, strategies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from pipelines.resources import Resources
from pipelines.settings import RiskLimits, TradingConfig
from pipelines.brokers import Broker, BrokerMaker
from pipelines.trading.strategy import DailyMomentumStrategy, PairsStrategy, known_at
from warehouse import Warehouse
from warehouse.ledger import Ledger
from warehouse.validated import ValidatedReader

if TYPE_CHECKING:
    from pipelines.notify import Notifier

__all__ = ["TradingRuntime", "open_runtime"]


@dataclass
class TradingRuntime:
    warehouse: Warehouse
    ledger: Ledger
    brokers: BrokerMaker
    risk: RiskLimits
    trading: TradingConfig
    #: Makes the notifier that emails what the ledger already holds (fills, alerts); None: a relay is handed one.
    relay_notifier: Callable[[], Notifier] | None = None

    def limits(self) -> RiskLimits:
        """Risk limits with the kill switch on when either the setting or the ledger control says so."""
        if self.ledger.kill_switch():
            return self.risk.model_copy(update={"kill_switch": True})
        return self.risk

    def broker(self, prices: dict[str, float], now: datetime) -> Broker:
        """This cycle's broker; the paper book fills at `prices`."""
        return self.brokers(prices.get, now)

    def pairs(self, check_market: bool | None = None) -> PairsStrategy:
        return PairsStrategy(self.warehouse, self.ledger, self.broker, self.limits(),
                             check_market=self.trading.check_market_clock if check_market is None else check_market)

    def momentum(self) -> DailyMomentumStrategy:
        return DailyMomentumStrategy(self.warehouse, self.ledger, self.broker, self.limits(),
                                     check_market=self.trading.check_market_clock)

    def validated_prices(self, now: datetime) -> tuple[dict[str, float], datetime | None]:
        """Last closed hourly close per symbol at `now`, read through the validated reader (raises if unusable)."""
        bars = known_at(ValidatedReader(self.warehouse, now).read_latest("bars_hourly", 1).frame, now)
        if bars.is_empty():
            return {}, None
        last = bars.sort("bar_ts").group_by("symbol").agg(pl.col("close_px").last())
        return dict(last.iter_rows()), bars["bar_ts"].max()


@contextmanager
def open_runtime(resources: Resources, *, read_only: bool = True) -> Iterator[TradingRuntime]:
    """Open the warehouse (read-only: trading never writes assets); the ledger is the process's (migrated).

    The broker is the process's, made per cycle (see `broker`); the notifier relays what the ledger holds and
    records nothing itself.
    """
    settings = resources.settings
    with resources.warehouse(read_only=read_only) as warehouse:
        yield TradingRuntime(warehouse, resources.ledger, resources.brokers, settings.risk, settings.trading,
                             lambda: resources.notifier(record_alert=lambda alert: None))
