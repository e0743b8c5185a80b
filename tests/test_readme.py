"""README.md as written: every `quarry …` command and every SQL example runs against a built warehouse.

The warehouse is built once for the module over two weeks of the sample market, then rebuilt from a
source with a burst of bad ticks on 2025-03-06 (the session the Troubleshooting section inspects),
so a quarantined version stands beside a published one; each run is recorded with its report as
`quarry materialize` does.
Commands run as written, in the project directory, with the warehouse's settings in the environment and
its clock (`QUARRY_CLOCK`) at an hour of the last session built, so the trading examples find fresh data and an
open market on the paper broker and `quarry materialize` builds up to that hour. A `<placeholder>` stands for a
real value from the warehouse (`placeholders`); `VAR=value quarry …` runs with that variable set; a command that
runs until Ctrl-C (`quarry serve`) is stopped with Ctrl-C once it says it is serving and must then exit cleanly.
`export` lines describe a machine the test does not have (keys, a cluster) and are not applied. Commands of
other tools (pip, prefect, psql, marimo) are not Quarry's examples and are not run here.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from assets import default_graph
from assets.sources import SampleSource
from pipelines.docs import refresh
from pipelines.materialize import run_materialization, thread_submitter
from pipelines.planning import RunWindow
from pipelines.runs import record_and_report
from pipelines.resources import Resources
from pipelines.settings import LedgerConfig, Settings, WarehouseConfig
from warehouse import Warehouse

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"
QUARRY = str(Path(sys.executable).with_name("quarry"))
START, END, BAD_DAY = date(2025, 3, 3), date(2025, 3, 14), date(2025, 3, 6)

#: The warehouse's "now": 15:45 New York on the last session it holds, the market open.
CLOCK = "2025-03-14T19:45:00Z"
#: Commands that run until Ctrl-C, with the line that says they are up.
UNTIL_CTRL_C = {"quarry serve": "being served"}


def placeholders(warehouse: Warehouse) -> dict[str, str]:
    """README placeholders and the real values from the test warehouse that stand in for them."""
    quarantined = warehouse.query(
        "SELECT version_id FROM lake.quarry.versions WHERE asset = 'bars_hourly' AND status = 'quarantined' LIMIT 1"
    )["version_id"][0]
    return {"<quarantined_version_id>": quarantined, "<id>": quarantined}


class BadDaySource(SampleSource):
    """The sample market with spikes on KO and PEP at two hours of one session: beyond repair, so quarantined."""

    def identity(self) -> str:
        return super().identity() + "+bad-day"

    def fetch_bars(self, symbols, timeframe, start, end):
        bars = super().fetch_bars(symbols, timeframe, start, end)
        hit = (pl.col("bar_ts").dt.date() == BAD_DAY) & pl.col("symbol").is_in(["KO", "PEP"]) & pl.col("bar_ts").dt.hour().is_in([15, 17])
        spiked = pl.when(hit).then(pl.col("close_px") * 1.6).otherwise(pl.col("close_px"))
        return bars.with_columns(close_px=spiked).with_columns(high_px=pl.max_horizontal("high_px", "close_px"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project directory as after Quickstart line 1, on a short window, and the environment that points at it."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("notebooks", "prefect.yaml"):  # the project's files, as in a clone
        (root / name).symlink_to(README.parent / name)
    env = {
        "QUARRY_CATALOG": f"sqlite:{root}/data/catalog.sqlite", "QUARRY_DATA_PATH": f"{root}/data/lake/",
        "QUARRY_REPORTS_DIR": str(root / "reports"), "QUARRY_START_DATE": START.isoformat(),
        "QUARRY_LEDGER_URL": f"sqlite:///{root}/data/ledger.sqlite", "QUARRY_ARCHIVE_DIR": str(root / "archive"),
        "QUARRY_BACKUPS_DIR": str(root / "backups"), "QUARRY_LOGS_DIR": str(root / "logs"),
        "QUARRY_ALERTS_DB": str(root / "data" / "alerts.sqlite"), "PREFECT_HOME": str(root / "prefect"),
        "QUARRY_CLOCK": CLOCK,
    }
    settings = Settings(warehouse=WarehouseConfig(catalog=env["QUARRY_CATALOG"], data_path=env["QUARRY_DATA_PATH"]),
                        ledger=LedgerConfig(url=env["QUARRY_LEDGER_URL"]), reports_dir=root / "reports")
    handed = Resources.from_settings(settings).engine_resources
    warehouse = settings.warehouse.open()
    # a clean first build, then a build whose bad ticks quarantine bars_hourly 2025-03-06 over its published version
    for source, run_id in ((SampleSource(), "run-readme-1"), (BadDaySource(), "run-readme-2")):
        submit, shutdown = thread_submitter(4)
        try:
            summary = run_materialization(default_graph(), warehouse, source, selection=None,
                                          window=RunWindow.between(START, END), run_id=run_id, submit=submit,
                                          resources=handed)
        finally:
            shutdown()
        record_and_report(warehouse, settings, summary)
    values = placeholders(warehouse)
    warehouse.close()
    yield root, env, values


def fenced_blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M) if lang == language]


def readme_commands(text: str) -> list[str]:
    """Every `quarry …` command: lines of bash blocks (`;`, `&&`, `|` separate commands, `#` starts a comment,
    a `<placeholder>` is one word) and inline code in prose that is a command with arguments (a bare
    `quarry assets` in a sentence names a command; `UPPERCASE`, `[optional]`, `a|b`, `…` mark a synopsis)."""
    commands = []
    for block in fenced_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"<([^<>]+)>", lambda m: "<" + m.group(1).replace(" ", "_") + ">", line)
            words: list[str] = []
            tokens = iter(shlex.split(line, comments=True) + [";"])
            for token in tokens:
                if not words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", token):  # VAR=value before the command
                    words.append(token)
                    continue
                if token in (">", ">>", "2>"):  # output redirection: the file name goes with it
                    next(tokens, None)
                elif token.endswith(";") or token in ("&&", "||", "|"):
                    if token.endswith(";") and token != ";":
                        words.append(token[:-1])
                    assignments = [w for w in words if re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", w)]
                    rest = words[len(assignments):]
                    if rest and Path(rest[0]).name == "quarry":
                        commands.append(shlex.join([*assignments, "quarry", *rest[1:]]))
                    words = []
                else:
                    words.append(token)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`(quarry [^`]+)`", prose):
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", span)  # a quoted query may hold SQL keywords and `|`
        if len(span.split()) > 2 and not re.search(r"\b[A-Z][A-Z_]{2,}\b|[\[\]|…<>/]", unquoted):
            commands.append(span)
    return list(dict.fromkeys(commands))


def sql_examples(text: str) -> list[str]:
    """Every statement of the README's SQL blocks, in order (they may set variables later ones use)."""
    statements = []
    for block in fenced_blocks(text, "sql"):
        body = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
        statements += [s.strip() + ";" for s in body.split(";") if s.strip()]
    return statements


def command_line(root: Path, env: dict, command: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a README command: its `VAR=value` words go to the environment."""
    words = shlex.split(command)
    assignments = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", w))
    args = words[len(assignments):]
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    return [QUARRY, *args[1:]], base | {"COLUMNS": "160", "BROWSER": "true"} | env | assignments


def run(root: Path, env: dict, command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    argv, environment = command_line(root, env, command)
    return subprocess.run(argv, cwd=root, env=environment, input="" if stdin is None else stdin,
                          capture_output=True, text=True, timeout=600)


def run_until_ready_then_ctrl_c(root: Path, env: dict, command: str, ready: str) -> tuple[int, str]:
    """Start a command that runs until Ctrl-C, wait for its `ready` line, press Ctrl-C (SIGINT); its exit code and output."""
    argv, environment = command_line(root, env, command)
    log_path = root / "until-ctrl-c.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, cwd=root, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 300  # a Prefect server start on a busy machine
            while ready not in log_path.read_text() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(1)
            assert ready in log_path.read_text(), f"`{command}` never said {ready!r}:\n{log_path.read_text()[-3000:]}"
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return code, log_path.read_text()


README_TEXT = README.read_text(encoding="utf-8")


def test_the_readme_has_commands_and_sql_to_run():
    commands, statements = readme_commands(README_TEXT), sql_examples(README_TEXT)
    assert len(commands) >= 25 and len(statements) >= 8
    assert any(c.startswith("QUARRY_CLOCK=") for c in commands)  # `VAR=value quarry …` is a command too
    assert any(c.startswith('quarry sql "SELECT version, step') for c in commands)  # SQL keywords in a quoted query
    assert all(any(c.startswith(long) for c in commands) for long in UNTIL_CTRL_C), "a listed command is gone: drop it"


@pytest.mark.parametrize("command", readme_commands(README_TEXT))
def test_every_readme_command_runs_as_written(project, command):
    root, env, values = project
    for placeholder, value in values.items():
        command = command.replace(placeholder, value)
    until_ctrl_c = next((ready for long, ready in UNTIL_CTRL_C.items() if shlex.split(command)[0:2] == long.split()), None)
    if until_ctrl_c:
        code, output = run_until_ready_then_ctrl_c(root, env, command, until_ctrl_c)
        assert code == 0, f"`{command}` exited {code} on Ctrl-C:\n{output[-3000:]}"
        assert "Traceback" not in output
        return
    done = run(root, env, command)
    assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stdout + done.stderr


def test_every_readme_sql_example_runs_in_quarry_shell(project):
    root, env, _ = project
    statements = sql_examples(README_TEXT)
    session = run(root, env, "quarry shell", stdin="\n".join(statements) + "\n")
    assert session.returncode == 0, session.stderr
    errors = [line for line in session.stdout.splitlines() if line.startswith("error:")]
    assert not errors, "\n".join(errors)
    assert session.stdout.count("┌") >= len([s for s in statements if not s.upper().startswith("SET ")])


def test_the_generated_asset_graph_and_table_match_the_declarations():
    assert refresh(README_TEXT, default_graph()) == README_TEXT, "run `quarry docs --write README.md`"
    for a in default_graph():
        assert f"| `{a.name}` |" in README_TEXT and f"--> {a.name}" in README_TEXT or not a.deps
