"""The deployments of prefect.yaml as typed specs, and `quarry serve`: every schedule in one local process."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    work_pool: str = "ingestion"
    triggers: tuple[dict[str, Any], ...] = ()  # Prefect deployment triggers: runs started by events

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
                work_pool=(entry.get("work_pool") or {}).get("name", "ingestion"),
                triggers=tuple(dict(t) for t in entry.get("triggers") or ()),
            )
        )
    return specs


#: `quarry serve` names its deployments with this prefix, so it never touches the ones a worker was deployed with.
SERVE_PREFIX = "serve-"


class ServeError(ValueError):
    """What stops `quarry serve` before it starts, in one line."""


def runner_deployments(specs: list[DeploymentSpec], prefix: str = "") -> list:
    """Prefect runner deployments for `serve`, with the same schedules, parameters, tags and triggers as prefect.yaml.

    With `prefix`, every name (and every trigger naming a deployment) carries it.
    """
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    return [
        spec.load_flow().to_deployment(
            name=prefix + spec.name, description=spec.description or None, tags=list(spec.tags),
            parameters=spec.parameters,
            schedules=[Cron(s.cron, timezone=s.timezone, active=s.active, parameters=s.parameters or None) for s in spec.schedules],
            triggers=[DeploymentEventTrigger(**_prefixed(t, prefix)) for t in spec.triggers] or None,
        )
        for spec in specs
    ]


def _prefixed(trigger: dict[str, Any], prefix: str) -> dict[str, Any]:
    related = dict(trigger.get("match_related") or {})
    if prefix and related.get("prefect.resource.role") == "deployment" and "prefect.resource.name" in related:
        related["prefect.resource.name"] = prefix + related["prefect.resource.name"]
    return {**trigger, "match_related": related} if related else dict(trigger)


def served_specs(path: Path, only: list[str] | None) -> list[DeploymentSpec]:
    """The deployments to serve from `path`, or a one-line `ServeError`."""
    if not Path(path).is_file():
        raise ServeError(f"no prefect.yaml at {Path(path).resolve()} (run quarry serve from the project directory)")
    try:
        specs = load_deployments(path)
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise ServeError(f"{path}: not a readable list of deployments ({type(error).__name__}: {error})") from None
    unknown = sorted(set(only or ()) - {s.name for s in specs})
    if unknown:
        raise ServeError(f"no deployment named {', '.join(unknown)} in {path} (known: {', '.join(s.name for s in specs)})")
    return [s for s in specs if not only or s.name in only]


def serve(path: Path | None = None, only: list[str] | None = None, limit: int | None = None) -> None:
    """Run the schedules and triggers of prefect.yaml (the working directory's) in this process, until interrupted.

    With no Prefect API configured, a Prefect server is started for the purpose with its
    scheduler on (Prefect's own temporary server schedules nothing) and stopped on exit.
    Against a team server only the deployments named `serve-<name>` are created and
    served: the ones `prefect deploy` made are left as they are.
    """
    import prefect
    from prefect.settings import PREFECT_API_URL

    specs = served_specs(path or Path.cwd() / "prefect.yaml", only)
    deployments = runner_deployments(specs, SERVE_PREFIX)
    if PREFECT_API_URL.value():
        prefect.serve(*deployments, limit=limit)
        return
    from prefect.settings import temporary_settings

    with local_server() as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        prefect.serve(*deployments, limit=limit)


@contextmanager
def local_server(startup_seconds: float = 120.0) -> Iterator[str]:
    """A `prefect server start` on a free loopback port with its scheduler on, for as long as the block runs."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/api"
    prefect_cli = str(Path(sys.executable).with_name("prefect"))
    server = subprocess.Popen(
        [prefect_cli, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--scheduler", "--no-ui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if server.poll() is not None:
                raise ServeError(f"the local Prefect server exited with code {server.returncode} before it answered")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServeError(f"the local Prefect server did not answer within {startup_seconds:.0f} s")
            time.sleep(0.5)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
