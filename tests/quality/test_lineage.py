"""The lineage drawing: columns by dependency depth, a node per asset, an edge per dependency, states coloured."""

import re

import pytest

from assets import default_graph
from quality.lineage import NODE_HEIGHT, NODE_WIDTH, STATE_COLOURS, layered_layout, lineage_svg


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


def _curve_points(d: str) -> list[tuple[float, float]]:
    """Points along an SVG path of M, L and C commands (absolute), sampled finely enough to find a crossing."""
    tokens = re.findall(r"[MLC]|-?[\d.]+", d)
    points, here, i = [], None, 0
    while i < len(tokens):
        command = tokens[i]
        numbers = []
        i += 1
        while i < len(tokens) and tokens[i] not in "MLC":
            numbers.append(float(tokens[i]))
            i += 1
        xy = list(zip(numbers[::2], numbers[1::2]))
        if command == "M":
            here = xy[0]
            points.append(here)
        elif command == "L":
            (ax, ay), (bx, by) = here, xy[0]
            points += [(ax + (bx - ax) * t / 40, ay + (by - ay) * t / 40) for t in range(41)]
            here = xy[0]
        else:
            (p0, p1, p2, p3) = (here, *xy)
            for k in range(81):
                t = k / 80
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3
                points.append((a * p0[0] + b * p1[0] + c * p2[0] + e * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + e * p3[1]))
            here = p3
    return points


def _drawn_edges(svg: str) -> list[tuple[str, str, str]]:
    return re.findall(r"<path data-from='([^']+)' data-to='([^']+)' d='([^']+)'", svg)


SELECTIONS = [sorted(default_graph().assets), ["bars_hourly", "pair_candidates", "pair_spreads", "pair_signals", "universe"]]
SELECTIONS += [sorted({a} | default_graph().upstream(a) | default_graph().downstream(a)) for a in sorted(default_graph().assets)]


@pytest.mark.parametrize("names", SELECTIONS, ids=lambda names: f"{len(names)}-assets-{names[0]}")
def test_no_edge_passes_through_a_box(names):
    """Geometry, not looks: sampled along every edge's curve, no point falls inside a box other than its two ends'."""
    graph = default_graph()
    placed = layered_layout(graph, names)
    svg = lineage_svg(graph, names)
    edges = _drawn_edges(svg)
    assert len(edges) == sum(1 for n in names for d in graph[n].deps if d in names)
    for source, target, d in edges:
        for node in placed.values():
            margin = -0.5 if node.name in (source, target) else 2.0  # ends may touch their own box's side
            left, right = node.x - margin, node.x + NODE_WIDTH + margin
            top, bottom = node.y - margin, node.y + NODE_HEIGHT + margin
            inside = [(x, y) for x, y in _curve_points(d) if left < x < right and top < y < bottom]
            assert not inside, f"edge {source} -> {target} passes through the box of {node.name} at {inside[0]}"


def test_a_long_edge_is_routed_around_the_column_it_crosses():
    graph = default_graph()
    names = sorted(graph.assets)
    placed = layered_layout(graph, names)
    assert placed["pair_spreads"].depth - placed["bars_hourly"].depth >= 2  # the edge that used to cross pair_candidates
    d = next(d for s, t, d in _drawn_edges(lineage_svg(graph, names)) if (s, t) == ("bars_hourly", "pair_spreads"))
    assert d.count("L") == placed["pair_spreads"].depth - placed["bars_hourly"].depth - 1
