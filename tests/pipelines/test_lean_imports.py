"""A run that only plans, and a command that only reads the catalog, load only what they need: no Prefect, pandas,
exchange-calendars, Pandera, requests, Alembic, statsmodels or matplotlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.conftest import WINDOW_START
from warehouse.ledger import upgrade

pytestmark = pytest.mark.slow  # real quarry subprocesses

#: Heavy libraries a no-op or planning run must not import (a build, a real source or a cold calendar cache may).
NOT_FOR_PLANNING = ("prefect", "pandas", "exchange_calendars", "pandera", "requests", "alembic", "statsmodels", "matplotlib")

PROBE = """
import json, sys
from pipelines.cli import app

outputs = []
for args in (["materialize", "bars_raw", "--from", DAY, "--to", DAY], ["materialize", "--plan", "--json", "--to", DAY],
             ["assets", "--json"], ["sql", "SELECT count(*) AS n FROM bars_raw"], ["trade", "kill-switch", "status"]):
    try:
        app(args, standalone_mode=False)
    except SystemExit as stop:
        assert not stop.code, stop.code
    outputs.append(sorted(name for name in HEAVY if name in sys.modules))
print(json.dumps(outputs))
"""


def test_a_noop_run_a_plan_and_catalog_reads_import_no_prefect_pandas_calendar_pandera_requests_or_alembic(lake, tmp_path):
    day = WINDOW_START.isoformat()
    lake.materialize("bars_raw", start=WINDOW_START, end=WINDOW_START, run_id="built")  # also warms the session cache
    (tmp_path / "data").mkdir(exist_ok=True)
    ledger = sa.create_engine(f"sqlite:///{tmp_path}/data/ledger.sqlite")  # the ledger an earlier run created
    upgrade(ledger)  # (creating a new one is Alembic's work; finding one current is not)
    ledger.dispose()
    script = PROBE.replace("DAY", repr(day)).replace("HEAVY", repr(NOT_FOR_PLANNING))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}, **lake.env(), "COLUMNS": "160"}
    probe = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    *printed, loaded = probe.stdout.strip().splitlines()
    assert "Everything up to date" in "\n".join(printed)
    assert json.loads(loaded) == [[], [], [], [], []]
