"""Atomic outputs: nothing appears under the final name until the export is complete; a failed export
leaves the earlier output as it was; a folder of someone else's files is never replaced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrvqa.core.atomic import atomic_file, atomic_folder
from cxrvqa.errors import InputError

OWNED = re.compile(r"README\.md|[a-z]+\.parquet")


def test_a_file_appears_only_when_complete(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "items.jsonl"
    with atomic_file(dest) as partial:
        partial.write_text("one\n")
        assert not dest.exists() and ".partial-" in partial.name
    assert dest.read_text() == "one\n"
    with pytest.raises(RuntimeError), atomic_file(dest) as partial:
        partial.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "one\n" and [p.name for p in dest.parent.iterdir()] == ["items.jsonl"]


def test_a_folder_replaces_an_earlier_export_only(tmp_path: Path) -> None:
    dest = tmp_path / "export"
    with atomic_folder(dest, OWNED) as folder:
        (folder / "train.parquet").write_text("1")
        assert not dest.exists()
    with atomic_folder(dest, OWNED) as folder:
        (folder / "README.md").write_text("card")
    assert [p.name for p in dest.iterdir()] == ["README.md"]  # the earlier files are gone
    with pytest.raises(RuntimeError), atomic_folder(dest, OWNED) as folder:
        (folder / "val.parquet").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in dest.iterdir()] == ["README.md"] and [p.name for p in tmp_path.iterdir()] == ["export"]
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"other files \['notes.txt'\]"), atomic_folder(dest, OWNED):
        pass
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "notes.txt"]
    with pytest.raises(InputError, match="expected a folder to write"), atomic_folder(dest / "notes.txt", OWNED):
        pass
