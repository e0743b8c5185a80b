"""Trading fixtures: a ledger on SQLite and (when QUARRY_TEST_PG_DSN is set) on PostgreSQL, and a built lake."""

from __future__ import annotations

import os
import uuid
from datetime import date

import pytest
import sqlalchemy as sa

from assets import default_graph
from assets.sources import SampleSource
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.resources import LedgerOnUse
from warehouse import Warehouse
from warehouse.ledger import Ledger, LedgerConfig, upgrade

START, END = date(2025, 1, 2), date(2025, 9, 30)


def _pg_url(dsn: str) -> str:
    url = sa.make_url(dsn)
    return str(url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """Stand-ins listen on the IPv4 loopback only."""
    return ("127.0.0.1", 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):
    """A migrated ledger; the PostgreSQL case gets a schema of its own and is dropped afterwards."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path}/ledger.sqlite")
        upgrade(engine)
        yield Ledger(engine)
        engine.dispose()
        return
    dsn = os.environ.get("QUARRY_TEST_PG_DSN")
    if not dsn:
        pytest.skip("QUARRY_TEST_PG_DSN is not set")
    schema = f"ledger_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_pg_url(dsn))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(_pg_url(dsn), connect_args={"options": f"-csearch_path={schema}"})
    upgrade(engine)
    yield Ledger(engine)
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def build_lake(root, end: date = END) -> Warehouse:
    """Nine months of the sample market through every asset: active pairs, signals and a backtest (and the live
    book of an empty ledger of its own)."""
    warehouse = Warehouse.open(f"sqlite:{root}/catalog.sqlite", f"{root}/lake/")
    ledger = LedgerOnUse(LedgerConfig(url=f"sqlite:///{root}/build-ledger.sqlite"))
    submit, shutdown = thread_submitter(4)
    try:
        summary = run_materialization(default_graph(), warehouse, SampleSource(), selection=None,
                                      window=RunWindow.between(START, end), run_id="trading", submit=submit,
                                      batch_partitions=40, resources={"ledger": ledger})
    finally:
        shutdown()
    assert summary.exit_code == 0, summary.totals
    return warehouse
