"""No secret in any output: every secret-bearing setting gets a recognizable value, every dependency is down,
each failure path runs (CLI commands, flows under Prefect, alerts over real SMTP), and every output is grepped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.conftest import postgres_catalog_database
from warehouse.redaction import Redactor, conninfo_password, redact

ROOT = Path(__file__).resolve().parents[1]
QUARRY = [sys.executable, "-c", "from pipelines.cli import main; main()"]

CATALOG_PASSWORD = "CatPw'q7Zk"  # a quote, so a spliced ATTACH would break on it
LEDGER_PASSWORD = "LedgerPw4Xv"
SECRETS = {
    "catalog password": CATALOG_PASSWORD,
    "ledger DSN password": LEDGER_PASSWORD,
    "ALPACA_API_KEY": "AlpacaKeyId8Hj",
    "ALPACA_SECRET_KEY": "AlpacaSecret3Nw",
    "POLYGON_API_KEY": "PolygonKey6Rt",
    "QUARRY_SMTP_PASSWORD": "SmtpPw5Lm",
    "Prefect API URL password": "PrefectPw2Qd",
}


@pytest.mark.parametrize("text, hidden", [
    ("postgres:host=db password=s3cr3t dbname=lake", "s3cr3t"),
    ("host=db password='with space\\'quote' user=x", "with space"),
    ("postgresql+psycopg://desk:pa'ss@db:5432/ledger", "pa'ss"),
    ('Unable to connect to Postgres at "host=db password=hunter22": refused', "hunter22"),
    ("GET /v2/aggs?apiKey=K3Y123&limit=5", "K3Y123"),
])
def test_patterns_mask_passwords_in_connection_strings_without_knowing_them(text, hidden):
    assert hidden not in redact(text)
    assert "***" in redact(text)


def test_known_values_are_masked_in_every_encoding_they_travel_in():
    masked = Redactor([CATALOG_PASSWORD])
    for form in (CATALOG_PASSWORD, "CatPw%27q7Zk", "CatPw''q7Zk", "CatPw&#x27;q7Zk", "CatPw\\'q7Zk"):
        assert "q7Zk" not in masked(f"error near {form} here"), form
    assert "q7Zk" not in repr(masked)


def test_the_password_is_found_in_each_setting_form():
    assert conninfo_password(f"host=db password='{CATALOG_PASSWORD.replace(chr(39), chr(92) + chr(39))}'") == CATALOG_PASSWORD
    assert conninfo_password(f"postgresql+psycopg://u:{LEDGER_PASSWORD}@h:1/x") == LEDGER_PASSWORD
    assert conninfo_password("sqlite:data/catalog.sqlite") is None


# ---- every dependency down ----------------------------------------------------------------------


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    """A real SMTP server on loopback that accepts the login (so the password is used) and keeps every message."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_closed_port(), auth_require_tls=False,
                            authenticator=lambda *args: AuthResult(success=True))
    controller.start()
    yield controller.port, inbox
    controller.stop()


def _escaped_conninfo_password(password: str) -> str:
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture
def down_env(tmp_path, smtp_inbox, monkeypatch) -> dict[str, str]:
    """Settings with a recognizable value for every secret, pointing at services that are all down but SMTP."""
    smtp_port, _ = smtp_inbox
    dead = _closed_port()
    env = {
        "QUARRY_CATALOG": f"postgres:host=127.0.0.1 port={dead} dbname=lake user=quarry "
                          f"password={_escaped_conninfo_password(CATALOG_PASSWORD)}",
        "QUARRY_DATA_PATH": str(tmp_path / "lake") + "/",
        "QUARRY_LEDGER_URL": f"postgresql+psycopg://desk:{LEDGER_PASSWORD}@127.0.0.1:{dead}/ledger",
        "QUARRY_SOURCE": "alpaca",
        "ALPACA_API_KEY": SECRETS["ALPACA_API_KEY"],
        "ALPACA_SECRET_KEY": SECRETS["ALPACA_SECRET_KEY"],
        "POLYGON_API_KEY": SECRETS["POLYGON_API_KEY"],
        "QUARRY_ALPACA_DATA_URL": f"http://127.0.0.1:{dead}",
        "QUARRY_POLYGON_URL": f"http://127.0.0.1:{dead}",
        "QUARRY_BROKER_NAME": "alpaca",
        "QUARRY_ALPACA_TRADING_URL": f"http://127.0.0.1:{dead}",
        "QUARRY_SMTP_HOST": "127.0.0.1",
        "QUARRY_SMTP_PORT": str(smtp_port),
        "QUARRY_SMTP_USER": "desk",
        "QUARRY_SMTP_PASSWORD": SECRETS["QUARRY_SMTP_PASSWORD"],
        "QUARRY_SMTP_STARTTLS": "false",
        "QUARRY_SMTP_RECIPIENTS": "desk@example.com",
        "QUARRY_PREFECT_API_URL": f"http://ops:{SECRETS['Prefect API URL password']}@127.0.0.1:{dead}/api",
        "QUARRY_REPORTS_DIR": str(tmp_path / "reports"),
        "QUARRY_LOGS_DIR": str(tmp_path / "logs"),
        "QUARRY_ALERTS_DB": str(tmp_path / "alerts.sqlite"),
        "QUARRY_ARCHIVE_DIR": str(tmp_path / "archive"),
        "QUARRY_BACKUPS_DIR": str(tmp_path / "backups"),
        "QUARRY_SOURCE_MAX_ATTEMPTS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return env


def _leaks(text: str) -> list[str]:
    """Which secrets appear in `text`, in any encoding they could travel in."""
    from urllib.parse import quote

    forms = {name: {value, quote(value, safe=""), value.replace("'", "''"), value.replace("'", "&#x27;"),
                    value.replace("'", "&#39;")}
             for name, value in SECRETS.items()}
    return [name for name, values in forms.items() if any(v in text for v in values)]


def _files_text(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_bytes().decode("utf-8", "replace")
            for p in root.rglob("*") if p.is_file()}


COMMANDS = [
    ["materialize", "bars_raw"], ["assets"], ["health"], ["history", "bars_daily"], ["sql", "SELECT 1"],
    ["backup"], ["archive"], ["optimize"], ["trade", "pairs", "--ignore-clock"], ["trade", "kill-switch"],
]


@pytest.mark.slow
def test_no_cli_command_prints_a_secret_with_every_dependency_down(down_env, tmp_path, smtp_inbox, prefect_home):
    _, inbox = smtp_inbox
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(prefect_home), "COLUMNS": "200"}
    outputs = {}
    for command in COMMANDS:
        done = subprocess.run(QUARRY + command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        outputs[" ".join(command)] = done
        assert done.returncode != 0, f"quarry {' '.join(command)} succeeded with everything down: {done.stdout}"
        assert "Traceback" not in done.stdout + done.stderr, f"quarry {' '.join(command)}:\n{done.stderr}"
    leaked = {name: _leaks(out.stdout + out.stderr) for name, out in outputs.items()}
    assert not any(leaked.values()), leaked
    files = _files_text(tmp_path)
    assert not {path: _leaks(text) for path, text in files.items() if _leaks(text)}
    assert not _leaks("\n".join(e.content.decode("utf-8", "replace") for e in inbox.envelopes))


@pytest.mark.slow
def test_flows_logs_artifacts_alerts_and_emails_carry_no_secret(down_env, tmp_path, smtp_inbox, prefect_harness):
    """Health, materialization and maintenance flows fail under Prefect; grep its artifacts, run logs, state messages."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from pipelines.flows import materialize_flow
    from pipelines.logs import configure_file_logging
    from pipelines.maintenance import archive_old_data_flow
    from pipelines.monitoring import monitor_system_health_flow

    _, inbox = smtp_inbox
    configure_file_logging(tmp_path / "logs" / "quarry.jsonl")
    runs = []
    rows = monitor_system_health_flow(detect_failed_runs=False, return_state=True)
    runs.append(rows.state_details.flow_run_id)
    for flow in (materialize_flow, archive_old_data_flow):
        state = flow(return_state=True)
        assert state.is_failed()
        runs.append(state.state_details.flow_run_id)
    assert inbox.envelopes, "the health alert should have been emailed"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))
        states = [client.read_flow_run(run).state for run in runs]
    prefect_text = "\n".join([repr(a.data) + repr(a.description) for a in artifacts] + [log.message for log in logs]
                             + [repr(s.message) for s in states])
    assert "health" in prefect_text
    assert not _leaks(prefect_text)
    assert not _leaks("\n".join(e.content.decode("utf-8", "replace") for e in inbox.envelopes))
    files = _files_text(tmp_path)
    assert any(path.startswith("logs") for path in files)
    assert not {path: _leaks(text) for path, text in files.items() if _leaks(text)}


def test_health_alert_row_in_the_ledger_carries_no_catalog_password(down_env, tmp_path, monkeypatch):
    """With the ledger up and the catalog down, the alert the health check stores in the ledger is redacted."""
    from pipelines.monitoring import health_alert, system_health
    from pipelines.notify import Notifier
    from pipelines.settings import Settings
    from warehouse.ledger import Ledger, alerts

    monkeypatch.setenv("QUARRY_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    rows = system_health(Settings())
    alert = health_alert(rows)
    assert alert is not None and "warehouse" in alert.details
    Notifier.from_settings(Settings()).send(alert)
    stored = Ledger.open(Settings().ledger).rows(alerts)
    assert stored and not _leaks(repr(stored))
    assert not _leaks((tmp_path / "ledger.sqlite").read_bytes().decode("utf-8", "replace"))


@pytest.mark.skipif(not os.environ.get("QUARRY_TEST_PG_DSN"), reason="needs QUARRY_TEST_PG_DSN (a PostgreSQL to attach)")
def test_a_quote_in_the_catalog_password_attaches_and_stays_out_of_the_catalog(tmp_path):
    """The ATTACH is quoted, not spliced: a `'` in the password neither breaks it nor comments anything out."""
    from warehouse import Warehouse

    with postgres_catalog_database(os.environ["QUARRY_TEST_PG_DSN"]) as conninfo:
        catalog = f"postgres:{conninfo} password={_escaped_conninfo_password(CATALOG_PASSWORD)}"
        with Warehouse.open(catalog, str(tmp_path / "lake") + "/") as warehouse:
            assert warehouse.query("SELECT count(*) AS n FROM lake.quarry.versions")["n"][0] == 0
            warehouse.record_run({"run_id": "r1", "status": "failed", "summary": redact(f"failed on {catalog}")})
            stored = warehouse.query("SELECT * FROM lake.quarry.runs")
        assert not _leaks(repr(stored.to_dicts()))
