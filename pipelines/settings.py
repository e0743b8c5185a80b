"""Quarry settings, read once from QUARRY_* environment variables and an optional .env."""

from __future__ import annotations

from datetime import date
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
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
