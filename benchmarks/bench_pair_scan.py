"""Batched pair scan against a loop of statsmodels' coint: wall time and agreement on one synthetic panel."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.pairs.cointegration import ScanParams, default_max_lag, scan_log_prices  # noqa: E402

TARGET_SPEEDUP = 50.0


@dataclass(frozen=True)
class Agreement:
    """How the scan's rows compare with statsmodels on the sampled pairs."""

    max_abs_stat_diff: float
    max_abs_p_diff: float
    same_lag: int
    same_decision: int
    n_pairs: int

    @property
    def is_exact(self) -> bool:
        """Statistic within 1e-8, p-value within 1e-8, and every lag and decision the same."""
        return (
            self.max_abs_stat_diff <= 1e-8
            and self.max_abs_p_diff <= 1e-8
            and self.same_lag == self.same_decision == self.n_pairs
        )


def synthetic_log_prices(n_symbols: int, n_bars: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Random-walk log prices where every fourth symbol is cointegrated with the one before it."""
    rng = np.random.default_rng(seed)
    log_px = np.log(rng.uniform(10.0, 500.0, n_symbols)) + np.cumsum(
        rng.normal(0.0, 0.01, (n_bars, n_symbols)), axis=0
    )
    for leg in range(3, n_symbols, 4):
        noise = np.zeros(n_bars)
        shock = rng.normal(0.0, 0.004, n_bars)
        for t in range(1, n_bars):
            noise[t] = 0.9 * noise[t - 1] + shock[t]
        log_px[:, leg] = 0.1 + rng.uniform(0.5, 1.5) * log_px[:, leg - 1] + noise
    return log_px, [f"SYM{i:04d}" for i in range(n_symbols)]


def time_scan(log_px: np.ndarray, symbols: list[str], params: ScanParams, repeats: int) -> tuple[float, object]:
    """Best wall time of `repeats` scans, and the last result."""
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        result = scan_log_prices(log_px, symbols, params)
        best = min(best, time.perf_counter() - started)
    return best, result


def time_coint_loop(log_px: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[float, list[tuple[float, float]]]:
    """Wall time of default `coint(y, x)` over the pairs, one call each.

    BLAS runs on one thread, as in the scan; statsmodels' small regressions
    are faster that way than with the default thread pool.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.perf_counter()
        results = [tuple(coint(log_px[:, y], log_px[:, x]))[:2] for y, x in pairs]
        return time.perf_counter() - started, results


def reference_lag_and_half_life(y: np.ndarray, x: np.ndarray) -> tuple[int | None, float | None]:
    """The lag statsmodels' ADF picks on the OLS residual, and that residual's AR(1) half-life."""
    spread = sm.OLS(y, sm.add_constant(x)).fit().resid
    lag = adfuller(spread, regression="n", autolag="aic", result_object=True).lags
    slope = sm.OLS(np.diff(spread), sm.add_constant(spread[:-1])).fit().params[1]
    half_life = -math.log(2.0) / math.log1p(slope) if -1.0 < slope < 0.0 else None
    return lag, half_life


def compare(rows: list[dict], references: list[tuple[float, float]], log_px: np.ndarray,
            pairs: list[tuple[int, int]], params: ScanParams) -> Agreement:
    """Statistic, p-value, lag and keep/reject decision of each sampled row against statsmodels."""
    stat_diffs, p_diffs, same_lag, same_decision = [], [], 0, 0
    for row, (stat, p_value), (y, x) in zip(rows, references, pairs):
        stat_diffs.append(0.0 if stat == row["adf_stat"] else abs(stat - row["adf_stat"]))
        p_diffs.append(abs(p_value - row["p_value"]))
        lag, half_life = reference_lag_and_half_life(log_px[:, y], log_px[:, x])
        same_lag += lag == row["lag"]
        kept = (
            p_value <= params.max_p_value
            and half_life is not None
            and params.min_half_life_bars <= half_life <= params.max_half_life_bars
        )
        same_decision += kept == row["is_cointegrated"]
    return Agreement(max(stat_diffs), max(p_diffs), same_lag, same_decision, len(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=200, help="pairs timed with statsmodels' coint")
    parser.add_argument("--repeats", type=int, default=3, help="batched scans timed; the best counts")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    params = ScanParams()
    log_px, symbols = synthetic_log_prices(args.symbols, args.bars, args.seed)
    n_pairs = args.symbols * (args.symbols - 1) // 2
    print(
        f"panel: {args.symbols} symbols × {args.bars} bars = {n_pairs} pairs, "
        f"ADF lags searched 0..{default_max_lag(args.bars)} (statsmodels' default)"
    )

    scan_seconds, scanned = time_scan(log_px, symbols, params, args.repeats)
    print(
        f"batched scan:      {scan_seconds:8.3f} s for all {n_pairs} pairs "
        f"({scan_seconds / n_pairs * 1e3:.3f} ms/pair, best of {args.repeats})"
    )

    rng = np.random.default_rng(args.seed + 1)
    picked = np.sort(rng.choice(n_pairs, size=min(args.sample, n_pairs), replace=False))
    first, second = np.triu_indices(args.symbols, k=1)
    pairs = [(int(first[i]), int(second[i])) for i in picked]
    loop_seconds, references = time_coint_loop(log_px, pairs)
    per_pair = loop_seconds / len(pairs)
    extrapolated = per_pair * n_pairs
    print(
        f"statsmodels coint: {loop_seconds:8.3f} s for a random sample of {len(pairs)} pairs "
        f"({per_pair * 1e3:.2f} ms/pair) → {extrapolated:.1f} s extrapolated to {n_pairs} pairs"
    )

    speedup = extrapolated / scan_seconds
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(f"speed-up:          {speedup:8.1f}× ({verdict} the {TARGET_SPEEDUP:.0f}× target)")

    rows = [scanned.row(int(i), named=True) for i in picked]
    with threadpool_limits(limits=1, user_api="blas"):
        agreement = compare(rows, references, log_px, pairs, params)
    print(
        f"agreement on the {agreement.n_pairs} sampled pairs: "
        f"max |Δ adf_stat| = {agreement.max_abs_stat_diff:.2e}, "
        f"max |Δ p_value| = {agreement.max_abs_p_diff:.2e}, "
        f"same lag {agreement.same_lag}/{agreement.n_pairs}, "
        f"same keep/reject {agreement.same_decision}/{agreement.n_pairs}"
    )
    kept = scanned.get_column("is_cointegrated").sum()
    print(f"pairs kept by the scan: {kept} of {n_pairs}")
    return 0 if agreement.is_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
