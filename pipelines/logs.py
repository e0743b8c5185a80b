"""Loguru configured once at the edge, and routed into Prefect run logs when a run is active."""

from __future__ import annotations

import logging
import sys
from contextlib import suppress
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from pipelines.settings import Settings

_ROUTED: dict[str, int] = {}
#: The JSON lines file every run logs to, under QUARRY_LOGS_DIR.
LOG_FILE = "quarry.jsonl"


def _redact_record(redactor, record) -> None:
    """Loguru patcher: the message and any attached exception leave with secrets masked."""
    record["message"] = redactor(record["message"])
    exception = record["exception"]
    if exception is not None and exception.value is not None:
        text = str(exception.value)
        masked = redactor(text)
        if masked != text:
            replacement = RuntimeError(f"{exception.type.__name__}: {masked}")
            record["exception"] = type(exception)(RuntimeError, replacement, exception.traceback)


def _is_told_in_one_line(error: BaseException | None) -> bool:
    """Failures whose message is the whole story (a full or read-only disk, a run's own summary): no traceback."""
    from warehouse.lake import StorageError

    return isinstance(error, StorageError) or type(error).__name__ == "RunNotClean"


class RedactingFilter(logging.Filter):
    """A stdlib logging filter (Prefect's own loggers): secrets masked, a storage failure's traceback dropped."""

    def __init__(self, redactor):
        super().__init__("quarry-redaction")
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and _is_told_in_one_line(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if self.redactor(text) != text:
                record.exc_info = (RuntimeError, RuntimeError(self.redactor(text)), record.exc_info[2])
                record.exc_text = None
        return True


def install_redaction(redactor=None) -> None:
    """Mask secrets in every log record: loguru's patcher, and a filter on each stdlib handler (Prefect's).

    Safe to call again (after Prefect configured its handlers): a handler is filtered once.
    """
    from functools import partial

    if redactor is None:
        from pipelines.settings import redactor as configured

        redactor = configured()
    logger.configure(patcher=partial(_redact_record, redactor))
    loggers = [logging.getLogger()] + [
        item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    for item in loggers:
        for handler in item.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(redactor))


def _forward_to_prefect(message) -> None:
    """Send a loguru record to the active Prefect run's logger; outside a run, do nothing."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    record = message.record
    try:
        run_logger = get_run_logger()
    except MissingContextError:
        return
    run_logger.log(record["level"].no, record["message"])


def route_run_logs(settings: Settings) -> None:
    """Every run's loguru sinks, the same for every flow and installed once per process (so every flow calls it).

    Records go to the active Prefect run's logs and, as JSON lines, to `QUARRY_LOGS_DIR/quarry.jsonl`
    (rotated daily, kept `QUARRY_LOG_RETENTION_DAYS`).
    """
    from pipelines.settings import redactor

    level, ops = settings.log_level, settings.ops
    install_redaction(redactor(settings))
    if "prefect" not in _ROUTED:
        _ROUTED["prefect"] = logger.add(_forward_to_prefect, level=level, format="{message}", enqueue=False)
    configure_file_logging(ops.logs_dir / LOG_FILE, level, retention=f"{int(ops.log_retention_days)} days")


def configure_console(level: str = "INFO", quiet: bool = False) -> None:
    """Human-readable logs on stderr for the CLI; `quiet` keeps only warnings (a progress bar is showing).

    Replaces only the console sink: a run's Prefect and file sinks installed earlier in the process keep working.
    """
    install_redaction()
    previous = _ROUTED.pop("console", None)
    if previous is None:
        with suppress(ValueError):
            logger.remove(0)  # loguru's own stderr sink; the run-log sinks stay
    else:
        logger.remove(previous)
    _ROUTED["console"] = logger.add(_write_to_current_stderr, level="WARNING" if quiet else level,
                                    colorize=sys.stderr.isatty(), format="<level>{level: <7}</level> {message}")


def _write_to_current_stderr(message: str) -> None:
    """Looks `sys.stderr` up at each write: a stream swapped in by a caller (a test's capture) may be closed later."""
    sys.stderr.write(message)


def configure_file_logging(path, level: str = "INFO", rotation: str = "1 day", retention: str = "30 days") -> int:
    """JSON lines to `path`, rotated daily and kept 30 days; returns the sink id (installing twice adds nothing)."""
    from pathlib import Path

    install_redaction()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    key = f"file:{target.resolve()}"
    if key not in _ROUTED:
        _ROUTED[key] = logger.add(
            target, level=level, serialize=True, rotation=rotation, retention=retention, enqueue=False, encoding="utf-8"
        )
    return _ROUTED[key]
