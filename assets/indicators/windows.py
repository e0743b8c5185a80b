"""Trailing-window statistics whose every value is computed from its own window alone."""

from __future__ import annotations

import numpy as np

__all__ = ["window_mean_std"]

#: Windows computed per chunk of this many positions, bounding the (positions x window) temporaries.
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
    windows = np.lib.stride_tricks.sliding_window_view(values, window)
    for start in range(0, windows.shape[0], _WINDOW_CHUNK):
        chunk = windows[start : start + _WINDOW_CHUNK]
        centre = _sum_across(chunk) / window
        if window > ddof:
            spread = np.sqrt(_sum_across((chunk - centre[:, None]) ** 2) / (window - ddof))
        else:
            spread = np.full(chunk.shape[0], np.nan)
        at = slice(window - 1 + start, window - 1 + start + chunk.shape[0])
        mean[at], std[at] = centre, spread
    return mean, std


def _sum_across(chunk: np.ndarray) -> np.ndarray:
    """Each row's sum, added left to right: the same operations for a row whatever else is in the chunk."""
    total = chunk[:, 0].copy()
    for k in range(1, chunk.shape[1]):
        total += chunk[:, k]
    return total
