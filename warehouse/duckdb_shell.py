"""DuckDB's own shell on the warehouse: the pinned CLI binary and the init script that attaches the lake read-only."""

from __future__ import annotations

import importlib.resources
import subprocess
from pathlib import Path

import duckdb

from warehouse.lake import LAKE, attach_sql, needed_extensions, sql_literal
from warehouse.sql_surface import surface_script


class ShellSetupError(RuntimeError):
    """The DuckDB CLI or an extension wheel is missing or built for another DuckDB version; the message says what to install."""


def cli_binary() -> Path:
    """The `duckdb` executable inside the installed `duckdb-cli` wheel (never whichever `duckdb` is first on PATH)."""
    try:
        package = importlib.resources.files("duckdb_cli")
    except ModuleNotFoundError:
        raise ShellSetupError(
            f"the DuckDB CLI is not installed: pip install 'duckdb-cli=={duckdb.__version__}'"
        ) from None
    binary = Path(str(package)) / "duckdb"
    if not binary.is_file():
        raise ShellSetupError(f"the duckdb-cli package at {binary.parent} holds no `duckdb` executable; "
                              f"reinstall it: pip install --force-reinstall 'duckdb-cli=={duckdb.__version__}'")
    return binary


def cli_version(binary: Path) -> str:
    """The DuckDB version the CLI binary reports (`v1.5.5 (Variegata) d8cdaa33fd` → `1.5.5`)."""
    reported = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=60, check=True)
    return reported.stdout.split()[0].removeprefix("v")


def require_same_version(cli: str, engine: str) -> None:
    """Refuse a CLI of another DuckDB version: the extension wheels are built for the engine's exact version."""
    if cli != engine:
        raise ShellSetupError(
            f"the DuckDB CLI is {cli} but Quarry's DuckDB is {engine}; DuckLake's extension wheels are built for "
            f"{engine} only, so the CLI would try to download its own: pip install 'duckdb-cli=={engine}'"
        )


def extension_file(name: str, version: str) -> Path:
    """The extension's build for DuckDB `version` inside its registry wheel (`duckdb-extension-<name>`)."""
    try:
        package = importlib.resources.files(f"duckdb_extension_{name}")
    except ModuleNotFoundError:
        raise ShellSetupError(f"the {name} extension is not installed: pip install 'duckdb-extension-"
                              f"{name.replace('_', '-')}=={version}'") from None
    path = Path(str(package)) / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise ShellSetupError(f"the {name} extension wheel has no build for DuckDB {version} (no {path}): "
                              f"pip install 'duckdb-extension-{name.replace('_', '-')}=={version}'")
    return path


def init_script(catalog: str, data_path: str, extension_directory: Path, version: str) -> str:
    """What the shell runs before anything else: the extensions from their wheels, the lake read-only, the surface.

    Extensions install into `extension_directory` (a private one, so nothing is fetched and
    `~/.duckdb` is not touched). The shell stops at the script's first error (`.bail on`);
    `shell_arguments` decides whether the user's session goes on past errors of its own.
    """
    lines = [".bail on", f"SET extension_directory = {sql_literal(str(extension_directory))};"]
    for name in needed_extensions(catalog):
        lines += [f"INSTALL {sql_literal(str(extension_file(name, version)))};", f"LOAD {name};"]
    lines += [f"{attach_sql(catalog, data_path, read_only=True)};", f"USE {LAKE};", surface_script()]
    return "\n".join(lines) + "\n"


#: Arguments after which DuckDB's shell runs what it was given and exits, stopping at (and exiting 1 on) an error.
RUN_AND_EXIT = ("-c", "-s", "-f", "-bail")


def shell_arguments(binary: Path, init: Path, args: list[str]) -> list[str]:
    """The shell's command line: no `~/.duckdbrc`, the init script before the user's arguments.

    An interactive or piped session goes on past an error (`.bail off`, DuckDB's default there);
    with `-c`, `-s` or `-f` the init's `.bail on` stays, because an explicit `.bail off` would
    make DuckDB exit 0 after a failed `-c` command.
    """
    keep_going = [] if any(arg in RUN_AND_EXIT for arg in args) else ["-cmd", ".bail off"]
    return [str(binary), "-no-init", "-cmd", f'.read "{init}"', *keep_going, *args]
