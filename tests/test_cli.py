"""The quarry CLI as a user runs it: a real process, the embedded default, Prefect in ephemeral mode."""

import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assets import default_graph

N_ASSETS = len(default_graph().assets)

pytestmark = pytest.mark.slow
QUARRY = str(Path(sys.executable).with_name("quarry"))


@pytest.fixture
def workdir(tmp_path: Path, prefect_home: Path) -> dict:
    env = {
        **os.environ,
        "QUARRY_START_DATE": "2025-03-03",
        "PREFECT_HOME": str(prefect_home),
        "COLUMNS": "160",
    }
    for name in list(env):
        if name.startswith("QUARRY_") and name != "QUARRY_START_DATE":
            env.pop(name)
    env.pop("PREFECT_API_URL", None)
    return {"cwd": tmp_path, "env": env}


def quarry(workdir: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([QUARRY, *args], cwd=workdir["cwd"], env=workdir["env"], capture_output=True, text=True, timeout=timeout)


def test_materialize_then_noop_then_explore(workdir):
    built = quarry(workdir, "materialize", "--to", "2025-03-07")
    assert built.returncode == 0, built.stderr[-2000:]
    assert "completed" in built.stdout and "Quality report: reports/" in built.stdout
    assert (workdir["cwd"] / "data" / "catalog.sqlite").exists()
    assert list((workdir["cwd"] / "data" / "lake").rglob("*.parquet"))

    started = time.perf_counter()
    noop = quarry(workdir, "materialize", "--to", "2025-03-07")
    assert noop.returncode == 0
    assert re.search(rf"Everything up to date: \d+ partitions across {N_ASSETS} assets", noop.stdout), noop.stdout
    assert "Starting temporary server" not in noop.stdout + noop.stderr
    assert time.perf_counter() - started < 30  # a no-op never starts Prefect; the benchmark measures the real figure

    plan = quarry(workdir, "materialize", "--from", "2025-03-03", "--to", "2025-03-10", "--dry-run")
    assert plan.returncode == 0 and "bars_raw [2025-03-10] — missing" in plan.stdout
    old_name = quarry(workdir, "materialize", "--from", "2025-03-03", "--to", "2025-03-10", "--plan")  # the hidden alias
    assert old_name.returncode == 0 and old_name.stdout == plan.stdout

    as_json = quarry(workdir, "materialize", "--from", "2025-03-03", "--to", "2025-03-10", "--dry-run", "--json")
    planned = json.loads(as_json.stdout)
    by_asset = {a["asset"]: a for a in planned["assets"]}
    assert len(by_asset) == N_ASSETS and planned["to_build"] == sum(a["to_build"] for a in planned["assets"])
    assert by_asset["bars_raw"] | {"code_version": None} == {
        "asset": "bars_raw", "to_build": 1, "reasons": {"missing": 1}, "up_to_date": 5, "blocked": 0,
        "first": "2025-03-10", "last": "2025-03-10", "code_version": None,
        "downstream": by_asset["bars_raw"]["downstream"],
    }
    assert "bars_hourly" in by_asset["bars_raw"]["downstream"]
    assert by_asset["splits"]["to_build"] == 1 and by_asset["splits"]["reasons"] == {"new session": 1}
    wrong = quarry(workdir, "materialize", "--json")
    assert wrong.returncode == 2 and "--dry-run" in wrong.stderr and not wrong.stdout

    rows = json.loads(quarry(workdir, "sql", "SELECT symbol, count(*) AS bars FROM bars_daily GROUP BY symbol ORDER BY symbol", "--json").stdout)
    assert len(rows) == 20 and {r["bars"] for r in rows} == {5}

    assets = json.loads(quarry(workdir, "assets", "--json").stdout)
    by_name = {a["asset"]: a for a in assets}
    assert len(assets) == N_ASSETS and by_name["bars_daily"]["published_partitions"] == 5
    assert by_name["bars_daily"]["stale"]  # `assets` looks up to the last completed session, past --to
    assert by_name["pair_candidates"]["params"]["fdr_q"] == 0.05  # the scan's thresholds travel with the asset

    report = quarry(workdir, "report")
    assert report.returncode == 0 and Path(report.stdout.strip()).read_text().startswith("<!doctype html>")

    history = quarry(workdir, "history", "bars_daily", "--partition", "2025-03-05")
    assert "published" in history.stdout

    lineage = quarry(workdir, "lineage", "bars_daily")
    assert "bars_hourly" in lineage.stdout and "splits" in lineage.stdout

    bad = quarry(workdir, "materialize", "bars_weekly")
    assert bad.returncode != 0 and "no asset named 'bars_weekly'" in bad.stdout + bad.stderr
