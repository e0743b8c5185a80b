"""Staleness: which (asset, partition) pairs a run must build, and why, decided from the catalog alone."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from bisect import bisect_left
from datetime import date, datetime, timedelta, timezone

import polars as pl

from assets.calendar import sessions as exchange_sessions
from assets.fingerprint import changed_definitions
from assets.graph import AssetGraph
from assets.model import UNPARTITIONED, Asset

MISSING = "missing"
CODE_CHANGED = "code changed"
UPSTREAM_CHANGED = "upstream changed"
SOURCE_CHANGED = "source changed"
INCOMPLETE = "incomplete window"
NEW_SESSION = "new session"
FORCED = "forced"
UPSTREAM_PENDING = "upstream rebuilding"
PREVIOUS_PENDING = "previous partition rebuilding"
DUE = "due for refresh"
NEW_AT_SOURCE = "new data at source"
DAMAGED = "damaged in storage"
NEW_HOUR = "new hour in the open session"
#: Reasons that only say a source may have moved: a rebuild that finds the same data publishes no new version.
RECHECKS = frozenset({NEW_SESSION, NEW_AT_SOURCE, SOURCE_CHANGED})

#: How far back the run window keeps the calendar for look-backs (about two years of sessions).
HISTORY_DAYS = 750


@dataclass(frozen=True)
class RunWindow:
    """The sessions a run covers: the partition keys of every daily and weekly asset it touches.

    `history` holds earlier sessions too, for look-back arithmetic; `next_sessions` the few
    after the window, to tell a complete week from one still in progress. With `through`,
    the window's last session is still open: its partition is partial, built from the
    bars that ended by `through`, and republished as later hours arrive.
    """

    sessions: pl.DataFrame
    history: tuple[str, ...] = ()
    next_sessions: tuple[str, ...] = ()
    through: datetime | None = None

    @classmethod
    def between(cls, start: date, end: date, through: datetime | None = None) -> RunWindow:
        history = exchange_sessions(start - timedelta(days=HISTORY_DAYS), end)["session_date"].cast(pl.String)
        following = exchange_sessions(end + timedelta(days=1), end + timedelta(days=8))["session_date"].cast(pl.String)
        return cls(exchange_sessions(start, end), tuple(history.to_list()), tuple(following.to_list()), through)

    @property
    def partial_key(self) -> str | None:
        """The open session's partition key, when the window ends inside a session."""
        if self.through is None or self.sessions.is_empty():
            return None
        return self.partition_keys[-1]

    @property
    def partition_keys(self) -> list[str]:
        return self.sessions["session_date"].cast(pl.String).to_list()

    @property
    def week_keys(self) -> list[str]:
        """The last session of every complete week in the window: a weekly asset's partition keys."""
        last_in_week: dict[tuple[int, int], str] = {}
        for key in self.partition_keys:
            last_in_week[_iso_week(key)] = key
        still_open = {_iso_week(k) for k in self.next_sessions}
        return [key for week, key in last_in_week.items() if week not in still_open]

    @property
    def end_close(self) -> datetime | None:
        return self.sessions["close_ts"].max()

    def keys_for(self, asset: Asset) -> list[str]:
        if asset.partitions == "weekly":
            return self.week_keys
        return self.partition_keys if asset.is_partitioned else [UNPARTITIONED]

    def closes(self) -> dict[str, datetime]:
        return dict(zip(self.partition_keys, self.sessions["close_ts"].to_list()))

    def sessions_before(self, key: str, count: int) -> list[str]:
        """The `count` sessions before `key` (fewer at the start of the calendar)."""
        if count <= 0:
            return []
        at = bisect_left(self.history, key)
        return list(self.history[max(0, at - count) : at])

    def week_sessions(self, key: str) -> list[str]:
        """Sessions of the week ending on `key`, `key` included."""
        at = bisect_left(self.history, key)
        week = _iso_week(key)
        earlier = [k for k in self.history[max(0, at - 6) : at] if _iso_week(k) == week]
        return earlier + [key]


def _iso_week(key: str) -> tuple[int, int]:
    year, week, _ = date.fromisoformat(key).isocalendar()
    return year, week


@dataclass(frozen=True)
class PartitionWork:
    asset: str
    partition_key: str
    reason: str


@dataclass(frozen=True)
class AssetPlan:
    """What one asset needs: partitions to build (with reasons), up to date, and blocked by upstream."""

    asset: str
    to_build: tuple[PartitionWork, ...] = ()
    up_to_date: tuple[str, ...] = ()
    blocked: tuple[tuple[str, str], ...] = ()
    input_versions: dict[str, dict] = field(default_factory=dict)

    @property
    def is_noop(self) -> bool:
        return not self.to_build


@dataclass(frozen=True)
class CatalogState:
    """The slice of the catalog planning needs: published versions, latest attempts, recorded code digests."""

    published: pl.DataFrame
    latest: pl.DataFrame
    #: (asset, code version) -> that version's per-definition digests, to name what changed
    code_digests: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def published_map(self, asset: str) -> dict[str, dict]:
        rows = self.published.filter(pl.col("asset") == asset)
        return {row["partition_key"]: row for row in rows.iter_rows(named=True)}

    def code_change(self, asset: Asset, published_code_version: str) -> str:
        """Why a partition built with another code version is stale, naming the definitions that changed."""
        before = self.code_digests.get((asset.name, published_code_version))
        if before is None:
            return CODE_CHANGED
        changed = changed_definitions(before, asset.code_digests)
        if not changed:
            return CODE_CHANGED  # a pin moved, with the code as it was
        shown = ", ".join(changed[:3]) + (f" (+{len(changed) - 3} more)" if len(changed) > 3 else "")
        return f"{CODE_CHANGED}: {shown}"

    def quarantined_keys(self, asset: str) -> set[str]:
        rows = self.latest.filter((pl.col("asset") == asset) & (pl.col("status") == "quarantined"))
        return set(rows["partition_key"].to_list())

    def after(self, version_rows: pl.DataFrame) -> CatalogState:
        """The state once a batch's version rows have committed: a run keeps its catalog current in memory.

        Each row becomes its partition's latest attempt; a published one also replaces the
        partition's published version (a quarantined attempt leaves the published one in place).
        """
        if version_rows.is_empty():
            return self
        rows = version_rows.select(
            pl.col(name).cast(dtype) if name in version_rows.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in self.latest.schema.items()
        )
        published = rows.filter(pl.col("status") == "published")

        def replaced(frame: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
            if new.is_empty():
                return frame
            keys = new.select("asset", "partition_key")
            return pl.concat([frame.join(keys, on=["asset", "partition_key"], how="anti"), new], how="vertical")

        return replace(self, published=replaced(self.published, published), latest=replaced(self.latest, rows))


def input_keys(
    asset: Asset, dep: Asset, partition_key: str, published_dep_keys: list[str], window: RunWindow
) -> tuple[list[str], list[str]]:
    """Which partitions of `dep` partition `partition_key` of `asset` reads: (required, look-back).

    Required partitions must be published or the partition is blocked; look-back
    partitions are read when they exist (the start of history has none). A daily asset
    reads the latest weekly partition strictly before its own session, never the week
    it is in, so weekly statistics cannot leak the future into a day.
    """
    if not dep.is_partitioned:
        return [UNPARTITIONED], []
    if not asset.is_partitioned:
        return published_dep_keys, []
    look = asset.lookback.get(dep.name, 0)
    if dep.partitions == "weekly":
        if asset.partitions == "weekly":
            return [partition_key], []
        earlier = [k for k in published_dep_keys if k < partition_key]
        return earlier[-1:], []
    if asset.partitions == "weekly":
        week = window.week_sessions(partition_key)
        return [partition_key], week[:-1] if not look else window.sessions_before(partition_key, look)
    return [partition_key], window.sessions_before(partition_key, look)


def fingerprint(versions: list[dict]) -> str:
    """One data version standing for several upstream partitions."""
    if len(versions) == 1:
        return versions[0]["data_version"]
    text = "|".join(f"{v['partition_key']}={v['data_version']}" for v in sorted(versions, key=lambda v: v["partition_key"]))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def upstream_record(versions: list[dict]) -> dict:
    """What a version records of one upstream it read (`versions` in partition order).

    One partition is named with its version id. A look-back is its first and last
    partition, how many it read and one fingerprint of their version ids: a row stays a
    few dozen bytes whatever the window, and the partitions read are exactly the
    upstream's published partitions from `first` to `last`.
    """
    if len(versions) == 1:
        only = versions[0]
        return {"data_version": only["data_version"], "versions": [only["version_id"]], "partitions": [only["partition_key"]]}
    ids = "|".join(v["version_id"] for v in versions)
    return {
        "data_version": fingerprint(versions),
        "first": versions[0]["partition_key"],
        "last": versions[-1]["partition_key"],
        "count": len(versions),
        "versions_fingerprint": hashlib.sha256(ids.encode()).hexdigest()[:32],
    }


def partition_spans(records: list[dict]) -> list[tuple[str, str]]:
    """The upstream partitions several records read, as disjoint inclusive (first, last) key ranges."""
    spans = sorted(
        (r["first"], r["last"]) if "first" in r else (min(r["partitions"]), max(r["partitions"]))
        for r in records if "first" in r or r.get("partitions")
    )
    merged: list[tuple[str, str]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def plan_asset(
    graph: AssetGraph,
    asset: Asset,
    state: CatalogState,
    window: RunWindow,
    *,
    full_refresh: bool = False,
    source_identity: str | None = None,
    now: datetime | None = None,
    pending_upstream: dict[str, set[str]] | None = None,
    watermark: str | None = None,
    repair: bool = False,
    blocked_upstream: dict[str, set[str]] | None = None,
) -> AssetPlan:
    """Decide, per partition in the window, whether `asset` must be built and why.

    A partition is rebuilt when missing, when its code version changed, when an upstream
    published a different data version than the one it was built from, or (for a source
    asset) when the source changed, its session was still open when it was fetched, or
    (unpartitioned) the run's window now ends on a later session.
    Upstream partitions with no published version, or whose latest attempt was
    quarantined, block it. `pending_upstream` names upstream partitions this run will
    rebuild first (used to plan without building). A partition `quarry verify` found damaged
    is rebuilt only by a repair run (which first takes its files out of the table); any
    other run, a full refresh included, leaves it blocked rather than touch its files.
    """
    pending_upstream = pending_upstream or {}
    # partitions this run blocked upstream (below a quarantine): their published rows are the old
    # data, so building on them, under --full-refresh too, would mix old and new
    blocked_upstream = blocked_upstream or {}
    own = state.published_map(asset.name)
    deps = [graph[d] for d in asset.deps]
    dep_published = {d.name: state.published_map(d.name) for d in deps}
    dep_quarantined = {d.name: state.quarantined_keys(d.name) for d in deps}
    dep_published_keys = {name: sorted(published) for name, published in dep_published.items()}
    closes = window.closes()
    to_build: list[PartitionWork] = []
    up_to_date: list[str] = []
    blocked: list[tuple[str, str]] = []
    input_versions: dict[str, dict] = {}

    own_keys = sorted(own)
    cascading = False
    code_changes: dict[str, str] = {}
    for key in window.keys_for(asset):
        inputs: dict[str, dict] = {}
        pending = False
        block_reason = None
        for dep in deps:
            required, optional = input_keys(asset, dep, key, dep_published_keys[dep.name], window)
            dep_pending = pending_upstream.get(dep.name, set())
            if any(k in dep_pending for k in required + optional) or (not asset.is_partitioned and dep_pending):
                pending = True
                continue
            bad = [k for k in required if k in dep_quarantined[dep.name]]
            absent = [k for k in required if k not in dep_published[dep.name]]
            held = [k for k in required if k in blocked_upstream.get(dep.name, ())]
            if bad:
                block_reason = f"upstream {dep.name} {bad[0]} quarantined"
                break
            if held:
                block_reason = f"upstream {dep.name} {held[0]} blocked"
                break
            if absent or not required:
                block_reason = f"upstream {dep.name} {absent[0] if absent else ''} not published".replace("  ", " ")
                break
            keys = sorted(set(required) | {k for k in optional if k in dep_published[dep.name]})
            inputs[dep.name] = upstream_record([dep_published[dep.name][k] for k in keys])
        if block_reason:
            blocked.append((key, block_reason))
            continue
        if asset.is_source and source_identity is not None:
            inputs["@source"] = {"data_version": source_identity, "versions": []}
        if asset.is_source and not asset.is_partitioned and asset.refresh_every is None and watermark is None:
            # refetched on each new session, unless a watermark tells when the source changed
            inputs["@window"] = {"data_version": window.partition_keys[-1] if window.partition_keys else "", "versions": []}
        if asset.is_source and asset.is_partitioned and key == window.partial_key:
            inputs["@through"] = {"data_version": window.through.isoformat(), "versions": []}
        if watermark is not None:
            inputs["@watermark"] = {"data_version": watermark, "versions": []}
        if asset.is_stateful:
            inputs["@previous"] = _previous_partition(own, own_keys, key)
        input_versions[key] = inputs
        if (own.get(key) or {}).get("damaged_at") is not None:
            if repair:
                to_build.append(PartitionWork(asset.name, key, DAMAGED))
                cascading = asset.is_stateful
            else:
                blocked.append((key, "damaged in storage: run `quarry materialize --repair`"))
            continue
        reason = _staleness(asset, own.get(key), inputs, closes.get(key), full_refresh, pending, now)
        if reason == CODE_CHANGED:
            published_code = own[key]["code_version"]
            if published_code not in code_changes:
                code_changes[published_code] = state.code_change(asset, published_code)
            reason = code_changes[published_code]
        if asset.is_stateful and cascading and not reason:
            reason = PREVIOUS_PENDING
        if reason:
            to_build.append(PartitionWork(asset.name, key, reason))
            cascading = asset.is_stateful
        else:
            up_to_date.append(key)
    return AssetPlan(asset.name, tuple(to_build), tuple(up_to_date), tuple(blocked), input_versions)


def _previous_partition(own: dict[str, dict], own_keys: list[str], key: str) -> dict:
    """The published partition a stateful asset resumes from: its latest one before `key`."""
    at = bisect_left(own_keys, key)
    if at == 0:
        return {"data_version": "", "versions": [], "partitions": []}
    previous = own[own_keys[at - 1]]
    return {"data_version": previous["data_version"], "versions": [previous["version_id"]], "partitions": [own_keys[at - 1]]}


def _staleness(
    asset: Asset,
    published: dict | None,
    inputs: dict[str, dict],
    session_close: datetime | None,
    full_refresh: bool,
    pending: bool,
    now: datetime | None,
) -> str | None:
    if full_refresh:
        return FORCED
    if published is None:
        return MISSING
    if published["code_version"] != asset.code_version:
        return CODE_CHANGED
    if pending:
        return UPSTREAM_PENDING
    recorded = json.loads(published["upstream_versions"] or "{}")
    if "@source" in inputs and recorded.get("@source", {}).get("data_version") != inputs["@source"]["data_version"]:
        return SOURCE_CHANGED
    if "@window" in inputs and recorded.get("@window", {}).get("data_version") != inputs["@window"]["data_version"]:
        return NEW_SESSION
    if "@watermark" in inputs and recorded.get("@watermark", {}).get("data_version") != inputs["@watermark"]["data_version"]:
        return NEW_AT_SOURCE
    for name, current in inputs.items():
        if (not name.startswith("@") or name == "@previous") and recorded.get(name, {}).get(
            "data_version"
        ) != current["data_version"]:
            return UPSTREAM_CHANGED
    if asset.is_source and asset.is_partitioned:
        built_through = recorded.get("@through", {}).get("data_version")
        if "@through" in inputs:
            if built_through != inputs["@through"]["data_version"]:
                return NEW_HOUR
        elif built_through is not None:
            return INCOMPLETE
        elif session_close is not None and published["created_at"] < session_close:
            return INCOMPLETE
    if asset.refresh_every is not None and published["created_at"] + asset.refresh_every <= (now or datetime.now(timezone.utc)):
        return DUE
    return None


def plan_selection(
    graph: AssetGraph,
    selected: list[Asset],
    state: CatalogState,
    window: RunWindow,
    *,
    full_refresh: bool = False,
    source_identity: str | None = None,
    repair: bool = False,
    resources: Mapping[str, object] | None = None,
) -> list[AssetPlan]:
    """Plan every selected asset in dependency order, assuming upstream rebuilds change their data.

    `resources` are what a watermark asks (the ledger), by name."""
    pending: dict[str, set[str]] = {}
    held: dict[str, set[str]] = {}
    plans = []
    for asset in selected:
        plan = plan_asset(
            graph, asset, state, window,
            full_refresh=full_refresh, source_identity=source_identity, pending_upstream=pending,
            watermark=watermark_of(asset, resources or {}), repair=repair, blocked_upstream=held,
        )
        pending[asset.name] = {w.partition_key for w in plan.to_build}
        held[asset.name] = {key for key, _ in plan.blocked}
        plans.append(plan)
    return plans


class MissingResource(LookupError):
    """An asset reads a resource the run was not given."""


def watermark_of(asset: Asset, resources: Mapping[str, object]) -> str | None:
    """The asset's watermark, asked of the resource it reads; None for an asset without one."""
    if asset.watermark is None:
        return None
    return asset.watermark(handed_resource(asset, resources))


def handed_resource(asset: Asset, resources: Mapping[str, object]) -> object:
    """The resource an asset's fetch and watermark are handed, by the name it `reads` (the market `source`,
    the trading `ledger`); an asset whose resource the run was not given is an error, not a guess."""
    if asset.reads not in resources:
        raise MissingResource(f"{asset.name} reads the {asset.reads!r} resource, which this run was not given")
    return resources[asset.reads]
