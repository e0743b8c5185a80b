"""What the desk knows: asset declarations by domain, and the default asset graph."""

from assets.graph import AssetGraph, GraphError, SelectionError
from assets.model import Asset, Check, asset

__all__ = ["Asset", "AssetGraph", "Check", "GraphError", "SelectionError", "asset", "default_graph"]


def default_graph() -> AssetGraph:
    """Every asset Quarry ships, validated as one graph."""
    from assets import backtests, bars, fundamentals, indicators, live, pairs

    return AssetGraph.of(
        [
            bars.bars_raw, bars.splits, bars.bars_hourly, bars.bars_daily,
            indicators.indicators_hourly, indicators.indicators_daily, indicators.market_regime,
            pairs.pair_candidates, pairs.pair_spreads, pairs.pair_signals,
            backtests.backtest_trades, backtests.backtest_equity, backtests.pair_performance,
            backtests.strategy_performance, backtests.trade_analysis,
            *fundamentals.FUNDAMENTALS_ASSETS,
            live.live_performance,
        ]
    )
