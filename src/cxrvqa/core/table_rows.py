"""Rows of a published table (an image metadata file, a report table) read through a layout that is data.

A layout names each value it takes from a row as a Python format string over the row's columns
(``"{patient}/{study}"``, ``"{subject_id:.2}"``) and may first pull named groups out of a column with a
regular expression (``captures``). The image manifests (`cxrvqa.imaging.manifest`) and the report tables
(`cxrvqa.reports.loaders`) share these three helpers, so that one layout language serves both.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from cxrvqa.errors import InputError


class Row(dict):
    """A row as format fields: cells stripped; optional columns absent from the header read as empty."""

    def __init__(self, row: Mapping[str | None, Any], optional: Iterable[str] = ()):
        super().__init__({name: "" for name in optional})
        self.update({(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None})


def render(template: str, row: Row, where: str) -> str:
    """``template`` filled from ``row``; a field the row lacks is an InputError naming ``where``."""
    try:
        return string.Formatter().vformat(template, (), row).strip()
    except (KeyError, ValueError, IndexError) as exc:
        raise InputError(where, f"a row that fills {template!r}", f"{type(exc).__name__}: {exc}") from exc


def capture(captures: Mapping[str, str], row: Row, where: str) -> None:
    """Add the named groups of each ``column: pattern`` to ``row``; a column that does not match is an
    InputError naming ``where``, the pattern and the value."""
    for column, pattern in captures.items():
        match = re.search(pattern, row.get(column, ""))
        if match is None:
            raise InputError(where, f"{column} matching {pattern!r}", repr(row.get(column, "")))
        row.update({k: v or "" for k, v in match.groupdict().items()})
