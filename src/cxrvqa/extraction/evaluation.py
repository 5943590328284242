"""Scoring of study-level labels in the labels14 layout (NegBio's OpenI gold standard).

The layout: a `filename` column (`CXR<study_id>`), the 14 ChestX-ray14 labels and `normal`,
values 0 or 1 (1 = present). `micro` and `macro` summarise the 14 finding labels;
`normal` is scored on its own line.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from cxrvqa.core.vocab import NORMAL, finding_labels
from cxrvqa.errors import InputError


def read_labels14(path: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    """(label columns in file order, filename -> label -> 0/1); errors name the row and column."""
    if not path.is_file():
        raise InputError(str(path), "a labels14 CSV file", "no such file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        expected = finding_labels() | {NORMAL}
        if not columns or columns[0] != "filename" or set(columns[1:]) != expected:
            raise InputError(str(path), f"columns filename + {sorted(expected)}", f"columns {columns}")
        rows: dict[str, dict[str, int]] = {}
        for row in reader:
            name = row["filename"]
            if name in rows:
                raise InputError(f"{path}:{reader.line_num}", "one row per filename", f"{name!r} again")
            values = {}
            for label in columns[1:]:
                value = (row[label] or "").strip()
                if value not in ("0", "1"):
                    raise InputError(f"{path}:{reader.line_num}", f"0 or 1 in column {label!r}", repr(row[label]))
                values[label] = int(value)
            rows[name] = values
    return columns[1:], rows


@dataclass(frozen=True)
class LabelScore:
    label: str
    support: int  # gold positives
    tp: int
    fp: int
    fn: int
    precision: float | None  # None: nothing to score (no gold and no predicted positives)
    recall: float | None
    f1: float | None


def _score(label: str, tp: int, fp: int, fn: int) -> LabelScore:
    if tp + fp + fn == 0:
        return LabelScore(label, 0, 0, 0, 0, None, None, None)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LabelScore(label, tp + fn, tp, fp, fn, precision, recall, f1)


@dataclass(frozen=True)
class Labels14Report:
    labels: list[LabelScore]  # the 14 findings, in gold column order
    normal: LabelScore
    micro: LabelScore
    macro_f1: float  # over the findings that have something to score
    studies: int  # gold rows scored
    missing_in_pred: int  # gold rows without a prediction (scored as all 0)
    extra_in_pred: int  # predicted rows not in gold (ignored)

    def as_dict(self) -> dict:
        return asdict(self)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def score_labels14(pred_path: Path, gold_path: Path) -> Labels14Report:
    columns, gold = read_labels14(gold_path)
    _, pred = read_labels14(pred_path)
    counts = {label: [0, 0, 0] for label in columns}  # tp, fp, fn
    for name, truth in gold.items():
        guess = pred.get(name, {})
        for label in columns:
            said, true = guess.get(label, 0), truth[label]
            counts[label][0] += said and true
            counts[label][1] += said and not true
            counts[label][2] += true and not said
    findings = [_score(label, *counts[label]) for label in columns if label != NORMAL]
    micro = _score("micro", *(sum(counts[s.label][i] for s in findings) for i in range(3)))
    return Labels14Report(
        labels=findings,
        normal=_score(NORMAL, *counts[NORMAL]),
        micro=micro,
        macro_f1=_mean([s.f1 for s in findings if s.f1 is not None]),
        studies=len(gold),
        missing_in_pred=sum(1 for name in gold if name not in pred),
        extra_in_pred=sum(1 for name in pred if name not in gold),
    )
