"""What the desk knows: asset declarations by domain, and the default asset graph."""

from assets.graph import AssetGraph, GraphError, SelectionError
from assets.model import Asset, Check, asset

__all__ = ["Asset", "AssetGraph", "Check", "GraphError", "SelectionError", "asset", "default_graph"]


def default_graph() -> AssetGraph:
    """Every asset Quarry ships, validated as one graph."""
    from assets.backtests import assets as backtests
    from assets.fundamentals import assets as fundamentals
    from assets.indicators import assets as indicators
    from assets.live import assets as live
    from assets.market import assets as market
    from assets.pairs import assets as pairs

    return AssetGraph.of(
        [
            market.bars_raw, market.splits, market.bars_hourly, market.bars_daily,
            indicators.indicators_hourly, indicators.indicators_daily, indicators.market_regime,
            pairs.pair_candidates, pairs.pair_spreads, pairs.pair_signals,
            backtests.backtest_trades, backtests.backtest_equity, backtests.pair_performance,
            backtests.strategy_performance, backtests.trade_analysis,
            *fundamentals.FUNDAMENTALS_ASSETS,
            live.live_performance,
        ]
    )
