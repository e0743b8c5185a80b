"""The issue's acceptance, as a new user runs it: the default sample built by one `quarry materialize` and by two.

`benchmarks/bench_batch_independence.py` builds the sample market (20 symbols, 2025-01-02 ..
2026-11-27) in two fresh directories, once in one run and once in two (to 2026-06-30, then the
rest), and compares every (asset, partition, data version) of the two catalogs. Only the
ledger-fed `live_performance` is left out. About a minute of two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_batch_independence.py"


def test_one_run_and_two_runs_publish_the_same_data_versions(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--scratch", str(tmp_path)], capture_output=True, text=True, timeout=900
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.get("differing_partitions") == {} and run.returncode == 0, (result, run.stderr[-3000:])
    assert result["left_out"] == ["live_performance"]
    per_asset = result["partitions_per_asset"]
    sessions = per_asset["bars_hourly"]
    assert sessions > 470 and result["partitions_compared"] > 8 * sessions
    for asset in ("indicators_hourly", "indicators_daily", "market_regime"):
        assert per_asset[asset] == sessions, asset
    for asset in ("pair_spreads", "pair_signals", "pair_candidates", "backtest_trades", "strategy_performance"):
        assert per_asset[asset] > 0, asset
