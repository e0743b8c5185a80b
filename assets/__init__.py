"""What the desk knows: asset declarations by domain, and the default asset graph."""

from assets.graph import AssetGraph, GraphError, SelectionError
from assets.model import Asset, Check, asset

__all__ = ["Asset", "AssetGraph", "Check", "GraphError", "SelectionError", "asset", "default_graph"]


def default_graph() -> AssetGraph:
    """Every asset Quarry ships, validated as one graph."""
    from assets import bars

    return AssetGraph.of([bars.bars_raw, bars.splits, bars.bars_hourly, bars.bars_daily])
