"""dbt's selection grammar against a reference built from all-pairs shortest paths on random DAGs."""

from __future__ import annotations

import itertools
from fnmatch import fnmatchcase

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.selection import Selector, SelectorSyntaxError, resolve

INF = float("inf")
TAGS = ("daily", "hourly", "weekly")


@st.composite
def dags(draw):
    """A random DAG of 1–9 nodes: an edge may only point from a lower to a higher index, so no cycles."""
    size = draw(st.integers(1, 9))
    names = [f"n{i}" for i in range(size)]
    parents = {name: tuple(sorted(names[j] for j in range(i) if draw(st.booleans()))) for i, name in enumerate(names)}
    tags = {name: frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))) for name in names}
    return parents, tags


def distances(parents: dict[str, tuple[str, ...]]) -> dict[tuple[str, str], float]:
    """Floyd–Warshall: steps from a to b along parent → child edges (inf when b is not below a)."""
    nodes = list(parents)
    dist = {(a, b): (0 if a == b else INF) for a in nodes for b in nodes}
    for child, deps in parents.items():
        for parent in deps:
            dist[parent, child] = 1
    for k, i, j in itertools.product(nodes, nodes, nodes):
        if dist[i, k] + dist[k, j] < dist[i, j]:
            dist[i, j] = dist[i, k] + dist[k, j]
    return dist


def reference(selector: Selector, parents, tags) -> set[str]:
    """What dbt documents for one selector, stated over path lengths instead of a traversal."""
    dist = distances(parents)
    if selector.method == "tag":
        seeds = {n for n in parents if any(fnmatchcase(t, selector.value) for t in tags[n])}
    else:
        seeds = {n for n in parents if fnmatchcase(n, selector.value)}

    def reach(limit: int | None) -> float:
        """The longest path a limit allows: none without the operator, any finite one for a bare `+`."""
        return -1 if limit is None else (len(parents) if limit < 0 else limit)

    chosen = set(seeds)
    for seed in seeds:
        if selector.at:
            below = {b for b in parents if dist[seed, b] < INF}
            chosen |= below | {a for a in parents for b in below if dist[a, b] < INF}
            continue
        up, down = reach(selector.up), reach(selector.down)
        chosen |= {a for a in parents if 0 < dist[a, seed] <= up}
        chosen |= {b for b in parents if 0 < dist[seed, b] <= down}
    return chosen


def render(selector: Selector) -> str:
    """The selector as a user types it."""
    prefix = "@" if selector.at else ("" if selector.up is None else ("+" if selector.up < 0 else f"{selector.up}+"))
    suffix = "" if selector.down is None else ("+" if selector.down < 0 else f"+{selector.down}")
    method = "tag:" if selector.method == "tag" else ""
    return f"{prefix}{method}{selector.value}{suffix}"


@st.composite
def selectors(draw, parents, tags):
    depth = st.one_of(st.none(), st.just(-1), st.integers(0, 3))
    present = sorted({t for mine in tags.values() for t in mine})
    if present and draw(st.booleans()):
        method, value = "tag", draw(st.sampled_from(present))
    else:
        name = draw(st.sampled_from(sorted(parents)))
        method, value = "name", (name if draw(st.integers(0, 4)) else name[:2] + "*")
    if draw(st.integers(0, 4)) == 0:
        return Selector(method, value, at=True)
    return Selector(method, value, draw(depth), draw(depth))


class Unknown(Exception):
    pass


@st.composite
def cases(draw):
    parents, tags = draw(dags())
    groups = draw(st.lists(st.lists(selectors(parents, tags), min_size=1, max_size=3), min_size=1, max_size=3))
    excluded = draw(st.lists(selectors(parents, tags), max_size=2))
    return parents, tags, groups, excluded


@settings(max_examples=300, deadline=None)
@given(cases())
def test_union_of_intersections_minus_exclusions_matches_the_reference(case):
    parents, tags, groups, excluded = case
    expression = " ".join(",".join(render(s) for s in group) for group in groups)
    expected = set().union(*(set.intersection(*(reference(s, parents, tags) for s in group)) for group in groups))
    assert resolve(expression, parents, tags, Unknown) == expected
    if excluded:
        exclusion = " ".join(render(s) for s in excluded)
        removed = set().union(*(reference(s, parents, tags) for s in excluded))
        assert resolve(expression, parents, tags, Unknown) - resolve(exclusion, parents, tags, Unknown) == expected - removed


@settings(max_examples=200, deadline=None)
@given(dags(), st.data())
def test_the_operators_relate_as_dbt_says(dag, data):
    parents, tags = dag
    name = data.draw(st.sampled_from(sorted(parents)))
    sel = lambda text: resolve(text, parents, tags, Unknown)  # noqa: E731
    assert sel(f"+{name}+") == sel(f"+{name}") | sel(f"{name}+")
    assert sel(f"{name},{name}+") == {name}
    assert sel(f"1+{name}") <= sel(f"2+{name}") <= sel(f"+{name}")
    assert sel(f"{name}+1") <= sel(f"{name}+2") <= sel(f"{name}+")
    assert sel(f"0+{name}+0") == {name}
    assert sel(f"@{name}") >= sel(f"{name}+")
    assert sel(f"@{name}") == sel(f"{name}+") | set().union(*(sel(f"+{d}") for d in sel(f"{name}+")))
    other = data.draw(st.sampled_from(sorted(parents)))
    assert sel(f"{name}+,+{other}") == sel(f"+{other},{name}+") == sel(f"{name}+") & sel(f"+{other}")


@pytest.mark.parametrize("text", ["@+a", "a++", "@a+", "path:a", "+", "a+b"])
def test_text_outside_the_grammar_is_refused(text):
    with pytest.raises((SelectorSyntaxError, Unknown)):
        resolve(text, {"a": (), "b": ("a",)}, {"a": (), "b": ()}, Unknown)


def test_unknown_names_and_tags_are_named():
    with pytest.raises(Unknown, match="no asset named 'c'"):
        resolve("c", {"a": ()}, {"a": ()}, Unknown)
    with pytest.raises(Unknown, match="no asset has tag 'x'"):
        resolve("tag:x", {"a": ()}, {"a": ()}, Unknown)
    with pytest.raises(Unknown, match="no asset name matches 'z\\*'"):
        resolve("z*", {"a": ()}, {"a": ()}, Unknown)
