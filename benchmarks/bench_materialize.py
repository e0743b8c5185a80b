"""Materialize 500 symbols × 5 years of hourly bars: Quarry on Prefect vs. the same build without Prefect vs. a plain script.

Run: .venv/bin/python benchmarks/bench_materialize.py [--symbols 500] [--years 5]

Every phase runs in its own process so peak memory (ru_maxrss) is its own. Phases:
  prefect   the materialize flow against a running Prefect server (started here)
  threads   the same materializer on a thread pool, no Prefect: the difference is Prefect's overhead
  plain     the same transforms writing Parquet, no versions, audit or catalog: the cost of Quarry's guarantees
  day       a one-day incremental `quarry materialize` process against the running server
  noop      `quarry materialize` with nothing to do, whole process (vs. bare `python -c pass`)
  cold      a tiny first build with Prefect's temporary server vs. against the running server
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
END = date(2026, 11, 27)


def _settings_env(workdir: Path, symbols: int, start: date) -> dict[str, str]:
    return {
        "QUARRY_CATALOG": f"sqlite:{workdir}/data/catalog.sqlite",
        "QUARRY_DATA_PATH": f"{workdir}/data/lake/",
        "QUARRY_REPORTS_DIR": f"{workdir}/reports",
        "QUARRY_SAMPLE_SYMBOLS": str(symbols),
        "QUARRY_START_DATE": start.isoformat(),
    }


# ---- phases (run inside a child process) ---------------------------------------------------

SELECTION = "+bars_daily"  # the bar assets: the analytics graph has its own benchmarks


def phase_prefect(end: date) -> dict:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from pipelines.flows import materialize_flow

    started = time.perf_counter()
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        summary = materialize_flow(selection=SELECTION, end=end)
    return _summary_figures(summary, time.perf_counter() - started)


def phase_threads(end: date) -> dict:
    from assets import default_graph
    from pipelines.materialize import run_materialization, thread_submitter
    from pipelines.runs import default_window, make_source
    from pipelines.settings import Settings
    from warehouse import Warehouse

    settings = Settings()
    started = time.perf_counter()
    submit, shutdown = thread_submitter(settings.max_workers)
    with Warehouse.open(settings.catalog, settings.data_path) as warehouse:
        summary = run_materialization(
            default_graph(), warehouse, make_source(settings), selection=SELECTION,
            window=default_window(settings, None, end), run_id="bench-threads", submit=submit,
            batch_partitions=settings.batch_partitions,
        )
    shutdown()
    return _summary_figures(summary, time.perf_counter() - started)


def phase_plain(end: date) -> dict:
    """The baseline: fetch, the same transforms, Parquet files; no versions, audit, catalog or Prefect."""
    from datetime import datetime, timezone

    import polars as pl

    from assets.bars import bars_daily, bars_hourly, bars_raw, splits
    from assets.calendar import sessions
    from pipelines.settings import Settings
    from pipelines.runs import make_source

    settings = Settings()
    source = make_source(settings)
    out = Path(settings.data_path)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    window = sessions(settings.start_date, end)
    split_frame = splits.build({"fetched": source.fetch_splits(source.symbols(), settings.start_date, end + timedelta(days=400))})
    rows = 0
    for year in sorted(window["session_date"].dt.year().unique().to_list()):
        year_sessions = window.filter(pl.col("session_date").dt.year() == year)
        fetched = source.fetch_bars(
            source.symbols(), "1h", year_sessions["open_ts"].min().replace(minute=0), year_sessions["close_ts"].max()
        )
        raw = bars_raw.build({"fetched": fetched})
        hourly = bars_hourly.build({"bars_raw": raw, "splits": split_frame, "sessions": year_sessions})
        daily = bars_daily.build({"bars_hourly": hourly})
        raw.write_parquet(out / f"bars_raw_{year}.parquet")
        hourly.write_parquet(out / f"bars_hourly_{year}.parquet")
        daily.write_parquet(out / f"bars_daily_{year}.parquet")
        rows += raw.height + hourly.height + daily.height
    return {"wall_s": time.perf_counter() - started, "rows_written": rows, "at": datetime.now(timezone.utc).isoformat()}


def _summary_figures(summary, wall: float) -> dict:
    stages: dict[str, float] = {}
    for outcome in summary.outcomes.values():
        for stage, seconds in outcome.timings.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    return {"wall_s": wall, "totals": summary.totals, "stage_s": stages, "exit_code": summary.exit_code}


# ---- the driver ---------------------------------------------------------------------------

def _child(phase: str, env: dict[str, str], cwd: Path, end: date) -> tuple[dict, float]:
    """Run one phase in a fresh interpreter; return its figures and its peak RSS in MB."""
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--end", end.isoformat()]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"phase {phase} failed")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["process_s"] = time.perf_counter() - started
    return figures, usage.ru_maxrss / 1024


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("Prefect server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--phase", choices=["prefect", "threads", "plain"])
    parser.add_argument("--end", type=date.fromisoformat, default=END)
    args = parser.parse_args()
    if args.phase:
        figures = {"prefect": phase_prefect, "threads": phase_threads, "plain": phase_plain}[args.phase](args.end)
        print(json.dumps(figures, default=str))
        return

    start = date(args.end.year - args.years, args.end.month, args.end.day) + timedelta(days=2)
    scratch = Path(tempfile.mkdtemp(prefix="quarry-bench-"))
    server, api_url = _start_server(scratch / "prefect-home")
    quarry = str(Path(sys.executable).with_name("quarry"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_"))}
    base["PYTHONPATH"] = str(ROOT)
    try:
        day_before = args.end - timedelta(days=1)
        while day_before.weekday() >= 5:
            day_before -= timedelta(days=1)
        results = {}
        for phase in ("prefect", "threads", "plain"):
            workdir = scratch / phase
            workdir.mkdir()
            env = {**base, **_settings_env(workdir, args.symbols, start), "PREFECT_HOME": str(scratch / "prefect-home"), "PREFECT_API_URL": api_url}
            # the Prefect build stops a session short so the incremental phase has one to add
            results[phase] = _child(phase, env, workdir, day_before if phase == "prefect" else args.end)
        prefect_env = {**base, **_settings_env(scratch / "prefect", args.symbols, start), "PREFECT_HOME": str(scratch / "prefect-home"), "PREFECT_API_URL": api_url}
        day_s = _timed([quarry, "materialize", SELECTION, "--to", args.end.isoformat()], prefect_env, scratch / "prefect")
        noop_runs = [_timed([quarry, "materialize", SELECTION, "--to", args.end.isoformat()], prefect_env, scratch / "prefect") for _ in range(5)]
        bare_runs = [_timed([sys.executable, "-c", "pass"], prefect_env, scratch) for _ in range(5)]

        cold_dir = scratch / "cold"
        cold_dir.mkdir()
        tiny = {**base, **_settings_env(cold_dir, 20, args.end), "PREFECT_HOME": str(scratch / "cold-home")}
        cold_s = _timed([quarry, "materialize", SELECTION, "--from", args.end.isoformat(), "--to", args.end.isoformat()], tiny, cold_dir)
        warm_dir = scratch / "warm"
        warm_dir.mkdir()
        tiny_warm = {**base, **_settings_env(warm_dir, 20, args.end), "PREFECT_HOME": str(scratch / "prefect-home"), "PREFECT_API_URL": api_url}
        warm_s = _timed([quarry, "materialize", SELECTION, "--from", args.end.isoformat(), "--to", args.end.isoformat()], tiny_warm, warm_dir)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)

    (prefect, prefect_mb), (threads, threads_mb), (plain, plain_mb) = results["prefect"], results["threads"], results["plain"]
    rows = threads["totals"]["rows_written"]
    stage = prefect["stage_s"]
    task_time = sum(stage.values())
    overhead = max(prefect["wall_s"] - threads["wall_s"], 0.0)
    print(f"# Materialize {args.symbols} symbols × {args.years} years (to {args.end}): {rows:,} rows written over 3 daily assets")
    print(f"{'phase':<44}{'wall s':>10}{'peak RSS MB':>14}")
    print(f"{'Quarry on a Prefect server (one session short)':<44}{prefect['wall_s']:>10.2f}{prefect_mb:>14.0f}")
    print(f"{'Quarry on threads, no Prefect':<44}{threads['wall_s']:>10.2f}{threads_mb:>14.0f}")
    print(f"{'plain script: transforms + Parquet':<44}{plain['wall_s']:>10.2f}{plain_mb:>14.0f}")
    print(f"ratio Quarry (threads) / plain script: {threads['wall_s'] / plain['wall_s']:.2f}×  (versions, audit, catalog, transactions)")
    print(f"ratio Quarry on Prefect / on threads: {prefect['wall_s'] / threads['wall_s']:.2f}×  (Prefect overhead {overhead:.2f} s)")
    print("share of task time in the Prefect build (tasks run 4 at a time, so these sum past wall time):")
    for name in ("read", "transform", "audit", "publish"):
        label = {"read": "fetch + read inputs", "audit": "contract + checks", "publish": "publish transactions"}.get(name, name)
        print(f"  {label:<24}{stage.get(name, 0.0):>8.2f} s  {stage.get(name, 0.0) / task_time:>6.1%}")
    print(f"  Prefect overhead on wall time: {overhead / prefect['wall_s']:.1%}")
    print(f"incremental one-day `quarry materialize` process against the running server: {day_s:.2f} s")
    print(f"no-op `quarry materialize` process: median {statistics.median(noop_runs):.2f} s "
          f"(bare interpreter {statistics.median(bare_runs):.2f} s, ratio {statistics.median(noop_runs) / statistics.median(bare_runs):.1f}×)")
    print(f"tiny first build with Prefect's temporary server: {cold_s:.2f} s vs. against the running server {warm_s:.2f} s "
          f"→ temporary-server cold start ≈ {cold_s - warm_s:.2f} s")


if __name__ == "__main__":
    main()
