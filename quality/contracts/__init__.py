"""Pandera contracts (Polars backend), one module per domain; an asset names its contract as "quality.contracts:Name"."""

from quality.contracts.backtests import BacktestEquity, BacktestTrades, PairPerformance, StrategyPerformance, TradeAnalysis
from quality.contracts.fundamentals import (
    CompanyInfo, CompanyOfficers, FinancialStatements, InstitutionalHolders, KeyStatistics, Universe,
)
from quality.contracts.indicators import IndicatorsDaily, IndicatorsHourly, MarketRegime
from quality.contracts.market import BarsDaily, BarsHourly, BarsRaw, Splits
from quality.contracts.pairs import PairCandidates, PairSignals, PairSpreads

__all__ = [
    "BacktestEquity", "BacktestTrades", "BarsDaily", "BarsHourly", "BarsRaw", "CompanyInfo", "CompanyOfficers",
    "FinancialStatements", "IndicatorsDaily", "IndicatorsHourly", "InstitutionalHolders", "KeyStatistics",
    "MarketRegime", "PairCandidates", "PairPerformance", "PairSignals", "PairSpreads", "Splits",
    "StrategyPerformance", "TradeAnalysis", "Universe",
]
