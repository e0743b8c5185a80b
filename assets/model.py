"""Asset declarations: what an asset is built from, how it is partitioned, and what it promises."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from datetime import timedelta
from typing import Any, Literal, Protocol

import polars as pl

from assets.fingerprint import code_digests, combined_digest, metadata_digest

Severity = Literal["error", "warn"]
PartitionKind = Literal["daily", "weekly", "none"]
UNPARTITIONED = "all"

#: Inputs a transform may ask for by parameter name that are not upstream assets.
CONTEXT_INPUTS = frozenset({"fetched", "sessions", "previous", "partition_keys"})


def imported(reference: str) -> Any:
    """The object a `"module:name"` reference names, imported on first use."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def empty_frame(contract: str) -> pl.DataFrame:
    """No rows, with the columns and dtypes of the contract a `"module:Model"` reference names, in its order.

    A transform with nothing to return answers with this, so an empty partition has the
    published table's shape without a schema written out again beside the contract.
    """
    return pl.DataFrame(schema=_contract_schema(contract))


@cache
def _contract_schema(contract: str) -> pl.Schema:
    """The columns and dtypes of a contract, worked out once: Pandera takes about 10 ms to build an empty frame,
    and `conformed` asks for one on every partition a maths module returns."""
    return imported(contract).empty().schema


def conformed(frame: pl.DataFrame, contract: str) -> pl.DataFrame:
    """`frame` with the columns of the contract a `"module:Model"` reference names, in its order and dtypes.

    A maths module computes its columns under their published names and leaves their order
    and dtypes to the contract, so its asset conforms the result here; no rows is `empty_frame`.
    """
    schema = _contract_schema(contract)
    if frame.is_empty():
        return pl.DataFrame(schema=schema)
    return frame.select(schema.names()).cast(schema)


@dataclass(frozen=True)
class Check:
    """A named cross-row check; `find_failures` returns the failing rows (empty when it passes).

    The failing rows must carry the asset's `partition_key` column so a failure is
    attributed to the partition it belongs to. Like a contract, the function may be named
    by a `"module:function"` string (`"quality.checks:missing_bars"`), imported when audited,
    so an asset module declares its checks without importing `quality/`.
    """

    name: str
    severity: Severity
    find_failures: Callable[[pl.DataFrame], pl.DataFrame] | str
    description: str = ""

    def failures(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of `frame` that fail this check."""
        find = imported(self.find_failures) if isinstance(self.find_failures, str) else self.find_failures
        return find(frame)


class Fetch(Protocol):
    """How a source asset asks the outside world for its window of data."""

    def __call__(self, source: Any, window: Any) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Asset:
    """A versioned, materialized table: its upstreams, partitions, contract, checks and code version."""

    name: str
    description: str
    transform: Callable[..., pl.DataFrame]
    deps: tuple[str, ...] = ()
    partitions: PartitionKind = "none"
    contract: type | str | None = None
    checks: tuple[Check, ...] = ()
    grain: tuple[str, ...] = ()
    time_column: str | None = None
    freshness: timedelta | None = None
    tags: frozenset[str] = frozenset()
    params: Mapping[str, Any] = field(default_factory=dict)
    fetch: Fetch | None = None
    pinned_code_version: str | None = None
    lookback: Mapping[str, int] = field(default_factory=dict)
    refresh_every: timedelta | None = None
    watermark: Callable[[Any], str] | None = None
    output: str | None = None
    #: The outside resource the fetch and the watermark are handed: the market `source`, or the trading `ledger`.
    reads: str = "source"

    @cached_property
    def contract_model(self) -> type | None:
        """The Pandera model; a `"module:Class"` reference is imported on first use, so planning never loads Pandera."""
        return imported(self.contract) if isinstance(self.contract, str) else self.contract

    @property
    def contract_name(self) -> str | None:
        if isinstance(self.contract, str):
            return self.contract.partition(":")[2]
        return self.contract.__name__ if self.contract is not None else None

    @property
    def is_partitioned(self) -> bool:
        return self.partitions != "none"

    @cached_property
    def is_stateful(self) -> bool:
        """A stateful transform continues from its own previous partition (passed as `previous`).

        Recursive indicators and signal state machines are exact only when every day
        resumes from the day before, so a rebuild cascades forward in one ordered batch.
        """
        return "previous" in self.context_inputs

    @property
    def is_source(self) -> bool:
        """A source asset reads from outside; its data can only go stale by the clock."""
        return self.fetch is not None

    @cached_property
    def context_inputs(self) -> tuple[str, ...]:
        names = inspect.signature(self.transform).parameters
        return tuple(name for name in names if name in CONTEXT_INPUTS)

    @cached_property
    def code_digests(self) -> dict[str, str]:
        """Digests of everything that computes the rows: the transform (and fetch), every project
        function, class and constant they reach, the parameters and look-backs (see `assets.fingerprint`)."""
        roots = [self.transform] + ([self.fetch] if self.fetch is not None else [])
        return code_digests(roots, {"params": dict(self.params), "lookback": dict(self.lookback)})

    @cached_property
    def code_version(self) -> str:
        """One digest of `code_digests`, unless pinned: a change to it rebuilds the asset's data.

        Pinning lets a refactor that cannot change data avoid a full rebuild.
        """
        if self.pinned_code_version:
            return self.pinned_code_version
        return combined_digest(self.code_digests)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """What describes the asset without changing its rows; a change is recorded, never rebuilt."""
        return {
            "description": self.description,
            "grain": list(self.grain),
            "time_column": self.time_column,
            "tags": sorted(self.tags),
            "freshness_seconds": self.freshness.total_seconds() if self.freshness else None,
            "refresh_every_seconds": self.refresh_every.total_seconds() if self.refresh_every else None,
            "contract": self.contract_name,
            "checks": [{"name": c.name, "severity": c.severity, "description": c.description} for c in self.checks],
        }

    @cached_property
    def metadata_hash(self) -> str:
        return metadata_digest(self.metadata)

    @property
    def computation(self) -> str:
        """What runs to build this asset: the transform's name, shared by the outputs of a multi-asset."""
        return self.transform.__qualname__

    def compute(self, inputs: Mapping[str, pl.DataFrame]) -> pl.DataFrame | Mapping[str, pl.DataFrame]:
        """Run the transform on named input frames (the params as keyword arguments): one frame, or a multi-asset's all."""
        return self.transform(**inputs, **self.params)

    def build(self, inputs: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        """This asset's frame from named input frames."""
        computed = self.compute(inputs)
        return computed[self.output] if self.output is not None else computed


def _upstream_names(transform: Callable) -> tuple[str, ...]:
    """A transform's positional parameters that are not context inputs: the upstream assets it reads."""
    parameters = inspect.signature(transform).parameters.values()
    return tuple(
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in CONTEXT_INPUTS
    )


def asset(
    *,
    partitions: PartitionKind = "none",
    contract: type | str | None = None,
    checks: tuple[Check, ...] = (),
    grain: tuple[str, ...] = (),
    time_column: str | None = None,
    freshness: timedelta | None = None,
    tags: tuple[str, ...] = (),
    params: Mapping[str, Any] | None = None,
    fetch: Fetch | None = None,
    name: str | None = None,
    code_version: str | None = None,
    lookback: Mapping[str, int] | None = None,
    refresh_every: timedelta | None = None,
    watermark: Callable[[Any], str] | None = None,
    reads: str = "source",
) -> Callable[[Callable[..., pl.DataFrame]], Asset]:
    """Declare an asset from its transform; positional parameters name the upstream assets.

    The description is the transform's docstring and must state the grain ("One row per ...").
    `lookback` names upstreams read with that many earlier sessions alongside each partition
    (a rolling window's warm-up), which do not block a partition when they are missing.
    `refresh_every` gives an unpartitioned source asset its own cadence (weekly fundamentals):
    it is refetched when its last fetch is that old, not on every new session.
    `watermark` is a cheap probe of a source that changes under us (the trading ledger):
    when its answer differs from the one recorded at the last build, the asset is stale.
    `reads` names the resource the fetch and the watermark are handed (the market `source` unless
    said otherwise): the engine hands it, so no asset opens a connection itself.
    """

    def declare(transform: Callable[..., pl.DataFrame]) -> Asset:
        deps = _upstream_names(transform)
        description = inspect.getdoc(transform) or ""
        if not description.startswith("One row per"):
            raise ValueError(f"asset {transform.__name__}: description must state its grain ('One row per ...')")
        return Asset(
            name=name or transform.__name__,
            description=description,
            transform=transform,
            deps=deps,
            partitions=partitions,
            contract=contract,
            checks=checks,
            grain=grain,
            time_column=time_column,
            freshness=freshness,
            tags=frozenset(tags),
            params=dict(params or {}),
            fetch=fetch,
            pinned_code_version=code_version,
            lookback=dict(lookback or {}),
            refresh_every=refresh_every,
            watermark=watermark,
            reads=reads,
        )

    return declare


@dataclass(frozen=True)
class AssetOut:
    """One table a multi-asset publishes: its grain statement, contract, checks and grain key."""

    description: str
    contract: type | str | None = None
    checks: tuple[Check, ...] = ()
    grain: tuple[str, ...] = ()


def multi_asset(
    *,
    outputs: Mapping[str, AssetOut],
    tags: tuple[str, ...] = (),
    params: Mapping[str, Any] | None = None,
    freshness: timedelta | None = None,
) -> Callable[[Callable[..., Mapping[str, pl.DataFrame]]], tuple[Asset, ...]]:
    """Declare several assets computed together, as Dagster's `multi_asset`: one run of the transform, several tables.

    The transform returns a mapping from output name to frame; each output is an asset of
    its own (versions, contract, checks, staleness), and the engine computes the transform
    once for all the outputs it builds and publishes them in one transaction. Outputs are
    unpartitioned.
    """

    def declare(transform: Callable[..., Mapping[str, pl.DataFrame]]) -> tuple[Asset, ...]:
        declared = []
        for name, out in outputs.items():
            if not out.description.startswith("One row per"):
                raise ValueError(f"asset {name}: description must state its grain ('One row per ...')")
            declared.append(Asset(
                name=name, description=out.description, transform=transform, deps=_upstream_names(transform),
                contract=out.contract, checks=out.checks, grain=out.grain, freshness=freshness,
                tags=frozenset(tags), params=dict(params or {}), output=name,
            ))
        return tuple(declared)

    return declare
