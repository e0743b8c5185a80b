"""Quarry settings: one `Settings` with a section per part, and the only code that reads the environment.

Each section is a plain model; the warehouse, ledger and source sections are declared beside the
code that uses them, the sections of the pipelines layer here (so every pipelines module may import
this one, and this one imports nothing of `pipelines`). A section's default reads its variables
(`QUARRY_LEDGER_URL`, `ALPACA_API_KEY`, ...) from the environment and `.env`; a section passed in is
used as it is, so a test hands `Settings(ledger=LedgerConfig(url=...))` instead of setting variables.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings, DotEnvSettingsSource, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
)

from assets.sources.registry import AlpacaKeys, SourceConfig
from warehouse.lake import WarehouseConfig
from warehouse.ledger import LedgerConfig

__all__ = [
    "AlpacaKeys", "BrokerConfig", "LedgerConfig", "OpsConfig", "RiskLimits", "Settings", "SmtpConfig", "SourceConfig",
    "TradingConfig", "WarehouseConfig", "prefect_overrides", "redactor", "secret_values", "terminal_columns",
]


# ---- sections of the pipelines layer --------------------------------------------------------------


class BrokerConfig(BaseModel):
    """Which broker trades, and how the paper broker fills (the Alpaca keys are the account's, in `alpaca`)."""

    model_config = ConfigDict(frozen=True)

    name: Literal["paper", "alpaca"] = "paper"
    paper_url: str = Field("sqlite:///data/paper_broker.sqlite", description="Where the paper broker keeps its book.")
    initial_cash: float = 1_000_000.0
    slippage_bps: float = Field(2.0, ge=0)
    partial_fill_pct: float = Field(0.0, ge=0, le=1, description="Share of orders that fill only partly.")
    partial_fill_ratio: float = Field(0.5, gt=0, lt=1)
    reject_pct: float = Field(0.0, ge=0, le=1, description="Share of orders the paper broker rejects.")
    seed: int = 7
    alpaca_url: str | None = Field(None, description="Override of the Alpaca paper endpoint (a proxy or a stand-in).")
    http_timeout_seconds: float = Field(10.0, gt=0)
    request_attempts: int = Field(4, ge=1, description="Attempts per broker call before the cycle gives up.")
    retry_wait_seconds: float = Field(1.0, ge=0, description="First backoff between attempts; doubles, capped at 30 s.")


class RiskLimits(BaseModel):
    """Risk limits of the trading book; limits are inclusive."""

    model_config = ConfigDict(frozen=True)

    max_position_notional: float = Field(100_000.0, gt=0)
    max_pair_notional: float = Field(150_000.0, gt=0)
    max_gross_exposure_pct: float = Field(1.0, gt=0, description="Gross exposure over equity.")
    max_net_exposure_pct: float = Field(0.25, ge=0, description="|Net exposure| over equity.")
    max_open_pairs: int = Field(10, ge=0)
    max_daily_loss_pct: float = Field(0.02, ge=0, description="Loss since the session's first mark, over that equity.")
    max_drawdown_pct: float = Field(0.05, ge=0, description="Drawdown from the peak marked equity.")
    kill_switch: bool = Field(False, description="Block every new entry (exits still run).")


class TradingConfig(BaseModel):
    """How the trading flows run."""

    model_config = ConfigDict(frozen=True)

    check_market_clock: bool = Field(True, description="Skip a cycle when the broker says the market is closed.")
    order_timeout_minutes: float = Field(30.0, gt=0, description="Cancel the unfilled rest of an order after this.")
    half_fill_rule: str = Field("unwind", pattern="^(unwind|complete)$")
    unknown_order_grace_minutes: float = Field(
        5.0, gt=0, description="An order the broker still does not know this long after it was sent never reached it.")


class SmtpConfig(BaseModel):
    """The SMTP relay and who hears about what; unset `host` means email is off."""

    model_config = ConfigDict(frozen=True)

    host: str | None = None
    port: int = 587
    user: str | None = None
    password: SecretStr | None = None
    sender: str = "quarry@localhost"
    recipients: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Comma-separated addresses.")
    starttls: bool = True
    timeout_seconds: float = 20.0

    @field_validator("recipients", mode="before")
    @classmethod
    def _split_addresses(cls, value):
        if isinstance(value, str):
            return [address.strip() for address in value.split(",") if address.strip()]
        return value

    @property
    def configured(self) -> bool:
        return bool(self.host and self.recipients)


class OpsConfig(BaseModel):
    """Where maintenance writes and how long things are kept; the defaults suit the embedded setup."""

    model_config = ConfigDict(frozen=True)

    archive_dir: Path = Field(Path("archive"), description="Where archived versions are exported as Parquet.")
    backups_dir: Path = Field(Path("backups"), description="Where timestamped backups are written.")
    logs_dir: Path = Field(Path("logs"), description="Where the JSON run logs rotate.")
    retention_days: float = Field(
        90, ge=0, description="Superseded versions and DuckLake snapshots older than this are archived, then expired."
    )
    log_retention_days: float = Field(30, ge=0, description="Rotated log files older than this are deleted.")
    alerts_db: Path = Field(
        Path("data/alerts.sqlite"), description="Alert throttle state shared by every process."
    )
    alert_dedupe_minutes: float = Field(60, ge=0, description="An alert with the same key is emailed once per window.")
    alert_max_per_hour: int = Field(20, ge=1, description="At most this many alert emails leave in any hour.")
    prefect_api_url: str | None = Field(
        None, description="The Prefect API the health check probes; unset means ephemeral Prefect, not probed."
    )
    verify_sample: int = Field(
        200, ge=0, description="Published partitions the health flow re-verifies per run, least recently verified first."
    )
    stalled_run_minutes: float = Field(
        120, gt=0, description="A flow run Pending or Running longer than this is reported as stalled."
    )
    failed_run_lookback_minutes: float = Field(
        60, gt=0, description="How far back the health monitor looks for failed or crashed flow runs."
    )


# ---- where each section's variables are read ----------------------------------------------------------


def _read_from(*variables: str) -> Any:
    """A section field that is read from these variables (a provider's own name, an older name) instead of
    from the section's prefix plus the field's name."""
    return Field(None, validation_alias=AliasChoices(*variables))


def _env(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", populate_by_name=True)


class _WarehouseEnv(BaseSettings, WarehouseConfig):
    model_config = _env("QUARRY_")


class _SourceEnv(BaseSettings, SourceConfig):
    model_config = _env("QUARRY_")

    name: str = Field("sample", validation_alias=AliasChoices("QUARRY_SOURCE"))
    polygon_api_key: SecretStr | None = _read_from("POLYGON_API_KEY")


class _AlpacaEnv(BaseSettings, AlpacaKeys):
    model_config = _env("")

    api_key: SecretStr | None = _read_from("ALPACA_API_KEY", "QUARRY_BROKER_ALPACA_API_KEY")
    secret_key: SecretStr | None = _read_from("ALPACA_SECRET_KEY", "QUARRY_BROKER_ALPACA_SECRET_KEY")


class _LedgerEnv(BaseSettings, LedgerConfig):
    model_config = _env("QUARRY_LEDGER_")


class _BrokerEnv(BaseSettings, BrokerConfig):
    model_config = _env("QUARRY_BROKER_")

    alpaca_url: str | None = _read_from("QUARRY_ALPACA_TRADING_URL", "QUARRY_BROKER_ALPACA_URL")


class _RiskEnv(BaseSettings, RiskLimits):
    model_config = _env("QUARRY_RISK_")


class _TradingEnv(BaseSettings, TradingConfig):
    model_config = _env("QUARRY_TRADING_")


class _SmtpEnv(BaseSettings, SmtpConfig):
    model_config = _env("QUARRY_SMTP_")


class _OpsEnv(BaseSettings, OpsConfig):
    model_config = _env("QUARRY_")

    prefect_api_url: str | None = _read_from("QUARRY_PREFECT_API_URL", "PREFECT_API_URL")


def _section(reader: type[BaseSettings], section: type[BaseModel]):
    """The default of a section field: its variables read into the plain section model."""
    return Field(default_factory=lambda: section.model_validate(dict(reader())))


#: The root's fields that are sections: each reads its own variables, the root's QUARRY_* reader skips them
#: (`QUARRY_SOURCE` names the source, it is not the whole section).
SECTIONS = frozenset({"warehouse", "source", "alpaca", "ledger", "broker", "risk", "trading", "smtp", "ops"})


class _SkipSections:
    """An environment source for the root's run-level fields only."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in SECTIONS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _RunLevelEnv(_SkipSections, EnvSettingsSource):
    pass


class _RunLevelDotEnv(_SkipSections, DotEnvSettingsSource):
    pass


# ---- the one settings object --------------------------------------------------------------------------


class Settings(BaseSettings):
    """Everything configurable about a Quarry deployment; the defaults are the embedded setup."""

    model_config = SettingsConfigDict(env_prefix="QUARRY_", env_file=".env", extra="ignore")

    warehouse: WarehouseConfig = _section(_WarehouseEnv, WarehouseConfig)
    source: SourceConfig = _section(_SourceEnv, SourceConfig)
    alpaca: AlpacaKeys = _section(_AlpacaEnv, AlpacaKeys)
    ledger: LedgerConfig = _section(_LedgerEnv, LedgerConfig)
    broker: BrokerConfig = _section(_BrokerEnv, BrokerConfig)
    risk: RiskLimits = _section(_RiskEnv, RiskLimits)
    trading: TradingConfig = _section(_TradingEnv, TradingConfig)
    smtp: SmtpConfig = _section(_SmtpEnv, SmtpConfig)
    ops: OpsConfig = _section(_OpsEnv, OpsConfig)

    deployment: Literal["embedded", "team"] = Field(
        "embedded",
        description="Which set of resources: embedded (files on this machine) or team (PostgreSQL catalog and "
        "ledger, required).",
    )
    reports_dir: Path = Field(Path("reports"), description="Where run reports are written.")
    start_date: date = Field(date(2025, 1, 2), description="First session of the default window.")
    max_workers: int = Field(4, ge=1, description="Concurrent asset batches in one run.")
    batch_partitions: int = Field(
        260, ge=1, description="Partitions per task: a year of sessions is one Prefect task."
    )
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where batches run: a thread pool here, or a Dask cluster (large backfills)."
    )
    dask_address: str | None = Field(None, description="Scheduler of an existing Dask cluster; unset starts a local one.")
    dask_workers: int = Field(2, ge=1, description="Worker processes of the local Dask cluster.")
    prefect_startup_timeout_seconds: int = Field(
        180, ge=1,
        description="How long a run waits for Prefect's temporary server to start; Prefect's own 20 s is too "
        "short for a first run on a busy laptop. Unused when PREFECT_API_URL names a running server.",
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    clock: datetime | None = Field(
        None,
        description="Pretend it is this moment (ISO time with zone): runs, trading cycles and the sample market "
        "see only what had happened by then, so a trading day can be simulated. Unset: the wall clock.",
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _RunLevelEnv(settings_cls), _RunLevelDotEnv(settings_cls), file_secret_settings)

    def now(self) -> datetime:
        """The moment runs and cycles act at: the configured clock, else the wall clock (UTC)."""
        moment = self.clock or datetime.now(timezone.utc)
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def secret_values(self) -> list[str]:
        """Every secret-bearing setting's value (catalog and ledger passwords, provider, broker and SMTP keys)."""
        from warehouse.redaction import conninfo_password

        keys = [self.alpaca.api_key, self.alpaca.secret_key, self.source.polygon_api_key, self.smtp.password]
        passwords = [conninfo_password(self.warehouse.catalog), conninfo_password(self.ledger.url),
                     conninfo_password(self.ops.prefect_api_url)]
        return [k.get_secret_value() for k in keys if k is not None] + [p for p in passwords if p]


def secret_values(settings: Settings | None = None) -> list[str]:
    """Every configured secret's value, read once at the edge so the redactor can mask them by value wherever
    they show up, including forms no pattern recognises (an API key echoed in a provider's error body)."""
    return (settings or Settings()).secret_values()


def redactor(settings: Settings | None = None):
    """The redactor for this deployment: connection-string patterns plus every configured secret value."""
    from warehouse.redaction import Redactor

    return Redactor(secret_values(settings))


def prefect_overrides() -> dict:
    """Prefect settings every Quarry process runs with, for `prefect.settings.temporary_settings`: the embedded
    setup has no network, so Prefect's temporary server must not try to send telemetry (a variable set
    outside wins)."""
    from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED

    if "PREFECT_SERVER_ANALYTICS_ENABLED" in os.environ:
        return {}
    return {PREFECT_SERVER_ANALYTICS_ENABLED: False}


def terminal_columns() -> int | None:
    """`COLUMNS` when it is set to a number: the width a caller asked the console for."""
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else None
