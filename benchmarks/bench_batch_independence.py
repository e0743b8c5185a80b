"""One run against two: the sample market built by one `quarry materialize` and by two, data versions compared.

Run: .venv/bin/python benchmarks/bench_batch_independence.py [--from 2025-01-02] [--split 2026-06-30]
                                                              [--to 2026-11-27] [--symbols 20] [--keep | --scratch DIR]

In two fresh directories (each with its own warehouse, ledger and PREFECT_HOME, Prefect in its
embedded mode, as a new user runs it; none of the caller's QUARRY_* or PREFECT_* settings): `quarry materialize --to TO` once; and `quarry materialize
--to SPLIT`, then `quarry materialize --to TO`. Every asset's current published (partition, data
version) is then read from each catalog (`quarry.versions`) and compared. Ledger-fed assets (those
with a watermark: `live_performance`) are left out, since the ledger is not an input the two
directories share. A fixed last session keeps the result independent of the clock.

Progress goes to stderr; the last line on stdout is one JSON object: partitions compared, per asset
the partitions whose data version differs or that only one side published, CPU seconds of each
build. Exit status 1 when anything differs or a build fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START = date(2025, 1, 2)
SPLIT = date(2026, 6, 30)
END = date(2026, 11, 27)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def materialize(workdir: Path, start: date, to: date, symbols: int, label: str) -> float:
    """One `quarry materialize --to TO` in `workdir`; its CPU seconds (children included)."""
    # nothing of the caller's Quarry or Prefect settings: both directories start from the same defaults
    env = {name: value for name, value in os.environ.items() if not name.startswith(("QUARRY_", "PREFECT_"))}
    env |= {
        "QUARRY_CATALOG": f"sqlite:{workdir}/data/catalog.sqlite",
        "QUARRY_DATA_PATH": f"{workdir}/data/lake/",
        "QUARRY_REPORTS_DIR": f"{workdir}/reports",
        "QUARRY_LEDGER_URL": f"sqlite:///{workdir}/data/ledger.sqlite",
        "QUARRY_SAMPLE_SYMBOLS": str(symbols),
        "QUARRY_START_DATE": start.isoformat(),
        "PREFECT_HOME": str(workdir / "prefect"),
    }
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "materialize", "--to", to.isoformat()]
    say(f"{label}: quarry materialize --to {to}")
    started = time.perf_counter()
    log_path = workdir / f"{label.replace(' ', '_')}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{label}: exit status {code}; last lines of {log_path}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    say(f"{label}: {cpu:.1f} CPU-s, {time.perf_counter() - started:.0f} s wall")
    return round(cpu, 2)


def published(workdir: Path) -> dict[tuple[str, str], str]:
    """(asset, partition) -> data version of every current published partition in the directory's catalog."""
    from warehouse import Warehouse

    with Warehouse.open(f"sqlite:{workdir}/data/catalog.sqlite", f"{workdir}/data/lake/", read_only=True) as lake:
        current = lake.current_versions()
    return {(a, p): v for a, p, v in current.select("asset", "partition_key", "data_version").iter_rows()}


def ledger_fed() -> set[str]:
    """Assets read from the ledger (their watermark is the ledger's): not a shared input of the two directories."""
    from assets import default_graph

    return {asset.name for asset in default_graph() if asset.watermark is not None}


def compare(one: dict[tuple[str, str], str], two: dict[tuple[str, str], str], leave_out: set[str]) -> dict:
    """Per asset: partitions compared, and those whose data version differs or that one side lacks."""
    assets = sorted({asset for asset, _ in one | two} - leave_out)
    report = {}
    for asset in assets:
        keys_one = {p for a, p in one if a == asset}
        keys_two = {p for a, p in two if a == asset}
        common = keys_one & keys_two
        report[asset] = {
            "partitions": len(keys_one | keys_two),
            "differing": sorted(p for p in common if one[asset, p] != two[asset, p]),
            "only_one_run": sorted(keys_one - keys_two),
            "only_two_runs": sorted(keys_two - keys_one),
        }
    return report


def run(start: date, split: date, end: date, symbols: int, scratch: Path) -> dict:
    one_dir, two_dir = scratch / "one-run", scratch / "two-runs"
    one_dir.mkdir()
    two_dir.mkdir()
    cpu = {
        "one_run": materialize(one_dir, start, end, symbols, "one run"),
        "two_runs_first": materialize(two_dir, start, split, symbols, "two runs, first"),
        "two_runs_second": materialize(two_dir, start, end, symbols, "two runs, second"),
    }
    leave_out = ledger_fed()
    report = compare(published(one_dir), published(two_dir), leave_out)
    differing = {
        asset: len(r["differing"]) + len(r["only_one_run"]) + len(r["only_two_runs"]) for asset, r in report.items()
    }
    return {
        "window": f"{start}..{end}",
        "split_after": split.isoformat(),
        "symbols": symbols,
        "left_out": sorted(leave_out),
        "partitions_compared": sum(r["partitions"] for r in report.values()),
        "differing_partitions": {asset: n for asset, n in differing.items() if n},
        "differing_total": sum(differing.values()),
        "examples": {asset: (r["differing"] + r["only_one_run"] + r["only_two_runs"])[:5]
                     for asset, r in report.items() if differing[asset]},
        "partitions_per_asset": {asset: r["partitions"] for asset, r in report.items()},
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="start", type=date.fromisoformat, default=START)
    parser.add_argument("--split", type=date.fromisoformat, default=SPLIT, help="last session of the first of two runs")
    parser.add_argument("--to", dest="end", type=date.fromisoformat, default=END)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the two directories")
    parser.add_argument("--scratch", type=Path, help="an empty directory to build in (kept); a temporary one otherwise")
    args = parser.parse_args()
    if args.scratch:
        args.scratch.mkdir(parents=True, exist_ok=True)
        args.keep = True
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="quarry-batches-"))
    try:
        result = run(args.start, args.split, args.end, args.symbols, scratch)
    except RuntimeError as error:
        say(str(error))
        print(json.dumps({"error": str(error).splitlines()[0], "scratch": str(scratch)}))
        sys.exit(1)
    if args.keep:
        result["scratch"] = str(scratch)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"{result['partitions_compared']} partitions compared, {result['differing_total']} differ: "
        f"{result['differing_partitions'] or 'none'}")
    print(json.dumps(result))
    sys.exit(1 if result["differing_total"] else 0)


if __name__ == "__main__":
    main()
