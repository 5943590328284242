"""What every `cxrvqa` command shares on the terminal: the stderr console, the one-line error exit and the
progress bars. A module of its own so that the command modules (audit, review, synth) need not import
`cxrvqa.cli`, which imports them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

console = Console(stderr=True)


class RichReporter:
    """Renders stage progress (`cxrvqa.core.progress`) as rich progress bars."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int | None) -> None:
        self.tasks[stage] = self.bar.add_task(stage, total=total)

    def advance(self, stage: str, amount: int) -> None:
        self.bar.advance(self.tasks[stage], amount)


def fail(exc: Exception, log: Path | None = None, debug: bool = False) -> None:
    """One line on stderr and exit code 2; the traceback with --debug, or in ``log`` when it was written there."""
    if debug:
        console.print_exception()
    where = f" (traceback in {log})" if log is not None and log.is_file() else ""
    console.print(f"[bold red]error:[/] {escape(str(exc))}{escape(where)}", soft_wrap=True)
    raise typer.Exit(code=2)
