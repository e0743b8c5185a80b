"""Market bars: raw bars from the source, clean split-adjusted hourly bars, and daily bars."""
