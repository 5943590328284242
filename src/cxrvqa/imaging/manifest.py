"""Datasets' metadata files (`--manifest`): which study, patient, view and split each image belongs to.

The layouts are data (`schemas/vocab/manifest_layouts.yaml`); a file's layout is recognised by its
header row. Rows become `ManifestEntry` records keyed by the image path (or file name) they name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.core.table_rows import Row, capture, render
from cxrvqa.core.text_input import encoding_problem, header_names, read_csv
from cxrvqa.errors import InputError
from cxrvqa.imaging.models import ManifestEntry

#: Examples of missing or unnamed images kept for messages.
EXAMPLES = 5


@lru_cache(maxsize=1)
def manifest_layouts() -> tuple[list[dict[str, Any]], str]:
    """The layouts in recognition order, and the content hash of their file."""
    data, digest = load_checked_yaml("schemas/vocab/manifest_layouts.yaml", "manifest_layouts.schema.json")
    return data["layouts"], digest


def recognise(columns: list[str]) -> dict[str, Any] | None:
    """The first layout whose required columns are all in ``columns``."""
    present = {c.strip() for c in columns}
    return next((layout for layout in manifest_layouts()[0] if set(layout["columns"]) <= present), None)


def _templates(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


@dataclass
class Manifest:
    """The images the manifest files name: entries by relative path and by file name, and each row's keys."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (file, layout id)
    by_path: dict[str, ManifestEntry] = field(default_factory=dict)
    by_name: dict[str, ManifestEntry] = field(default_factory=dict)
    rows: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (file:line, keys it may match)

    def entry(self, relative: str) -> ManifestEntry | None:
        """The entry of the image at ``relative`` (a POSIX path under --images), if a row names it."""
        found = self.by_path.get(relative)
        return found if found is not None else self.by_name.get(PurePosixPath(relative).name)

    def __bool__(self) -> bool:
        return bool(self.files)

    def missing(self, seen: Iterable[str]) -> list[tuple[str, str]]:
        """(file:line, image path) of every row none of whose images is among ``seen`` (relative paths)."""
        paths = set(seen)
        names = {PurePosixPath(p).name for p in paths}
        return [
            (where, keys[0])
            for where, keys in self.rows
            if not any(k in paths or (k.startswith("name:") and k[5:] in names) for k in keys)
        ]


def load_manifests(paths: Iterable[Path]) -> Manifest:
    """Every manifest file, image layouts first, then the split files that join them."""
    manifest = Manifest()
    loaded: list[tuple[Path, dict[str, Any], list[tuple[int, dict[str, str]]]]] = []
    for path in paths:
        if not path.is_file():
            raise InputError(str(path), "a CSV manifest file", "no such file")
        layout, rows = _read(path)
        loaded.append((path, layout, rows))
    for path, layout, rows in sorted(loaded, key=lambda item: item[1].get("kind") == "split"):
        manifest.files.append((str(path), layout["id"]))
        if layout.get("kind") == "split":
            _join_split(manifest, path, layout, rows)
        else:
            _add_images(manifest, path, layout, rows)
    return manifest


def _read(path: Path) -> tuple[dict[str, Any], list[tuple[int, dict[str, str]]]]:
    """A metadata file's layout and its rows (line number, cells by column). Metadata, not records: a row that is
    ragged or not UTF-8 makes the whole file an InputError naming the line (a manifest that links images to the
    wrong studies must not be half used)."""
    records = read_csv(path)
    header = next(records, None)
    if header is None:
        raise InputError(str(path), "a CSV manifest file", "an empty file")
    columns = header_names(header, path)
    while columns and not columns[-1]:  # a header padded with empty cells (the Kaggle copy of NIH's)
        columns.pop()
    layout = recognise(columns)
    if layout is None:
        known = "; ".join(f"{lay['id']} ({', '.join(lay['columns'])})" for lay in manifest_layouts()[0])
        raise InputError(str(path), f"the header row of a known metadata file: {known}", f"columns {columns}")
    rows = []
    for record in records:
        problem = record.shape_problem(len(columns), columns) or encoding_problem(record.lines)
        if problem:
            raise InputError(f"{path}:{record.line}", problem.expected, problem.found)
        rows.append((record.line, dict(zip(columns, record.cells or [], strict=False))))
    return layout, rows


def _add_images(manifest: Manifest, path: Path, layout: dict[str, Any], rows: list[tuple[int, dict[str, str]]]) -> None:
    by_name = layout["match"] == "file_name"
    index = manifest.by_name if by_name else manifest.by_path
    for line, raw in rows:
        where = f"{path}:{line}"
        row = Row(raw, layout.get("optional", []))
        capture(layout.get("captures", {}), row, where)
        rendered = (render(t, row, where) for t in _templates(layout["image_path"]))
        images = [PurePosixPath(p).as_posix() for p in rendered if p]
        entry = ManifestEntry(
            study_id=render(layout["study_id"], row, where),
            patient_id=render(layout["patient_id"], row, where),
            layout=layout["id"],
            image_key=render(layout["image_key"], row, where) if "image_key" in layout else "",
            view_position=next(
                (v for v in (render(t, row, where) for t in _templates(layout.get("view_position"))) if v), ""
            ),
        )
        if not images or "." in images or not entry.study_id or not entry.patient_id:
            raise InputError(
                where, f"a non-empty image path, study id and patient id ({layout['id']} layout)", f"{dict(raw)}"
            )
        keys = [PurePosixPath(p).name if by_name else p for p in images]
        for key in keys:
            first = index.get(key)
            if first is not None and (first.study_id, first.patient_id) != (entry.study_id, entry.patient_id):
                raise InputError(
                    where,
                    f"one study and patient per image; {key!r} is named before with study {first.study_id!r}",
                    f"study {entry.study_id!r}",
                )
            index[key] = entry
        manifest.rows.append((where, tuple(f"name:{k}" if by_name else k for k in keys)))


def _join_split(manifest: Manifest, path: Path, layout: dict[str, Any], rows: list[tuple[int, dict[str, str]]]) -> None:
    joined = [(p, i) for p, i in manifest.files[:-1] if i == layout["joins"]]
    if not joined:
        raise InputError(
            str(path),
            f"a {layout['joins']} metadata file given with it (--manifest)",
            f"only {[i for _, i in manifest.files[:-1]] or 'this file'}",
        )
    split: dict[str, str] = {}
    for line, raw in rows:
        row = Row(raw, layout.get("optional", []))
        split[render(layout["image_key"], row, f"{path}:{line}")] = render(layout["split"], row, f"{path}:{line}")
    for index in (manifest.by_path, manifest.by_name):
        for key, entry in index.items():
            if entry.layout == layout["joins"] and entry.image_key in split:
                index[key] = replace(entry, split=split[entry.image_key])
