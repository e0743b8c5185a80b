"""A one-year backfill of 100 symbols (`+bars_daily`) on a PostgreSQL catalog: Dask with 2 workers vs 1.

Run: QUARRY_TEST_PG_DSN=postgresql://user@127.0.0.1:5432/postgres .venv/bin/python benchmarks/bench_dask.py

Each configuration builds into a fresh catalog database and data path, in its own process,
through the same materialize flow the CLI runs (Prefect's temporary server, started once per
process and not timed). It reports both wall times, the speed-up, and which worker processes
ran the batches, to show the work was really spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_phase(workers: int, start: date, end: date) -> None:
    """Inside the child: warm up Prefect, then time one backfill on a Dask cluster of `workers` processes."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from pipelines.flows import materialize_flow, task_runner
    from pipelines.settings import Settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        materialize_flow(selection="splits", start=end, end=end)  # starts the temporary server, untimed
        flow = materialize_flow.with_options(task_runner=task_runner(Settings()))
        started = time.perf_counter()
        summary = flow(selection="+bars_daily", start=start, end=end)
        wall = time.perf_counter() - started
    workers_seen = sorted(set().union(*(o.workers for o in summary.outcomes.values())))
    print(json.dumps({"wall_s": wall, "built": summary.totals["built"], "rows": summary.totals["rows_written"],
                      "workers": workers_seen, "exit_code": summary.exit_code}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 11, 28))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 27))
    parser.add_argument("--phase-workers", type=int)
    args = parser.parse_args()
    if args.phase_workers:
        run_phase(args.phase_workers, args.start, args.end)
        return

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    dsn = os.environ["QUARRY_TEST_PG_DSN"]
    scratch = Path(tempfile.mkdtemp(prefix="quarry-dask-"))
    results = {}
    for workers in (1, 2):
        database = f"quarry_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        params = {**conninfo_to_dict(dsn), "dbname": database}
        conninfo = " ".join(f"{k}={v}" for k, v in params.items() if k in ("dbname", "host", "port", "user", "password"))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_API_URL"))},
            "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(scratch / f"prefect-{workers}"),
            "QUARRY_CATALOG": f"postgres:{conninfo}", "QUARRY_DATA_PATH": str(scratch / f"lake-{workers}") + "/",
            "QUARRY_REPORTS_DIR": str(scratch / "reports"), "QUARRY_SAMPLE_SYMBOLS": str(args.symbols),
            "QUARRY_START_DATE": args.start.isoformat(), "QUARRY_TASK_RUNNER": "dask",
            "QUARRY_DASK_WORKERS": str(workers), "QUARRY_BATCH_PARTITIONS": "21",
        }
        out = subprocess.run(
            [sys.executable, __file__, "--phase-workers", str(workers), "--start", args.start.isoformat(),
             "--end", args.end.isoformat()],
            env=env, capture_output=True, text=True,
        )
        if out.returncode:
            tail = "\n".join((out.stdout + out.stderr).splitlines()[-40:])
            sys.exit(f"the {workers}-worker backfill failed (exit status {out.returncode}); its last lines:\n{tail}")
        results[workers] = json.loads(out.stdout.strip().splitlines()[-1])
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    one, two = results[1], results[2]
    print(f"# One-year backfill of {args.symbols} symbols (+bars_daily, {args.start}..{args.end}), PostgreSQL catalog, Dask")
    print(f"1 worker : {one['wall_s']:.2f} s, {one['built']} partitions, {one['rows']:,} rows, processes {one['workers']}")
    print(f"2 workers: {two['wall_s']:.2f} s, {two['built']} partitions, {two['rows']:,} rows, processes {two['workers']}")
    print(f"speed-up 2 vs 1 workers: {one['wall_s'] / two['wall_s']:.2f}× on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
