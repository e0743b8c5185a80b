"""One `Settings` read from the environment in one module; `Resources` built from it, whatever it came from.

Covers: only `pipelines/settings.py` reads the environment; every variable the README documents (and every
field of every section) reaches its field; a `Settings` built from objects is used as given, with the
environment pointing elsewhere; the team deployment refuses settings without PostgreSQL, naming them.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from pydantic import SecretStr

from assets import default_graph
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.resources import DeploymentError, Resources
from pipelines.settings import (
    SECTIONS, AlpacaKeys, LedgerConfig, Settings, SmtpConfig, SourceConfig, WarehouseConfig, prefect_overrides,
    redactor,
)

ROOT = Path(__file__).resolve().parents[2]
#: Reads of the environment, or code that reads it for us.
ENV_READ = re.compile(r"os\.environ|os\.getenv|\bgetenv\(|BaseSettings")


def test_only_the_settings_module_reads_the_environment():
    found = {
        (str(path.relative_to(ROOT)), line.strip())
        for package in ("assets", "pipelines", "quality", "warehouse")
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if ENV_READ.search(line) and path != ROOT / "pipelines" / "settings.py"
    }
    assert found == set()


#: Every variable, a value, where it lands, and what it reads as there.
VARIABLES = [
    ("QUARRY_CATALOG", "duckdb:/tmp/x.duckdb", "warehouse.catalog", "duckdb:/tmp/x.duckdb"),
    ("QUARRY_DATA_PATH", "/tmp/lake/", "warehouse.data_path", "/tmp/lake/"),
    ("QUARRY_SOURCE", "yahoo", "source.name", "yahoo"),
    ("QUARRY_SAMPLE_SEED", "11", "source.sample_seed", 11),
    ("QUARRY_SAMPLE_SYMBOLS", "40", "source.sample_symbols", 40),
    ("POLYGON_API_KEY", "pk", "source.polygon_api_key", SecretStr("pk")),
    ("QUARRY_ALPACA_DATA_URL", "http://127.0.0.1:9", "source.alpaca_data_url", "http://127.0.0.1:9"),
    ("QUARRY_POLYGON_URL", "http://127.0.0.1:8", "source.polygon_url", "http://127.0.0.1:8"),
    ("QUARRY_ALPACA_FEED", "sip", "source.alpaca_feed", "sip"),
    ("QUARRY_ALPACA_ADJUSTMENT", "split", "source.alpaca_adjustment", "split"),
    ("QUARRY_ALPACA_REQUESTS_PER_MINUTE", "90", "source.alpaca_requests_per_minute", 90.0),
    ("QUARRY_POLYGON_REQUESTS_PER_MINUTE", "4", "source.polygon_requests_per_minute", 4.0),
    ("QUARRY_YAHOO_REQUESTS_PER_MINUTE", "30", "source.yahoo_requests_per_minute", 30.0),
    ("QUARRY_SOURCE_TIMEOUT_S", "12", "source.source_timeout_s", 12.0),
    ("QUARRY_SOURCE_MAX_ATTEMPTS", "2", "source.source_max_attempts", 2),
    ("QUARRY_UNIVERSE_FILE", "/tmp/universe.csv", "source.universe_file", Path("/tmp/universe.csv")),
    ("QUARRY_SECRET_BLOCKS", "true", "source.secret_blocks", True),
    ("ALPACA_API_KEY", "ak", "alpaca.api_key", SecretStr("ak")),
    ("ALPACA_SECRET_KEY", "as", "alpaca.secret_key", SecretStr("as")),
    ("QUARRY_BROKER_ALPACA_API_KEY", "bk", "alpaca.api_key", SecretStr("bk")),
    ("QUARRY_BROKER_ALPACA_SECRET_KEY", "bs", "alpaca.secret_key", SecretStr("bs")),
    ("QUARRY_LEDGER_URL", "sqlite:////tmp/l.sqlite", "ledger.url", "sqlite:////tmp/l.sqlite"),
    ("QUARRY_LEDGER_CONNECTOR_BLOCK", "desk-ledger", "ledger.connector_block", "desk-ledger"),
    ("QUARRY_BROKER_NAME", "alpaca", "broker.name", "alpaca"),
    ("QUARRY_BROKER_PAPER_URL", "sqlite:////tmp/p.sqlite", "broker.paper_url", "sqlite:////tmp/p.sqlite"),
    ("QUARRY_BROKER_INITIAL_CASH", "5000", "broker.initial_cash", 5000.0),
    ("QUARRY_BROKER_SLIPPAGE_BPS", "3", "broker.slippage_bps", 3.0),
    ("QUARRY_BROKER_PARTIAL_FILL_PCT", "0.5", "broker.partial_fill_pct", 0.5),
    ("QUARRY_BROKER_PARTIAL_FILL_RATIO", "0.25", "broker.partial_fill_ratio", 0.25),
    ("QUARRY_BROKER_REJECT_PCT", "0.1", "broker.reject_pct", 0.1),
    ("QUARRY_BROKER_SEED", "3", "broker.seed", 3),
    ("QUARRY_ALPACA_TRADING_URL", "http://127.0.0.1:7", "broker.alpaca_url", "http://127.0.0.1:7"),
    ("QUARRY_BROKER_ALPACA_URL", "http://127.0.0.1:6", "broker.alpaca_url", "http://127.0.0.1:6"),
    ("QUARRY_BROKER_HTTP_TIMEOUT_SECONDS", "2", "broker.http_timeout_seconds", 2.0),
    ("QUARRY_BROKER_REQUEST_ATTEMPTS", "6", "broker.request_attempts", 6),
    ("QUARRY_BROKER_RETRY_WAIT_SECONDS", "0", "broker.retry_wait_seconds", 0.0),
    ("QUARRY_RISK_MAX_POSITION_NOTIONAL", "1000", "risk.max_position_notional", 1000.0),
    ("QUARRY_RISK_MAX_PAIR_NOTIONAL", "2000", "risk.max_pair_notional", 2000.0),
    ("QUARRY_RISK_MAX_GROSS_EXPOSURE_PCT", "0.5", "risk.max_gross_exposure_pct", 0.5),
    ("QUARRY_RISK_MAX_NET_EXPOSURE_PCT", "0.1", "risk.max_net_exposure_pct", 0.1),
    ("QUARRY_RISK_MAX_OPEN_PAIRS", "3", "risk.max_open_pairs", 3),
    ("QUARRY_RISK_MAX_DAILY_LOSS_PCT", "0.01", "risk.max_daily_loss_pct", 0.01),
    ("QUARRY_RISK_MAX_DRAWDOWN_PCT", "0.04", "risk.max_drawdown_pct", 0.04),
    ("QUARRY_RISK_KILL_SWITCH", "true", "risk.kill_switch", True),
    ("QUARRY_TRADING_CHECK_MARKET_CLOCK", "false", "trading.check_market_clock", False),
    ("QUARRY_TRADING_ORDER_TIMEOUT_MINUTES", "15", "trading.order_timeout_minutes", 15.0),
    ("QUARRY_TRADING_HALF_FILL_RULE", "complete", "trading.half_fill_rule", "complete"),
    ("QUARRY_TRADING_UNKNOWN_ORDER_GRACE_MINUTES", "2", "trading.unknown_order_grace_minutes", 2.0),
    ("QUARRY_SMTP_HOST", "127.0.0.1", "smtp.host", "127.0.0.1"),
    ("QUARRY_SMTP_PORT", "2525", "smtp.port", 2525),
    ("QUARRY_SMTP_USER", "desk", "smtp.user", "desk"),
    ("QUARRY_SMTP_PASSWORD", "pw", "smtp.password", SecretStr("pw")),
    ("QUARRY_SMTP_SENDER", "q@example.com", "smtp.sender", "q@example.com"),
    ("QUARRY_SMTP_RECIPIENTS", "a@example.com, b@example.com", "smtp.recipients", ["a@example.com", "b@example.com"]),
    ("QUARRY_SMTP_STARTTLS", "false", "smtp.starttls", False),
    ("QUARRY_SMTP_TIMEOUT_SECONDS", "5", "smtp.timeout_seconds", 5.0),
    ("QUARRY_ARCHIVE_DIR", "/tmp/archive", "ops.archive_dir", Path("/tmp/archive")),
    ("QUARRY_BACKUPS_DIR", "/tmp/backups", "ops.backups_dir", Path("/tmp/backups")),
    ("QUARRY_LOGS_DIR", "/tmp/logs", "ops.logs_dir", Path("/tmp/logs")),
    ("QUARRY_RETENTION_DAYS", "30", "ops.retention_days", 30.0),
    ("QUARRY_LOG_RETENTION_DAYS", "7", "ops.log_retention_days", 7.0),
    ("QUARRY_ALERTS_DB", "/tmp/alerts.sqlite", "ops.alerts_db", Path("/tmp/alerts.sqlite")),
    ("QUARRY_ALERT_DEDUPE_MINUTES", "10", "ops.alert_dedupe_minutes", 10.0),
    ("QUARRY_ALERT_MAX_PER_HOUR", "5", "ops.alert_max_per_hour", 5),
    ("PREFECT_API_URL", "http://127.0.0.1:4200/api", "ops.prefect_api_url", "http://127.0.0.1:4200/api"),
    ("QUARRY_PREFECT_API_URL", "http://127.0.0.1:4201/api", "ops.prefect_api_url", "http://127.0.0.1:4201/api"),
    ("QUARRY_VERIFY_SAMPLE", "10", "ops.verify_sample", 10),
    ("QUARRY_STALLED_RUN_MINUTES", "30", "ops.stalled_run_minutes", 30.0),
    ("QUARRY_FAILED_RUN_LOOKBACK_MINUTES", "15", "ops.failed_run_lookback_minutes", 15.0),
    ("QUARRY_DEPLOYMENT", "team", "deployment", "team"),
    ("QUARRY_REPORTS_DIR", "/tmp/reports", "reports_dir", Path("/tmp/reports")),
    ("QUARRY_START_DATE", "2025-02-03", "start_date", date(2025, 2, 3)),
    ("QUARRY_MAX_WORKERS", "2", "max_workers", 2),
    ("QUARRY_BATCH_PARTITIONS", "20", "batch_partitions", 20),
    ("QUARRY_TASK_RUNNER", "dask", "task_runner", "dask"),
    ("QUARRY_DASK_ADDRESS", "tcp://127.0.0.1:8786", "dask_address", "tcp://127.0.0.1:8786"),
    ("QUARRY_DASK_WORKERS", "3", "dask_workers", 3),
    ("QUARRY_PREFECT_STARTUP_TIMEOUT_SECONDS", "60", "prefect_startup_timeout_seconds", 60),
    ("QUARRY_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
    ("QUARRY_CLOCK", "2025-03-05T15:00:00+00:00", "clock", datetime(2025, 3, 5, 15, tzinfo=timezone.utc)),
]


def _at(settings: Settings, path: str):
    value = settings
    for name in path.split("."):
        value = getattr(value, name)
    return value


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No variable of the table set, and no .env in the working directory."""
    monkeypatch.chdir(tmp_path)
    for variable, *_ in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("variable", "value", "field", "expected"), VARIABLES, ids=[v[0] for v in VARIABLES])
def test_each_variable_reaches_its_field(clean_environment, variable, value, field, expected):
    before = _at(Settings(), field)
    clean_environment.setenv(variable, value)
    assert _at(Settings(), field) == expected != before


def test_every_documented_variable_and_every_field_has_a_row():
    """The table above is the whole surface: the README's variables and each section's fields are all in it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"\b((?:QUARRY|ALPACA|POLYGON)_[A-Z_]*[A-Z])\b", readme)) - {"QUARRY_TEST_PG_DSN"}
    documented |= {"PREFECT_API_URL"} & set(re.findall(r"\bPREFECT_[A-Z_]*[A-Z]\b", readme))  # Prefect's, read too
    assert documented <= {v[0] for v in VARIABLES}, documented - {v[0] for v in VARIABLES}
    fields = {f"{section}.{name}" for section in SECTIONS for name in type(getattr(Settings(), section)).model_fields}
    fields |= {name for name in Settings.model_fields if name not in SECTIONS}
    assert fields == {v[2] for v in VARIABLES}


def test_a_dotenv_file_feeds_sections_and_run_level_fields(clean_environment, tmp_path):
    (tmp_path / ".env").write_text("QUARRY_SOURCE=yahoo\nQUARRY_LEDGER_URL=sqlite:////tmp/dotenv.sqlite\n"
                                   "QUARRY_MAX_WORKERS=3\nALPACA_API_KEY=from-dotenv\n")
    settings = Settings()
    assert (settings.source.name, settings.ledger.url, settings.max_workers) == ("yahoo", "sqlite:////tmp/dotenv.sqlite", 3)
    assert settings.alpaca.api_key == SecretStr("from-dotenv")
    clean_environment.setenv("QUARRY_SOURCE", "polygon")  # the environment wins over the file, as before
    assert Settings().source.name == "polygon"


def test_sections_passed_in_are_used_as_given(clean_environment):
    clean_environment.setenv("QUARRY_LEDGER_URL", "sqlite:////nowhere/ledger.sqlite")
    clean_environment.setenv("ALPACA_API_KEY", "from-the-environment")
    settings = Settings(ledger=LedgerConfig(url="sqlite:////given/ledger.sqlite"), alpaca=AlpacaKeys())
    assert settings.ledger.url == "sqlite:////given/ledger.sqlite" and settings.alpaca.api_key is None
    assert Settings().ledger.url == "sqlite:////nowhere/ledger.sqlite"  # the rest still read their variables


def test_secrets_come_from_the_one_settings_object(clean_environment):
    settings = Settings(alpaca=AlpacaKeys(api_key="AK-given"), smtp=SmtpConfig(password="smtp-given"),
                        ledger=LedgerConfig(url="postgresql+psycopg://desk:ledger-given@127.0.0.1/ledger"))
    masked = redactor(settings)("AK-given smtp-given ledger-given")
    assert "given" not in masked, masked


def test_resources_from_a_settings_object_build_assets_with_the_environment_elsewhere(clean_environment, tmp_path):
    """Warehouse, source and ledger all come from the object: the variables name places that do not exist."""
    clean_environment.setenv("QUARRY_CATALOG", "sqlite:/nonexistent/catalog.sqlite")
    clean_environment.setenv("QUARRY_DATA_PATH", "/nonexistent/lake/")
    clean_environment.setenv("QUARRY_LEDGER_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    clean_environment.setenv("QUARRY_SOURCE", "polygon")  # would need a key, and the network
    settings = Settings(
        warehouse=WarehouseConfig(catalog=f"sqlite:{tmp_path}/catalog.sqlite", data_path=f"{tmp_path}/lake/"),
        source=SourceConfig(),
        ledger=LedgerConfig(url=f"sqlite:///{tmp_path}/ledger.sqlite"),
    )
    resources = Resources.from_settings(settings)
    submit, shutdown = thread_submitter(2)
    try:
        with resources.warehouse() as warehouse:
            summary = run_materialization(
                default_graph(), warehouse, resources.source, selection="bars_raw live_performance",
                window=RunWindow.between(date(2025, 3, 3), date(2025, 3, 5)), run_id="from-objects", submit=submit,
                resources=resources.engine_resources,
            )
            built = {name: warehouse.read(name).height for name in ("bars_raw", "live_performance")}
    finally:
        shutdown()
    assert summary.exit_code == 0, summary.totals
    assert built["bars_raw"] > 0 and built["live_performance"] == 1  # the live book of the given (empty) ledger
    assert (tmp_path / "ledger.sqlite").exists() and not Path("/nonexistent").exists()


def test_an_asset_is_handed_the_resource_it_reads_and_a_missing_one_is_named():
    from pipelines.planning import MissingResource, handed_resource

    graph, source, ledger = default_graph(), object(), object()
    assert handed_resource(graph["bars_raw"], {"source": source, "ledger": ledger}) is source
    assert handed_resource(graph["live_performance"], {"source": source, "ledger": ledger}) is ledger
    with pytest.raises(MissingResource, match="live_performance reads the 'ledger' resource"):
        handed_resource(graph["live_performance"], {"source": source})


def test_the_team_deployment_names_each_missing_postgresql_setting(clean_environment):
    embedded = Settings(deployment="team")
    with pytest.raises(DeploymentError, match=r"QUARRY_DEPLOYMENT=team: QUARRY_CATALOG must name a PostgreSQL "
                                              r"catalog.*; QUARRY_LEDGER_URL must name a PostgreSQL ledger"):
        Resources.from_settings(embedded)
    half = embedded.model_copy(update={"warehouse": WarehouseConfig(catalog="postgres:dbname=quarry host=127.0.0.1")})
    with pytest.raises(DeploymentError) as refused:
        Resources.from_settings(half)
    assert "QUARRY_LEDGER_URL" in str(refused.value) and "QUARRY_CATALOG" not in str(refused.value)
    team = half.model_copy(update={"ledger": LedgerConfig(url="postgresql+psycopg://desk@127.0.0.1/ledger")})
    assert Resources.from_settings(team).settings is team  # nothing is opened until used
    assert Resources.from_settings(Settings()).settings.deployment == "embedded"


def test_the_resources_make_the_configured_broker_for_each_cycle(clean_environment, tmp_path):
    from pipelines.brokers import AlpacaBroker, PaperBroker
    from pipelines.settings import BrokerConfig

    now = datetime(2025, 9, 29, 15, tzinfo=timezone.utc)
    paper = Settings(broker=BrokerConfig(paper_url=f"sqlite:///{tmp_path}/paper.sqlite"))
    broker = Resources.from_settings(paper).brokers({"KO": 61.5}.get, now)
    assert isinstance(broker, PaperBroker) and broker.quote("KO") == 61.5
    alpaca = Settings(broker=BrokerConfig(name="alpaca"), alpaca=AlpacaKeys(api_key="k", secret_key="s"))
    assert isinstance(Resources.from_settings(alpaca).brokers({}.get, now), AlpacaBroker)


def test_prefect_runs_without_telemetry_unless_the_environment_says_otherwise(monkeypatch):
    from prefect.settings import get_current_settings, temporary_settings

    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    with temporary_settings(prefect_overrides()):
        assert get_current_settings().server.analytics_enabled is False
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    assert prefect_overrides() == {}


def test_the_cli_leaves_the_environment_as_it_found_it():
    """Importing the command line (and building its app) sets none of Prefect's or Quarry's variables (a library
    tuning its allocator is not ours to judge)."""
    import subprocess
    import sys

    probe = ("import os, json; before = dict(os.environ); import pipelines.cli; "
             "changed = set(os.environ.items()) ^ set(before.items()); "
             "print(json.dumps(sorted(k for k, _ in changed if k.startswith(('PREFECT_', 'QUARRY_')))))")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_ANALYTICS_ENABLED"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
