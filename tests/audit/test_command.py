"""`cxrvqa audit` on the two-run build: terminal tables, one JSON document matching the database, errors."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import Store
from tests.audit.conftest import Build

pytestmark = pytest.mark.flow
runner = CliRunner(env={"COLUMNS": "250"})  # rich wraps at the terminal width


def test_json_is_one_document_that_matches_the_database(audit_build: Build) -> None:
    result = runner.invoke(app, ["audit", "--out", str(audit_build.out), "--json", "--compare", audit_build.run1])
    assert result.exit_code == 0, result.output
    audit = json.loads(result.stdout)
    assert list(audit) == [
        "as_of_run",
        "latest_run",
        "filters",
        "stages",
        "reasons",
        "templates",
        "validators",
        "grades",
        "grade_criteria",
        "disagreements",
        "dataset_checks_run",
        "dataset_checks",
        "failing_items",
        "examples",
        "rejects",
        "notes",
        "compare",
        "review",
        "prior",
        "too_few",
        "choices_dropped",
        "retired",
        "retired_total",
        "changes",
        "changes_from",
    ]
    assert audit["review"] is None  # no item of this build is reviewed (tests/review)
    with Store(audit_build.db, read_only=True) as store:
        items = store.query("SELECT count(*) FROM current_qa_items")[0][0]
        failing = store.query("SELECT count(DISTINCT item_id) FROM current_validation_results WHERE status <> 'ok'")
        reasons = dict(
            ((v, r), n)
            for v, r, n in store.query(
                "SELECT validator, reason, count(*) FROM current_validation_results WHERE status <> 'ok' GROUP BY ALL"
            )
        )
        grades = dict(store.query("SELECT label, count(*) FROM current_qa_grades GROUP BY 1"))
    assert next(s["kept"] for s in audit["stages"] if s["stage"] == "qa") == items
    assert audit["failing_items"] == failing[0][0] and len(audit["examples"]) == 10
    assert {(r["validator"], r["reason"]): r["n"] for r in audit["reasons"] if r["stage"] == "validate"} == reasons
    assert {g["label"]: g["n"] for g in audit["grades"] if g["n"]} == grades
    assert audit["compare"]["baseline"]["run_id"] == audit_build.run1
    assert {"key": "validate/answer_program: answer_mismatch", "before": 0, "after": 2, "delta": 2} in audit["compare"][
        "reasons"
    ]


def test_terminal_tables_name_reasons_templates_and_examples(audit_build: Build) -> None:
    result = runner.invoke(app, ["audit", "--out", str(audit_build.out), "--compare", audit_build.run1, "--limit", "3"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # titles wrap at the table's width
    for expected in (
        "Counts per stage",
        "answer_mismatch",
        "side_not_in_evidence",
        "no_image",
        "unsupported_modality",
        "Validators",
        "Templates",
        "Grades",
        f"Compared with run {audit_build.run1}",
        "Failing items: 3 of",
        "On which side is the pneumothorax?",
        "answer: the answer program gives 'right', found 'left'",
        "Rules vs LLM: 1 of 1 studies with both backends disagree",
        "other/ct_slice.dcm",
    ):
        assert expected in text, expected
    # each failing item with its image's view (or "no image")
    assert re.search(r"study \S+ (\S+, (frontal|lateral)|no image) grade [A-D]", text)
    # report and header text is printed as text, never as rich markup
    filtered = runner.invoke(app, ["audit", "--out", str(audit_build.out), "--stage", "extract"])
    assert filtered.exit_code == 0 and '<svg onload="window.__xss=3"></svg>' in filtered.stdout
    assert "Validators" not in filtered.stdout and "no_image" not in filtered.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "nope"], "--run/--compare: no run 'nope' in this build"),
        (["--compare", "nope"], "--run/--compare: no run 'nope' in this build"),
        (["--stage", "audit"], "--stage: unknown stage 'audit'"),
        (["--validator", "nope"], "--validator: 'nope' is not in this build"),
    ],
)
def test_bad_options_are_clear_errors(audit_build: Build, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["audit", "--out", str(audit_build.out), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_no_build_is_a_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["audit", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no database at" in result.output


def test_choice_sets_an_option_never_answers_are_counted_with_examples(audit_build: Build, tmp_path) -> None:
    """Per multiple-choice template: its sets of options, those dropped because one option is never the true
    answer (the options alone would give it away), their candidates and the largest ones, in the terminal, the
    JSON and the HTML page."""
    with Store(audit_build.db, read_only=True) as store:
        rows = store.query("SELECT template_id, options, answer, n_items FROM current_qa_choice_balance")
    sets: dict[tuple[str, tuple[str, ...]], dict[str, int]] = {}
    for template, options, answer, n in rows:
        sets.setdefault((template, tuple(options)), {})[answer] = n
    expected = {}
    for (template, _), counts in sets.items():
        total = expected.setdefault(template, [0, 0, 0, 0])
        dropped = min(counts.values()) == 0
        total[0] += 1
        total[1] += dropped
        total[2] += sum(counts.values())
        total[3] += sum(counts.values()) if dropped else 0
    expected = {t: v for t, v in expected.items() if v[1]}
    assert expected, "the audit build has no dropped choice set: the test would prove nothing"
    result = runner.invoke(app, ["audit", "--out", str(audit_build.out), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["choices_dropped"]
    assert {
        c["template_id"]: [c["sets"], c["dropped"], c["candidates"], c["items_left_out"]] for c in found
    } == expected
    largest = max(
        ((t, o) for (t, o), c in sets.items() if min(c.values()) == 0),
        key=lambda key: (sum(sets[key].values()), -len(key[1])),
    )
    first = next(c for c in found if c["template_id"] == largest[0])["examples"].split("; ")[0]
    assert first.startswith(" | ".join(largest[1]) + " (")
    text = " ".join(runner.invoke(app, ["audit", "--out", str(audit_build.out)]).stdout.split())
    assert "sets of options one of which is never the true answer" in text and largest[0] in text
    page = tmp_path / "audit.html"
    assert runner.invoke(app, ["audit", "--out", str(audit_build.out), "--html", str(page)]).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert 'id="prior-choices-dropped"' in html or "prior-choices-dropped" in html
    assert all(template in html for template in expected)
