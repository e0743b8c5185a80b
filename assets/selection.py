"""dbt's node selection grammar over an asset graph: selectors, graph operators, union, intersection, exclusion."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

# `@name`, `+name`, `2+name`, `name+`, `name+3`, `2+name+3`; the method is `tag:X`, `name:X` or a bare name or glob.
_SELECTOR = re.compile(r"^(?:(?P<at>@)|(?P<up_depth>\d*)(?P<up>\+))?(?P<method>[^+@\s]+?)(?:(?P<down>\+)(?P<down_depth>\d*))?$")
_GLOB = re.compile(r"[*?\[]")

Edges = Mapping[str, Iterable[str]]


class SelectorSyntaxError(ValueError):
    """A selector that is not in dbt's grammar."""


@dataclass(frozen=True)
class Selector:
    """One selector: a method picking assets, then the graph operators applied to each of them.

    `up`/`down` are None for no operator, -1 for unlimited (`+`), or a depth (`2+`, `+3`);
    `at` is dbt's `@`: the assets, everything downstream, and every ancestor of those.
    """

    method: str  # "name" or "tag"
    value: str
    up: int | None = None
    down: int | None = None
    at: bool = False

    @classmethod
    def parse(cls, text: str) -> Selector:
        match = _SELECTOR.match(text)
        if not match or (match["at"] and match["down"]):
            raise SelectorSyntaxError(
                f"selector {text!r} is not valid: expected [@|N+|+]NAME|tag:TAG|GLOB[+|+N], e.g. +bars_daily, 2+pair_signals, tag:daily"
            )
        method, _, value = match["method"].rpartition(":")
        if method not in ("", "name", "tag"):
            raise SelectorSyntaxError(f"selector {text!r}: unknown method {method!r} (known: name:, tag:)")

        def depth(operator: str | None, digits: str | None) -> int | None:
            return None if not operator else (int(digits) if digits else -1)

        return cls(method or "name", value, depth(match["up"], match["up_depth"]),
                   depth(match["down"], match["down_depth"]), bool(match["at"]))


def within(edges: Edges, start: str, depth: int) -> set[str]:
    """Nodes reachable from `start` along `edges` in at most `depth` steps (-1: any number), without `start`."""
    seen: set[str] = set()
    frontier = {start}
    steps = 0
    while frontier and (depth < 0 or steps < depth):
        frontier = {n for node in frontier for n in edges.get(node, ())} - seen
        seen |= frontier
        steps += 1
    seen.discard(start)
    return seen


def resolve(
    expression: str,
    parents: Edges,
    tags: Mapping[str, Iterable[str]],
    unknown: Callable[[str], Exception],
) -> set[str]:
    """The assets `expression` selects: space-separated selectors are a union, commas inside one an intersection."""
    children: dict[str, set[str]] = {name: set() for name in parents}
    for name, deps in parents.items():
        for dep in deps:
            children[dep].add(name)
    chosen: set[str] = set()
    for selector in expression.split():
        parts = [p for p in selector.split(",") if p]
        if not parts:
            continue
        found = _one(Selector.parse(parts[0]), parents, children, tags, unknown)
        for part in parts[1:]:
            found &= _one(Selector.parse(part), parents, children, tags, unknown)
        chosen |= found
    return chosen


def _one(selector: Selector, parents: Edges, children: Edges, tags: Mapping[str, Iterable[str]], unknown) -> set[str]:
    if selector.method == "tag":
        seeds = {n for n, mine in tags.items() if any(fnmatchcase(t, selector.value) for t in mine)}
        if not seeds:
            raise unknown(f"no asset has tag {selector.value!r}")
    elif _GLOB.search(selector.value):
        seeds = {n for n in parents if fnmatchcase(n, selector.value)}
        if not seeds:
            raise unknown(f"no asset name matches {selector.value!r}")
    else:
        if selector.value not in parents:
            raise unknown(f"no asset named {selector.value!r}; known: {', '.join(sorted(parents))}")
        seeds = {selector.value}
    found = set(seeds)
    for seed in seeds:
        if selector.at:
            below = within(children, seed, -1) | {seed}
            found |= below | {a for b in below for a in within(parents, b, -1)}
            continue
        if selector.up is not None:
            found |= within(parents, seed, selector.up)
        if selector.down is not None:
            found |= within(children, seed, selector.down)
    return found
