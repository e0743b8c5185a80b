"""The symbol universe as configuration: a CSV of symbol, sector and the period each symbol is active."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from assets.sources.base import SourceError

DEFAULT_UNIVERSE_FILE = Path(__file__).resolve().parent.parent / "universe.csv"
#: One row per symbol and active period; open ends are null.
UNIVERSE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String, "sector": pl.String, "active_from": pl.Date, "active_to": pl.Date,
}


@dataclass(frozen=True)
class Member:
    """One symbol's membership of the universe over one period."""

    symbol: str
    sector: str
    active_from: date | None = None
    active_to: date | None = None


def read_universe(path: Path) -> tuple[Member, ...]:
    """The universe file's rows; only `symbol` and `sector` are required."""
    try:
        frame = pl.read_csv(path, schema_overrides={"active_from": pl.Date, "active_to": pl.Date})
    except (OSError, pl.exceptions.PolarsError) as error:
        raise SourceError(f"universe file {path}: {error}; set QUARRY_UNIVERSE_FILE to a CSV with "
                          "symbol,sector[,active_from,active_to]") from None
    for column, dtype in UNIVERSE_SCHEMA.items():
        if column not in frame.columns:
            if column in ("symbol", "sector"):
                raise SourceError(f"universe file {path}: missing column {column!r}")
            frame = frame.with_columns(pl.lit(None, dtype).alias(column))
    frame = frame.select(pl.col(c).cast(t) for c, t in UNIVERSE_SCHEMA.items())
    return tuple(Member(*row) for row in frame.iter_rows())


def members_frame(members: tuple[Member, ...]) -> pl.DataFrame:
    return pl.DataFrame(
        [(m.symbol, m.sector, m.active_from, m.active_to) for m in members], schema=UNIVERSE_SCHEMA, orient="row"
    )


def universe_of(source) -> pl.DataFrame:
    """A source's universe with active periods; sources without periods are active throughout."""
    members = getattr(source, "universe", None)
    if isinstance(members, tuple) and all(isinstance(m, Member) for m in members):
        return members_frame(members)
    return members_frame(tuple(Member(s, sector) for s, sector in source.sectors().items()))


def universe_digest(members: tuple[Member, ...]) -> str:
    """A short digest of the universe, part of a source's identity: a new symbol means a new fetch."""
    import hashlib

    text = "|".join(f"{m.symbol},{m.sector},{m.active_from},{m.active_to}" for m in members)
    return hashlib.sha256(text.encode()).hexdigest()[:10]
