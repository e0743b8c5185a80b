"""Brokers behind one small protocol: the embedded `paper` broker and Alpaca's paper trading API."""

from __future__ import annotations

from datetime import datetime

from assets.sources.registry import AlpacaKeys
from pipelines.settings import BrokerConfig
from pipelines.trading.brokers.alpaca import AlpacaBroker
from pipelines.trading.brokers.base import (
    Broker, BrokerAccount, BrokerAuthError, BrokerError, BrokerMalformed, BrokerOrder, BrokerPosition,
    BrokerUnavailable, MarketClock, OrderRejected, OrderRequest, Quote, Side, apply_fill,
)
from pipelines.trading.brokers.paper import PaperBroker, paper_engine, paper_orders

__all__ = [
    "AlpacaBroker",
    "Broker",
    "BrokerAccount",
    "BrokerAuthError",
    "BrokerError",
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
    "make_broker",
    "paper_engine",
    "paper_orders",
]


def make_broker(config: BrokerConfig, alpaca: AlpacaKeys, quote: Quote, now: datetime) -> Broker:
    """The configured broker (Alpaca's with the account's keys); `paper` needs nothing but the validated prices
    of the cycle."""
    if config.name == "alpaca":
        return AlpacaBroker(config, alpaca)
    return PaperBroker(paper_engine(config.paper_url), quote, now, config)
