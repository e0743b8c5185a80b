"""A PostgreSQL ledger behind a password is backed up and restored with the password out of every process's
arguments: pg_dump and pg_restore (the real programs, on a PostgreSQL cluster of the test's own that asks for
scram-sha-256 passwords over TCP) get it from a private password file, and a wrong password fails with nothing leaked.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from warehouse.backup import BackupError, libpq_address, restore
from warehouse.ledger import Ledger, upgrade

PASSWORD = "Desk-s3cret-9f2c"
NOW = datetime(2025, 3, 5, 15, tzinfo=timezone.utc)


def _pg_bin(program: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}")) or [shutil.which(program)]
    return found[-1]


def _as_cluster_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: there the cluster belongs to the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def password_cluster():
    """A throwaway PostgreSQL cluster: TCP logins need a scram-sha-256 password, the socket is for the fixture."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("initdb/pg_ctl not installed")
    root = Path(tempfile.mkdtemp(prefix="quarry-pgpass-"))
    root.chmod(0o755)
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(_as_cluster_owner([initdb, "-D", str(data), "-U", "postgres", "--auth-local=trust",
                                      "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    subprocess.run(_as_cluster_owner([pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                                      f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        admin = sa.create_engine(f"postgresql+psycopg://postgres@/postgres?host={sockets}&port={port}",
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as con:
            con.exec_driver_sql(f"CREATE ROLE desk LOGIN PASSWORD '{PASSWORD}'")
            for name in ("ledger_live", "ledger_restored", "lake_live", "lake_restored", "ledger_team_restored"):
                con.exec_driver_sql(f"CREATE DATABASE {name} OWNER desk")
        admin.dispose()
        yield port
    finally:
        subprocess.run(_as_cluster_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)


#: What a shim writes down before it runs the real program: its arguments, whether PGPASSWORD was set, and
#: whether the password file its --dbname names exists, is readable by its owner only and holds the password.
RECORDER = f"""
import json, os, stat, sys
from psycopg.conninfo import conninfo_to_dict
dbname = next((a[len("--dbname="):] for a in sys.argv[3:] if a.startswith("--dbname=")), "")
passfile = conninfo_to_dict(dbname).get("passfile")
private = bool(passfile) and os.path.exists(passfile) and not stat.S_IMODE(os.stat(passfile).st_mode) & 0o077
holds = private and open(passfile).read().rstrip().endswith({PASSWORD!r})
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[2:], "pgpassword_set": "PGPASSWORD" in os.environ,
                           "passfile": passfile, "passfile_private": private, "passfile_holds_password": holds}}) + "\\n")
"""


@pytest.fixture
def recorded_argv(tmp_path, monkeypatch) -> Path:
    """pg_dump and pg_restore on PATH are the real programs behind a shim that records the arguments they got."""
    log, shims = tmp_path / "argv.jsonl", tmp_path / "shims"
    shims.mkdir()
    recorder = shims / "record.py"
    recorder.write_text(RECORDER)
    for program in ("pg_dump", "pg_restore"):
        shim = shims / program
        shim.write_text(f"#!/bin/sh\n{sys.executable} {recorder} {log} \"$0\" \"$@\"\nexec {_pg_bin(program)} \"$@\"\n")
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    return log


def _url(port: int, database: str, password: str = PASSWORD) -> str:
    return f"postgresql+psycopg://desk:{password}@127.0.0.1:{port}/{database}"


@pytest.mark.slow
@pytest.mark.postgres
def test_the_password_reaches_pg_dump_and_pg_restore_only_through_a_private_password_file(
    lake, tmp_path, monkeypatch, password_cluster, recorded_argv,
):
    from pipelines.maintenance import take_backup
    from pipelines.settings import Settings

    port = password_cluster
    assert lake.materialize("+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 4)).exit_code == 0
    engine = sa.create_engine(_url(port, "ledger_live"))
    upgrade(engine)
    Ledger(engine).raise_alert(at=NOW, level="critical", source="kill-switch", message="kill switch turned on")
    engine.dispose()
    for name, value in {**lake.env(), "QUARRY_LEDGER_URL": _url(port, "ledger_live"),
                        "QUARRY_BACKUPS_DIR": str(tmp_path / "backups")}.items():
        monkeypatch.setenv(name, value)

    taken = take_backup(Settings())
    assert "ledger.dump" in {d.relative_path for d in taken.databases}
    restored = restore(taken.path, tmp_path / "restored",
                       target_ledger=f"postgresql://desk:{PASSWORD}@127.0.0.1:{port}/ledger_restored")
    with sa.create_engine(_url(port, "ledger_restored")).connect() as con:
        assert con.exec_driver_sql("SELECT source, message FROM alerts").all() == [("kill-switch", "kill switch turned on")]
    assert restored.ledger_url is not None

    calls = [json.loads(line) for line in recorded_argv.read_text().splitlines()]
    assert [Path(c["argv"][0]).name for c in calls] == ["pg_dump", "pg_restore"]
    for call in calls:
        assert not any(PASSWORD in argument for argument in call["argv"]), call["argv"]
        assert any(a.startswith("--dbname=") and "desk" in a for a in call["argv"]) and not call["pgpassword_set"]
        assert call["passfile_private"] and call["passfile_holds_password"], call
        assert not Path(call["passfile"]).exists()  # gone once the command is done
    assert PASSWORD not in (taken.path / "manifest.json").read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_wrong_password_fails_in_one_line_without_showing_it(lake, tmp_path, monkeypatch, password_cluster,
                                                             recorded_argv):
    from pipelines.maintenance import take_backup
    from pipelines.settings import Settings

    wrong = "Not-the-desk-pw-77"
    for name, value in {**lake.env(), "QUARRY_LEDGER_URL": _url(password_cluster, "ledger_live", wrong),
                        "QUARRY_BACKUPS_DIR": str(tmp_path / "backups")}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BackupError, match="pg_dump failed.*password authentication failed") as failure:
        take_backup(Settings())
    assert wrong not in str(failure.value) and "\n" not in str(failure.value).strip()
    [call] = [json.loads(line) for line in recorded_argv.read_text().splitlines()]
    assert not any(wrong in argument for argument in call["argv"]) and call["passfile_private"]
    assert not list((tmp_path / "backups").iterdir())  # nothing half-written under a final name


@pytest.mark.slow
@pytest.mark.postgres
def test_a_team_lake_behind_a_password_restores_with_pgpassword_and_prints_no_password(
    tmp_path, monkeypatch, password_cluster, recorded_argv,
):
    """The catalog on PostgreSQL too: backed up with the password in the address, restored by `quarry restore`
    with addresses that carry none (PGPASSWORD instead), and the settings it prints show no password."""
    from tests.conftest import Lake
    from warehouse import Warehouse
    from warehouse.backup import backup

    port = password_cluster
    address = f"host=127.0.0.1 port={port} user=desk"
    catalog = f"postgres:{address} dbname=lake_live password={PASSWORD}"
    warehouse = Warehouse.open(catalog, f"{tmp_path}/lake/")
    lake = Lake(tmp_path, catalog, f"{tmp_path}/lake/", warehouse)
    try:
        assert lake.materialize("+bars_daily", start=date(2025, 3, 3), end=date(2025, 3, 4)).exit_code == 0
        expected = warehouse.read("bars_daily").sort("symbol", "session_date")
    finally:
        warehouse.close()
    taken = backup(catalog, f"{tmp_path}/lake/", tmp_path / "backups",
                   ledger_conninfo=f"postgresql://desk:{PASSWORD}@127.0.0.1:{port}/ledger_live")
    assert PASSWORD not in (taken.path / "manifest.json").read_text()

    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("quarry")), "restore", str(taken.path), "--to", str(tmp_path / "restored"),
         "--catalog", f"postgres:{address} dbname=lake_restored", "--ledger", f"{address} dbname=ledger_team_restored"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**env, "PGPASSWORD": PASSWORD},
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert PASSWORD not in cli.stdout + cli.stderr and "QUARRY_CATALOG=postgres:" in cli.stdout
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with Warehouse.open(f"postgres:{address} dbname=lake_restored", f"{tmp_path / 'restored' / 'lake'}/",
                        read_only=True) as restored:
        assert restored.read("bars_daily").sort("symbol", "session_date").equals(expected)
    calls = [json.loads(line) for line in recorded_argv.read_text().splitlines()]
    assert [Path(c["argv"][0]).name for c in calls] == ["pg_dump", "pg_dump", "pg_restore", "pg_restore"]
    assert not any(PASSWORD in argument for call in calls for argument in call["argv"])


@pytest.mark.parametrize("conninfo", [
    f"postgresql://desk:{PASSWORD}@127.0.0.1:5432/ledger?sslmode=disable",
    f"host=127.0.0.1 port=5432 dbname=ledger user=desk password='{PASSWORD}'",
    "host=127.0.0.1 dbname=ledger user=desk password='with:colon\\\\and back\\\\slash'",
])
def test_both_libpq_address_forms_lose_their_password_to_a_private_file_gone_afterwards(conninfo):
    from psycopg.conninfo import conninfo_to_dict

    password = conninfo_to_dict(conninfo)["password"]
    with libpq_address(conninfo) as address:
        params = conninfo_to_dict(address)
        passfile = Path(params.pop("passfile"))
        assert password not in address and params["user"] == "desk" and params["dbname"] == "ledger"
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        [line] = passfile.read_text().splitlines()
        # the pgpass format: host:port:database:user:password, backslash escaping ':' and '\\'
        fields = re.split(r"(?<!\\):", line)
        assert fields[:4] == ["*"] * 4 and re.sub(r"\\(.)", r"\1", fields[4]) == password
    assert not passfile.exists() and not passfile.parent.exists()


def test_an_address_without_a_password_gets_no_password_file():
    from psycopg.conninfo import conninfo_to_dict

    with libpq_address("host=127.0.0.1 dbname=ledger user=desk") as address:
        assert conninfo_to_dict(address) == {"host": "127.0.0.1", "dbname": "ledger", "user": "desk"}
    with pytest.raises(BackupError, match="not a PostgreSQL address"):
        with libpq_address("host=127.0.0.1 dbname='unterminated"):
            pass
