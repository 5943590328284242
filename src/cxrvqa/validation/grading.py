"""Weakest-link grades (MIMIC-Ext-CXR-QBA): an item's grade is the lowest cap among the criteria it
meets. Levels and caps are data (`schemas/vocab/grades.yaml`); grades are integer codes with labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxrvqa.errors import ResourceError
from cxrvqa.resources import load_checked_yaml

GRADES_FILE = "schemas/vocab/grades.yaml"


@dataclass(frozen=True)
class Grading:
    levels: tuple[tuple[int, str, str], ...]      # (code, label, meaning), best first
    caps: dict[str, Any]
    content_hash: str

    @property
    def best(self) -> int:
        return self.levels[0][0]

    def code(self, label: str) -> int:
        return next(code for code, name, _ in self.levels if name == label)

    def label(self, code: int) -> str:
        return next(name for c, name, _ in self.levels if c == code)


@lru_cache(maxsize=1)
def grading() -> Grading:
    data, digest = load_checked_yaml(GRADES_FILE, "grades.schema.json")
    levels = tuple(sorted(((lv["code"], lv["label"], lv["meaning"]) for lv in data["levels"]), reverse=True))
    if len({c for c, _, _ in levels}) != len(levels) or len({n for _, n, _ in levels}) != len(levels):
        raise ResourceError(GRADES_FILE, "grade codes and labels must be unique")
    labels = {name for _, name, _ in levels}
    caps = data["caps"]
    used = [caps[k] for k in ("validator_reject", "validator_warn", "no_evidence", "closed_world_negative")]
    used += list(caps["reasons"].values()) + list(caps["quality"].values())
    unknown = sorted(set(used) - labels)
    if unknown:
        raise ResourceError(GRADES_FILE, f"caps name undefined grades {unknown}; grades are {sorted(labels)}")
    return Grading(levels, caps, digest)


def grade_item(item: dict[str, Any], failures: list[tuple[str, str | None]], quality: list[str],
               closed_world: bool) -> tuple[int, str]:
    """(grade code, the criterion that set it) for an item, its failed checks as (status, reason) and
    its scene graph's quality codes; "" when nothing capped it."""
    rules = grading()
    grade, weakest = rules.best, ""

    def cap(label: str, criterion: str) -> None:
        nonlocal grade, weakest
        code = rules.code(label)
        if code < grade:
            grade, weakest = code, criterion

    for status, reason in failures:
        cap(rules.caps["validator_reject"] if status == "reject" else rules.caps["validator_warn"],
            f"{status}:{reason}")
        if reason in rules.caps["reasons"]:
            cap(rules.caps["reasons"][reason], f"reason:{reason}")
    for code in quality:
        if code in rules.caps["quality"]:
            cap(rules.caps["quality"][code], f"quality:{code}")
    if not item.get("evidence_ids"):
        cap(rules.caps["no_evidence"], "no_evidence")
    if closed_world and item.get("polarity") is False:
        cap(rules.caps["closed_world_negative"], "closed_world_negative")
    return grade, weakest
