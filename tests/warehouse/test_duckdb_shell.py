"""`quarry duckdb` as a real process: DuckDB's own shell at the pinned version, offline, on the lake read-only with the surface."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shlex
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Lake, catalog_kinds
from warehouse import Warehouse
from warehouse.duckdb_shell import ShellSetupError, cli_binary, cli_version, init_script, require_same_version

pytestmark = pytest.mark.slow  # real quarry subprocesses

ROOT = Path(__file__).resolve().parents[2]
QUARRY = str(Path(sys.executable).with_name("quarry"))
LAST_DAY = date(2025, 3, 5)
#: Nothing answers here: an extension download through it fails at once instead of reaching the network.
NO_NETWORK = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}


def quarry(lake, *args: str, stdin: str = "", home: Path | None = None) -> subprocess.CompletedProcess:
    """Run `quarry` in the lake's directory; with `home`, as a user whose home has no DuckDB extensions and no network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")} | lake.env()
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    if home is not None:
        env |= {"HOME": str(home)} | NO_NETWORK
    return subprocess.run([QUARRY, *args], cwd=lake.root, env=env, input=stdin, capture_output=True, text=True, timeout=300)


def fingerprint(root: Path) -> dict[str, str]:
    """Every file of the warehouse by content: equal before and after means unchanged."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def build(lake):
    lake.materialize("+bars_daily", end=LAST_DAY, run_id="run-duckdb-shell")
    return lake


@pytest.fixture
def built(lake):
    return build(lake)


def test_the_installed_cli_and_every_pin_are_the_engine_version():
    assert importlib.metadata.version("duckdb-cli") == duckdb.__version__
    assert cli_version(cli_binary()) == duckdb.__version__
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    duckdb_pins = {name: version for name, _, version in (p.partition("==") for p in pins) if name.startswith("duckdb")}
    assert {"duckdb", "duckdb-cli", "duckdb-extension-ducklake"} <= duckdb_pins.keys()
    assert set(duckdb_pins.values()) == {duckdb.__version__}, pins


def test_a_cli_of_another_version_is_refused_naming_the_one_to_install():
    require_same_version("1.5.5", "1.5.5")
    with pytest.raises(ShellSetupError, match=r"the DuckDB CLI is 1\.5\.6 but Quarry's DuckDB is 1\.5\.5.*"
                                              r"pip install 'duckdb-cli==1\.5\.5'"):
        require_same_version("1.5.6", "1.5.5")
    with pytest.raises(ShellSetupError, match=r"no build for DuckDB 0\.0\.1"):
        init_script("sqlite:catalog.sqlite", "lake/", Path("extensions"), "0.0.1")


@pytest.mark.parametrize("catalog_kind", catalog_kinds())
def test_duckdb_answers_as_quarry_sql_does_offline_and_touches_no_global_extension_directory(make_lake, catalog_kind, home):
    built = build(make_lake(catalog_kind=catalog_kind))
    query = "SELECT count(*) AS n FROM bars_daily"
    expected = quarry(built, "sql", query, "--format", "csv")
    assert expected.returncode == 0, expected.stderr
    rows = int(expected.stdout.splitlines()[1])
    assert rows > 0

    answered = quarry(built, "duckdb", "--", "-csv", "-noheader", "-c", query, home=home)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == str(rows)
    assert not (home / ".duckdb").exists()  # the extensions went to the session's own directory, gone with it


def test_statements_on_stdin_run_in_order_with_the_surface_and_writes_fail_leaving_the_warehouse_unchanged(built, home):
    before, rows = fingerprint(built.root), built.warehouse.read("bars_daily").height
    refused = quarry(built, "duckdb", "--", "-c", "DELETE FROM bars_daily", home=home)
    assert refused.returncode == 1 and "read-only" in refused.stderr, (refused.stdout, refused.stderr)
    writes = ["DELETE FROM bars_daily;", "CREATE TABLE junk(x INT);", "INSERT INTO bars_daily SELECT * FROM bars_daily;",
              "DROP TABLE bars_daily;", "CALL ducklake_expire_snapshots('lake', older_than => now());"]
    script = "\n".join([
        "SELECT 'before' AS at, count(*) AS n FROM bars_daily;",
        *writes,
        "SELECT 'after' AS at, count(*) AS n FROM bars_daily;",
        "SELECT asset, published_partitions FROM asset_catalog WHERE asset = 'bars_daily';",
        "SELECT count(*) FROM asset_versions('bars_daily') WHERE status = 'published';",
    ]) + "\n"
    session = quarry(built, "duckdb", "--", "-csv", "-noheader", stdin=script, home=home)
    assert session.returncode == 1  # DuckDB's exit code after a session with errors
    assert session.stdout.splitlines() == [f"before,{rows}", f"after,{rows}", "bars_daily,3", "3"], session.stderr
    assert session.stderr.count("read-only mode") == len(writes), session.stderr
    assert fingerprint(built.root) == before
    assert built.warehouse.read("bars_daily").height == rows


@pytest.fixture
def project_lake(tmp_path, monkeypatch):
    """A warehouse at the default relative paths (data/catalog.sqlite, data/lake/), as Quickstart builds it."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    warehouse = Warehouse.open("sqlite:data/catalog.sqlite", "data/lake/")
    yield Lake(project, "sqlite:data/catalog.sqlite", "data/lake/", warehouse)
    warehouse.close()


def test_the_readme_way_from_another_duckdb_client_works_offline(project_lake, home):
    """The README's `duckdb -cmd …` line, as written, in a project directory after Quarry opened its warehouse once."""
    lake = build(project_lake)
    project = lake.root
    surface = quarry(lake, "sql-surface")
    (project / "quarry.sql").write_text(surface.stdout)
    assert quarry(lake, "sql", "SELECT 1", home=home).returncode == 0  # installs DuckLake into this user's ~/.duckdb
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if line.startswith("duckdb -cmd"))
    argv = [str(Path(sys.executable).with_name("duckdb")), *shlex.split(line)[1:], "-csv", "-noheader",
            "-c", "SELECT count(*) FROM asset_versions('bars_daily') WHERE status = 'published'"]
    answered = subprocess.run(argv, cwd=project, env=os.environ | {"HOME": str(home)} | NO_NETWORK,
                              capture_output=True, text=True, timeout=120)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == "3"
