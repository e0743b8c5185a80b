"""Pairs research: the weekly cointegration scan, hourly spreads and z-scores, and the signal state machine."""
