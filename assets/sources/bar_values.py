"""A provider's bar values checked one by one: a wrong type is an error naming symbol, field and value, never a cast."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from assets.sources.resilience import ProviderError

__all__ = ["bad_value", "price", "timestamp", "whole"]


def bad_value(provider: str, symbol: str, field: str, value: object, why: str) -> ProviderError:
    """The error for one value a provider sent that Quarry will not guess at; the batch is refused, nothing is cast."""
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:80] + "…"
    return ProviderError(f"{provider}: bar for {symbol} has {field}={shown}, which {why}; nothing was stored",
                         provider=provider, symbol=symbol)


def price(provider: str, symbol: str, field: str, value: object, *, optional: bool = False) -> float | None:
    """A finite JSON number (a string such as "60.1" is refused, as the provider documents numbers)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_value(provider, symbol, field, value, "is not a finite number")
    return float(value)


def whole(provider: str, symbol: str, field: str, value: object, *, optional: bool = False) -> int | None:
    """A whole number; 1200.0 is accepted as 1200, 1200.5 is refused rather than truncated."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_value(provider, symbol, field, value, "is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise bad_value(provider, symbol, field, value, "is not a whole number")
    if value < 0:
        raise bad_value(provider, symbol, field, value, "is negative")
    return int(value)


def timestamp(provider: str, symbol: str, field: str, value: object) -> datetime:
    """An RFC 3339 timestamp with its offset, as UTC."""
    if not isinstance(value, str):
        raise bad_value(provider, symbol, field, value, "is not an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_value(provider, symbol, field, value, "is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise bad_value(provider, symbol, field, value, "has no UTC offset")
    return parsed.astimezone(timezone.utc)
