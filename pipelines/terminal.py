"""The CLI's one console: its width is measured at each print, so output fits wherever it goes."""

from __future__ import annotations

import shutil

from rich.console import Console, ConsoleDimensions

from pipelines.settings import terminal_columns

# piped output (logs, CI) gets a width that keeps asset names and reasons whole instead of rich's 80 columns
PIPED_WIDTH = 140


class CommandConsole(Console):
    """`COLUMNS` when set, the terminal's width at a terminal, `PIPED_WIDTH` when piped: read at each print, not
    fixed when the module was imported (a command run in-process by another sees its caller's environment)."""

    @property
    def size(self) -> ConsoleDimensions:
        columns = terminal_columns()
        terminal = shutil.get_terminal_size()
        if columns is not None:
            width = columns
        elif self.is_terminal:
            width = terminal.columns
        else:
            width = PIPED_WIDTH
        return ConsoleDimensions(width, terminal.lines)


console = CommandConsole()
