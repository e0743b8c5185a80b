"""Build the configured market-data source from typed settings: keys, endpoints, feed, rate limits, universe."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from assets.sources.base import Source, SourceError
from assets.sources.universe_file import DEFAULT_UNIVERSE_FILE, read_universe

if TYPE_CHECKING:  # resilience imports requests, which only the real connectors need
    from assets.sources.resilience import RequestPolicy

SOURCES = ("sample", "alpaca", "polygon", "yahoo")
#: Prefect Secret blocks consulted, when enabled, for a key whose environment variable is unset.
SECRET_BLOCKS = {"ALPACA_API_KEY": "alpaca-api-key", "ALPACA_SECRET_KEY": "alpaca-secret-key",
                 "POLYGON_API_KEY": "polygon-api-key"}


class AlpacaKeys(BaseModel):
    """The Alpaca account's key pair: market data and paper trading use the same one."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None


class SourceConfig(BaseModel):
    """Which market-data source, and what the real connectors need: endpoints, feed, rate limits, universe."""

    model_config = ConfigDict(frozen=True)

    name: str = Field("sample", description="Market-data source: sample, alpaca, polygon or yahoo.")
    polygon_api_key: SecretStr | None = None
    alpaca_data_url: str = Field("https://data.alpaca.markets", description="Alpaca market-data endpoint.")
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
    sample_seed: int = Field(7, description="Seed of the offline sample market.")
    sample_symbols: int = Field(20, ge=4, le=2000, description="Universe size of the sample market.")

    def policy(self) -> RequestPolicy:
        from assets.sources.resilience import RequestPolicy

        return RequestPolicy(max_attempts=self.source_max_attempts, timeout_s=self.source_timeout_s)


def require(value: SecretStr | None, variable: str, settings: SourceConfig, source: str) -> SecretStr:
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


def build_source(settings: SourceConfig, alpaca: AlpacaKeys = AlpacaKeys(), clock: datetime | None = None) -> Source:
    """The configured source (Alpaca's with the account's `alpaca` keys); `sample` needs nothing and plays its
    market up to `clock`."""
    name = settings.name
    if name == "sample":
        from assets.sources.sample import SampleSource

        return SampleSource(seed=settings.sample_seed, n_symbols=settings.sample_symbols, clock=clock)
    if name not in SOURCES:
        raise SourceError(f"QUARRY_SOURCE={name!r}: unknown source (available: {', '.join(SOURCES)})")
    universe = read_universe(settings.universe_file)
    if name == "alpaca":
        from assets.sources.alpaca import AlpacaSource

        return AlpacaSource(
            api_key=require(alpaca.api_key, "ALPACA_API_KEY", settings, name),
            secret_key=require(alpaca.secret_key, "ALPACA_SECRET_KEY", settings, name),
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
