"""Quarry's cost in CPU seconds against a plain script running the same transforms on the same inputs.

Run: .venv/bin/python benchmarks/bench_materialize.py [--scenarios default,5y] [--keep]

Scenarios (20 sample symbols each; the last session is fixed so runs compare):
  default   the embedded default window (2025-01-02 .. END), about two years
  5y        five years to END
For each: `quarry materialize` in a fresh directory against a Prefect server started here (CPU of the
process and its children, plus the server's CPU beyond its idle rate while it records the run), then the plain baseline
in a fresh process: every asset's transform once over the whole window in dependency order, the same
contracts and checks, Parquet files; no versions, catalog, transactions or Prefect. The default
scenario then measures a one-session update (the build stops a session short; the update adds END
and rebuilds what depends on it) and a no-op run.

Overhead share = (Quarry CPU − plain CPU) / Quarry CPU. The Prefect floor is a flow with as many
materializing tasks as the build recorded, each doing nothing, against the same server: the lowest
overhead share any Prefect-orchestrated build of that shape can reach is floor / (plain + floor). CPU seconds are user + system time from
getrusage (children included), not wall time: the machine may be shared. Progress goes to stderr as
the phases run; the last line on stdout is one JSON object. A failing phase prints its output's tail,
keeps the scratch directory and still ends with a JSON line (with "error"), exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
END = date(2026, 11, 27)
DEFAULT_START = date(2025, 1, 2)
SYMBOLS = 20


class PhaseFailed(RuntimeError):
    """A phase's process failed; the message carries the tail of its output."""


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- the plain baseline (runs in its own process) ------------------------------------------

def phase_plain(start: date, end: date, out: Path) -> dict:
    """Every asset's transform once over the whole window, the same audit, Parquet out; no engine."""
    import polars as pl

    from assets import default_graph
    from assets.calendar import sessions as exchange_sessions
    from assets.model import UNPARTITIONED
    from pipelines.building import SourceWindow, partition_keys_of
    from pipelines.planning import RunWindow, handed_resource
    from pipelines.resources import Resources
    from pipelines.settings import Settings
    from quality.audit import audit

    resources = Resources.from_settings(Settings())
    window = RunWindow.between(start, end)
    sessions = exchange_sessions(start, end)
    frames: dict[str, pl.DataFrame] = {}
    cpu = {"transform": 0.0, "audit": 0.0, "write": 0.0}
    rows = 0
    out.mkdir(parents=True, exist_ok=True)
    for asset in default_graph():
        mark = time.process_time()
        inputs = {dep: frames[dep] for dep in asset.deps}
        for name in asset.context_inputs:
            if name == "fetched":
                handed = handed_resource(asset, {"source": resources.source, **resources.engine_resources})
                inputs["fetched"] = asset.fetch(handed, SourceWindow(sessions))
            elif name == "sessions":
                inputs["sessions"] = sessions
            elif name == "partition_keys":
                inputs["partition_keys"] = window.keys_for(asset)
            elif name == "previous":
                inputs["previous"] = None
        output = asset.build(inputs)
        frames[asset.name] = output
        cpu["transform"] += time.process_time() - mark

        mark = time.process_time()
        keyed = output.with_columns(partition_key=partition_keys_of(asset, output))
        keys = keyed["partition_key"].unique().to_list() if asset.is_partitioned else [UNPARTITIONED]
        audit(asset, keyed, keys)
        cpu["audit"] += time.process_time() - mark

        mark = time.process_time()
        output.write_parquet(out / f"{asset.name}.parquet")
        cpu["write"] += time.process_time() - mark
        rows += output.height
    return {"rows": rows, "stage_cpu_s": {k: round(v, 2) for k, v in cpu.items()}}


def phase_prefect_floor(tasks: int) -> dict:
    """What Prefect alone costs for a build of `tasks` batches: the same flow and task machinery, no work.

    Each task is a materializing task with an asset key and an upstream asset, run on the same
    thread pool as `materialize_flow`, and returns at once. Its CPU is a floor under any build that
    Prefect orchestrates with that many tasks, whatever the engine does around it.
    """
    from prefect import flow
    from prefect.assets import Asset, materialize
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    def nothing(batch: dict) -> int:
        return 0

    @flow(name="prefect-floor", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def floor(count: int) -> int:
        futures = []
        for index in range(count):
            task = materialize(Asset(key=f"quarry://floor/asset-{index % 21}"),
                               asset_deps=[f"quarry://floor/asset-{(index + 1) % 21}"],
                               cache_policy=NO_CACHE, persist_result=False)(nothing)
            futures.append(task.with_options(task_run_name=f"batch-{index}").submit({"batch": index}))
        return sum(future.result() for future in futures)

    floor(tasks)
    return {"tasks": tasks}


# ---- measuring processes -------------------------------------------------------------------

def _tree_cpu(pid: int) -> float:
    """User + system seconds of a live process and its live descendants, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


#: The Prefect server's CPU seconds per wall second when nobody talks to it (its own loop services).
SERVER_IDLE_RATE = {"per_s": 0.0}


def measure_server_idle(server_pid: int, seconds: float = 20.0) -> float:
    before = _tree_cpu(server_pid)
    time.sleep(seconds)
    SERVER_IDLE_RATE["per_s"] = (_tree_cpu(server_pid) - before) / seconds
    return SERVER_IDLE_RATE["per_s"]


def measured(label: str, command: list[str], env: dict[str, str], cwd: Path, server_pid: int | None) -> dict:
    """Run one command to completion; its CPU seconds (children included) and the server's meanwhile.

    The server's share is what it spent beyond its idle rate over the same wall time: the
    work of recording this run (flow and task runs, logs, asset events).
    """
    say(f"{label}: started")
    log_path = cwd / f"{label.replace(' ', '_')}.log"
    server_before = _tree_cpu(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    server = max(_tree_cpu(server_pid) - server_before - SERVER_IDLE_RATE["per_s"] * wall, 0.0) if server_pid else 0.0
    code = os.waitstatus_to_exitcode(status)
    output = log_path.read_text(errors="replace")
    if code not in (0,):
        tail = "\n".join(output.splitlines()[-30:])
        raise PhaseFailed(f"{label}: exit status {code}; last lines of {log_path}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    say(f"{label}: {cpu:.2f} CPU-s in the process (+{server:.2f} on the Prefect server), {wall:.1f} s wall")
    return {"cpu_s": round(cpu, 2), "server_cpu_s": round(server, 2), "wall_s": round(wall, 1), "output": output}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            raise PhaseFailed(f"the Prefect server exited with status {server.returncode} while starting")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(1)
    server.kill()
    raise PhaseFailed("the Prefect server did not answer within 300 s")


def stop_server(server: subprocess.Popen) -> None:
    """Ask the Prefect server to stop, and kill it if it has not within 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def task_run_count(api_url: str) -> int:
    """Task runs the Prefect server has recorded so far."""
    request = urllib.request.Request(f"{api_url}/task_runs/count", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(json.loads(answer.read()))


def catalog_figures(workdir: Path) -> dict:
    """Rows and partitions published, and a digest of every (asset, partition, data version)."""
    from warehouse import Warehouse

    with Warehouse.open(f"sqlite:{workdir}/data/catalog.sqlite", f"{workdir}/data/lake/", read_only=True) as lake:
        current = lake.current_versions().sort("asset", "partition_key")
    text = "\n".join(f"{a}|{p}|{d}" for a, p, d in current.select("asset", "partition_key", "data_version").iter_rows())
    return {
        "rows": int(current["row_count"].sum()),
        "partitions": current.height,
        "data_versions_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
        "data_versions": text,
    }


def previous_session(day: date) -> date:
    from assets.calendar import sessions as exchange_sessions

    return exchange_sessions(day - timedelta(days=10), day - timedelta(days=1))["session_date"].max()


# ---- scenarios -----------------------------------------------------------------------------

def run_scenario(name: str, start: date, scratch: Path, base_env: dict[str, str], api_url: str, server_pid: int,
                 with_update: bool) -> dict:
    workdir = scratch / name
    workdir.mkdir()
    env = {
        **base_env,
        "QUARRY_CATALOG": f"sqlite:{workdir}/data/catalog.sqlite",
        "QUARRY_DATA_PATH": f"{workdir}/data/lake/",
        "QUARRY_REPORTS_DIR": f"{workdir}/reports",
        "QUARRY_LEDGER_URL": f"sqlite:///{workdir}/data/ledger.sqlite",
        "QUARRY_SAMPLE_SYMBOLS": str(SYMBOLS),
        "QUARRY_START_DATE": start.isoformat(),
        "PREFECT_API_URL": api_url,
    }
    quarry = [sys.executable, "-c", "from pipelines.cli import main; main()", "materialize"]
    build_end = previous_session(END) if with_update else END
    say(f"{name}: {SYMBOLS} symbols, {start} .. {build_end}")
    tasks_before = task_run_count(api_url)
    build = measured(f"{name} quarry build", [*quarry, "--to", build_end.isoformat()], env, workdir, server_pid)
    build_tasks = task_run_count(api_url) - tasks_before
    published = catalog_figures(workdir)
    plain = measured(
        f"{name} plain script",
        [sys.executable, str(Path(__file__).resolve()), "--phase", "plain", "--from", start.isoformat(),
         "--to", build_end.isoformat(), "--out", str(workdir / "plain")],
        env, workdir, None,
    )
    plain_figures = json.loads(plain["output"].strip().splitlines()[-1])
    floor = measured(f"{name} prefect floor",
                     [sys.executable, str(Path(__file__).resolve()), "--phase", "prefect-floor",
                      "--tasks", str(build_tasks)], env, workdir, server_pid)
    floor_cpu = floor["cpu_s"] + floor["server_cpu_s"]
    quarry_cpu = build["cpu_s"] + build["server_cpu_s"]
    result = {
        "window": f"{start}..{build_end}",
        "symbols": SYMBOLS,
        "partitions_published": published["partitions"],
        "rows_published": published["rows"],
        "quarry_cpu_s": round(quarry_cpu, 2),
        "quarry_process_cpu_s": build["cpu_s"],
        "prefect_server_cpu_s": build["server_cpu_s"],
        "plain_cpu_s": plain["cpu_s"],
        "plain_stage_cpu_s": plain_figures["stage_cpu_s"],
        "plain_rows": plain_figures["rows"],
        "overhead_share": round((quarry_cpu - plain["cpu_s"]) / quarry_cpu, 3),
        "prefect_tasks": build_tasks,
        "prefect_floor_cpu_s": round(floor_cpu, 2),
        "prefect_floor_server_cpu_s": floor["server_cpu_s"],
        "overhead_share_floor": round(floor_cpu / (plain["cpu_s"] + floor_cpu), 3),
        "quarry_cpu_ms_per_row": round(1000 * quarry_cpu / max(published["rows"], 1), 4),
        "data_versions_sha256": published["data_versions_sha256"],
        "wall_s": {"quarry": build["wall_s"], "plain": plain["wall_s"]},
    }
    (scratch / f"{name}-data-versions.txt").write_text(published["data_versions"])
    say(f"{name}: overhead share {result['overhead_share']:.1%} "
        f"(Quarry {quarry_cpu:.1f} CPU-s vs plain {plain['cpu_s']:.1f}); {published['rows']:,} rows published; "
        f"Prefect alone with {build_tasks} empty tasks {floor_cpu:.1f} CPU-s, a floor of "
        f"{result['overhead_share_floor']:.1%}")
    if with_update:
        update = measured(f"{name} one-session update", [*quarry, "--to", END.isoformat()], env, workdir, server_pid)
        updated = catalog_figures(workdir)
        (scratch / f"{name}-updated-data-versions.txt").write_text(updated["data_versions"])
        noop = measured(f"{name} no-op", [*quarry, "--to", END.isoformat()], env, workdir, server_pid)
        if "up to date" not in noop["output"]:
            raise PhaseFailed(f"{name} no-op: expected 'Everything up to date', got:\n{noop['output'][-2000:]}")
        result["update_cpu_s"] = round(update["cpu_s"] + update["server_cpu_s"], 2)
        result["update_server_cpu_s"] = update["server_cpu_s"]
        result["update_data_versions_sha256"] = updated["data_versions_sha256"]
        result["noop_cpu_s"] = round(noop["cpu_s"] + noop["server_cpu_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="default,5y", help="comma list of: default, 5y")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (data-version lists)")
    parser.add_argument("--phase", choices=["plain", "prefect-floor"], help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--from", dest="start", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--to", dest="end", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "plain":
        print(json.dumps(phase_plain(args.start, args.end, args.out)))
        return
    if args.phase == "prefect-floor":
        print(json.dumps(phase_prefect_floor(args.tasks)))
        return

    scenarios = {"default": DEFAULT_START, "5y": date(END.year - 5, END.month, END.day)}
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in scenarios]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(scenarios)}")
    scratch = Path(tempfile.mkdtemp(prefix="quarry-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_"))}
    base_env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(scratch / "prefect-home"),
                    PREFECT_SERVER_ANALYTICS_ENABLED="false")
    results: dict = {"end": END.isoformat(), "source": str(ROOT)}
    server = None
    failed = False
    try:
        say(f"scratch directory {scratch}; starting a Prefect server")
        server, api_url = start_server(scratch / "prefect-home", base_env)
        say(f"Prefect server idle: {measure_server_idle(server.pid):.3f} CPU-s per second (subtracted from its share)")
        results["server_idle_cpu_per_s"] = round(SERVER_IDLE_RATE["per_s"], 4)
        for name in wanted:
            results[name] = run_scenario(name, scenarios[name], scratch, base_env, api_url, server.pid,
                                         with_update=name == "default")
        if "default" in results and "5y" in results:
            results["cpu_per_row_5y_over_default"] = round(
                results["5y"]["quarry_cpu_ms_per_row"] / results["default"]["quarry_cpu_ms_per_row"], 3
            )
    except (PhaseFailed, OSError, ValueError, KeyError) as error:
        failed = True
        say(f"FAILED: {error}")
        results["error"] = str(error).splitlines()[0]
    except KeyboardInterrupt:
        failed = True
        results["error"] = "interrupted"
    finally:
        if server is not None:
            stop_server(server)
        if failed or args.keep:
            say(f"scratch directory kept: {scratch}")
            results["scratch"] = str(scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    own = resource.getrusage(resource.RUSAGE_SELF)
    results["driver_cpu_s"] = round(own.ru_utime + own.ru_stime, 2)
    print(json.dumps(results))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
