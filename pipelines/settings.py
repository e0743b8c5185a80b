"""Quarry settings, read once from QUARRY_* environment variables and an optional .env."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable about a Quarry deployment; the defaults are the embedded setup."""

    model_config = SettingsConfigDict(env_prefix="QUARRY_", env_file=".env", extra="ignore")

    catalog: str = Field(
        "sqlite:data/catalog.sqlite",
        description="DuckLake catalog: 'sqlite:PATH', 'postgres:CONNINFO' or 'duckdb:PATH'.",
    )
    data_path: str = Field("data/lake/", description="Where DuckLake writes Parquet data files.")
    source: str = Field("sample", description="Market-data source: sample, alpaca, polygon or yahoo.")
    reports_dir: Path = Field(Path("reports"), description="Where run reports are written.")

    start_date: date = Field(date(2025, 1, 2), description="First session of the default window.")
    sample_seed: int = Field(7, description="Seed of the offline sample market.")
    sample_symbols: int = Field(20, ge=4, le=2000, description="Universe size of the sample market.")

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

    def now(self) -> datetime:
        """The moment runs and cycles act at: the configured clock, else the wall clock (UTC)."""
        moment = self.clock or datetime.now(timezone.utc)
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def secret_values() -> list[str]:
    """Every secret-bearing setting's value (catalog and ledger passwords, provider, broker and SMTP keys).

    Read once at the edge so the redactor can mask them by value wherever they show up,
    including forms no pattern recognises (an API key echoed in a provider's error body).
    """
    from assets.sources.registry import SourceSettings
    from pipelines.notify import SmtpSettings
    from pipelines.ops_settings import OpsSettings
    from pipelines.trading.brokers import BrokerSettings
    from warehouse.ledger import LedgerSettings
    from warehouse.redaction import conninfo_password

    source, broker, smtp = SourceSettings(), BrokerSettings(), SmtpSettings()
    keys = [source.alpaca_api_key, source.alpaca_secret_key, source.polygon_api_key,
            broker.alpaca_api_key, broker.alpaca_secret_key, smtp.password]
    passwords = [conninfo_password(Settings().catalog), conninfo_password(LedgerSettings().url),
                 conninfo_password(OpsSettings().prefect_api_url)]
    return [k.get_secret_value() for k in keys if k is not None] + [p for p in passwords if p]


def redactor():
    """The redactor for this deployment: connection-string patterns plus every configured secret value."""
    from warehouse.redaction import Redactor

    return Redactor(secret_values())
