"""Report loaders: each yields one RawReport per record, or a RawReject naming the record and the problem.

Formats (``--report-format``):
- ``iu``: the Indiana University CSV (uid, indication, comparison, findings, impression, image);
  study id = uid as text, patient id = study id (IU has one study per patient).
- ``mimic``: a tree of ``p<group>/p<patient>/s<study>.txt`` free-text reports.
- ``jsonl`` / ``csv``: study_id, patient_id (optional), and ``text`` or per-section fields
  (indication, comparison, technique, findings, impression).
- report tables (``chexpert_plus``, ``rexgradient``): a corpus's own CSV with the sections in columns,
  laid out as data in ``schemas/vocab/report_tables.yaml``; rows of one study that repeat its report
  (one row per image) are read once.

Every file is read through `cxrvqa.core.text_input`: a byte-order mark is skipped; UTF-8 is decoded
strictly, and a record with bytes that are not UTF-8 is rejected (`invalid_encoding`, with the
byte offset) rather than stored with replacement characters.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from cxrvqa.errors import InputError
from cxrvqa.core.text import SECTIONS, compose, normalise
from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.core.table_rows import Row, capture, render
from cxrvqa.core.text_input import (
    CsvRecord,
    Line,
    encoding_problem,
    header_names,
    not_text,
    printable,
    read_csv,
    read_lines,
    unstorable_char,
)

SECTION_FIELDS = tuple(s for s in SECTIONS if s != "other")
IU_COLUMNS = ("uid", "indication", "comparison", "findings", "impression")
_MIMIC_PATH = re.compile(r"^p(?P<group>\d+)/p(?P<patient>\d+)/s(?P<study>\d+)\.txt$")


class ReportReason(StrEnum):
    """Stable reason codes of `report_rejects.reason`."""

    invalid_record = "invalid_record"  # not a JSON object, no study id, a text that is not a string
    malformed_row = "malformed_row"  # a CSV row with more or fewer fields than its header
    invalid_encoding = "invalid_encoding"  # bytes that are not UTF-8, U+FFFD or an unpaired surrogate
    not_text = "not_text"  # binary data: control characters, NULs, no letter
    unrecognised_path = "unrecognised_path"  # a file of a MIMIC tree not named p<group>/p<patient>/s<study>.txt
    empty_report = "empty_report"
    report_too_long = "report_too_long"
    duplicate_study = "duplicate_study"


@dataclass(frozen=True)
class RawReport:
    study_id: str
    patient_id: str
    source: str  # file and record (line / row / path) it came from
    text: str  # normalised full text, with section headers


@dataclass(frozen=True)
class RawReject:
    source: str
    study_id: str | None
    reason: str  # a ReportReason
    detail: str


@lru_cache(maxsize=1)
def report_tables() -> dict[str, dict[str, Any]]:
    """The report-table layouts by ``--report-format`` value."""
    data, _ = load_checked_yaml("schemas/vocab/report_tables.yaml", "report_tables.schema.json")
    return {table["id"]: table for table in data["tables"]}


def report_formats() -> list[str]:
    """Every ``--report-format`` value."""
    return sorted([*_LOADERS, *report_tables()])


def load_reports(path: Path, report_format: str) -> Iterator[RawReport | RawReject]:
    """The records of a reports input; an input unusable as a whole (missing, empty, wrong columns) raises
    InputError here, before the first record is read."""
    check_reports_input(path, report_format)
    if report_format in _LOADERS:
        return _LOADERS[report_format](path)
    return _load_table(path, report_tables()[report_format])


def check_reports_input(path: Path, report_format: str) -> None:
    """Raise InputError when the input cannot be read as ``report_format`` at all: what `build` checks
    before any flow starts."""
    if report_format not in report_formats():
        raise InputError(str(path), f"a report format among {report_formats()}", repr(report_format))
    if report_format == "mimic":
        if not path.is_dir():
            raise InputError(
                str(path), "a folder of p*/p<patient>/s<study>.txt reports (--report-format mimic)", "no such folder"
            )
        if not any(files for _, _, files in os.walk(path)):
            raise InputError(
                str(path), "a folder of p*/p<patient>/s<study>.txt reports (--report-format mimic)", "an empty folder"
            )
        return
    if not path.is_file():
        raise InputError(str(path), f"a {report_format} reports file", "no such file")
    if report_format == "jsonl":
        if not any(line.text.strip() for line in read_lines(path)):
            raise InputError(str(path), "a JSON-lines reports file", "an empty file")
        return
    _csv_header(path, report_format)


def _csv_header(path: Path, report_format: str) -> list[str]:
    """The header of an iu, csv or report-table file, checked."""
    table = report_tables().get(report_format)
    expected = (
        f"IU columns {list(IU_COLUMNS)}"
        if report_format == "iu"
        else f"{table['title']} columns {table['columns']}"
        if table is not None
        else "columns study_id and text (or per-section columns)"
    )
    header = next(read_csv(path), None)
    if header is None:
        raise InputError(str(path), expected, "an empty file")
    names = header_names(header, path)
    fields = set(names)
    if report_format == "iu":
        ok = set(IU_COLUMNS) <= fields
    elif table is not None:
        ok = set(table["columns"]) <= fields
    else:
        ok = "study_id" in fields and bool(({"text"} | set(SECTION_FIELDS)) & fields)
    if not ok:
        raise InputError(str(path), expected, f"columns {names}")
    return names


def _report(study: str, patient: str, source: str, text: str) -> RawReport | RawReject:
    """A report, or the reject of a text that is binary data or cannot be stored."""
    problem = not_text(text)
    if problem:
        return RawReject(source, study, ReportReason.not_text, str(problem))
    problem = unstorable_char(text, "the report text")
    if problem:
        return RawReject(source, study, ReportReason.invalid_encoding, str(problem))
    return RawReport(study, patient, source, normalise(text))


def _from_fields(record: dict[str, Any], source: str, study_key: str = "study_id") -> RawReport | RawReject:
    study = str(record.get(study_key) or "").strip()
    if not study:
        return RawReject(
            source,
            None,
            ReportReason.invalid_record,
            f"expected a non-empty {study_key}, found {record.get(study_key)!r}",
        )
    patient = str(record.get("patient_id") or "").strip() or study
    for value, field in ((study, study_key), (patient, "patient_id")):
        problem = unstorable_char(value, field)
        if problem:
            return RawReject(source, None, ReportReason.invalid_encoding, str(problem))
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        return RawReject(
            source, study, ReportReason.invalid_record, f"expected 'text' to be a string, found {type(text).__name__}"
        )
    if text is None:
        sections = {field: str(record.get(field) or "") for field in SECTION_FIELDS}
        problem = not_text("\n".join(sections.values()))
        if problem:
            return RawReject(source, study, ReportReason.not_text, str(problem))
        text = compose(sections)
    return _report(study, patient, source, text)


#: A row's cells by column -> the record's fields; may raise InputError (the row's reject, named by source).
FieldsOf = Callable[[dict[str, str], str], dict[str, str]]


def _csv_records(
    path: Path, report_format: str, study_key: str, fields_of: FieldsOf
) -> Iterator[RawReport | RawReject]:
    names = _csv_header(path, report_format)
    records = read_csv(path)
    next(records)  # the header
    for record in records:
        yield _csv_record(record, path, names, study_key, fields_of)


def _csv_record(
    record: CsvRecord, path: Path, names: list[str], study_key: str, fields_of: FieldsOf
) -> RawReport | RawReject:
    source = f"{printable(path.name)}:row {record.line}"
    problem = record.shape_problem(len(names), names)
    if problem:
        return RawReject(source, None, ReportReason.malformed_row, str(problem))
    try:
        fields, unusable = fields_of(dict(zip(names, record.cells or [], strict=False)), source), None
    except InputError as exc:
        fields, unusable = {}, exc
    problem = encoding_problem(record.lines)
    if problem:
        study = fields.get(study_key, "").strip()
        return RawReject(
            source,
            study if study and not unstorable_char(study, study_key) else None,
            ReportReason.invalid_encoding,
            str(problem),
        )
    if unusable is not None:
        return RawReject(
            source, None, ReportReason.invalid_record, f"expected {unusable.expected}, found {unusable.found}"
        )
    return _from_fields(fields, source, study_key)


def _load_iu(path: Path) -> Iterator[RawReport | RawReject]:
    return _csv_records(path, "iu", "uid", lambda row, _: {**row, "technique": row.get("image", "")})


def _load_csv(path: Path) -> Iterator[RawReport | RawReject]:
    return _csv_records(path, "csv", "study_id", lambda row, _: row)


def _table_fields(table: dict[str, Any]) -> FieldsOf:
    """A report table's row -> study_id, patient_id and the canonical sections, through its layout."""

    def fields_of(cells: dict[str, str], source: str) -> dict[str, str]:
        row = Row(cells, table.get("optional", []))
        capture(table.get("captures", {}), row, source)
        fields = {
            "study_id": render(table["study_id"], row, source),
            "patient_id": render(table["patient_id"], row, source),
        }
        for section, columns in table["sections"].items():
            fields[section] = "\n".join(row[column] for column in columns if row.get(column))
        return fields

    return fields_of


def _load_table(path: Path, table: dict[str, Any]) -> Iterator[RawReport | RawReject]:
    """A report table's records; a row that repeats the report of a study already read (the same study,
    patient and text: another image of it) is that report, not a record of its own."""
    read: dict[str, bytes] = {}  # study id -> digest of the patient id and text of the report read for it
    for record in _csv_records(path, table["id"], "study_id", _table_fields(table)):
        if isinstance(record, RawReport):
            digest = hashlib.sha256(f"{record.patient_id}\0{record.text}".encode()).digest()
            if read.get(record.study_id) == digest:
                continue  # another image's row of a study already read
            read.setdefault(record.study_id, digest)
        yield record


def _load_jsonl(path: Path) -> Iterator[RawReport | RawReject]:
    for line in read_lines(path):
        if not line.text.strip():
            continue
        source = f"{printable(path.name)}:line {line.number}"
        try:
            record = json.loads(line.text)
        except json.JSONDecodeError as exc:
            yield RawReject(
                source,
                None,
                ReportReason.invalid_record,
                f"expected a JSON object, found invalid JSON ({exc.msg} at column {exc.colno})",
            )
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number; arrays nested 100,000 deep
            yield RawReject(
                source,
                None,
                ReportReason.invalid_record,
                f"expected a JSON object, found JSON Python cannot read ({type(exc).__name__}: {exc})",
            )
            continue
        if not isinstance(record, dict):
            yield RawReject(
                source, None, ReportReason.invalid_record, f"expected a JSON object, found {type(record).__name__}"
            )
            continue
        problem = encoding_problem([line])
        if problem:
            study = str(record.get("study_id") or "").strip()
            yield RawReject(
                source,
                study if study and not encoding_problem([Line(0, 0, study)]) else None,
                ReportReason.invalid_encoding,
                str(problem),
            )
            continue
        yield _from_fields(record, source)


def _load_mimic(path: Path) -> Iterator[RawReport | RawReject]:
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            relative = (Path(root) / name).relative_to(path).as_posix()
            source = printable(relative)
            match = _MIMIC_PATH.match(relative)
            if not match:
                yield RawReject(
                    source,
                    None,
                    ReportReason.unrecognised_path,
                    "expected p<group>/p<patient>/s<study>.txt, found another path",
                )
                continue
            study, patient = f"s{match['study']}", f"p{match['patient']}"
            lines = list(read_lines(Path(root) / name))
            text = "".join(line.text for line in lines)
            problem = not_text(text)
            if problem:
                yield RawReject(source, study, ReportReason.not_text, str(problem))
                continue
            problem = encoding_problem(lines)
            if problem:
                yield RawReject(source, study, ReportReason.invalid_encoding, str(problem))
                continue
            yield _report(study, patient, source, text)


_LOADERS: dict[str, Callable[[Path], Iterator[RawReport | RawReject]]] = {
    "iu": _load_iu,
    "mimic": _load_mimic,
    "jsonl": _load_jsonl,
    "csv": _load_csv,
}
