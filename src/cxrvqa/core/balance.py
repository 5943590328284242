"""Item-hash balancing shared by the QA stage (the build's balance, the evaluation profile's thresholds) and the
export (the evaluation profile over the items a grade filter keeps).

A question's items are kept per answer below an item-hash threshold (`sample_u`), the previous thresholds kept
while what they keep stays within a tolerance of the target shares, so an edit to a few studies flips no item of
other questions (`balance_questions`, counted in DuckDB). `eval_thresholds` applies it per split and question of
the current items: every answer as often as the rarest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

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


@dataclass(frozen=True)
class QuestionBalance:
    kept: tuple[int, ...]  # per answer (yes, no; each option): candidates below the threshold
    thresholds: tuple[float, ...]  # per answer: its candidates with sample_u below it are kept
    basis: str  # new | kept | rebalanced (BASES)


#: Where a question's thresholds (a template's keep rates) come from: no earlier balance of it; the previous
#: balance's, their share within the tolerance; computed again, the previous ones having left it.
BASES = ("new", "kept", "rebalanced")


#: A question's (yes/no: template and arguments; multiple choice: template and set of options) quota and target shares
#: per answer, from its key and its candidates per answer.
Quota = Callable[[tuple[str, ...], tuple[int, ...]], tuple[tuple[int, ...], tuple[float, ...]]]


def even_quota(key: tuple[str, ...], counts: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Every answer as often as the rarest (even shares): nothing when one never comes."""
    least = min(counts)
    return tuple(least for _ in counts), tuple(1 / len(counts) for _ in counts)


def settled(
    kept: tuple[int, ...],
    quota: tuple[int, ...],
    shares: tuple[float, ...],
    tolerance: float,
    previous: tuple[float, ...] | None,
) -> QuestionBalance | None:
    """A question's balance where its candidates' counts decide it: the previous thresholds while what they keep
    (``kept``) is `within_tolerance` of the quota (so an edit to other studies flips none of this question's items),
    nothing for a quota of zeros; None when new thresholds must keep the quota."""
    none = tuple(0.0 for _ in quota)
    if previous is not None and (
        within_tolerance(kept, quota, shares, tolerance) or (not any(quota) and previous == none)
    ):
        return QuestionBalance(kept, previous, "kept")
    if not any(quota):
        return QuestionBalance(tuple(0 for _ in quota), none, "new" if previous is None else "rebalanced")
    return None


@dataclass(frozen=True)
class Balanced:
    key: tuple[str, ...]  # the question's key columns
    options: tuple[str, ...]  # its answers, in order
    counts: tuple[int, ...]  # its candidates per answer
    result: QuestionBalance


def balance_questions(
    store: Store,
    items: str,
    keys: tuple[str, ...],
    previous: dict[tuple[str, ...], dict[str, float]],
    quota: Quota,
    tolerance: float,
    params: Sequence[Any] = (),
) -> list[Balanced]:
    """Balance each question of ``items`` (a relation with the VARCHAR ``keys``, `options`: the question's
    answers in order, `answer` and `sample_u`), per answer the candidates below a threshold: the ``previous``
    thresholds (per key and answer, 0.0 for an answer without one) while `settled`, else those keeping the quota,
    the candidates with the lowest sample_u. Counted in DuckDB, and only the questions balanced anew read their
    candidates' sample_u (sorted there): a rebuild that changed a few questions costs one aggregate."""
    decided, wanted = [], []
    for key, options, counts, kept in _counted(store, items, keys, previous, params):
        before = previous.get(key)
        thresholds = None if before is None else tuple(before.get(o, 0.0) for o in options)
        need, shares = quota(key, counts)
        result = settled(kept, need, shares, tolerance, thresholds)
        decided.append((key, options, counts, result, "new" if thresholds is None else "rebalanced"))
        if result is None:  # an answer keeping k of n candidates or more keeps all: threshold 1.0 (sample_u < 1)
            wanted.extend((*key, o, k) for o, k, n in zip(options, need, counts, strict=True) if k < n)
    found = _thresholds(store, items, keys, wanted, params) if wanted else {}
    out = []
    for key, options, counts, result, basis in decided:
        if result is None:
            pairs = [found.get((*key, option), (1.0, n)) for option, n in zip(options, counts, strict=True)]
            result = QuestionBalance(tuple(k for _, k in pairs), tuple(t for t, _ in pairs), basis)
        out.append(Balanced(key, options, counts, result))
    return out


def _counted(
    store: Store, items: str, keys: tuple[str, ...], previous: dict[tuple[str, ...], dict[str, float]], params
) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...], tuple[int, ...]]]:
    """Per question (in key order): its key, answers, candidates and those below the previous thresholds, per
    answer."""
    stored = _table(
        (*keys, "answer", "threshold"),
        [(*key, answer, t) for key, by_answer in previous.items() for answer, t in by_answer.items()],
        (*(pa.string() for _ in keys), pa.string(), pa.float64()),
    )
    joined = " AND ".join(f"p.{k} = i.{k}" for k in (*keys, "answer"))
    columns = ", ".join(keys)
    with store.registered("_previous", stored):
        rows = store.query(
            f"SELECT {columns}, any_value(options), list(answer), list(n), list(kept) FROM ("
            f"SELECT {', '.join(f'i.{k}' for k in keys)}, i.answer, any_value(i.options) AS options, count(*) AS n, "
            f"count(*) FILTER (i.sample_u < p.threshold) AS kept FROM ({items}) i LEFT JOIN _previous p ON {joined} "
            f"GROUP BY ALL) GROUP BY {columns} ORDER BY {columns}",
            list(params),
        )
    out = []
    for *key, options, answered, ns, kept in rows:
        n, below = dict(zip(answered, ns, strict=True)), dict(zip(answered, kept, strict=True))
        options = tuple(options)
        out.append((tuple(key), options, tuple(n.get(o, 0) for o in options), tuple(below.get(o, 0) for o in options)))
    return out


def _thresholds(
    store: Store, items: str, keys: tuple[str, ...], wanted: list[tuple], params
) -> dict[tuple[str, ...], tuple[float, int]]:
    """Per (key, answer) of ``wanted`` (with the k < n of its candidates to keep): the threshold below which exactly
    its k lowest sample_u lie, the (k + 1)-th lowest, and how many lie below it (fewer than k on ties)."""
    names = (*keys, "answer", "k")
    with store.registered("_wanted", _table(names, wanted, (*(pa.string() for _ in names[:-1]), pa.int64()))):
        rows = store.query(
            f"SELECT {', '.join(names[:-1])}, u[k + 1], list_position(u, u[k + 1]) - 1 FROM ("
            f"SELECT {', '.join(f'i.{c}' for c in names[:-1])}, w.k, list_sort(list(i.sample_u)) AS u "
            f"FROM ({items}) i JOIN _wanted w USING ({', '.join(names[:-1])}) GROUP BY ALL)",
            list(params),
        )
    return {tuple(row[:-2]): (row[-2], row[-1]) for row in rows}


def _table(names: tuple[str, ...], rows: list[tuple], types: tuple[pa.DataType, ...]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table([pa.array(c, t) for c, t in zip(columns, types, strict=True)], names=list(names))


def eval_thresholds(
    store: Store, tolerance: float, min_grade: int | None = None, templates: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The thresholds of the evaluation profile (`export --balance per-question`): per split, template and question
    of the current items (yes/no: template and arguments; multiple choice: template and set of options; a choice
    between two findings the question names: template and pair, the answer its present finding's id), every
    answer kept as often as the rarest (even shares), the items with the lowest sample_u, i.e. those below a
    threshold per answer; a question keeps the stored thresholds (`current_qa_eval_balance`) while its kept
    answers stay within ``tolerance`` of an even split (or each within one item of its quota), so an edit to a
    few studies flips no item of other questions. ``min_grade``: over the items graded at least that code only
    (`current_qa_grades`), so that a grade filter keeps a balanced profile. ``templates``: the only ones whose
    current items changed since the stored thresholds (the others' questions are settled from the stored counts,
    `stored_questions`); their items are read at their versions in `current_qa_templates`, those of the current
    selection (`cxrvqa.qa.stage.select_current` calls this after storing it). One row per answer (a choice set's
    option that is never the answer: a row with no items, and the set keeps nothing)."""
    stored = store.query(
        "SELECT template_id, template_version, split, question, answer, threshold, n_items, n_kept "
        "FROM current_qa_eval_balance"
    )
    previous: dict[tuple, dict[str, float]] = defaultdict(dict)
    for *key, answer, threshold, _, _ in stored:
        previous[tuple(key)][answer] = threshold
    kept = (
        None
        if templates is None
        else stored_questions([r for r in stored if r[0] not in templates], even_quota, tolerance)
    )
    # every current item has its keys: only a grade filter needs the items (a self-join of the whole dataset
    # otherwise; 100k studies under the 512MB cap: 8.8 -> 5.9 s, the same rows)
    graded = (
        ""
        if min_grade is None
        else " JOIN (SELECT i.item_id FROM current_qa_items i JOIN current_qa_grades g "
        "USING (item_id, template_version, input_hash) WHERE g.grade >= ?) i USING (item_id)"
    )
    items = (
        "SELECT k.template_id, k.template_version, k.split, k.question, k.options, k.answer, k.sample_u "
        f"FROM current_qa_eval_keys k{graded} WHERE k.question IS NOT NULL"
        + ("" if kept is None else " AND list_contains(?, k.template_id) AND list_contains(?, k.template_version)")
    )
    keys = ("template_id", "template_version", "split", "question")
    params = ([] if min_grade is None else [min_grade]) + ([] if kept is None else _with_versions(store, templates))
    # counted, then read again for the questions balanced anew: one join of the current items and keys, not two
    # (100k synthetic studies under the 512MB cap, no stored thresholds: 11.7 -> 2.5 s; where the stored ones settle
    # every question it is read once, and the copy costs ~2 s more than reading it)
    with store.temporary("_eval_items", items, params) as table:
        questions = balance_questions(store, f"SELECT * FROM {table}", keys, previous, even_quota, tolerance)
    questions += kept or []
    return [
        {
            **dict(zip(keys, q.key, strict=True)),
            "answer": option,
            "n_items": n,
            "n_kept": k,
            "threshold": threshold,
            "basis": q.result.basis,
        }
        for q in questions
        for option, n, k, threshold in zip(q.options, q.counts, q.result.kept, q.result.thresholds, strict=True)
    ]


def _with_versions(store: Store, templates: Sequence[str]) -> list[list[str]]:
    """The template ids and their current versions (`current_qa_templates`: those of the current items). The version
    is a key of the items' join with `qa_current`, whose hash table then holds these templates' keys only (100k
    synthetic studies, the largest template's items: 3.5 -> 1.2-1.5 s)."""
    versions = store.query(
        "SELECT template_version FROM current_qa_templates WHERE list_contains(?, template_id)", [list(templates)]
    )
    return [list(templates), [version for (version,) in versions]]


def stored_questions(stored: Iterable[tuple], quota: Quota, tolerance: float) -> list[Balanced] | None:
    """Stored questions whose candidates are as when stored, balanced again without reading them: a row per answer,
    (*key, answer, threshold, candidates, kept), in the order of the question's answers. Their thresholds keep what
    is stored, so `settled` decides each as `balance_questions` would over the candidates; None when one is not
    settled (the tolerance or the quota changed) or has no stored threshold, which the candidates must decide."""
    answers: dict[tuple, list[tuple]] = defaultdict(list)
    for *key, answer, threshold, n, kept in stored:
        if threshold is None:
            return None
        answers[tuple(key)].append((answer, threshold, n, kept))
    out = []
    for key, rows in answers.items():
        options, thresholds, counts, kept = (tuple(column) for column in zip(*rows, strict=True))
        result = settled(kept, *quota(key, counts), tolerance, thresholds)
        if result is None:
            return None
        out.append(Balanced(key, options, counts, result))
    return out
