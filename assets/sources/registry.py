"""Build the configured market-data source from typed settings: keys, endpoints, feed, rate limits, universe."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from assets.sources.base import Source, SourceError
from assets.sources.universe_file import DEFAULT_UNIVERSE_FILE, read_universe

if TYPE_CHECKING:  # resilience imports requests, which only the real connectors need
    from assets.sources.resilience import RequestPolicy

SOURCES = ("sample", "alpaca", "polygon", "yahoo")
#: Prefect Secret blocks consulted, when enabled, for a key whose environment variable is unset.
SECRET_BLOCKS = {"ALPACA_API_KEY": "alpaca-api-key", "ALPACA_SECRET_KEY": "alpaca-secret-key",
                 "POLYGON_API_KEY": "polygon-api-key"}


class SourceSettings(BaseSettings):
    """What the real connectors need; keys keep their providers' usual variable names."""

    model_config = SettingsConfigDict(env_prefix="QUARRY_", env_file=".env", extra="ignore", populate_by_name=True)

    alpaca_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("ALPACA_API_KEY", "alpaca_api_key"))
    alpaca_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_SECRET_KEY", "alpaca_secret_key")
    )
    polygon_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("POLYGON_API_KEY", "polygon_api_key")
    )
    alpaca_data_url: str = Field("https://data.alpaca.markets", description="Alpaca market-data endpoint.")
    alpaca_trading_url: str = Field("https://paper-api.alpaca.markets", description="Alpaca trading endpoint.")
    polygon_url: str = Field("https://api.polygon.io", description="Polygon REST endpoint.")
    alpaca_feed: str = Field("iex", description="Alpaca data feed: iex (free) or sip.")
    alpaca_adjustment: str = Field("raw", description="Alpaca price adjustment; raw keeps prices as traded.")
    alpaca_requests_per_minute: float = Field(180.0, gt=0)
    polygon_requests_per_minute: float = Field(5.0, gt=0, description="Polygon's free tier allows 5 a minute.")
    yahoo_requests_per_minute: float = Field(60.0, gt=0)
    source_timeout_s: float = Field(30.0, gt=0, description="HTTP timeout of one provider request.")
    source_max_attempts: int = Field(5, ge=1, description="Attempts per request on timeouts, 429 and 5xx.")
    universe_file: Path = Field(DEFAULT_UNIVERSE_FILE, description="CSV of symbol, sector, active_from, active_to.")
    secret_blocks: bool = Field(False, description="Read missing keys from Prefect Secret blocks.")
    sample_seed: int = 7
    sample_symbols: int = 20

    def policy(self) -> RequestPolicy:
        from assets.sources.resilience import RequestPolicy

        return RequestPolicy(max_attempts=self.source_max_attempts, timeout_s=self.source_timeout_s)


def require(value: SecretStr | None, variable: str, settings: SourceSettings, source: str) -> SecretStr:
    """The key, from the environment or (when enabled) its Prefect Secret block; a clear error when neither has it."""
    if value is not None and value.get_secret_value():
        return value
    if settings.secret_blocks:
        from_block = secret_from_block(SECRET_BLOCKS[variable])
        if from_block is not None:
            return from_block
    where = f" or the Prefect Secret block {SECRET_BLOCKS[variable]!r}" if settings.secret_blocks else ""
    raise SourceError(f"QUARRY_SOURCE={source} needs {variable}: set it in the environment or .env{where}")


def secret_from_block(block_name: str) -> SecretStr | None:
    try:
        from prefect.blocks.system import Secret

        return SecretStr(str(Secret.load(block_name).get()))
    except (ValueError, ImportError):  # no such block
        return None


def build_source(name: str, settings: SourceSettings, clock: datetime | None = None) -> Source:
    """The source called `name`, configured from `settings`; `sample` needs nothing and plays its market up to `clock`."""
    if name == "sample":
        from assets.sources.sample import SampleSource

        return SampleSource(seed=settings.sample_seed, n_symbols=settings.sample_symbols, clock=clock)
    if name not in SOURCES:
        raise SourceError(f"QUARRY_SOURCE={name!r}: unknown source (available: {', '.join(SOURCES)})")
    universe = read_universe(settings.universe_file)
    if name == "alpaca":
        from assets.sources.alpaca import AlpacaSource

        return AlpacaSource(
            api_key=require(settings.alpaca_api_key, "ALPACA_API_KEY", settings, name),
            secret_key=require(settings.alpaca_secret_key, "ALPACA_SECRET_KEY", settings, name),
            universe=universe, data_url=settings.alpaca_data_url, feed=settings.alpaca_feed,
            adjustment=settings.alpaca_adjustment, requests_per_minute=settings.alpaca_requests_per_minute,
            policy=settings.policy(),
        )
    if name == "polygon":
        from assets.sources.polygon import PolygonSource

        return PolygonSource(
            api_key=require(settings.polygon_api_key, "POLYGON_API_KEY", settings, name),
            universe=universe, base_url=settings.polygon_url,
            requests_per_minute=settings.polygon_requests_per_minute, policy=settings.policy(),
        )
    from assets.sources.yahoo import YahooSource

    return YahooSource(universe=universe, requests_per_minute=settings.yahoo_requests_per_minute,
                       policy=settings.policy())
