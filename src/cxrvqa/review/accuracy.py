"""What the reviews measure: the accuracy of the items (overall and per template, Wilson 95% intervals), and how
well the checks caught what the reviewers found. Read by the audit (terminal, JSON, HTML) and the dataset card.

Per reviewed item, its reviewers' verdicts combine into the worst one (the lowest cap; grades.yaml order on a
tie) and a grammar error if any reviewer saw one. Accuracy is the share of reviewed items judged `correct`
(grammar errors counted on their own). A faulty item is one judged wrong, unsupported or a bad question. The
checks *demote* an item when its review-free grade (what the validators and the judge gave, before any review
cap) was set by a failed check rather than by the item's form (`grading.demoted_by_checks`): recall is the
share of faulty items they demoted, false demotion the share of correct items they demoted. Per check: the
share of faulty and of correct reviewed items on which it failed.

Without --stratify the sample is uniform and the overall accuracy estimates the dataset's; a stratified sample
weights its strata equally.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cxrvqa.core.grading import demoted_by_checks, review_verdicts
from cxrvqa.core.stats import Proportion
from cxrvqa.store import Store


@dataclass(frozen=True)
class TemplateAccuracy:
    template_id: str
    accuracy: Proportion  # correct / reviewed items of the template
    verdicts: dict[str, int]


@dataclass(frozen=True)
class CheckRates:
    """How one validator did on the reviewed items."""

    validator: str
    faulty_failed: Proportion  # faulty items it failed (warn or reject)
    correct_failed: Proportion  # correct items it failed


@dataclass(frozen=True)
class ReviewAccuracy:
    reviewed_items: int
    reviewers: list[str]
    verdicts: dict[str, int]  # the items' combined verdicts
    accuracy: Proportion
    grammar_errors: Proportion
    per_template: list[TemplateAccuracy]
    recall: Proportion  # faulty items the checks demoted
    false_demotion: Proportion  # correct items the checks demoted
    per_check: list[CheckRates]
    stale_verdicts: int  # verdicts on current items that changed since: to review again
    min_grade: str | None = None  # only items whose review-free grade is at least this (the card's selection)


def review_accuracy(
    store: Store,
    items: str = "current_qa_items",
    results: str = "current_validation_results",
    min_grade: tuple[int, str] | None = None,
) -> ReviewAccuracy | None:
    """The accuracy the current reviews measure over the items of relation `items` (item_id, template_version,
    input_hash, template_id) with validator results `results`; None when none of them is reviewed.
    `min_grade` (code, label) keeps the items whose review-free grade is at least that grade."""
    keep = "" if min_grade is None else f"WHERE g.review_free_grade >= {int(min_grade[0])}"
    rows = store.query(
        "SELECT r.item_id, i.template_id, r.reviewer, r.verdict, r.grammar, r.grade, g.review_free_weakest "
        f"FROM current_review_verdicts r JOIN {items} i USING (item_id, template_version, input_hash) "
        f"LEFT JOIN current_qa_grades g USING (item_id, template_version, input_hash) {keep} "
        "ORDER BY r.item_id, r.reviewer"
    )
    if not rows:
        return None
    order = {verdict: position for position, verdict in enumerate(review_verdicts())}
    combined = _combine_verdicts(rows, order)
    correct = {i for i, (_, verdict, _, _) in combined.items() if verdict == "correct"}
    faulty = set(combined) - correct
    demoted = {i for i, (_, _, _, weakest) in combined.items() if demoted_by_checks(weakest)}
    per_check = _per_check(store, results, combined, correct, faulty)
    stale = store.query(
        "SELECT count(*) FROM (SELECT DISTINCT item_id, reviewer FROM review_verdicts "
        f"WHERE item_id IN (SELECT item_id FROM {items})) ANTI JOIN current_review_verdicts USING (item_id, reviewer)"
    )[0][0]
    return ReviewAccuracy(
        reviewed_items=len(combined),
        reviewers=sorted({r[2] for r in rows}),
        verdicts={v: n for v in order if (n := sum(c[1] == v for c in combined.values()))},
        accuracy=Proportion.of(len(correct), len(combined)),
        grammar_errors=Proportion.of(sum(c[2] for c in combined.values()), len(combined)),
        per_template=_per_template(combined),
        recall=Proportion.of(len(faulty & demoted), len(faulty)),
        false_demotion=Proportion.of(len(correct & demoted), len(correct)),
        per_check=per_check,
        stale_verdicts=stale,
        min_grade=None if min_grade is None else min_grade[1],
    )


def _combine_verdicts(rows: list[tuple], order: dict[str, int]) -> dict[str, tuple[str, str, bool, str]]:
    """Per item (template, verdict, grammar, weakest): its reviewers' worst verdict (lowest cap, then grades.yaml
    order) and a grammar error if any of them saw one."""
    combined: dict[str, tuple[str, str, bool, str]] = {}
    worst: dict[str, tuple[float, int]] = {}
    for item_id, template_id, _, verdict, grammar, grade, weakest in rows:
        rank = (float("inf") if grade is None else grade, order[verdict])
        before = combined.get(item_id)
        if before is None or rank < worst[item_id]:
            worst[item_id] = rank
            combined[item_id] = (template_id, verdict, bool(grammar) or bool(before and before[2]), weakest or "")
        elif grammar:
            combined[item_id] = (*before[:2], True, before[3])
    return combined


def _per_template(combined: dict[str, tuple[str, str, bool, str]]) -> list[TemplateAccuracy]:
    """Accuracy per template, least accurate first."""
    templates: dict[str, list[str]] = {}
    for item_id, (template_id, verdict, _, _) in combined.items():
        templates.setdefault(template_id, []).append(verdict)
    return sorted(
        (
            TemplateAccuracy(t, Proportion.of(v.count("correct"), len(v)), dict(Counter(v)))
            for t, v in templates.items()
        ),
        key=lambda t: (t.accuracy.share, -t.accuracy.n, t.template_id),
    )


def _per_check(
    store: Store,
    results: str,
    combined: dict[str, tuple[str, str, bool, str]],
    correct: set[str],
    faulty: set[str],
) -> list[CheckRates]:
    """How often each validator that failed a reviewed item failed the faulty and the correct ones, best catcher
    first."""
    failed: dict[str, set[str]] = {}
    for item_id, validator in store.query(
        f"SELECT DISTINCT r.item_id, r.validator FROM {results} r SEMI JOIN current_reviews c "
        "USING (item_id, template_version, input_hash) WHERE r.status <> 'ok' AND r.validator <> 'human_review'"
    ):
        failed.setdefault(item_id, set()).add(validator)
    validators = sorted({v for item_id in combined for v in failed.get(item_id, ())})
    return sorted(
        (
            CheckRates(
                v,
                Proportion.of(sum(v in failed.get(i, ()) for i in faulty), len(faulty)),
                Proportion.of(sum(v in failed.get(i, ()) for i in correct), len(correct)),
            )
            for v in validators
        ),
        key=lambda c: (-(c.faulty_failed.share or 0), c.validator),
    )
