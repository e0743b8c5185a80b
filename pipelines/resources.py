"""The outside systems a process works with, built once from the settings: warehouse, source, ledger, broker,
notifier.

Two sets, chosen by `QUARRY_DEPLOYMENT` in the manner of resources by deployment: `embedded`
(files on this machine, the default) and `team` (a PostgreSQL catalog and ledger, required).
Everything below the pipelines layer receives these objects; none builds them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pipelines.settings import Settings
from warehouse import Warehouse
from warehouse.ledger import LedgerConfig

if TYPE_CHECKING:
    from assets.sources import Source
    from pipelines.brokers import BrokerMaker
    from pipelines.notify import Alert, Notifier
    from warehouse.ledger import Ledger


class DeploymentError(ValueError):
    """The settings do not give what the chosen deployment needs; the message names the setting."""


def _team_problems(settings: Settings) -> list[str]:
    """A team shares one PostgreSQL catalog and one PostgreSQL ledger."""
    import sqlalchemy as sa

    problems = []
    if not settings.warehouse.catalog.startswith("postgres:"):
        problems.append(f"QUARRY_CATALOG must name a PostgreSQL catalog ('postgres:CONNINFO'), "
                        f"not {settings.warehouse.catalog.partition(':')[0]!r}")
    if not settings.ledger.connector_block and sa.make_url(settings.ledger.url).get_backend_name() != "postgresql":
        problems.append("QUARRY_LEDGER_URL must name a PostgreSQL ledger ('postgresql+psycopg://...'), "
                        "or QUARRY_LEDGER_CONNECTOR_BLOCK a connector block")
    return problems


#: What each deployment requires of the settings: the problems it finds (none: the set can be built).
DEPLOYMENTS: dict[str, Callable[[Settings], list[str]]] = {
    "embedded": lambda settings: [],
    "team": _team_problems,
}


class LedgerOnUse:
    """The ledger, opened (and migrated) on first use, so a run that never reads it neither creates nor migrates it.

    It travels to another process (a Dask worker) as its address and opens there.
    """

    def __init__(self, config: LedgerConfig):
        self.config = config
        self._opened: Ledger | None = None

    def open(self) -> Ledger:
        if self._opened is None:
            from warehouse.ledger import Ledger

            self._opened = Ledger.open(self.config)
        return self._opened

    def pair_trade_marks(self) -> list[dict[str, Any]]:
        return self.open().pair_trade_marks()

    def pair_trade_statuses(self) -> dict[str, str]:
        return self.open().pair_trade_statuses()

    def __getstate__(self) -> dict:
        return {"config": self.config, "_opened": None}


@dataclass
class Resources:
    """One process's resources: built once from `Settings` and handed to flows, runs and commands."""

    settings: Settings
    ledger_on_use: LedgerOnUse = field(init=False)

    def __post_init__(self) -> None:
        self.ledger_on_use = LedgerOnUse(self.settings.ledger)

    @classmethod
    def from_settings(cls, settings: Settings) -> Resources:
        """The deployment's set of resources; a setting the deployment needs and lacks is an error naming it."""
        problems = DEPLOYMENTS[settings.deployment](settings)
        if problems:
            raise DeploymentError(f"QUARRY_DEPLOYMENT={settings.deployment}: " + "; ".join(problems))
        return cls(settings)

    def warehouse(self, read_only: bool = False) -> Warehouse:
        """The warehouse, opened now; use it in a `with` block, which closes it."""
        return self.settings.warehouse.open(read_only=read_only)

    @cached_property
    def source(self) -> Source:
        """The market-data source, built on first use; `sample` needs no keys and no network."""
        from assets.sources.registry import build_source

        settings = self.settings
        return build_source(settings.source, settings.alpaca, clock=settings.now() if settings.clock else None)

    @property
    def ledger(self) -> Ledger:
        """The trading ledger, opened and migrated on first use."""
        return self.ledger_on_use.open()

    @cached_property
    def brokers(self) -> BrokerMaker:
        """The configured broker, made per trading cycle (the paper book fills at that cycle's validated prices)."""
        from pipelines.brokers import BrokerMaker

        return BrokerMaker(self.settings.broker, self.settings.alpaca)

    @property
    def engine_resources(self) -> Mapping[str, object]:
        """What the engine hands the assets that read outside resources other than the market source."""
        return {"ledger": self.ledger_on_use}

    def notifier(self, record_alert: Callable[[Alert], None] | None = None) -> Notifier:
        """The configured notifier; alert rows go to the ledger unless `record_alert` says otherwise."""
        from pipelines.notify import Notifier

        return Notifier.from_settings(self.settings, record_alert)
