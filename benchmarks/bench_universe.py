"""The whole default graph on an index-sized sample market: Quarry against a plain script, and the same build on Dask.

Run: .venv/bin/python benchmarks/bench_universe.py [--symbols 500] [--years 5] [--dask 2] [--skip-plain]
     [--skip-threads] [--keep]

Phases, each in its own process (peak RSS and CPU seconds are the process's own, children included):
  threads  `materialize` of every asset over the window through the Prefect flow on its thread pool,
           against a Prefect server started here (the server's CPU while it records the run is added)
  plain    the same transforms, contracts and checks once over the window, Parquet out, no engine
           (bench_materialize.py's plain phase)
  dask     with --dask N: the same build on a local Dask cluster of N worker processes; its data
           versions must equal the threads build's
Progress goes to stderr, a line as each asset starts and finishes; the last line on stdout is one
JSON object: wall_s, cpu_s, peak_rss_mb, plain_cpu_s, quarry_over_plain_cpu, rows per asset, ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_materialize import (  # noqa: E402
    END, SERVER_IDLE_RATE, PhaseFailed, _tree_cpu, measure_server_idle, say, start_server, stop_server,
)

ROOT = Path(__file__).resolve().parents[1]
PLAIN_SCRIPT = Path(__file__).resolve().with_name("bench_materialize.py")


# ---- the build (runs in its own process) ---------------------------------------------------

def phase_build(end: date) -> dict:
    """One `materialize` of every asset through the flow, with the task runner the settings name."""
    from loguru import logger
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from pipelines.flows import RunNotClean, materialize_flow, task_runner
    from pipelines.settings import Settings

    started = time.perf_counter()

    def progress(message) -> None:
        """A line when an asset is planned and when its last batch is done."""
        extra = message.record["extra"]
        if "planned" in extra or extra.get("finished"):  # written, not printed: the flow logs prints
            sys.stderr.write(f"[{time.perf_counter() - started:7.1f}s] {message.record['message']}\n")
            sys.stderr.flush()

    logger.remove()
    logger.add(progress, level="INFO", format="{message}")
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        flow = materialize_flow.with_options(task_runner=task_runner(Settings()))
        try:
            summary = flow(end=end)
        except RunNotClean as not_clean:
            summary = not_clean.summary
    return {
        "exit_code": summary.exit_code,
        "totals": summary.totals,
        "asset_seconds": {name: round(o.seconds, 1) for name, o in summary.outcomes.items()},
        "flow_wall_s": round(time.perf_counter() - started, 1),
    }


# ---- measuring -----------------------------------------------------------------------------

def measured(label: str, command: list[str], env: dict[str, str], cwd: Path, server_pid: int | None) -> dict:
    """Run a phase with its stderr shown live; CPU seconds of it and its descendants, peak RSS, wall time.

    CPU comes from wait4 (every reaped descendant included); a sampler also follows the live
    process tree, so worker processes that are never reaped by the phase are still counted.
    """
    say(f"{label}: started")
    server_before = _tree_cpu(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=None, text=True)
    tree_peak, reaped = [0.0], threading.Event()

    def sample() -> None:  # never polls the process: only wait4 below may reap it
        while not reaped.wait(1.0):
            tree_peak[0] = max(tree_peak[0], _tree_cpu(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    reaped.set()
    wall = time.perf_counter() - started
    # the server's share is what it spent beyond its idle rate over the same wall time
    server = max(_tree_cpu(server_pid) - server_before - SERVER_IDLE_RATE["per_s"] * wall, 0.0) if server_pid else 0.0
    if os.waitstatus_to_exitcode(status) != 0:
        raise PhaseFailed(f"{label}: exit status {os.waitstatus_to_exitcode(status)}; output:\n{output[-3000:]}")
    cpu = max(usage.ru_utime + usage.ru_stime, tree_peak[0])
    peak_mb = usage.ru_maxrss / 1024
    say(f"{label}: {cpu:.1f} CPU-s (+{server:.1f} on the Prefect server), {wall:.1f} s wall, peak RSS {peak_mb:.0f} MB")
    return {"cpu_s": round(cpu, 2), "server_cpu_s": round(server, 2), "wall_s": round(wall, 1),
            "peak_rss_mb": round(peak_mb), "figures": json.loads(output.strip().splitlines()[-1])}


def published(workdir: Path) -> dict:
    """Rows per asset and a digest of every (asset, partition, data version) the build published."""
    import polars as pl

    from warehouse import Warehouse

    with Warehouse.open(f"sqlite:{workdir}/data/catalog.sqlite", f"{workdir}/data/lake/", read_only=True) as lake:
        current = lake.current_versions().sort("asset", "partition_key")
    text = "\n".join(f"{a}|{p}|{d}" for a, p, d in current.select("asset", "partition_key", "data_version").iter_rows())
    rows = dict(current.group_by("asset").agg(pl.col("row_count").sum()).sort("asset").iter_rows())
    return {"rows": {a: int(n) for a, n in rows.items()}, "partitions": current.height,
            "data_versions_sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}


def build_env(base: dict[str, str], workdir: Path, symbols: int, start: date, api_url: str) -> dict[str, str]:
    return {
        **base,
        "QUARRY_CATALOG": f"sqlite:{workdir}/data/catalog.sqlite",
        "QUARRY_DATA_PATH": f"{workdir}/data/lake/",
        "QUARRY_REPORTS_DIR": f"{workdir}/reports",
        "QUARRY_LEDGER_URL": f"sqlite:///{workdir}/data/ledger.sqlite",
        "QUARRY_SAMPLE_SYMBOLS": str(symbols),
        "QUARRY_START_DATE": start.isoformat(),
        "PREFECT_API_URL": api_url,
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def run_build(label: str, scratch: Path, env: dict[str, str], server_pid: int) -> dict:
    workdir = Path(env["QUARRY_DATA_PATH"]).parents[1]
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", "build", "--to", END.isoformat()]
    result = measured(label, command, env, workdir, server_pid)
    figures = result.pop("figures")
    if figures["exit_code"]:
        raise PhaseFailed(f"{label}: the run was not clean: {figures['totals']}")
    return {**result, **published(workdir), "asset_seconds": figures["asset_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--dask", type=int, default=0, metavar="N", help="also build on a local Dask cluster of N workers")
    parser.add_argument("--skip-plain", action="store_true", help="skip the plain-script baseline")
    parser.add_argument("--skip-threads", action="store_true",
                        help="only the Dask build (compare its data_versions_sha256 with a threads run's)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--phase", choices=["build"], help=argparse.SUPPRESS)
    parser.add_argument("--to", dest="end", type=date.fromisoformat, default=END, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        print(json.dumps(phase_build(args.end)))
        return

    start = date(END.year - args.years, END.month, END.day)
    scratch = Path(tempfile.mkdtemp(prefix="quarry-universe-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_"))}
    base.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(scratch / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    results: dict = {"symbols": args.symbols, "years": args.years, "window": f"{start}..{END}", "cores": os.cpu_count()}
    server, failed = None, False
    try:
        say(f"{args.symbols} symbols × {args.years} years ({start}..{END}); scratch {scratch}; starting a Prefect server")
        server, api_url = start_server(scratch / "prefect-home", base)
        results["server_idle_cpu_per_s"] = round(measure_server_idle(server.pid, 10.0), 3)
        threads = None
        if not args.skip_threads:
            threads_env = build_env(base, scratch / "threads", args.symbols, start, api_url)
            threads = run_build("threads build", scratch, threads_env, server.pid)
            quarry_cpu = threads["cpu_s"] + threads["server_cpu_s"]
            results.update(wall_s=threads["wall_s"], cpu_s=round(quarry_cpu, 2), process_cpu_s=threads["cpu_s"],
                           server_cpu_s=threads["server_cpu_s"], peak_rss_mb=threads["peak_rss_mb"],
                           rows=threads["rows"], partitions=threads["partitions"],
                           data_versions_sha256=threads["data_versions_sha256"], asset_seconds=threads["asset_seconds"])
        if threads is not None and not args.skip_plain:
            plain_dir = scratch / "plain"
            plain_dir.mkdir()
            plain = measured(
                "plain script",
                [sys.executable, str(PLAIN_SCRIPT), "--phase", "plain", "--from", start.isoformat(),
                 "--to", END.isoformat(), "--out", str(plain_dir / "out")],
                build_env(base, plain_dir, args.symbols, start, api_url), plain_dir, None,
            )
            results.update(plain_cpu_s=plain["cpu_s"], plain_wall_s=plain["wall_s"],
                           plain_peak_rss_mb=plain["peak_rss_mb"], plain_stage_cpu_s=plain["figures"]["stage_cpu_s"],
                           quarry_over_plain_cpu=round(quarry_cpu / plain["cpu_s"], 2))
        if args.dask:
            dask_env = {**build_env(base, scratch / "dask", args.symbols, start, api_url),
                        "QUARRY_TASK_RUNNER": "dask", "QUARRY_DASK_WORKERS": str(args.dask)}
            dask = run_build(f"dask build ({args.dask} workers)", scratch, dask_env, server.pid)
            results["dask"] = {
                "workers": args.dask, "wall_s": dask["wall_s"], "cpu_s": round(dask["cpu_s"] + dask["server_cpu_s"], 2),
                "peak_rss_mb": dask["peak_rss_mb"], "data_versions_sha256": dask["data_versions_sha256"],
                "rows": dask["rows"], "asset_seconds": dask["asset_seconds"],
            }
            if threads is not None:
                results["dask"]["same_data_versions_as_threads"] = (
                    dask["data_versions_sha256"] == threads["data_versions_sha256"]
                )
    except (PhaseFailed, OSError, ValueError, KeyError) as error:
        failed = True
        say(f"FAILED: {error}")
        results["error"] = str(error).splitlines()[0]
    finally:
        if server is not None:
            stop_server(server)
        if failed or args.keep:
            results["scratch"] = str(scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
