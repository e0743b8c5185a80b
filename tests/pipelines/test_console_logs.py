"""The CLI's console sink and a run's own sinks live side by side in one process."""

from __future__ import annotations

import json

from loguru import logger

from pipelines.logs import configure_console, configure_file_logging


def test_setting_up_the_console_again_keeps_a_runs_file_sink_and_replaces_only_the_console(tmp_path, capsys):
    log_file = tmp_path / "quarry.jsonl"
    configure_file_logging(log_file)
    configure_console()
    configure_console()  # a second command run in the same process
    logger.info("after the console was set up twice")
    records = [json.loads(line)["record"]["message"] for line in log_file.read_text().splitlines()]
    assert "after the console was set up twice" in records
    assert capsys.readouterr().err.count("after the console was set up twice") == 1
