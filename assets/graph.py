"""The asset graph: validation, dependency order and dbt-style selection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from assets.model import Asset


class GraphError(ValueError):
    """The declared assets do not form a valid graph."""


class SelectionError(ValueError):
    """A selection names something the graph does not have."""


@dataclass(frozen=True)
class AssetGraph:
    """An immutable, validated set of assets keyed by name."""

    assets: dict[str, Asset]

    @classmethod
    def of(cls, assets: Iterable[Asset]) -> AssetGraph:
        by_name: dict[str, Asset] = {}
        for declared in assets:
            if declared.name in by_name:
                raise GraphError(f"asset {declared.name!r} is declared twice")
            by_name[declared.name] = declared
        graph = cls(by_name)
        graph._validate()
        return graph

    def _validate(self) -> None:
        unknown = sorted(
            f"{a.name} -> {dep}" for a in self.assets.values() for dep in a.deps if dep not in self.assets
        )
        if unknown:
            raise GraphError(f"unknown dependencies: {', '.join(unknown)}")
        try:
            tuple(TopologicalSorter({a.name: a.deps for a in self.assets.values()}).static_order())
        except CycleError as cycle:
            path = " -> ".join(cycle.args[1])
            raise GraphError(f"dependency cycle: {path}") from None

    def __getitem__(self, name: str) -> Asset:
        try:
            return self.assets[name]
        except KeyError:
            raise SelectionError(f"no asset named {name!r}; known: {', '.join(sorted(self.assets))}") from None

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.in_order())

    def in_order(self, names: Iterable[str] | None = None) -> list[Asset]:
        """Assets in dependency order (upstream first), ties broken by name for a stable order."""
        wanted = set(self.assets if names is None else names)
        sorter = TopologicalSorter({a.name: a.deps for a in self.assets.values()})
        sorter.prepare()
        ordered: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            ordered.extend(ready)
            sorter.done(*ready)
        return [self.assets[n] for n in ordered if n in wanted]

    def upstream(self, name: str) -> set[str]:
        """Every asset `name` transitively depends on."""
        seen: set[str] = set()
        stack = list(self[name].deps)
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.assets[dep].deps)
        return seen

    def downstream(self, name: str) -> set[str]:
        """Every asset that transitively depends on `name`."""
        self[name]
        children: dict[str, set[str]] = {n: set() for n in self.assets}
        for a in self.assets.values():
            for dep in a.deps:
                children[dep].add(a.name)
        seen: set[str] = set()
        stack = list(children[name])
        while stack:
            child = stack.pop()
            if child not in seen:
                seen.add(child)
                stack.extend(children[child])
        return seen

    def select(self, selection: str | None, exclude: str | None = None) -> list[Asset]:
        """The assets a dbt-style selection picks, in dependency order; no selection means all.

        Space-separated selectors are a union, a comma inside one is an intersection; each is
        `name`, a glob (`indicators_*`), `tag:X`, with graph operators `+name` (and upstream),
        `name+` (and downstream), `2+name`/`name+1` (that many steps), `@name` (downstream and
        all their upstream). `exclude` (same grammar) is taken away afterwards.
        """
        from assets.selection import SelectorSyntaxError, resolve

        parents = {a.name: a.deps for a in self.assets.values()}
        tags = {a.name: a.tags for a in self.assets.values()}
        try:
            chosen = set(self.assets) if not selection or selection.strip() in ("", "*") else resolve(
                selection, parents, tags, SelectionError)
            if exclude and exclude.strip():
                chosen -= resolve(exclude, parents, tags, SelectionError)
        except SelectorSyntaxError as error:
            raise SelectionError(str(error)) from None
        if not chosen:
            raise SelectionError(f"the selection {selection or '*'!r}" + (f" without {exclude!r}" if exclude else "")
                                 + " selects no asset")
        return self.in_order(chosen)
