"""Atomic outputs: an export is written beside its destination under a `.partial-<pid>` name and
renamed into place when complete, so a killed export leaves a `*.partial-*` file or folder, never a
half-written file under the final name.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cxrvqa.errors import InputError


def _partial(dest: Path) -> Path:
    return dest.with_name(f"{dest.name}.partial-{os.getpid()}")


@contextmanager
def atomic_file(dest: Path) -> Iterator[Path]:
    """A path to write; renamed to ``dest`` (replacing an earlier file) when the block ends without error."""
    if dest.is_dir():
        raise InputError(str(dest), "a file to write", "a folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(dest)
    try:
        yield partial
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def atomic_folder(dest: Path, owned: re.Pattern[str]) -> Iterator[Path]:
    """An empty folder to fill; renamed to ``dest`` when the block ends without error.

    An existing ``dest`` is replaced only when every name in it matches ``owned`` (what an earlier
    export of the format writes): a folder of other files is an error, never deleted."""
    if dest.exists():
        if not dest.is_dir():
            raise InputError(str(dest), "a folder to write (or an earlier export)", "a file")
        foreign = sorted(p.name for p in dest.iterdir() if not owned.fullmatch(p.name))
        if foreign:
            raise InputError(
                str(dest),
                f"a new folder or an earlier export (files matching {owned.pattern})",
                f"other files {foreign[:5]}; choose another --dest",
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(dest)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        if dest.exists():
            previous = dest.with_name(f"{dest.name}.previous-{os.getpid()}")
            os.rename(dest, previous)
            os.rename(partial, dest)
            shutil.rmtree(previous)
        else:
            os.rename(partial, dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
