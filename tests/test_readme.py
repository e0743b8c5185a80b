"""README.md as written: every `quarry …` command and every SQL example runs against a built warehouse.

The warehouse is built once for the module over two weeks of the sample market, then rebuilt from a
source with a burst of bad ticks on 2025-03-06 (the session the Troubleshooting section inspects),
so a quarantined version stands beside a published one; each run is recorded with its report as
`quarry materialize` does.
Commands run in a fresh directory with the warehouse's settings in the environment. The only
changes to a command are the ones listed here, each with its reason:
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
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
from pipelines.settings import Settings
from warehouse import Warehouse

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"
QUARRY = str(Path(sys.executable).with_name("quarry"))
START, END, BAD_DAY = date(2025, 3, 3), date(2025, 3, 14), date(2025, 3, 6)

#: Commands the test does not run, by their first words, with the reason. Nothing else is skipped.
NOT_RUN = {
    "quarry serve": "serves every schedule until Ctrl-C (tests/pipelines/test_deployments.py covers serving)",
    "quarry trade pairs": "trades on the paper broker against data fresh within the assets' freshness; "
                          "the test warehouse is from 2025 (tests/trading runs the cycle)",
    "quarry trade momentum": "as `quarry trade pairs`",
}
#: `quarry materialize` examples run with `--dry-run` added: they are planned (selection, window and options
#: checked against the graph and catalog) but not built, because building a window up to today's session
#: takes minutes; the build itself is what tests/test_cli.py and the flow tests run.
DRY_RUN_ADDED = ("quarry materialize",)


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
    (root / "notebooks").symlink_to(README.parent / "notebooks")  # the project's files, as in a clone
    env = {
        "QUARRY_CATALOG": f"sqlite:{root}/data/catalog.sqlite", "QUARRY_DATA_PATH": f"{root}/data/lake/",
        "QUARRY_REPORTS_DIR": str(root / "reports"), "QUARRY_START_DATE": START.isoformat(),
        "QUARRY_LEDGER_URL": f"sqlite:///{root}/data/ledger.sqlite", "QUARRY_ARCHIVE_DIR": str(root / "archive"),
        "QUARRY_BACKUPS_DIR": str(root / "backups"), "QUARRY_LOGS_DIR": str(root / "logs"),
        "QUARRY_ALERTS_DB": str(root / "data" / "alerts.sqlite"), "PREFECT_HOME": str(root / "prefect"),
    }
    settings = Settings(catalog=env["QUARRY_CATALOG"], data_path=env["QUARRY_DATA_PATH"], reports_dir=root / "reports")
    warehouse = Warehouse.open(settings.catalog, settings.data_path)
    # a clean first build, then a build whose bad ticks quarantine bars_hourly 2025-03-06 over its published version
    for source, run_id in ((SampleSource(), "run-readme-1"), (BadDaySource(), "run-readme-2")):
        submit, shutdown = thread_submitter(4)
        try:
            summary = run_materialization(default_graph(), warehouse, source, selection=None,
                                          window=RunWindow.between(START, END), run_id=run_id, submit=submit)
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
                if token in (">", ">>", "2>"):  # output redirection: the file name goes with it
                    next(tokens, None)
                elif token.endswith(";") or token in ("&&", "||", "|"):
                    if token.endswith(";") and token != ";":
                        words.append(token[:-1])
                    if words and Path(words[0]).name == "quarry":
                        commands.append(shlex.join(["quarry", *words[1:]]))
                    words = []
                else:
                    words.append(token)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`(quarry [^`]+)`", prose):
        if len(span.split()) > 2 and not re.search(r"\b[A-Z][A-Z_]{2,}\b|[\[\]|…<>/]", span):
            commands.append(span)
    return list(dict.fromkeys(commands))


def sql_examples(text: str) -> list[str]:
    """Every statement of the README's SQL blocks, in order (they may set variables later ones use)."""
    statements = []
    for block in fenced_blocks(text, "sql"):
        body = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
        statements += [s.strip() + ";" for s in body.split(";") if s.strip()]
    return statements


def run(root: Path, env: dict, command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    args = shlex.split(command)
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    return subprocess.run([QUARRY, *args[1:]], cwd=root, env=base | {"COLUMNS": "160", "BROWSER": "true"} | env,
                          input="" if stdin is None else stdin,
                          capture_output=True, text=True, timeout=600)


README_TEXT = README.read_text(encoding="utf-8")


def test_the_readme_has_commands_and_sql_to_run():
    commands, statements = readme_commands(README_TEXT), sql_examples(README_TEXT)
    assert len(commands) >= 15 and len(statements) >= 8
    assert all(any(c.startswith(skipped) for c in commands) for skipped in NOT_RUN), "a listed exception is gone from the README: drop it"


@pytest.mark.parametrize("command", readme_commands(README_TEXT))
def test_every_readme_command_runs_as_written(project, command):
    root, env, values = project
    if any(command.startswith(skipped) for skipped in NOT_RUN):
        pytest.skip(next(reason for skipped, reason in NOT_RUN.items() if command.startswith(skipped)))
    for placeholder, value in values.items():
        command = command.replace(placeholder, value)
    if command.startswith(DRY_RUN_ADDED) and "--dry-run" not in command and "--plan" not in command:
        command += " --dry-run"
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
