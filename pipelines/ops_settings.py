"""Operations settings (retention, backups, logs, alert throttling), read once from QUARRY_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpsSettings(BaseSettings):
    """Where maintenance writes and how long things are kept; the defaults suit the embedded setup."""

    model_config = SettingsConfigDict(env_prefix="QUARRY_", env_file=".env", extra="ignore", populate_by_name=True)

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
        None,
        validation_alias=AliasChoices("QUARRY_PREFECT_API_URL", "PREFECT_API_URL"),
        description="The Prefect API the health check probes; unset means ephemeral Prefect, not probed.",
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
