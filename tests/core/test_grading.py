"""Weakest-link grades: each criterion caps the grade at the level grades.yaml gives it."""

from __future__ import annotations

import pytest

from cxrvqa.core.grading import grade_item, grading

GROUNDED = {"evidence_ids": [0], "polarity": True}


@pytest.mark.parametrize(
    ("item", "failures", "quality", "closed_world", "expected"),
    [
        (GROUNDED, [], [], False, ("A++", "")),
        ({"evidence_ids": [], "polarity": None}, [], [], False, ("A+", "no_evidence")),
        ({"evidence_ids": [], "polarity": False}, [], [], True, ("A", "closed_world_negative")),
        ({"evidence_ids": [], "polarity": True}, [], [], True, ("A+", "no_evidence")),
        (GROUNDED, [("warn", "answer_in_question")], [], False, ("B", "warn:answer_in_question")),
        (GROUNDED, [("warn", "no_image")], [], False, ("C", "reason:no_image")),
        (GROUNDED, [], ["no_observations"], False, ("C", "quality:no_observations")),
        (
            GROUNDED,
            [("warn", "no_image"), ("reject", "answer_mismatch")],
            ["deid_only"],
            False,
            ("D", "reject:answer_mismatch"),
        ),
    ],
)
def test_the_weakest_criterion_sets_the_grade(
    item: dict, failures: list, quality: list, closed_world: bool, expected: tuple[str, str]
) -> None:
    code, weakest = grade_item(item, failures, quality, closed_world)
    assert (grading().label(code), weakest) == expected


def test_levels_are_integer_codes_best_first() -> None:
    assert [(code, label) for code, label, _ in grading().levels] == [
        (6, "A++"),
        (5, "A+"),
        (4, "A"),
        (3, "B"),
        (2, "C"),
        (1, "D"),
    ]
