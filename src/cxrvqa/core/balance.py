"""Item-hash balancing shared by the QA stage (the build's balance, the evaluation profile's thresholds) and the
export (the evaluation profile over the items a grade filter keeps).

A question's items are kept per answer below an item-hash threshold (`sample_u`), the previous thresholds kept
while what they keep stays within a tolerance of the target shares, so an edit to a few studies flips no item of
other questions (`balance_answers`). `eval_thresholds` applies it per split and question of the current items:
every answer as often as the rarest.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cxrvqa.store import Store


def within_tolerance(kept: Sequence[int], quota: Sequence[int], shares: Sequence[float], tolerance: float) -> bool:
    """Whether the items kept per answer (yes and no; each option of a choice) still balance a question or
    template: every answer kept, and each answer's share within ``tolerance`` of its target or each within one
    item of its quota (a small question's share jumps with every item)."""
    if not all(kept):
        return False
    total = sum(kept)
    return all(abs(k / total - share) <= tolerance for k, share in zip(kept, shares, strict=True)) or all(
        abs(k - q) <= 1 for k, q in zip(kept, quota, strict=True)
    )


def _threshold(sorted_u: Sequence[float], k: int) -> float:
    """The item-hash bound below which exactly the ``k`` lowest of ``sorted_u`` lie (1.0: all, 0.0: none)."""
    return 1.0 if k >= len(sorted_u) else sorted_u[k]


@dataclass(frozen=True)
class QuestionBalance:
    kept: tuple[int, ...]  # per answer (yes, no; each option): candidates below the threshold
    thresholds: tuple[float, ...]  # per answer: its candidates with sample_u below it are kept
    basis: str  # new | kept | rebalanced (BASES)


#: Where a question's thresholds (a template's keep rates) come from: no earlier balance of it; the previous
#: balance's, their share within the tolerance; computed again, the previous ones having left it.
BASES = ("new", "kept", "rebalanced")


def balance_answers(
    answers: Sequence[Sequence[float]],
    quota: Sequence[int],
    shares: Sequence[float],
    tolerance: float,
    previous: Sequence[float] | None,
) -> QuestionBalance:
    """One question's thresholds from the sorted sample_u of its candidates per answer: the previous balance's
    while what they keep is `within_tolerance` of the quota (so an edit to other studies flips none of this
    question's items), else those keeping the quota (per answer, the candidates with the lowest sample_u; a
    quota of zeros keeps nothing). Pure."""
    none = tuple(0.0 for _ in answers)
    if previous is not None:
        previous = tuple(previous)
        kept = tuple(bisect_left(u, t) for u, t in zip(answers, previous, strict=True))
        if within_tolerance(kept, quota, shares, tolerance) or (not any(quota) and previous == none):
            return QuestionBalance(kept, previous, "kept")
    basis = "new" if previous is None else "rebalanced"
    if not any(quota):
        return QuestionBalance(tuple(0 for _ in answers), none, basis)
    thresholds = tuple(_threshold(u, k) for u, k in zip(answers, quota, strict=True))
    return QuestionBalance(
        tuple(bisect_left(u, t) for u, t in zip(answers, thresholds, strict=True)), thresholds, basis
    )


def eval_thresholds(store: Store, tolerance: float, min_grade: int | None = None) -> list[dict[str, Any]]:
    """The thresholds of the evaluation profile (`export --balance per-question`): per split, template and question
    of the current items (yes/no: template and arguments; multiple choice: template and set of options; a choice
    between two findings the question names: template and pair, the answer its present finding's id), every
    answer kept as often as the rarest (even shares), the items with the lowest sample_u, i.e. those below a
    threshold per answer; a question keeps the stored thresholds (`current_qa_eval_balance`) while its kept
    answers stay within ``tolerance`` of an even split (or each within one item of its quota), so an edit to a
    few studies flips no item of other questions. ``min_grade``: over the items graded at least that code only
    (`current_qa_grades`), so that a grade filter keeps a balanced profile. One row per answer (a choice set's
    option that is never the answer: a row with no items, and the set keeps nothing)."""
    previous: dict[tuple, dict[str, float]] = defaultdict(dict)
    for t, v, split, question, answer, threshold in store.query(
        "SELECT template_id, template_version, split, question, answer, threshold FROM current_qa_eval_balance"
    ):
        previous[(t, v, split, question)][answer] = threshold
    # every current item has its keys: only a grade filter needs the items (a self-join of the whole dataset
    # otherwise; 100k studies under the 512MB cap: 8.8 -> 5.9 s, the same rows)
    graded = (
        ""
        if min_grade is None
        else " JOIN (SELECT i.item_id FROM current_qa_items i JOIN current_qa_grades g "
        "USING (item_id, template_version, input_hash) WHERE g.grade >= ?) i USING (item_id)"
    )
    rows = []
    for template_id, version, split, question, options, answered, u_lists in store.query(
        "SELECT template_id, template_version, split, question, any_value(options), "
        "list(answer ORDER BY answer), list(u ORDER BY answer) FROM ("
        "SELECT k.template_id, k.template_version, k.split, k.question, k.answer, any_value(k.options) AS options, "
        f"list(k.sample_u ORDER BY k.sample_u) AS u FROM current_qa_eval_keys k{graded} WHERE k.question IS NOT NULL "
        "GROUP BY ALL) GROUP BY ALL ORDER BY ALL",
        [] if min_grade is None else [min_grade],
    ):
        by_answer = dict(zip(answered, u_lists, strict=True))
        answers = [by_answer.get(option, []) for option in options]
        least = min(len(u) for u in answers)
        before = previous.get((template_id, version, split, question))
        result = balance_answers(
            answers,
            tuple(least for _ in answers),
            tuple(1 / len(answers) for _ in answers),
            tolerance,
            None if before is None else [before.get(o, 0.0) for o in options],
        )
        rows += [
            {
                "template_id": template_id,
                "template_version": version,
                "split": split,
                "question": question,
                "answer": option,
                "n_items": len(u),
                "n_kept": kept,
                "threshold": threshold,
                "basis": result.basis,
            }
            for option, u, kept, threshold in zip(options, answers, result.kept, result.thresholds, strict=True)
        ]
    return rows
