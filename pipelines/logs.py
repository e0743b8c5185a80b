"""Loguru configured once at the edge, and routed into Prefect run logs when a run is active."""

from __future__ import annotations

import sys

from loguru import logger

_ROUTED: dict[str, int] = {}


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


def route_to_prefect(level: str = "INFO") -> None:
    """Install the Prefect sink once per process (idempotent, so every flow can call it)."""
    if "prefect" not in _ROUTED:
        _ROUTED["prefect"] = logger.add(_forward_to_prefect, level=level, format="{message}", enqueue=False)


def configure_console(level: str = "INFO", quiet: bool = False) -> None:
    """Human-readable logs on stderr for the CLI; `quiet` keeps only warnings (a progress bar is showing)."""
    logger.remove()
    logger.add(sys.stderr, level="WARNING" if quiet else level, format="<level>{level: <7}</level> {message}")


def configure_file_logging(path, level: str = "INFO", rotation: str = "1 day", retention: str = "30 days") -> int:
    """JSON lines to `path`, rotated daily and kept 30 days; returns the sink id (installing twice adds nothing)."""
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    key = f"file:{target.resolve()}"
    if key not in _ROUTED:
        _ROUTED[key] = logger.add(
            target, level=level, serialize=True, rotation=rotation, retention=retention, enqueue=False, encoding="utf-8"
        )
    return _ROUTED[key]
