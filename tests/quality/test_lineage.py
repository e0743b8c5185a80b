"""The lineage drawing: columns by dependency depth, a node per asset, an edge per dependency, states coloured."""

from assets import default_graph
from quality.lineage import STATE_COLOURS, layered_layout, lineage_svg


def test_columns_follow_the_longest_upstream_path():
    graph = default_graph()
    placed = layered_layout(graph, [a.name for a in graph])
    depth = {name: node.depth for name, node in placed.items()}
    assert depth["bars_raw"] == depth["splits"] == 0 and depth["bars_hourly"] == 1
    for declared in graph:
        assert all(depth[d] < depth[declared.name] for d in declared.deps)
    positions = [(node.depth, node.row) for node in placed.values()]
    assert len(set(positions)) == len(positions)


def test_a_selection_draws_from_its_own_roots_with_one_edge_per_dependency():
    graph = default_graph()
    names = ["bars_hourly", "bars_daily", "indicators_daily", "market_regime"]
    placed = layered_layout(graph, names)
    assert placed["bars_hourly"].depth == 0 and placed["market_regime"].depth == 2
    svg = lineage_svg(graph, names, {"bars_hourly": "built", "market_regime": "quarantined"})
    edges = sum(1 for n in names for d in graph[n].deps if d in names)
    assert svg.count("<path") == edges == 3 and svg.count("<rect x=") == len(names) + 3  # nodes + a swatch per state: built, context, quarantined
    assert STATE_COLOURS["quarantined"] in svg and "http" not in svg
    assert lineage_svg(graph, []) == ""
