"""Contracts, checks and the per-run quality report."""
