"""Brokers behind one small protocol: the embedded `paper` broker and Alpaca's paper trading API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from assets.sources.registry import AlpacaKeys
from pipelines.settings import BrokerConfig
from pipelines.brokers.alpaca import AlpacaBroker
from pipelines.brokers.base import (
    Broker, BrokerAccount, BrokerAuthError, BrokerError, BrokerMalformed, BrokerOrder, BrokerPosition,
    BrokerUnavailable, MarketClock, OrderRejected, OrderRequest, Quote, Side, apply_fill,
)
from pipelines.brokers.paper import PaperBroker, paper_engine, paper_orders

__all__ = [
    "AlpacaBroker",
    "Broker",
    "BrokerAccount",
    "BrokerAuthError",
    "BrokerError",
    "BrokerMaker",
    "BrokerMalformed",
    "BrokerOrder",
    "BrokerPosition",
    "BrokerUnavailable",
    "MarketClock",
    "OrderRejected",
    "OrderRequest",
    "PaperBroker",
    "Quote",
    "Side",
    "apply_fill",
    "paper_engine",
    "paper_orders",
]


@dataclass(frozen=True)
class BrokerMaker:
    """The configured broker, made once per trading cycle: Alpaca's with the account's keys, or the embedded
    paper book, which fills at the cycle's validated prices (`quote`) as of `now`."""

    config: BrokerConfig
    alpaca: AlpacaKeys = field(default_factory=AlpacaKeys)

    def __call__(self, quote: Quote, now: datetime) -> Broker:
        if self.config.name == "alpaca":
            return AlpacaBroker(self.config, self.alpaca)
        return PaperBroker(paper_engine(self.config.paper_url), quote, now, self.config)
