"""The deployments of prefect.yaml as typed specs, and `quarry serve`: every schedule in one local process."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    timezone: str = "UTC"
    active: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of prefect.yaml: which flow, how it is scheduled, where it runs."""

    name: str
    entrypoint: str
    description: str = ""
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()
    work_pool: str = "quarry"

    @property
    def module(self) -> str:
        """`pipelines/flows.py:materialize_flow` -> `pipelines.flows`."""
        path = self.entrypoint.rsplit(":", 1)[0]
        return path.removesuffix(".py").replace("/", ".")

    @property
    def attribute(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]

    def load_flow(self):
        return getattr(importlib.import_module(self.module), self.attribute)


def load_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments declared in prefect.yaml, the one list both `prefect deploy` and `quarry serve` use."""
    document = yaml.safe_load(Path(path).read_text())
    specs = []
    for entry in document.get("deployments") or []:
        specs.append(
            DeploymentSpec(
                name=entry["name"], entrypoint=entry["entrypoint"], description=entry.get("description", ""),
                tags=tuple(entry.get("tags") or ()), parameters=dict(entry.get("parameters") or {}),
                schedules=tuple(
                    ScheduleSpec(s["cron"], s.get("timezone", "UTC"), s.get("active", True), dict(s.get("parameters") or {}))
                    for s in entry.get("schedules") or []
                ),
                work_pool=(entry.get("work_pool") or {}).get("name", "quarry"),
            )
        )
    return specs


def runner_deployments(specs: list[DeploymentSpec]) -> list:
    """Prefect runner deployments for `serve`, with the same schedules, parameters and tags as prefect.yaml."""
    from prefect.schedules import Cron

    return [
        spec.load_flow().to_deployment(
            name=spec.name, description=spec.description or None, tags=list(spec.tags), parameters=spec.parameters,
            schedules=[Cron(s.cron, timezone=s.timezone, active=s.active, parameters=s.parameters or None) for s in spec.schedules],
        )
        for spec in specs
    ]


def serve(path: Path = PREFECT_YAML, only: list[str] | None = None, limit: int | None = None) -> None:
    """Run every deployment's schedule in this process (each run a subprocess), until interrupted."""
    import prefect

    specs = [s for s in load_deployments(path) if not only or s.name in only]
    unknown = sorted(set(only or ()) - {s.name for s in specs})
    if unknown:
        raise ValueError(f"no deployment named {', '.join(unknown)} in {path}")
    prefect.serve(*runner_deployments(specs), limit=limit)
