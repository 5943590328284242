"""What the reviews measure (accuracy, the checks' recall and false demotion, per template and per validator),
and where it shows: the audit (terminal, JSON, HTML) and the dataset card. Also the grading rules of a verdict
and the Wilson interval they are reported with."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cxrvqa.audit.html import render_page, review_section
from cxrvqa.audit.summary import AuditFilters, audit
from cxrvqa.audit.terminal import render
from cxrvqa.cli import app
from cxrvqa.core.grading import demoted_by_checks, review_result, review_verdicts
from cxrvqa.core.stats import Proportion, wilson
from cxrvqa.export.card import dataset_card
from cxrvqa.export.items import select
from cxrvqa.review.accuracy import review_accuracy
from cxrvqa.store import Store
from tests.review.conftest import items_of, write_jsonl


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(1, 2)
    assert (round(low, 4), round(high, 4)) == (0.0945, 0.9055)
    low, high = wilson(10, 10)
    assert (round(low, 4), round(high, 4)) == (0.7225, 1.0)
    low, high = wilson(212, 300)
    assert (round(low, 4), round(high, 4)) == (0.6528, 0.7553)  # the roots of (p - 212/300)² = z²p(1-p)/300
    assert Proportion.of(1, 2).text() == "50.0% [9.5%, 90.5%] (1/2)"
    assert Proportion.of(0, 0).text() == "n/a (0 items)"


def test_what_a_verdict_counts_as() -> None:
    assert review_verdicts() == ("correct", "wrong", "unsupported", "bad_question")
    outcomes = {
        (v, g): (r.status, r.reason, r.grade, r.weakest)
        for v in review_verdicts()
        for g in (False, True)
        for r in [review_result(v, g)]
    }
    assert outcomes == {
        ("correct", False): ("ok", None, None, None),
        ("correct", True): ("warn", "review_grammar", 3, "review:grammar"),
        ("wrong", False): ("reject", "review_wrong", 1, "review:wrong"),
        ("wrong", True): ("reject", "review_wrong", 1, "review:wrong"),
        ("unsupported", False): ("reject", "review_unsupported", 1, "review:unsupported"),
        ("unsupported", True): ("reject", "review_unsupported", 1, "review:unsupported"),
        ("bad_question", False): ("warn", "review_bad_question", 2, "review:bad_question"),
        ("bad_question", True): ("warn", "review_bad_question", 2, "review:bad_question"),
    }


@pytest.mark.parametrize(
    "weakest, demoted",
    [
        ("reject:answer_mismatch", True),
        ("warn:laterality_mismatch", True),
        ("judge:entailment=contradicted", True),
        ("reason:no_image", False),
        ("warn:no_image", False),
        ("warn:missing_image", False),
        ("quality:deid_only", False),
        ("no_evidence", False),
        ("closed_world_negative", False),
        ("", False),
    ],
)
def test_which_grades_count_as_the_checks_demoting(weakest: str, demoted: bool) -> None:
    assert demoted_by_checks(weakest) is demoted


#: (verdict, grammar, reviewer, what the checks said before the review: (grade, weakest, failed validator) or None)
SCENARIO = [
    ("correct", False, "ana", None),
    ("correct", True, "ana", None),
    ("correct", False, "ben", (3, "warn:laterality_mismatch", ("laterality_support", "warn"))),
    ("wrong", False, "ana", (1, "reject:answer_mismatch", ("answer_program", "reject"))),
    ("unsupported", False, "ben", (2, "reason:no_image", ("image", "warn"))),
    ("bad_question", False, "ana", None),
]


def _reviewed_build(build: Path, tmp_path: Path) -> list[dict]:
    """Six items reviewed as in SCENARIO; the checks' verdicts planted as the validation stage writes them."""
    items = items_of(build, 6)
    now = datetime.now(timezone.utc)
    with Store(build / "cxrvqa.duckdb") as store:
        for item, (_, _, _, checks) in zip(items, SCENARIO):
            if checks is None:
                continue
            grade, weakest, (validator, status) = checks
            key = [item["item_id"], item["template_version"], item["input_hash"]]
            # later rows of the same keys, written as the stages write (Store.insert keeps the `latest` marker)
            store.insert(
                "qa_grades",
                store.con.sql(
                    "SELECT * REPLACE (? AS grade, ? AS weakest, ? AS created_at) "
                    "FROM qa_grades WHERE item_id = ? AND template_version = ? AND input_hash = ?",
                    params=[grade, weakest, now, *key],
                ).to_arrow_table(),
            )
            # a validation of the item: its done row, and a row for the check it failed (written with it)
            store.insert(
                "validation_done",
                store.con.sql(
                    "SELECT * EXCLUDE (latest) REPLACE (? AS status, ? AS created_at) FROM validation_done "
                    "WHERE item_id = ? AND template_version = ? AND input_hash = ? AND latest",
                    params=[status, now, *key],
                ).to_arrow_table(),
            )
            store.insert(
                "validation_results",
                store.con.sql(
                    "SELECT d.item_id, d.template_version, d.input_hash, k.validator, k.validator_version, "
                    "k.strictness, ? AS status, ? AS reason, '' AS detail, d.validators_version, d.run_id, "
                    "d.created_at FROM validation_done d JOIN (SELECT DISTINCT validators_version, validator, "
                    "validator_version, strictness FROM validation_checks) k USING (validators_version) "
                    "WHERE d.item_id = ? AND d.template_version = ? AND d.input_hash = ? AND d.latest "
                    "AND k.validator = ?",
                    params=[status, weakest.split(":")[1], *key, validator],
                ).to_arrow_table(),
            )
    for reviewer in ("ana", "ben"):
        lines = [
            {"item_id": i["item_id"], "verdict": v, "grammar": g, "note": "", "reviewer": r}
            for i, (v, g, r, _) in zip(items, SCENARIO)
            if r == reviewer
        ]
        path = write_jsonl(tmp_path / f"{reviewer}.jsonl", lines)
        result = CliRunner().invoke(app, ["review", "import", str(path), "--out", str(build)])
        assert result.exit_code == 0, result.output
    return items


@pytest.mark.flow
def test_accuracy_recall_and_false_demotion(build: Path, tmp_path: Path) -> None:
    items = _reviewed_build(build, tmp_path)
    with Store(build / "cxrvqa.duckdb", read_only=True) as store:
        review = review_accuracy(store)
        only_a = review_accuracy(store, min_grade=(4, "A"))
    assert review is not None
    assert (review.reviewed_items, review.reviewers) == (6, ["ana", "ben"])
    assert review.verdicts == {"correct": 3, "wrong": 1, "unsupported": 1, "bad_question": 1}
    assert (review.accuracy.k, review.accuracy.n) == (3, 6)
    assert (review.grammar_errors.k, review.grammar_errors.n) == (1, 6)
    # faulty: wrong (demoted by answer_program), unsupported (only its form: report-only), bad question (nothing)
    assert (review.recall.k, review.recall.n) == (1, 3)
    # correct: one demoted by laterality_support
    assert (review.false_demotion.k, review.false_demotion.n) == (1, 3)
    checks = {
        c.validator: ((c.faulty_failed.k, c.faulty_failed.n), (c.correct_failed.k, c.correct_failed.n))
        for c in review.per_check
    }
    assert checks == {
        "answer_program": ((1, 3), (0, 3)),
        "image": ((1, 3), (0, 3)),
        "laterality_support": ((0, 3), (1, 3)),
    }
    per_template: dict[str, list[str]] = {}
    for item, (verdict, _, _, _) in zip(items, SCENARIO):
        per_template.setdefault(item["template_id"], []).append(verdict)
    assert {t.template_id: (t.accuracy.k, t.accuracy.n) for t in review.per_template} == {
        t: (v.count("correct"), len(v)) for t, v in per_template.items()
    }
    assert review.stale_verdicts == 0
    # the card's selection: items graded A or better before review (the two demoted ones and the C one are not)
    assert only_a is not None and (only_a.accuracy.k, only_a.accuracy.n, only_a.min_grade) == (2, 3, "A")


@pytest.mark.flow
def test_the_audit_and_the_card_show_it(build: Path, tmp_path: Path) -> None:
    items = _reviewed_build(build, tmp_path)
    with Store(build / "cxrvqa.duckdb", read_only=True) as store:
        summary = audit(store)
        by_template = audit(store, AuditFilters(template=items[0]["template_id"]))
        hidden = audit(store, AuditFilters(stage="images"))
        card = dataset_card(store, tmp_path, {}, select(store, "A"), "parquet")
        human_review = audit(store, AuditFilters(validator="human_review"))
    review = summary.review
    assert review is not None and review == review_accuracy_of(build)
    assert hidden.review is None
    assert by_template.review is not None and by_template.review.reviewed_items == sum(
        i["template_id"] == items[0]["template_id"] for i in items
    )
    assert {v.validator: (v.items, v.warned, v.rejected) for v in human_review.validators} == {
        "human_review": (6, 2, 2)
    }  # grammar and bad question warn; wrong and unsupported reject
    accuracy = summary.as_dict()["review"]["accuracy"]
    assert (accuracy["k"], accuracy["n"], accuracy["share"], round(accuracy["low"], 4), round(accuracy["high"], 4)) == (
        3,
        6,
        0.5,
        0.1876,
        0.8124,
    )
    # terminal
    out = io.StringIO()
    render(summary, Console(file=out, width=200), "build")
    text = " ".join(out.getvalue().split())
    assert "Human review: 6 items reviewed by 2 reviewer(s) (correct 3, wrong 1, unsupported 1, bad_question 1)" in text
    assert "│ accuracy (correct) │ 50.0% │ 18.8%-81.2% │ 3/6 │" in text
    assert "│ recall (faulty, demoted) │ 33.3% │ 6.1%-79.2% │ 1/3 │" in text
    assert "│ laterality_support │ 0.0% [0.0%, 56.1%] (0/3) │ 33.3% [6.1%, 79.2%] (1/3) │" in text
    # HTML
    page = render_page(summary, {"images": {}, "reports": {}, "gallery": []}, "build")
    assert '<section id="review-accuracy">' in page
    assert '<td data-key="accuracy" data-field="share">50.0%</td>' in page
    assert '<td data-key="false_demotion" data-field="items">1/3</td>' in page
    section = page.split('<section id="review-accuracy">')[1].split("</section>")[0]
    assert section.count('<g class="bar"') == section.count('class="interval"') == len(review.per_template)
    # dataset card
    assert "## Measured accuracy" in card
    assert "| accuracy (judged correct) | 50.0% [18.8%, 81.2%] (3/6) |" in card
    assert "| checks' recall: faulty items the validators demoted | 33.3% [6.1%, 79.2%] (1/3) |" in card
    assert (
        "| accuracy of the reviewed items graded A or better before their review (an estimate for this "
        "selection's unreviewed items) | 66.7% [20.8%, 93.9%] (2/3) |" in card
    )


def review_accuracy_of(build: Path):
    with Store(build / "cxrvqa.duckdb", read_only=True) as store:
        return review_accuracy(store)


def test_review_section_escapes_template_names() -> None:
    from cxrvqa.review.accuracy import CheckRates, ReviewAccuracy, TemplateAccuracy

    review = ReviewAccuracy(
        2,
        ["<b>x</b>"],
        {"correct": 1, "wrong": 1},
        Proportion.of(1, 2),
        Proportion.of(0, 2),
        [TemplateAccuracy("<script>t</script>", Proportion.of(1, 2), {"correct": 1, "wrong": 1})],
        Proportion.of(0, 1),
        Proportion.of(0, 1),
        [CheckRates("<img src=x>", Proportion.of(0, 1), Proportion.of(0, 1))],
        3,
    )
    html = review_section(review)
    assert "<script>t" not in html and "&lt;script&gt;t&lt;/script&gt;" in html
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html
    assert "3 verdict(s) no longer apply" in html
    assert 'class="interval"' in html  # the Wilson whisker on the template's bar
