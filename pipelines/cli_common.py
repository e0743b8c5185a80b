"""What every `quarry` command shares: parsing user input, refusing a missing warehouse, one-line errors."""

from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Optional

import duckdb
import typer
from pydantic import ValidationError

from assets import SelectionError
from assets.sources import SourceError
from pipelines.settings import Settings
from warehouse import Warehouse, WarehouseError, require_warehouse
from warehouse.duckdb_shell import ShellSetupError


class InputError(ValueError):
    """Something the user typed is wrong: the message names the option and the value."""


#: Errors that come from what the user asked for (or where they asked it), not from a fault in Quarry:
#: the CLI prints them as one line on stderr and exits 2; `--debug` shows the traceback instead.
USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError, SelectionError, WarehouseError, SourceError, ValidationError, duckdb.Error, ShellSetupError,
)


SelectOption = Annotated[Optional[list[str]], typer.Option(
    "--select", "-s", help="dbt selectors, space-separated (union): name, glob, tag:X, +name, name+, 2+name, name+1, @name; "
    "comma inside one is an intersection (repeatable)")]
ExcludeOption = Annotated[Optional[list[str]], typer.Option(
    "--exclude", help="selectors (same grammar) whose assets are taken away from the selection (repeatable)")]


def selection_text(positional: list[str] | None, selected: list[str] | None) -> str | None:
    """The positional shorthand and every `--select` joined into one space-separated selection (None: everything)."""
    words = [word for value in (positional or []) + (selected or []) for word in value.split()]
    return " ".join(words) or None


def parse_date(value: str | None, option: str) -> date | None:
    """A session date the user typed (YYYY-MM-DD), or an error naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise InputError(f"{option} {value!r} is not a date (YYYY-MM-DD): {error}") from None


def parse_timestamp(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 timestamp the user typed, or an error naming the option."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as error:
        raise InputError(f"{option} {value!r} is not an ISO 8601 timestamp: {error}") from None


def parse_window(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    """`--from` and `--to` as dates, refusing a window that ends before it starts."""
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    if first and last and first > last:
        raise InputError(f"--from {first} is after --to {last}: the window would be empty")
    return first, last


def open_existing(settings: Settings, read_only: bool = True) -> Warehouse:
    """The configured warehouse, which must already exist (only `quarry materialize` creates one)."""
    require_warehouse(settings.warehouse.catalog)
    return settings.warehouse.open(read_only=read_only)


def one_line(error: BaseException) -> str:
    """An error as one line: DuckDB's caret context and multi-line details folded away."""
    lines = []
    for line in str(error).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) or type(error).__name__


@contextmanager
def quarry_prefect_settings(extra: dict | None = None):
    """Prefect's settings as every Quarry process runs them (`prefect_overrides`), plus `extra` (setting to value).

    Only a command whose work goes through Prefect (a flow, a server, the API, a block) enters it: the
    others never import Prefect, which alone costs a command about a second of start-up.
    """
    from prefect.settings import temporary_settings

    from pipelines.settings import prefect_overrides

    with temporary_settings({**prefect_overrides(), **(extra or {})}):
        yield


def run_reporting_user_errors(app, argv: list[str], redact=lambda text: text) -> int:
    """Run the typer app at the last boundary, where every failure becomes one redacted line on stderr.

    A user error (what was asked, or where) exits 2 with its message; anything else exits 1
    with its type and message. `--debug` prints the traceback instead.
    """
    try:
        app()
    except USER_ERRORS as error:
        return _report(error, argv, redact, f"error: {one_line(error)}", 2)
    except Exception as error:  # noqa: BLE001 — a fault in Quarry or a dependency, still one line
        return _report(error, argv, redact, f"error: {type(error).__name__}: {one_line(error)}", 1)
    return 0


def _report(error: BaseException, argv: list[str], redact, line: str, code: int) -> int:
    if "--debug" in argv:
        print(redact("".join(traceback.format_exception(error))), file=sys.stderr, end="")
    else:
        print(redact(line), file=sys.stderr)
    return code
