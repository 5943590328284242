"""Progress reporting from inside stages, rendered by whoever installed a reporter (the CLI).

Stages call ``progress.advance``; without a reporter this does nothing, so library use and
tests stay quiet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def start(self, stage: str, total: int | None) -> None: ...
    def advance(self, stage: str, amount: int) -> None: ...


_reporter: Reporter | None = None


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous


def start(stage: str, total: int | None) -> None:
    if _reporter is not None:
        _reporter.start(stage, total)


def advance(stage: str, amount: int) -> None:
    if _reporter is not None:
        _reporter.advance(stage, amount)
