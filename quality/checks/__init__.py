"""Cross-row checks, one module per domain; an asset names each as "quality.checks:function", imported when audited."""

from quality.checks.fundamentals import missing_fields, unknown_symbols
from quality.checks.market import (
    bad_ticks_beyond_tolerance, bars_outside_session, missing_bars, price_jumps, repaired_bad_ticks,
)

__all__ = [
    "bad_ticks_beyond_tolerance", "bars_outside_session", "missing_bars", "missing_fields", "price_jumps",
    "repaired_bad_ticks", "unknown_symbols",
]
