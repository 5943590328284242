"""Report loaders: each yields one RawReport per record, or a RawReject naming the record and the problem.

Formats (``--report-format``):
- ``iu``: the Indiana University CSV (uid, indication, comparison, findings, impression, image);
  study id = uid as text, patient id = study id (IU has one study per patient).
- ``mimic``: a tree of ``p<group>/p<patient>/s<study>.txt`` free-text reports.
- ``jsonl`` / ``csv``: study_id, patient_id (optional), and ``text`` or per-section fields
  (indication, comparison, technique, findings, impression).
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cxrvqa.errors import InputError
from cxrvqa.reports.text import SECTIONS, compose, normalise

csv.field_size_limit(sys.maxsize)  # a 1 MB report is bad input to reject with a reason, not a crash

SECTION_FIELDS = tuple(s for s in SECTIONS if s != "other")
_MIMIC_PATH = re.compile(r"^p(?P<group>\d+)/p(?P<patient>\d+)/s(?P<study>\d+)\.txt$")


@dataclass(frozen=True)
class RawReport:
    study_id: str
    patient_id: str
    source: str        # file and record (line / row / path) it came from
    text: str          # normalised full text, with section headers


@dataclass(frozen=True)
class RawReject:
    source: str
    study_id: str | None
    reason: str        # invalid_record | unrecognised_path
    detail: str


def load_reports(path: Path, report_format: str) -> Iterator[RawReport | RawReject]:
    loader = {"iu": _load_iu, "mimic": _load_mimic, "jsonl": _load_jsonl, "csv": _load_csv}[report_format]
    if report_format == "mimic":
        if not path.is_dir():
            raise InputError(str(path), "a folder of p*/p<patient>/s<study>.txt reports (--report-format mimic)",
                             "no such folder")
    elif not path.is_file():
        raise InputError(str(path), f"a {report_format} reports file", "no such file")
    return loader(path)


def _from_fields(record: dict, source: str, study_key: str = "study_id") -> RawReport | RawReject:
    study = str(record.get(study_key) or "").strip()
    if not study:
        return RawReject(source, None, "invalid_record", f"expected a non-empty {study_key}, found {record.get(study_key)!r}")
    patient = str(record.get("patient_id") or "").strip() or study
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        return RawReject(source, study, "invalid_record", f"expected 'text' to be a string, found {type(text).__name__}")
    if text is None:
        text = compose({field: str(record.get(field) or "") for field in SECTION_FIELDS})
    return RawReport(study, patient, source, normalise(text))


def _load_iu(path: Path) -> Iterator[RawReport | RawReject]:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        required = {"uid", "indication", "comparison", "findings", "impression"}
        if not required <= set(reader.fieldnames or []):
            raise InputError(str(path), f"IU columns {sorted(required)}", f"columns {reader.fieldnames}")
        for row in reader:
            record = {**row, "technique": row.get("image", "")}
            yield _from_fields(record, f"{path.name}:row {reader.line_num}", study_key="uid")


def _load_csv(path: Path) -> Iterator[RawReport | RawReject]:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or [])
        if "study_id" not in fields or not ({"text"} | set(SECTION_FIELDS)) & fields:
            raise InputError(str(path), "columns study_id and text (or per-section columns)",
                             f"columns {reader.fieldnames}")
        for row in reader:
            yield _from_fields(row, f"{path.name}:row {reader.line_num}")


def _load_jsonl(path: Path) -> Iterator[RawReport | RawReject]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{path.name}:line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawReject(source, None, "invalid_record", f"expected a JSON object, found invalid JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                yield RawReject(source, None, "invalid_record", f"expected a JSON object, found {type(record).__name__}")
                continue
            yield _from_fields(record, source)


def _load_mimic(path: Path) -> Iterator[RawReport | RawReject]:
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            relative = (Path(root) / name).relative_to(path).as_posix()
            match = _MIMIC_PATH.match(relative)
            if not match:
                yield RawReject(relative, None, "unrecognised_path",
                                "expected p<group>/p<patient>/s<study>.txt, found another path")
                continue
            text = (Path(root) / name).read_text(encoding="utf-8", errors="replace")
            yield RawReport(f"s{match['study']}", f"p{match['patient']}", relative, normalise(text))
