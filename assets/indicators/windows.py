"""Trailing-window statistics whose every value is computed from its own window alone."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["window_mean_std"]

#: Windows computed per chunk of this many positions, so each pass over a chunk stays in cache.
_WINDOW_CHUNK = 1 << 16


def window_mean_std(values: np.ndarray, window: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each trailing window, each computed from that window's values alone.

    A running sum (TA-Lib's SMA, Polars' rolling_std) carries rounding from every earlier bar,
    so the same window gave different last bits depending on where the computation started,
    and a one-session rebuild changed the data version. Here every window is summed left to
    right by elementwise adds across windows, one window position at a time, so the order of
    operations is fixed by the window length alone: identical windows give identical bytes
    however many positions, and which, are computed together. Positions before the first full
    window, and windows holding a NaN, are NaN.
    """
    mean, std = np.full(values.size, np.nan), np.full(values.size, np.nan)
    if window < 1 or values.size < window:
        return mean, std
    n_windows = values.size - window + 1
    for start in range(0, n_windows, _WINDOW_CHUNK):
        stop = min(start + _WINDOW_CHUNK, n_windows)
        centre = _sum_in_order(_kth_values(values, start, stop, window)) / window
        if window > ddof:
            squares = (np.square(kth - centre) for kth in _kth_values(values, start, stop, window))
            spread = np.sqrt(_sum_in_order(squares) / (window - ddof))
        else:
            spread = np.full(stop - start, np.nan)
        at = slice(window - 1 + start, window - 1 + stop)
        mean[at], std[at] = centre, spread
    return mean, std


def _kth_values(values: np.ndarray, start: int, stop: int, window: int) -> Iterator[np.ndarray]:
    """For k = 0 .. window-1, the k-th value of windows start .. stop-1: a slice each, so no
    (positions x window) array is built."""
    return (values[start + k : stop + k] for k in range(window))


def _sum_in_order(terms: Iterator[np.ndarray]) -> np.ndarray:
    """Elementwise sum of the terms, added first to last: the same operations for a window whatever else is summed beside it."""
    total = next(terms).copy()
    for term in terms:
        total += term
    return total
