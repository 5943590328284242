"""Weakest-link grades (MIMIC-Ext-CXR-QBA): an item's grade is the lowest cap among the criteria it
meets. Levels and caps are data (`schemas/vocab/grades.yaml`); grades are integer codes with labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.errors import ResourceError

GRADES_FILE = "schemas/vocab/grades.yaml"
#: Statuses of a check's result, worst last: an item's status is its worst result's (validation, audit).
STATUS_RANK = {"ok": 0, "warn": 1, "reject": 2}


@dataclass(frozen=True)
class Grading:
    levels: tuple[tuple[int, str, str], ...]  # (code, label, meaning), best first
    caps: dict[str, Any]
    content_hash: str
    review: dict[str, Any]  # human review verdicts (grades.yaml `review`)

    @property
    def best(self) -> int:
        return self.levels[0][0]

    def code(self, label: str) -> int:
        return next(code for code, name, _ in self.levels if name == label)

    def label(self, code: int) -> str:
        return self._labels[code]

    @cached_property
    def _labels(self) -> dict[int, str]:
        """Label by code, made once (validation labels every item's grade)."""
        return {code: name for code, name, _ in self.levels}


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
    return Grading(levels, caps, digest, data["review"])


def grade_item(
    item: dict[str, Any], failures: list[tuple[str, str | None]], quality: list[str], closed_world: bool
) -> tuple[int, str]:
    """(grade code, the criterion that set it) for an item, its failed checks as (status, reason) and
    its scene graph's quality codes; "" when nothing capped it."""
    closed_negative = closed_world and item.get("polarity") is False
    return _graded(tuple(failures), tuple(quality), not item.get("evidence_ids"), closed_negative)


@lru_cache(maxsize=4096)
def _graded(
    failures: tuple[tuple[str, str | None], ...], quality: tuple[str, ...], no_evidence: bool, closed_negative: bool
) -> tuple[int, str]:
    """`grade_item` of what it reads of an item (cached: most items share a few such combinations)."""
    rules = grading()
    grade, weakest = rules.best, ""

    def cap(label: str, criterion: str) -> None:
        nonlocal grade, weakest
        code = rules.code(label)
        if code < grade:
            grade, weakest = code, criterion

    for status, reason in failures:
        code, criterion = failure_cap(status, reason)
        if code < grade:
            grade, weakest = code, criterion
    for code in quality:
        if code in rules.caps["quality"]:
            cap(rules.caps["quality"][code], f"quality:{code}")
    if no_evidence:
        cap(rules.caps["no_evidence"], "no_evidence")
    if closed_negative:
        cap(rules.caps["closed_world_negative"], "closed_world_negative")
    return grade, weakest


def judge_capped(grade: int, weakest: str, judge_grade: int | None, judge_weakest: str | None) -> tuple[int, str]:
    """(grade code, criterion) of an item whose rule-based grade an LLM judge verdict caps, where it is lower."""
    if judge_grade is not None and judge_grade < grade:
        return judge_grade, f"judge:{judge_weakest}"
    return grade, weakest


def failure_cap(status: str, reason: str | None) -> tuple[int, str]:
    """(grade code, criterion) one failed check caps an item at: its status's cap, or its reason's when lower
    (a report-only item's `no_image` warning caps at C, not B)."""
    rules = grading()
    code, criterion = (
        rules.code(rules.caps["validator_reject" if status == "reject" else "validator_warn"]),
        f"{status}:{reason}",
    )
    if reason in rules.caps["reasons"] and rules.code(rules.caps["reasons"][reason]) < code:
        code, criterion = rules.code(rules.caps["reasons"][reason]), f"reason:{reason}"
    return code, criterion


def review_verdicts() -> tuple[str, ...]:
    """The verdicts a reviewer can give, in grades.yaml's order (correct first)."""
    return tuple(grading().review["verdicts"])


@dataclass(frozen=True)
class ReviewResult:
    """What one reviewer's verdict on an item counts as: a `human_review` result and the cap it sets."""

    status: str  # ok | warn | reject
    reason: str | None  # review_<verdict> | review_grammar; None when ok
    grade: int | None  # the grade it caps the item at; None: it caps nothing
    weakest: str | None  # 'review:<verdict>' | 'review:grammar'


def review_result(verdict: str, grammar: bool) -> ReviewResult:
    """The human_review result of a verdict (and a grammar error): each is a failure with the status grades.yaml
    gives it, capped like any failed check; the lower cap wins (the verdict's on a tie)."""
    review = grading().review
    failures = [(review["verdicts"][verdict]["status"], verdict)] + (
        [(review["grammar"]["status"], "grammar")] if grammar else []
    )
    worst: ReviewResult = ReviewResult("ok", None, None, None)
    for status, what in failures:
        if status == "ok":
            continue
        code, _ = failure_cap(status, f"review_{what}")
        if worst.grade is None or code < worst.grade:
            worst = ReviewResult(status, f"review_{what}", code, f"review:{what}")
    return worst


def demoted_by_checks(weakest: str) -> bool:
    """Whether a grade set by criterion `weakest` (as `grade_item` and the judge name it) is a check that failed:
    a validator or the LLM judge, not the item's form (grades.yaml `review.form_reasons`: a report-only item),
    its graph's quality codes or a ceiling such as `no_evidence`. The measure of the checks on reviewed items."""
    kind, _, reason = weakest.partition(":")
    if kind == "judge":
        return True
    return kind in ("reject", "warn", "reason") and reason not in grading().review["form_reasons"]
