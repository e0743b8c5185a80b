"""Everything one trading run needs, built once from settings: warehouse, ledger, broker, limits, strategies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.settings import Settings
from pipelines.trading.brokers import Broker, BrokerSettings, make_broker
from pipelines.trading.risk import RiskSettings
from pipelines.trading.strategy import DailyMomentumStrategy, PairsStrategy, known_at
from warehouse import Warehouse
from warehouse.ledger import Ledger, LedgerSettings
from warehouse.validated import ValidatedReader

__all__ = ["TradingRuntime", "TradingSettings", "open_runtime"]


class TradingSettings(BaseSettings):
    """How the trading flows run; env prefix QUARRY_TRADING_."""

    model_config = SettingsConfigDict(env_prefix="QUARRY_TRADING_", env_file=".env", extra="ignore")

    check_market_clock: bool = Field(True, description="Skip a cycle when the broker says the market is closed.")
    order_timeout_minutes: float = Field(30.0, gt=0, description="Cancel the unfilled rest of an order after this.")
    half_fill_rule: str = Field("unwind", pattern="^(unwind|complete)$")
    unknown_order_grace_minutes: float = Field(
        5.0, gt=0, description="An order the broker still does not know this long after it was sent never reached it.")


@dataclass
class TradingRuntime:
    warehouse: Warehouse
    ledger: Ledger
    broker_settings: BrokerSettings
    risk_settings: RiskSettings
    trading: TradingSettings

    def limits(self):
        """Risk limits with the kill switch on when either the setting or the ledger control says so."""
        limits = self.risk_settings.limits()
        if self.ledger.kill_switch():
            from dataclasses import replace

            limits = replace(limits, kill_switch=True)
        return limits

    def broker(self, prices: dict[str, float], now: datetime) -> Broker:
        return make_broker(self.broker_settings, prices.get, now)

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
def open_runtime(settings: Settings | None = None, *, read_only: bool = True) -> Iterator[TradingRuntime]:
    """Open the warehouse (read-only: trading never writes assets) and the ledger (migrated)."""
    settings = settings or Settings()
    with Warehouse.open(settings.catalog, settings.data_path, read_only=read_only) as warehouse:
        yield TradingRuntime(warehouse, Ledger.open(LedgerSettings()), BrokerSettings(),
                             RiskSettings(), TradingSettings())
