"""Dataset-level checks, reported per run: what no single item shows.

- positive_share: each yes/no template's achieved 'yes' share is within POSITIVE_TOLERANCE of its target
  (or 3 binomial standard deviations, for templates with few items);
- mcq_letters: the correct letters of multiple-choice items are uniform, per number of options (each within
  3 binomial standard deviations of 1/number of options);
- answer_distribution: no template gives one answer to more than DOMINANT_SHARE of its items
  (a template that always says "no" teaches nothing), from MIN_ITEMS items up;
- question_prior: the question-only baseline (`qa_prior`, by question text, by template + arguments and, for
  multiple choice, reading the options) of a yes/no or multiple-choice template answers at most chance +
  `qa.prior_margin` of its held-out items (or 2 binomial standard deviations, for templates with few), from
  MIN_ITEMS held-out items up; the detail names the arguments (questions) the question alone answers best.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from cxrvqa.qa.generate import ALL_LETTERS
from cxrvqa.store import Store

POSITIVE_TOLERANCE, DOMINANT_SHARE, MIN_ITEMS = 0.05, 0.95, 20
#: Default of qa.prior_margin (config): how far above chance the question-only baseline may be.
PRIOR_MARGIN = 0.15


def checks_are_current(store: Store) -> bool:
    """Whether the latest checks were made after the current dataset was last selected (by the QA stage):
    they then hold for it, and a rebuild that changed nothing does not read every item again (7 s at 100k
    studies). The audit names the run its checks come from."""
    [(checked, selected)] = store.query(
        "SELECT (SELECT max(created_at) FROM dataset_checks), (SELECT max(created_at) FROM qa_current_source)"
    )
    return checked is not None and selected is not None and checked > selected


#: One check's (check, subject, value, expected, ok, detail).
Check = tuple[str, str, float | None, str, bool, str]


def dataset_checks(store: Store, run_id: str, prior_margin: float = PRIOR_MARGIN) -> list[dict[str, Any]]:
    """Compute, store (`dataset_checks`) and return the checks of the current dataset."""
    now = datetime.now(timezone.utc)
    checks = [
        *_positive_share(store),
        *_mcq_letters(store),
        *_answer_distribution(store),
        *_question_prior(store, prior_margin),
    ]
    rows = [
        {
            "run_id": run_id,
            "check": check,
            "subject": subject,
            "value": value,
            "expected": expected,
            "ok": ok,
            "detail": detail,
            "created_at": now,
        }
        for check, subject, value, expected, ok, detail in checks
    ]
    with store.transaction():
        store.insert("dataset_checks", rows)
    return rows


def _positive_share(store: Store) -> Iterator[Check]:
    """Each yes/no template's achieved 'yes' share against its target."""
    for template, target, achieved, kept_pos, kept_neg in store.query(
        "SELECT template_id, target_share, achieved_share, n_positive_kept, n_negative_kept "
        "FROM current_qa_balance WHERE n_positive_kept > 0 AND n_negative_kept > 0 ORDER BY template_id"
    ):
        # a few items cannot hit a share exactly: the tolerance widens to 3 binomial standard deviations
        tolerance = max(POSITIVE_TOLERANCE, 3 * math.sqrt(target * (1 - target) / (kept_pos + kept_neg)))
        yield (
            "positive_share",
            template,
            achieved,
            f"{target:.2f} +- {tolerance:.3f}",
            abs(achieved - target) <= tolerance,
            f"{kept_pos} yes / {kept_neg} no kept",
        )


def _mcq_letters(store: Store) -> Iterator[Check]:
    """The correct letter uniform among a question's options, per number of options."""
    by_options: dict[int, dict[str, int]] = defaultdict(dict)
    for n_options, letter, count in store.query(
        "SELECT len(options), correct_option, count(*) FROM current_qa_items "
        "WHERE correct_option IS NOT NULL GROUP BY ALL ORDER BY ALL"
    ):
        by_options[n_options][letter] = count
    for n_options, letters in by_options.items():
        n, share = sum(letters.values()), 1 / n_options
        tolerance = 3 * math.sqrt(share * (1 - share) / n)
        shares = {letter: letters.get(letter, 0) / n for letter in ALL_LETTERS[:n_options]}
        worst = max(shares, key=lambda letter: abs(shares[letter] - share))
        yield (
            "mcq_letters",
            f"{n_options} options",
            shares[worst],
            f"{share:.2f} +- {tolerance:.3f}",
            abs(shares[worst] - share) <= tolerance,
            ", ".join(f"{letter} {letters.get(letter, 0)}" for letter in ALL_LETTERS[:n_options]) + f" of {n}",
        )


def _answer_distribution(store: Store) -> Iterator[Check]:
    """Each template's most frequent answer, from MIN_ITEMS items up."""
    for template, answer, count, total in store.query(
        "WITH counts AS (SELECT template_id, answer, count(*) AS n FROM current_qa_items GROUP BY ALL) "
        "SELECT template_id, answer, n, sum(n) OVER (PARTITION BY template_id) AS total FROM counts "
        "QUALIFY row_number() OVER (PARTITION BY template_id ORDER BY n DESC, answer) = 1 ORDER BY template_id"
    ):
        if total < MIN_ITEMS:
            continue
        share = count / total
        yield (
            "answer_distribution",
            template,
            share,
            f"top answer <= {DOMINANT_SHARE}",
            share <= DOMINANT_SHARE,
            f"{answer!r} is {count} of {total} answers",
        )


def _question_prior(store: Store, prior_margin: float) -> Iterator[Check]:
    """Each template's best question-only baseline against chance, from MIN_ITEMS held-out items up."""
    for template, key, n, accuracy, chance, worst in store.query(
        "SELECT template_id, key, n_items, accuracy, chance, worst FROM current_qa_prior "
        "WHERE template_id IS NOT NULL AND chance IS NOT NULL "
        "AND n_items >= ? QUALIFY row_number() OVER (PARTITION BY template_id ORDER BY accuracy DESC, key) = 1 "
        "ORDER BY template_id",
        [MIN_ITEMS],
    ):
        tolerance = max(prior_margin, 2 * math.sqrt(chance * (1 - chance) / n))
        questions = "; ".join(f"{args} {acc:.2f} of {k}" for args, k, acc in json.loads(worst))
        yield (
            "question_prior",
            template,
            accuracy,
            f"<= {chance:.2f} + {tolerance:.3f}",
            accuracy <= chance + tolerance,
            f"the question alone ({key}) answers {accuracy:.2f} of {n} held-out items; best answered: {questions}",
        )
