"""Shared fixtures: a real DuckLake per test, the sample market, and one Prefect harness per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from assets import default_graph
from assets.sources import SampleSource
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from warehouse import Warehouse

WINDOW_START = date(2025, 3, 3)
WINDOW_END = date(2025, 3, 14)


@dataclass
class Lake:
    """A throwaway warehouse: its settings, an open handle, and a helper to materialize into it."""

    root: Path
    catalog: str
    data_path: str
    warehouse: Warehouse

    def env(self) -> dict[str, str]:
        return {
            "QUARRY_CATALOG": self.catalog,
            "QUARRY_DATA_PATH": self.data_path,
            "QUARRY_REPORTS_DIR": str(self.root / "reports"),
            "QUARRY_START_DATE": WINDOW_START.isoformat(),
        }

    def materialize(self, selection=None, *, source=None, graph=None, full_refresh=False, repair=False,
                    start=WINDOW_START, end=WINDOW_END, run_id="test-run", batch_partitions=260, ledger=None):
        """Materialize into this lake; the ledger handed to `live_performance` is `ledger`, else the configured one."""
        from pipelines.resources import LedgerOnUse
        from pipelines.settings import Settings

        submit, shutdown = thread_submitter(4)
        try:
            return run_materialization(
                graph or default_graph(), self.warehouse, source or SampleSource(),
                selection=selection, window=RunWindow.between(start, end), run_id=run_id,
                submit=submit, full_refresh=full_refresh, batch_partitions=batch_partitions, repair=repair,
                resources={"ledger": ledger or LedgerOnUse(Settings().ledger)},
            )
        finally:
            shutdown()


def catalog_kinds() -> list[str]:
    """The catalogs a parity test runs on: both, always; without PostgreSQL its variants show as skipped.

    CI must run them: there a missing QUARRY_TEST_PG_DSN is an error, not a skip.
    """
    if not os.environ.get("QUARRY_TEST_PG_DSN") and os.environ.get("CI") == "true":
        raise RuntimeError("CI must run the PostgreSQL suites: QUARRY_TEST_PG_DSN is not set (.ci/run sets it)")
    return ["sqlite", "postgres"]


@contextmanager
def postgres_catalog_database(dsn: str):
    """A fresh, empty PostgreSQL database for one DuckLake catalog, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"quarry_lake_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = {**conninfo_to_dict(dsn), "dbname": name}
    try:
        yield " ".join(f"{key}={value}" for key, value in params.items() if key in ("dbname", "host", "port", "user", "password"))
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", dest="run_everything",
                     help="also run the slow suites (real servers, workers and subprocesses); .ci/run passes it")


def pytest_collection_modifyitems(config, items):
    """Plain `pytest` is the everyday loop: the slow suites are left out unless `--all` is given or a test path is
    named on the command line (naming a file means wanting its tests)."""
    _one_worker_per_file_and_for_the_machine_suites(items)
    if config.getoption("run_everything") or config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        _files_with_slow_tests_first(items)
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


#: Under `pytest-xdist --dist loadgroup`, the group holding every suite that runs several processes at once.
MACHINE_GROUP = "machine"


def _one_worker_per_file_and_for_the_machine_suites(items) -> None:
    """Each file's tests share a worker (module fixtures are built once); the files marked `server` or `machine`
    (Prefect servers, workers, racing writers, CPU hogs) all share one worker, so two of them never compete for
    the cores while the in-process files run beside them on the others."""
    for item in items:
        exclusive = item.get_closest_marker("server") or item.get_closest_marker("machine")
        item.add_marker(pytest.mark.xdist_group(MACHINE_GROUP if exclusive else str(item.path)))


def _files_with_slow_tests_first(items) -> None:
    """Long files start first, so parallel workers end together instead of waiting on a long file handed out last:
    files with real Prefect servers, then files by how many slow tests they hold. Each file keeps its own order
    (module fixtures are shared in file order)."""
    from collections import Counter

    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    server = {item.path for item in items if item.get_closest_marker("server")}
    items.sort(key=lambda item: (item.path not in server, -slow[item.path]))


@pytest.fixture(autouse=True)
def alerts_outside_the_checkout(tmp_path_factory, monkeypatch):
    """Alert throttle state of code under test goes to a temporary file, never to the checkout's data/."""
    if "QUARRY_ALERTS_DB" not in os.environ:
        monkeypatch.setenv("QUARRY_ALERTS_DB", str(tmp_path_factory.mktemp("alerts") / "alerts.sqlite"))


@pytest.fixture(autouse=True, scope="session")
def run_logs_outside_the_checkout(tmp_path_factory):
    """Flows under test write their JSON run log to one temporary directory, never to the checkout's logs/."""
    if "QUARRY_LOGS_DIR" not in os.environ:
        os.environ["QUARRY_LOGS_DIR"] = str(tmp_path_factory.mktemp("logs"))


@pytest.fixture
def make_lake(tmp_path: Path):
    """Factory for real DuckLake warehouses: a SQLite catalog (default) or a PostgreSQL one, Parquet under tmp_path."""
    opened: list[Warehouse] = []
    with ExitStack() as databases:

        def make(name: str = "lake", catalog_kind: str = "sqlite") -> Lake:
            root = tmp_path / name
            if catalog_kind == "postgres":
                if not os.environ.get("QUARRY_TEST_PG_DSN"):
                    pytest.skip("PostgreSQL catalog variant: set QUARRY_TEST_PG_DSN to run it (CI always does)")
                catalog = "postgres:" + databases.enter_context(postgres_catalog_database(os.environ["QUARRY_TEST_PG_DSN"]))
            else:
                catalog = f"sqlite:{root}/catalog.sqlite"
            data_path = f"{root}/lake/"
            warehouse = Warehouse.open(catalog, data_path)
            opened.append(warehouse)
            return Lake(root, catalog, data_path, warehouse)

        yield make
        for warehouse in opened:
            warehouse.close()


@pytest.fixture
def lake(make_lake) -> Lake:
    return make_lake()


@pytest.fixture(scope="session")
def migrated_prefect_database(tmp_path_factory) -> Path:
    """A Prefect database with every migration applied, made once per session.

    A server or a temporary server on a fresh home spends about 10 CPU-s migrating its database;
    suites that test what comes after start from a copy of this one instead.
    """
    home = tmp_path_factory.mktemp("prefect-template")
    prefect = str(Path(sys.executable).with_name("prefect"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}, "PREFECT_HOME": str(home)}
    subprocess.run([prefect, "server", "database", "upgrade", "-y"], env=env, check=True, capture_output=True, timeout=600)
    return home / "prefect.db"


@pytest.fixture
def prefect_home(tmp_path, migrated_prefect_database) -> Path:
    """A PREFECT_HOME of the test's own whose database is already migrated (the first-run suites keep a fresh one)."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    shutil.copyfile(migrated_prefect_database, home / "prefect.db")
    return home


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness for the whole session: it takes 10–20 s to start (minutes on a busy machine)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
