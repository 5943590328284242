"""Box annotations (VinDr-CXR or NIH ChestX-ray14 CSV) imported as `boxes` rows.

Coordinates are stored as written, with the size of the image they refer to; the
`current_boxes` view rescales them to the current PNG, so re-rendering an image never
needs a re-import. Every data line of the file ends as a box, a skip (imported before)
or a `box_rejects` row with a stable reason code.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pyarrow as pa

from cxrvqa.core.provenance import code_version, sha256_file, stable_hash
from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.core.text_input import CsvRecord, encoding_problem, header_names, printable, read_csv
from cxrvqa.core.vocab import vocabulary
from cxrvqa.errors import ConfigError, InputError, ResourceError
from cxrvqa.store import Store

CLASSES_FILE = "schemas/vocab/box_classes.yaml"
NIH_REFERENCE_SIZE = (1024, 1024)  # NIH boxes are on the 1024x1024 PNGs, whatever the source DICOM size
TOLERANCE_PX = 1.0  # annotation tools round; a box this far past the border is clipped
BATCH_ROWS = 20_000  # rows per bulk insert: memory stays flat on large files

VINDR_COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
NIH_COLUMNS = ("Image Index", "Finding Label", "Bbox [x,y,w,h]")
# Suffixes dropped to compare an annotation's image name with our source files' names.
_IMAGE_SUFFIXES = {".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg", ".jp2", ".tif", ".tiff"}

Format = Literal["vindr", "nih", "auto"]


class BoxReason(StrEnum):
    INVALID_ROW = "invalid_row"  # missing fields, non-numeric coordinates
    NO_BOX = "no_box"  # a "nothing to box" class such as VinDr "No finding"
    UNKNOWN_CLASS = "unknown_class"  # class name not in box_classes.yaml
    UNMAPPED_CLASS = "unmapped_class"  # listed in box_classes.yaml as having no vocabulary id
    DEGENERATE_BOX = "degenerate_box"  # zero or negative width or height
    UNKNOWN_IMAGE = "unknown_image"  # matches no ingested image
    AMBIGUOUS_IMAGE = "ambiguous_image"  # its file stem matches several images
    BOX_OUTSIDE_IMAGE = "box_outside_image"  # past the reference size by more than TOLERANCE_PX


@dataclass(frozen=True)
class BoxClasses:
    targets: dict[str, tuple[str, str]]  # normalised class name -> (kind, label)
    no_box: frozenset[str]
    unmapped: dict[str, str]  # normalised class name -> why it has no id


@dataclass
class BoxImportSummary:
    """What one import did; n_rows = n_imported + n_skipped + n_rejected."""

    source_file: str
    fmt: str  # the format used: vindr | nih
    input_hash: str
    n_rows: int = 0  # data lines (blank lines are not records)
    n_imported: int = 0
    n_skipped: int = 0  # imported by an earlier run: same input_hash and line
    n_rejected: int = 0  # rejected by this run (a reject already recorded is not written twice)
    reasons: Counter[str] = field(default_factory=Counter)


def _normalise(name: str) -> str:
    return " ".join(name.split()).casefold()


@lru_cache(maxsize=1)
def box_classes() -> BoxClasses:
    """The class mapping, checked against the findings and regions vocabularies."""
    data, _ = load_checked_yaml(CLASSES_FILE, "box_classes.schema.json")
    vocab = vocabulary()
    known = {
        "finding": (vocab.findings, "schemas/vocab/findings.yaml"),
        "region": (vocab.regions, "schemas/vocab/regions.yaml"),
    }
    owner: dict[str, str] = {}
    targets: dict[str, tuple[str, str]] = {}

    def claim(name: str, what: str) -> str:
        key = _normalise(name)
        if key in owner:
            raise ResourceError(CLASSES_FILE, f"class name {name!r} is listed twice ({owner[key]} and {what})")
        owner[key] = what
        return key

    for kind, section in (("finding", "findings"), ("region", "regions")):
        ids, vocab_file = known[kind]
        for entry in data[section]:
            if entry["id"] not in ids:
                raise ResourceError(CLASSES_FILE, f"{section} id {entry['id']!r} is not defined in {vocab_file}")
            for name in entry["names"]:
                targets[claim(name, f"{kind} {entry['id']}")] = (kind, entry["id"])
    no_box = frozenset(claim(name, "no_box") for name in data["no_box"])
    unmapped = {claim(item["name"], "unmapped"): item["why"] for item in data["unmapped"]}
    return BoxClasses(targets, no_box, unmapped)


# -- reading the file ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    line: int
    fields: dict[str, str] | None  # None when the line has the wrong shape (problem says why)
    problem: str = ""


def _header_names(header: list[str]) -> list[str]:
    names = [cell.strip() for cell in header]
    while names and not names[-1]:  # NIH's Kaggle copy pads its header with empty cells
        names.pop()
    return names


def _detect(names: list[str]) -> str | None:
    if set(VINDR_COLUMNS) <= set(names):
        return "vindr"
    # The unquoted "Bbox [x,y,w,h]" name is split by the CSV reader into four cells.
    if names[:2] == list(NIH_COLUMNS[:2]) and "".join(",".join(names[2:]).split()).lower() == "bbox[x,y,w,h]":
        return "nih"
    return None


def _cells(records: Iterator[CsvRecord], width: int, source: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line, stripped cells or None, why not) of each record, trailing empty cells beyond ``width`` dropped.

    A line that is not UTF-8 makes the file unusable (InputError naming its byte offset): box files are
    made by tools, and one mis-decoded line means the rest is in another encoding too.
    """
    for record in records:
        problem = encoding_problem(record.lines)
        if problem:
            raise InputError(f"{source}:{record.line}", problem.expected, problem.found)
        if record.cells is None:
            yield record.line, None, f"expected a CSV row, found one the csv module cannot read ({record.problem})"
            continue
        cells = [cell.strip() for cell in record.cells]
        while len(cells) > width and not cells[-1]:
            cells.pop()
        yield record.line, cells, ""


def _vindr_rows(records: Iterator[CsvRecord], names: list[str], source: str) -> Iterator[_Row]:
    for line, cells, problem in _cells(records, len(names), source):
        if cells is None:
            yield _Row(line, None, problem)
        elif len(cells) != len(names):
            yield _Row(line, None, f"expected {len(names)} fields ({', '.join(names)}), found {len(cells)}")
        else:
            fields = dict(zip(names, cells, strict=True))
            yield _Row(
                line,
                {
                    "image": fields["image_id"],
                    "class_name": fields["class_name"],
                    "x_min": fields["x_min"],
                    "y_min": fields["y_min"],
                    "x_max": fields["x_max"],
                    "y_max": fields["y_max"],
                    "rater": fields.get("rad_id", ""),
                },
            )


def _nih_rows(records: Iterator[CsvRecord], source: str) -> Iterator[_Row]:
    for line, cells, problem in _cells(records, 6, source):
        if cells is None:
            yield _Row(line, None, problem)
        elif len(cells) != 6:
            yield _Row(line, None, f"expected 6 fields (Image Index, Finding Label, x, y, w, h), found {len(cells)}")
        else:
            yield _Row(
                line,
                {
                    "image": cells[0],
                    "class_name": cells[1],
                    "x": cells[2],
                    "y": cells[3],
                    "w": cells[4],
                    "h": cells[5],
                    "rater": "",
                },
            )


# -- matching images -------------------------------------------------------------------------
def _stem(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    suffix = PurePosixPath(base).suffix
    return base[: -len(suffix)] if suffix.lower() in _IMAGE_SUFFIXES else base


@dataclass(frozen=True)
class _Images:
    size: dict[str, tuple[int, int]]  # image_id -> (cols, rows) of the source DICOM
    by_stem: dict[str, list[str]]  # source file stem -> image ids

    @classmethod
    def load(cls, store: Store) -> "_Images":
        size: dict[str, tuple[int, int]] = {}
        by_stem: dict[str, list[str]] = {}
        for image_id, source_path, cols, rows in store.query(
            "SELECT image_id, source_path, cols, rows FROM current_images ORDER BY image_id"
        ):
            size[image_id] = (cols, rows)
            by_stem.setdefault(_stem(source_path), []).append(image_id)
        return cls(size, by_stem)

    def match(self, ref: str) -> list[str]:
        """Our image ids for an annotation's image name: exact image_id first, else by file stem."""
        if ref in self.size:
            return [ref]
        return self.by_stem.get(_stem(ref), [])


# -- importing -------------------------------------------------------------------------------
_BOX_SCHEMA = pa.schema(
    [
        ("box_id", pa.string()),
        ("image_id", pa.string()),
        ("kind", pa.string()),
        ("label", pa.string()),
        ("class_name", pa.string()),
        ("x_min", pa.float64()),
        ("y_min", pa.float64()),
        ("x_max", pa.float64()),
        ("y_max", pa.float64()),
        ("ref_cols", pa.int32()),
        ("ref_rows", pa.int32()),
        ("rater", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int32()),
        ("input_hash", pa.string()),
        ("run_id", pa.string()),
        ("code_version", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
_REJECT_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_line", pa.int32()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("input_hash", pa.string()),
        ("run_id", pa.string()),
        ("code_version", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


class _Reject(Exception):
    def __init__(self, reason: BoxReason, detail: str):
        self.reason = reason
        self.detail = detail


def _number(fields: dict[str, str], name: str, where: str) -> float:
    raw = fields[name]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _Reject(BoxReason.INVALID_ROW, f"{where}: column {name} expected a finite number, found {raw!r}")
    return value


def _target(class_name: str, classes: BoxClasses, where: str) -> tuple[str, str]:
    """(kind, label) of an annotation class, or a _Reject for a no-box, unmapped or unknown class."""
    key = _normalise(class_name)
    if key in classes.no_box:
        raise _Reject(
            BoxReason.NO_BOX,
            f"{where}: class {class_name!r} marks an image with nothing to box (expected a finding or region class)",
        )
    if key in classes.unmapped:
        raise _Reject(
            BoxReason.UNMAPPED_CLASS,
            f"{where}: class {class_name!r} has no vocabulary id ({classes.unmapped[key]}); see {CLASSES_FILE}",
        )
    if key not in classes.targets:
        raise _Reject(
            BoxReason.UNKNOWN_CLASS, f"{where}: expected a class listed in {CLASSES_FILE}, found {class_name!r}"
        )
    return classes.targets[key]


def _corners(fields: dict[str, str], fmt: str, where: str) -> tuple[float, float, float, float]:
    """(x_min, y_min, x_max, y_max) as written (NIH stores x, y, w, h), or a _Reject for an empty box."""
    if fmt == "nih":
        x, y, w, h = (_number(fields, name, where) for name in ("x", "y", "w", "h"))
        x_min, y_min, x_max, y_max = x, y, x + w, y + h
        found = f"w={w:g}, h={h:g}"
    else:
        x_min, y_min, x_max, y_max = (_number(fields, name, where) for name in ("x_min", "y_min", "x_max", "y_max"))
        found = f"x_min={x_min:g}, x_max={x_max:g}, y_min={y_min:g}, y_max={y_max:g}"
    if x_max <= x_min or y_max <= y_min:
        raise _Reject(BoxReason.DEGENERATE_BOX, f"{where}: expected a positive width and height, found {found}")
    return x_min, y_min, x_max, y_max


def _image_for(ref: str, images: _Images, where: str) -> str:
    """The one ingested image an annotation names, or a _Reject when it names none or several."""
    matches = images.match(ref)
    if not matches:
        raise _Reject(
            BoxReason.UNKNOWN_IMAGE,
            f"{where}: expected an ingested image (our image_id, or a source "
            f"file named {_stem(ref)!r}), found none for {ref!r}",
        )
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise _Reject(
            BoxReason.AMBIGUOUS_IMAGE,
            f"{where}: expected one image for {ref!r}, found {len(matches)} with that file stem (image ids {shown})",
        )
    return matches[0]


def _check_inside(corners: tuple[float, float, float, float], cols: int, rows: int, where: str) -> None:
    """A _Reject unless the box lies within the image, allowing TOLERANCE_PX of annotation-tool rounding."""
    x_min, y_min, x_max, y_max = corners
    if (
        x_min < -TOLERANCE_PX
        or y_min < -TOLERANCE_PX
        or x_max > cols + TOLERANCE_PX
        or y_max > rows + TOLERANCE_PX
        or x_min >= cols
        or y_min >= rows
        or x_max <= 0
        or y_max <= 0
    ):
        raise _Reject(
            BoxReason.BOX_OUTSIDE_IMAGE,
            f"{where}: expected a box within the {cols}x{rows} image (+-{TOLERANCE_PX:g} px), found "
            f"({x_min:g}, {y_min:g})-({x_max:g}, {y_max:g})",
        )


def _box(
    row: _Row, fmt: str, source: str, classes: BoxClasses, images: _Images, reference_size: tuple[int, int] | None
) -> dict[str, Any]:
    """One box's columns (without provenance), or a _Reject saying why not."""
    where = f"{source} line {row.line}"
    if row.fields is None:
        raise _Reject(BoxReason.INVALID_ROW, f"{where}: {row.problem}")
    fields = row.fields
    ref, class_name = fields["image"], fields["class_name"]
    if not ref or not class_name:
        missing = "image id" if not ref else "class name"
        raise _Reject(BoxReason.INVALID_ROW, f"{where}: expected a {missing}, found an empty field")
    kind, label = _target(class_name, classes, where)
    x_min, y_min, x_max, y_max = corners = _corners(fields, fmt, where)
    image_id = _image_for(ref, images, where)
    cols, rows = reference_size or images.size[image_id]
    _check_inside(corners, cols, rows, where)
    return {
        "image_id": image_id,
        "kind": kind,
        "label": label,
        "class_name": class_name,
        "x_min": max(x_min, 0.0),
        "y_min": max(y_min, 0.0),
        "x_max": min(x_max, float(cols)),
        "y_max": min(y_max, float(rows)),
        "ref_cols": cols,
        "ref_rows": rows,
        "rater": fields["rater"] or None,
    }


def _check_arguments(fmt: str, reference_size: tuple[int, int] | None) -> None:
    if fmt not in ("vindr", "nih", "auto"):
        raise ConfigError("box import format", f"expected vindr, nih or auto, found {fmt!r}")
    if reference_size is not None and (
        len(reference_size) != 2 or not all(isinstance(v, int) and v > 0 for v in reference_size)
    ):
        raise ConfigError(
            "box reference size", f"expected two positive integers (cols, rows), found {reference_size!r}"
        )


def check_box_file(path: Path, fmt: Format = "auto") -> str:
    """The format of an annotation file, from its header; InputError when it is missing, empty or neither
    layout (what `build` checks before any flow starts)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "an annotation CSV file", "no such file")
    header = next(read_csv(path), None)
    names = _header_names(header_names(header, path)) if header is not None else []
    detected = _detect(names)
    if detected is None or (fmt != "auto" and detected != fmt):
        headers = {
            "vindr": f"a VinDr header ({', '.join(VINDR_COLUMNS)}[, rad_id])",
            "nih": f"an NIH header ({', '.join(NIH_COLUMNS)})",
        }
        expected = headers.get(fmt) or " or ".join(headers.values())
        raise InputError(
            str(path), expected, f"the header {printable(','.join(names))!r}" if names else "an empty file"
        )
    return detected


def _earlier(store: Store, input_hash: str) -> tuple[set[int], set[tuple[int, str, str]]]:
    """What earlier imports of this file left: the lines imported, and the (line, reason, detail) of rejects."""
    done = {line for (line,) in store.query("SELECT source_line FROM boxes WHERE input_hash = ?", [input_hash])}
    recorded = set(
        store.query("SELECT source_line, reason, detail FROM box_rejects WHERE input_hash = ?", [input_hash])
    )
    return done, recorded


def _provenance(input_hash: str, run_id: str) -> dict[str, Any]:
    """The provenance columns shared by every box and reject row of one import."""
    return {
        "input_hash": input_hash,
        "run_id": run_id,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc),
    }


def _reject_row(source: str, line: int, reject: _Reject, provenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_file": source,
        "source_line": line,
        "reason": reject.reason.value,
        "detail": reject.detail,
        **provenance,
    }


def import_boxes(
    store: Store, path: Path, *, fmt: Format = "auto", run_id: str, reference_size: tuple[int, int] | None = None
) -> BoxImportSummary:
    """Import one annotation file in one transaction; a rerun of the same file skips what it imported.

    ``reference_size`` is (cols, rows) of the image the coordinates were drawn on: by default
    the DICOM Columns/Rows of the matched image for VinDr files and 1024x1024 for NIH files.
    Lines rejected before are checked again (their image may have been ingested since).
    """
    _check_arguments(fmt, reference_size)
    path = Path(path)
    detected = check_box_file(path, fmt)
    source = str(path)
    input_hash = sha256_file(path)
    classes = box_classes()
    images = _Images.load(store)
    done, recorded = _earlier(store, input_hash)
    provenance = _provenance(input_hash, run_id)

    records = read_csv(path)
    with store.transaction():
        header = next(records)
        names = _header_names(header.cells or [])
        summary = BoxImportSummary(source, detected, input_hash)
        if detected == "nih" and reference_size is None:
            reference_size = NIH_REFERENCE_SIZE
        rows = _nih_rows(records, source) if detected == "nih" else _vindr_rows(records, names, source)
        boxes: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        for row in rows:
            summary.n_rows += 1
            if row.line in done:
                summary.n_skipped += 1
                continue
            try:
                box = _box(row, detected, source, classes, images, reference_size)
            except _Reject as reject:
                summary.n_rejected += 1
                summary.reasons[reject.reason.value] += 1
                if (row.line, reject.reason.value, reject.detail) not in recorded:
                    rejects.append(_reject_row(source, row.line, reject, provenance))
            else:
                summary.n_imported += 1
                boxes.append(
                    {
                        "box_id": stable_hash([input_hash, row.line], length=24),
                        **box,
                        "source_file": source,
                        "source_line": row.line,
                        **provenance,
                    }
                )
            if len(boxes) + len(rejects) >= BATCH_ROWS:
                _flush(store, boxes, rejects)
        _flush(store, boxes, rejects)
        _record_import(store, source, provenance)
    return summary


def _record_import(store: Store, source: str, provenance: dict[str, Any]) -> None:
    """This version of the file is the current one (also when every line was imported before: A, B, then A). Not
    recorded again where it is the current one already: a rebuild with unchanged files then changes no table the QA
    inputs' hashes read (`cxrvqa.qa.stage.INPUT_STATE_TABLES`), and does not hash them again."""
    latest = store.query("SELECT arg_max(input_hash, created_at) FROM box_imports WHERE source_file = ?", [source])
    if latest == [(provenance["input_hash"],)]:
        return
    keep = ("input_hash", "run_id", "created_at")
    store.insert("box_imports", [{"source_file": source, **{k: provenance[k] for k in keep}}])


def _flush(store: Store, boxes: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
    store.insert("boxes", pa.Table.from_pylist(boxes, schema=_BOX_SCHEMA))
    store.insert("box_rejects", pa.Table.from_pylist(rejects, schema=_REJECT_SCHEMA))
    boxes.clear()
    rejects.clear()
