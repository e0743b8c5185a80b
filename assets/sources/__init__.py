"""Market-data sources behind one small protocol, with the offline `sample` market as the default."""

from assets.sources.base import BAR_SCHEMA, SPLIT_SCHEMA, Source, SourceError, Timeframe
from assets.sources.sample import SampleSource

__all__ = ["BAR_SCHEMA", "SPLIT_SCHEMA", "SampleSource", "Source", "SourceError", "Timeframe"]
