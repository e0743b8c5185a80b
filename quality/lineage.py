"""Asset lineage drawn as a self-contained SVG: layered by dependency depth, no script, no network."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from assets.graph import AssetGraph

SVG_NAMESPACE = "http://www.w3.org/2000/svg"

#: Fill colour of a node by what the run did to the asset; unknown states are drawn neutral.
STATE_COLOURS = {
    "built": "#2e7d32",
    "up to date": "#607d8b",
    "quarantined": "#c77700",
    "failed": "#c62828",
    "skipped": "#8e6c8a",
    "selected": "#1f6feb",
    "context": "#b0b8c4",
}

NODE_WIDTH, NODE_HEIGHT = 156, 34
COLUMN_GAP, ROW_GAP, MARGIN = 48, 16, 20


@dataclass(frozen=True)
class PlacedNode:
    """An asset's box in the drawing: its column is its dependency depth among the drawn assets."""

    name: str
    depth: int
    row: int

    @property
    def x(self) -> int:
        return MARGIN + self.depth * (NODE_WIDTH + COLUMN_GAP)

    @property
    def y(self) -> int:
        return MARGIN + 22 + self.row * (NODE_HEIGHT + ROW_GAP)


def layered_layout(graph: AssetGraph, names: Iterable[str]) -> dict[str, PlacedNode]:
    """Place each asset in the column of its longest upstream path (within `names`), rows in graph order.

    Depth counts only edges between drawn assets, so a selection draws from its own roots.
    """
    wanted = set(names)
    depth: dict[str, int] = {}
    for declared in graph.in_order(wanted):
        upstream = [depth[d] for d in declared.deps if d in wanted]
        depth[declared.name] = 1 + max(upstream) if upstream else 0
    placed: dict[str, PlacedNode] = {}
    for column in range(max(depth.values(), default=-1) + 1):
        members = [n for n in depth if depth[n] == column]
        members.sort(key=lambda n: (_mean_parent_row(graph, n, placed), n))
        placed.update({name: PlacedNode(name, column, row) for row, name in enumerate(members)})
    return placed


def _mean_parent_row(graph: AssetGraph, name: str, placed: Mapping[str, PlacedNode]) -> float:
    """Order a column by where its parents sit, so edges cross less."""
    parents = [placed[d].row for d in graph[name].deps if d in placed]
    return sum(parents) / len(parents) if parents else 0.0


def lineage_svg(
    graph: AssetGraph,
    names: Iterable[str],
    states: Mapping[str, str] | None = None,
    *,
    title: str = "Lineage",
    standalone: bool = False,
) -> str:
    """The dependency graph of `names`, each node coloured by its state (see `STATE_COLOURS`).

    Inline in HTML the SVG needs no namespace (the page then holds no URL at all);
    `standalone=True` adds it for a file a browser or an image viewer opens on its own.
    """
    placed = layered_layout(graph, names)
    if not placed:
        return ""
    states = states or {}
    width = MARGIN * 2 + (max(p.depth for p in placed.values()) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + 22 + (max(p.row for p in placed.values()) + 1) * (NODE_HEIGHT + ROW_GAP) + 26
    namespace = f" xmlns='{SVG_NAMESPACE}'" if standalone else ""
    parts = [
        f"<svg{namespace} role='img' aria-label='{html.escape(title)}' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' style='max-width:100%;height:auto' font-family='system-ui,sans-serif'>",
        "<rect width='100%' height='100%' fill='#fbfcfe'/>",
        f"<text x='{MARGIN}' y='{MARGIN + 4}' font-size='13' fill='#1d2433'>{html.escape(title)}</text>",
    ]
    sizes, lanes_used = _column_sizes(placed), {}
    for node in placed.values():
        for dep in graph[node.name].deps:
            if dep in placed:
                parts.append(_edge(placed[dep], node, sizes, lanes_used))
    for node in placed.values():
        parts.append(_node(node, states.get(node.name, "context")))
    parts.append(_legend(sorted({states.get(n, "context") for n in placed}), height - 14))
    parts.append("</svg>")
    return "".join(parts)


def _column_sizes(placed: Mapping[str, PlacedNode]) -> dict[int, int]:
    """How many boxes each column holds."""
    sizes: dict[int, int] = {}
    for node in placed.values():
        sizes[node.depth] = sizes.get(node.depth, 0) + 1
    return sizes


def _row_top(row: int) -> int:
    return MARGIN + 22 + row * (NODE_HEIGHT + ROW_GAP)


#: Offsets that keep edges sharing a lane apart while staying clear of the boxes beside it.
_LANE_OFFSETS = (0, 3, -3, 6, -6)


def edge_waypoints(
    source: PlacedNode, target: PlacedNode, column_sizes: Mapping[int, int],
    lanes_used: dict[tuple[int, float], int] | None = None,
) -> list[tuple[float, float]]:
    """Where an edge turns: out of the source's right side, through a free lane of every column it
    crosses (the gap between two boxes, above the first or below the last), into the target's left side.

    An edge between neighbouring columns needs no lane; one that skips columns would otherwise be
    drawn straight through the boxes of the columns in between.
    """
    lanes_used = {} if lanes_used is None else lanes_used
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT / 2
    x2, y2 = target.x, target.y + NODE_HEIGHT / 2
    points = [(float(x1), y1)]
    for column in range(source.depth + 1, target.depth):
        left = MARGIN + column * (NODE_WIDTH + COLUMN_GAP)
        along = y1 + (y2 - y1) * (left + NODE_WIDTH / 2 - x1) / (x2 - x1)
        lanes = [_row_top(row) - ROW_GAP / 2 for row in range(column_sizes.get(column, 0) + 1)]
        lane = min(lanes, key=lambda y: (abs(y - along), y))
        used = lanes_used.get((column, lane), 0)
        lanes_used[(column, lane)] = used + 1
        lane += _LANE_OFFSETS[used % len(_LANE_OFFSETS)]
        points += [(float(left), lane), (float(left + NODE_WIDTH), lane)]
    points.append((float(x2), y2))
    return points


def _edge(source: PlacedNode, target: PlacedNode, column_sizes: Mapping[int, int],
          lanes_used: dict[tuple[int, float], int]) -> str:
    """Straight along a lane inside a column, an S-curve across each gap between columns (which holds no box)."""
    points = edge_waypoints(source, target, column_sizes, lanes_used)
    x2, y2 = points[-1]
    points[-1] = (x2 - 6, y2)  # the arrowhead covers the last few pixels
    d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        if ay == by and bx - ax == NODE_WIDTH:
            d.append(f"L{bx:.1f},{by:.1f}")
        else:
            bend = (bx - ax) / 2
            d.append(f"C{ax + bend:.1f},{ay:.1f} {bx - bend:.1f},{by:.1f} {bx:.1f},{by:.1f}")
    return (
        f"<path data-from='{html.escape(source.name)}' data-to='{html.escape(target.name)}' d='{' '.join(d)}' "
        f"fill='none' stroke='#8a94a6' stroke-width='1.2'/>"
        f"<polygon points='{x2},{y2:.1f} {x2 - 7},{y2 - 4:.1f} {x2 - 7},{y2 + 4:.1f}' fill='#8a94a6'/>"
    )


def _node(node: PlacedNode, state: str) -> str:
    colour = STATE_COLOURS.get(state, STATE_COLOURS["context"])
    return (
        f"<g><title>{html.escape(node.name)}: {html.escape(state)}</title>"
        f"<rect x='{node.x}' y='{node.y}' width='{NODE_WIDTH}' height='{NODE_HEIGHT}' rx='6' fill='{colour}'/>"
        f"<text x='{node.x + NODE_WIDTH / 2}' y='{node.y + 21}' font-size='12' fill='#fff' text-anchor='middle'>"
        f"{html.escape(node.name)}</text></g>"
    )


def _legend(states: list[str], y: int) -> str:
    items, x = [], MARGIN
    for state in states:
        items.append(
            f"<rect x='{x}' y='{y - 9}' width='10' height='10' rx='2' fill='{STATE_COLOURS.get(state, STATE_COLOURS['context'])}'/>"
            f"<text x='{x + 14}' y='{y}' font-size='11' fill='#5b6474'>{html.escape(state)}</text>"
        )
        x += 24 + 7 * len(state)
    return "".join(items)


def run_states(outcomes: Mapping[str, object]) -> dict[str, str]:
    """One state per asset from a run's outcomes: the worst thing that happened to any of its partitions."""
    states = {}
    for name, outcome in outcomes.items():
        if outcome.failed:
            states[name] = "failed"
        elif outcome.quarantined:
            states[name] = "quarantined"
        elif outcome.built:
            states[name] = "built"
        elif outcome.skipped:
            states[name] = "skipped"
        else:
            states[name] = "up to date"
    return states


def write_asset_lineage_svg(graph: AssetGraph, asset: str, path: Path) -> Path:
    """Draw `asset` with everything upstream and downstream of it to a standalone SVG file."""
    names = {asset} | graph.upstream(asset) | graph.downstream(asset)
    states = {name: "selected" if name == asset else "context" for name in names}
    svg = lineage_svg(graph, names, states, title=f"Lineage of {asset}", standalone=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return path
