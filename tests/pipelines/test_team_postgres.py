"""The team setup on a real PostgreSQL: the roles script, Prefect's server on PostgreSQL as its own role, the
warehouse catalog as the app role, and an analyst role that can read it and write nothing."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.conftest import catalog_kinds

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.server]
if "postgres" not in catalog_kinds() or not os.environ.get("QUARRY_TEST_PG_DSN"):
    pytestmark.append(pytest.mark.skip(reason="needs QUARRY_TEST_PG_DSN (always set in CI)"))


@pytest.fixture
def team(tmp_path):
    dsn = os.environ["QUARRY_TEST_PG_DSN"]
    prefix = f"q{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["psql", dsn, "-q", "-v", f"prefix={prefix}", "-v", "prefect_password='prefect-pw'",
         "-v", "app_password='app-pw'", "-v", "analyst_password='analyst-pw'",
         "-f", str(ROOT / "warehouse" / "sql" / "postgres_roles.sql")],
        check=True, capture_output=True, text=True,
    )
    where = conninfo_to_dict(dsn)
    yield prefix, where["host"], where.get("port", "5432")
    with psycopg.connect(dsn, autocommit=True) as admin:
        for database in ("prefect", "lake", "ledger"):
            admin.execute(f'DROP DATABASE IF EXISTS "{prefix}_{database}" WITH (FORCE)')
        for role in ("prefect", "app", "analyst"):
            admin.execute(f'DROP ROLE IF EXISTS "{prefix}_{role}"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prefect_on_postgres_runs_a_materialization_and_analysts_only_read(team, tmp_path):
    prefix, host, port = team
    api_port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QUARRY_", "PREFECT_"))}
    server_env = {
        **base, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{prefix}_prefect:prefect-pw@{host}:{port}/{prefix}_prefect",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
        env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        api = f"http://127.0.0.1:{api_port}/api"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Prefect server on PostgreSQL did not start")

        app_catalog = f"postgres:dbname={prefix}_lake host={host} port={port} user={prefix}_app password=app-pw"
        run_env = {
            **base, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "client-home"),
            "QUARRY_CATALOG": app_catalog, "QUARRY_DATA_PATH": str(tmp_path / "lake") + "/",
            "QUARRY_REPORTS_DIR": str(tmp_path / "reports"), "QUARRY_START_DATE": "2025-03-03",
        }
        built = subprocess.run(
            [str(Path(sys.executable).with_name("quarry")), "materialize", "+bars_daily", "--to", "2025-03-05"],
            env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=60)

    prefect_db = f"host={host} port={port} dbname={prefix}_prefect user={prefix}_prefect password=prefect-pw"
    with psycopg.connect(prefect_db) as prefect:
        states = prefect.execute("SELECT state_type FROM flow_run WHERE flow_id IN (SELECT id FROM flow WHERE name = 'materialize')").fetchall()
    assert [s[0] for s in states] == ["COMPLETED"]

    analyst = f"host={host} port={port} dbname={prefix}_lake user={prefix}_analyst password=analyst-pw"
    with psycopg.connect(analyst) as reader:
        assert reader.execute("SELECT count(*) FROM ducklake_snapshot").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("DELETE FROM ducklake_snapshot")
    from warehouse import Warehouse

    with Warehouse.open(f"postgres:{analyst}", str(tmp_path / "lake") + "/", read_only=True) as warehouse:
        assert warehouse.read("bars_daily").height == 3 * 20
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host={host} port={port} dbname={prefix}_prefect user={prefix}_analyst password=analyst-pw")
