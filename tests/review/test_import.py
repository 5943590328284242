"""`cxrvqa review import`: every format gives the same rows, a verdict caps its item's grade (validator
`human_review`) through rebuilds while the item is unchanged and not after, and bad files import nothing."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import Store
from tests.review.conftest import items_of, rows, write_jsonl

pytestmark = pytest.mark.flow

#: (verdict, grammar, note) given to the first four test items, and what each must become:
#: (status, reason, cap grade, cap label, weakest).
REVIEWS = [
    ("correct", True, "is opacities"),
    ("wrong", False, "the report says left"),
    ("unsupported", False, ""),
    ("bad_question", False, "asks about an absent finding"),
]
EXPECTED = [
    ("warn", "review_grammar", 3, "B", "review:grammar"),
    ("reject", "review_wrong", 1, "D", "review:wrong"),
    ("reject", "review_unsupported", 1, "D", "review:unsupported"),
    ("warn", "review_bad_question", 2, "C", "review:bad_question"),
]


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["review", "import", *args])


# -- the formats -------------------------------------------------------------------------------------------------
def page_file(path: Path, items: list[dict], reviews: list[tuple], reviewer: str = "ana") -> Path:
    path.write_text(
        json.dumps(
            {
                "format": "cxrvqa-review-verdicts",
                "version": 1,
                "reviewer": reviewer,
                "saved_at": "2026-01-02T03:04:05Z",
                "sample": {"seed": 1},
                "verdicts": [
                    {
                        "item_id": i["item_id"],
                        "item_version": i["item_version"],
                        "verdict": v,
                        "grammar": g,
                        "note": n,
                        "reviewed_at": "2026-01-02T03:00:00.000Z",
                    }
                    for i, (v, g, n) in zip(items, reviews)
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def label_studio_file(path: Path, items: list[dict], reviews: list[tuple], reviewer: str = "ana") -> Path:
    """Label Studio's JSON export of tasks made by `review sample`: one annotation per task, plus a task nobody
    annotated and a cancelled annotation (neither is a verdict)."""
    tasks = []
    for number, (item, (verdict, grammar, note)) in enumerate(zip(items, reviews), start=1):
        result = [
            {
                "id": "a1",
                "from_name": "verdict",
                "to_name": "question",
                "type": "choices",
                "value": {"choices": [verdict]},
            }
        ]
        if grammar:
            result.append(
                {
                    "id": "a2",
                    "from_name": "grammar",
                    "to_name": "question",
                    "type": "choices",
                    "value": {"choices": ["grammar error"]},
                }
            )
        if note:
            result.append(
                {"id": "a3", "from_name": "note", "to_name": "question", "type": "textarea", "value": {"text": [note]}}
            )
        tasks.append(
            {
                "id": 100 + number,
                "data": {"item_id": item["item_id"], "item_version": item["item_version"], "question": "..."},
                "annotations": [
                    {
                        "id": 900 + number,
                        "completed_by": {"id": 7, "email": reviewer},
                        "result": result,
                        "was_cancelled": False,
                        "created_at": "2026-01-02T03:00:00.000000Z",
                        "updated_at": "2026-01-02T03:10:00.000000Z",
                    },
                    {
                        "id": 950 + number,
                        "completed_by": 8,
                        "was_cancelled": True,
                        "result": [{"from_name": "verdict", "value": {"choices": ["wrong"]}}],
                    },
                ],
            }
        )
    tasks.append({"id": 999, "data": {"item_id": items[-1]["item_id"]}, "annotations": []})
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def argilla_file(
    path: Path, items: list[dict], reviews: list[tuple], reviewer: str = "ana", flat: bool = False
) -> Path:
    """Argilla records as `records.to_json()` (nested) or `to_list(flatten=True)` writes them."""
    records = []
    for item, (verdict, grammar, note) in zip(items, reviews):
        answers = {"verdict": verdict, "grammar": "error" if grammar else "ok", "note": note}
        if flat:
            record: dict[str, Any] = {"id": item["item_id"], "item_version": item["item_version"], "question": "..."}
            for question, value in answers.items():
                record[f"{question}.responses"] = [value]
                record[f"{question}.responses.users"] = [reviewer]
                record[f"{question}.responses.status"] = ["submitted"]
        else:
            record = {
                "id": item["item_id"],
                "fields": {"question": "..."},
                "metadata": {"item_version": item["item_version"]},
                "suggestions": {},
                "vectors": {},
                "responses": {q: [{"value": v, "user_id": reviewer}] for q, v in answers.items()},
                "_server_id": "5f1e",
            }
        records.append(record)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def jsonl_file(path: Path, items: list[dict], reviews: list[tuple], reviewer: str = "ana") -> Path:
    return write_jsonl(
        path,
        [
            {"item_id": i["item_id"], "verdict": v, "grammar": g, "note": n, "reviewer": reviewer}
            for i, (v, g, n) in zip(items, reviews)
        ],
    )


WRITERS = {
    "html": page_file,
    "label-studio": label_studio_file,
    "argilla": argilla_file,
    "argilla-flat": lambda p, i, r: argilla_file(p, i, r, flat=True),
    "jsonl": jsonl_file,
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_gives_the_same_verdicts_and_caps(build: Path, tmp_path: Path, fmt: str) -> None:
    items = items_of(build, 5)
    path = WRITERS[fmt](tmp_path / f"verdicts-{fmt}.json", items[:4], REVIEWS)
    result = run(str(path), "--out", str(build))
    assert result.exit_code == 0, result.output
    expected_format = fmt.replace("-flat", "")
    assert f"({expected_format}): 4 verdicts read, 4 imported" in " ".join(result.output.split())
    stored = rows(build, "SELECT * FROM review_verdicts ORDER BY item_id")
    by_item = {r["item_id"]: r for r in stored}
    assert len(stored) == 4
    for item, (verdict, grammar, note), (status, reason, grade, label, weakest) in zip(items, REVIEWS, EXPECTED):
        row = by_item[item["item_id"]]
        assert (row["verdict"], row["grammar"], row["note"], row["reviewer"]) == (verdict, grammar, note, "ana")
        assert (row["status"], row["reason"], row["grade"], row["label"], row["weakest"]) == (
            status,
            reason,
            grade,
            label,
            weakest,
        )
        assert (row["item_version"], row["template_version"], row["input_hash"]) == (
            item["item_version"],
            item["template_version"],
            item["input_hash"],
        )
        assert row["source"].startswith(path.name)
    # the grade of each reviewed item is capped; review_free_grade keeps what the checks gave
    grades = {
        r["item_id"]: r
        for r in rows(build, "SELECT * FROM current_qa_grades WHERE item_id IN (SELECT item_id FROM review_verdicts)")
    }
    for item, (_, _, grade, label, weakest) in zip(items, EXPECTED):
        row = grades[item["item_id"]]
        assert (row["grade"], row["label"], row["weakest"]) == (grade, label, weakest)
        assert (row["review_free_grade"], row["review_free_weakest"]) == (item["grade"], item["weakest"])
    untouched = rows(build, "SELECT grade, weakest FROM current_qa_grades WHERE item_id = ?", [items[4]["item_id"]])
    assert untouched == [{"grade": items[4]["grade"], "weakest": items[4]["weakest"]}]
    # and each is a `human_review` validator result
    results = {
        r["item_id"]: r
        for r in rows(build, "SELECT * FROM current_validation_results WHERE validator = 'human_review'")
    }
    assert set(results) == {i["item_id"] for i in items[:4]}
    for item, (verdict, _, note), (status, reason, _, _, _) in zip(items, REVIEWS, EXPECTED):
        row = results[item["item_id"]]
        assert (row["status"], row["reason"], row["strictness"]) == (status, reason, status)
        assert row["detail"].startswith(f"ana: {verdict}")
    if fmt in ("html", "label-studio"):
        assert {r["reviewed_at"].astimezone(timezone.utc).minute for r in stored} == {0 if fmt == "html" else 10}


def test_a_correct_verdict_passes_and_reviewers_combine_to_the_lowest_cap(build: Path, tmp_path: Path) -> None:
    items = items_of(build, 2)
    first = jsonl_file(tmp_path / "a.jsonl", items, [("correct", False, ""), ("wrong", False, "")], reviewer="ana")
    second = jsonl_file(
        tmp_path / "b.jsonl", items, [("bad_question", False, ""), ("correct", False, "")], reviewer="ben"
    )
    assert run(str(first), "--out", str(build)).exit_code == 0
    ok = rows(
        build,
        "SELECT status, reason, detail FROM current_validation_results WHERE validator = 'human_review' "
        "AND item_id = ?",
        [items[0]["item_id"]],
    )
    assert ok == [{"status": "ok", "reason": None, "detail": "ana: correct"}]
    assert rows(build, "SELECT grade FROM current_qa_grades WHERE item_id = ?", [items[0]["item_id"]]) == [
        {"grade": items[0]["grade"]}
    ]
    assert run(str(second), "--out", str(build)).exit_code == 0
    grades = {
        r["item_id"]: (r["label"], r["weakest"])
        for r in rows(
            build,
            "SELECT item_id, label, weakest FROM current_qa_grades WHERE item_id IN (?, ?)",
            [items[0]["item_id"], items[1]["item_id"]],
        )
    }
    assert grades == {items[0]["item_id"]: ("C", "review:bad_question"), items[1]["item_id"]: ("D", "review:wrong")}
    results = rows(
        build,
        "SELECT item_id, status, reason, detail FROM current_validation_results "
        "WHERE validator = 'human_review' ORDER BY item_id",
    )
    assert [(r["status"], r["reason"], r["detail"]) for r in results] == [
        ("warn", "review_bad_question", "ana: correct; ben: bad_question"),
        ("reject", "review_wrong", "ana: wrong; ben: correct"),
    ]
    # a reviewer's later verdict replaces their earlier one
    again = jsonl_file(tmp_path / "c.jsonl", items[1:], [("correct", False, "I misread it")], reviewer="ana")
    assert run(str(again), "--out", str(build)).exit_code == 0
    assert rows(build, "SELECT label, weakest FROM current_qa_grades WHERE item_id = ?", [items[1]["item_id"]]) == [
        {"label": items[1]["label"], "weakest": items[1]["weakest"]}
    ]
    assert rows(build, "SELECT count(*) AS n FROM review_verdicts") == [{"n": 5}]  # history is kept


def test_reviewer_option_overrides_the_file_and_duplicates_keep_the_last(build: Path, tmp_path: Path) -> None:
    item = items_of(build, 1)[0]
    path = write_jsonl(
        tmp_path / "v.jsonl",
        [{"item_id": item["item_id"], "verdict": "wrong"}, {"item_id": item["item_id"], "verdict": "Bad Question"}],
    )
    result = run(str(path), "--out", str(build), "--reviewer", "dr who")
    assert result.exit_code == 0, result.output
    assert "1 replaced by a later verdict of the same reviewer" in " ".join(result.output.split())
    assert rows(build, "SELECT reviewer, verdict, source FROM review_verdicts") == [
        {"reviewer": "dr who", "verdict": "bad_question", "source": "v.jsonl line 2"}
    ]
    run_row = rows(build, "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1")
    assert run_row == [{"status": "completed"}]


# -- through rebuilds -------------------------------------------------------------------------------------------
def _grade(build: Path, item_id: str) -> dict:
    return rows(
        build,
        "SELECT label, weakest, review_free_grade, template_version FROM current_qa_grades WHERE item_id = ?",
        [item_id],
    )[0]


def test_the_cap_survives_a_revalidation(build: Path, tmp_path: Path) -> None:
    """A rebuild that validates every item again (here: a changed strictness) keeps the verdict's cap."""
    from cxrvqa.cli import _demo_inputs
    from cxrvqa.config import load_config
    from flows.build import build_dataset

    item = items_of(build, 1)[0]
    assert (
        run(str(jsonl_file(tmp_path / "v.jsonl", [item], [("wrong", False, "")])), "--out", str(build)).exit_code == 0
    )
    before = rows(build, "SELECT count(*) AS n FROM qa_grades")[0]["n"]
    build_dataset(
        load_config(
            None, {**_demo_inputs(), "out_dir": build, "imaging": {"workers": 1}, "strictness": {"answer_leak": "warn"}}
        )
    )
    assert rows(build, "SELECT count(*) AS n FROM qa_grades")[0]["n"] > before  # every item graded again
    assert _grade(build, item["item_id"])["label"] == "D"
    assert _grade(build, item["item_id"])["weakest"] == "review:wrong"
    assert rows(build, "SELECT reason FROM current_validation_results WHERE validator = 'human_review'") == [
        {"reason": "review_wrong"}
    ]


def test_the_verdict_follows_the_item_while_its_content_is_unchanged_and_is_lost_when_it_changes(
    build: Path, tmp_path: Path
) -> None:
    from cxrvqa.review.accuracy import review_accuracy

    item = items_of(build, 1)[0]
    key = [item["item_id"], item["template_version"], item["input_hash"]]
    assert (
        run(str(jsonl_file(tmp_path / "v.jsonl", [item], [("wrong", False, "")])), "--out", str(build)).exit_code == 0
    )
    with Store(build / "cxrvqa.duckdb") as store:
        # regenerated with the same content under a new template version (an unrelated code change): still capped
        store.con.execute(
            "INSERT INTO qa_items SELECT * REPLACE ('v2' AS template_version) FROM qa_items "
            "WHERE item_id = ? AND template_version = ? AND input_hash = ?",
            key,
        )
        store.con.execute(
            "INSERT INTO qa_answer_parts SELECT * REPLACE ('v2' AS template_version) "
            "FROM qa_answer_parts WHERE item_id = ? AND template_version = ? AND input_hash = ?",
            key,
        )
        store.con.execute(
            "INSERT INTO qa_grades SELECT * REPLACE ('v2' AS template_version, now() AS created_at) "
            "FROM qa_grades WHERE item_id = ? AND template_version = ? AND input_hash = ?",
            key,
        )
        store.con.execute("UPDATE qa_current SET template_version = 'v2' WHERE item_id = ?", [item["item_id"]])
    grade = _grade(build, item["item_id"])
    assert (grade["label"], grade["weakest"], grade["template_version"]) == ("D", "review:wrong", "v2")
    with Store(build / "cxrvqa.duckdb") as store:
        # the answer changes: the verdict no longer applies, and the audit counts it as one to review again
        store.con.execute(
            "UPDATE qa_items SET answer = answer || ' (changed)' WHERE item_id = ? AND template_version = 'v2'",
            [item["item_id"]],
        )
        assert review_accuracy(store) is None
        assert store.query("SELECT count(*) FROM review_verdicts")[0][0] == 1
        stale = store.query(
            "SELECT count(*) FROM (SELECT DISTINCT item_id, reviewer FROM review_verdicts) "
            "ANTI JOIN current_review_verdicts USING (item_id, reviewer)"
        )[0][0]
    assert stale == 1
    grade = _grade(build, item["item_id"])
    assert (grade["label"], grade["weakest"]) == (item["label"], item["weakest"])
    assert rows(build, "SELECT count(*) AS n FROM current_validation_results WHERE validator = 'human_review'") == [
        {"n": 0}
    ]


def test_a_report_change_also_drops_the_verdict(build: Path, tmp_path: Path) -> None:
    item = items_of(build, 1)[0]
    assert (
        run(str(jsonl_file(tmp_path / "v.jsonl", [item], [("unsupported", False, "")])), "--out", str(build)).exit_code
        == 0
    )
    assert _grade(build, item["item_id"])["label"] == "D"
    with Store(build / "cxrvqa.duckdb") as store:
        store.con.execute(
            "UPDATE reports SET text = text || ' Addendum: no change.' WHERE study_id = ?", [item["study_id"]]
        )
    assert _grade(build, item["item_id"])["label"] == item["label"]


# -- stale and bad files ------------------------------------------------------------------------------------------
def test_verdicts_on_changed_items_are_listed_not_imported(build: Path, tmp_path: Path) -> None:
    items = items_of(build, 3)
    lines = [
        {"item_id": items[0]["item_id"], "item_version": "0" * 32, "verdict": "wrong"},
        {
            "item_id": items[1]["item_id"],
            "verdict": "wrong",
            "provenance": {"template_version": "old", "input_hash": items[1]["input_hash"]},
        },
        {"item_id": items[2]["item_id"], "item_version": items[2]["item_version"], "verdict": "wrong"},
    ]
    result = run(str(write_jsonl(tmp_path / "v.jsonl", lines)), "--out", str(build), "--reviewer", "ana")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "3 verdicts read, 1 imported" in output and "2 verdict(s) not imported" in output
    assert (
        f"line 1: {items[0]['item_id']} changed since it was sampled (version 000000000000, now "
        f"{items[0]['item_version'][:12]})" in output
    )
    assert f"line 2: {items[1]['item_id']} regenerated since it was exported" in output
    assert rows(build, "SELECT item_id FROM review_verdicts") == [{"item_id": items[2]["item_id"]}]


BAD_FILES = {
    "a bad verdict": (
        '{"item_id": "%(id)s", "verdict": "correct"}\n{"item_id": "%(id)s", "verdict": "wrog"}\n',
        "line 2: expected a verdict, one of correct, wrong, unsupported, bad_question; found 'wrog'",
    ),
    "invalid JSON": (
        '{"item_id": "%(id)s", "verdict": "correct"}\n{"item_id": \n',
        "line 2: expected a JSON object; found invalid JSON",
    ),
    "no item id": ('{"verdict": "correct"}\n', "line 1: expected item_id as text; found null"),
    "a bad grammar value": (
        '{"item_id": "%(id)s", "verdict": "wrong", "grammar": "maybe"}\n',
        "line 1: expected grammar true or false (or yes/no, error/ok); found 'maybe'",
    ),
    "an unknown item": (
        '{"item_id": "%(id)s", "verdict": "correct"}\n{"item_id": "qa-nope", "verdict": "wrong"}\n',
        "line 2: expected an item id of this build; found 'qa-nope' (is the file from another build?)",
    ),
    "no verdicts": ("\n", "the file: expected at least one verdict; found none"),
    "a Label Studio annotation without a verdict": (
        '[{"id": 4, "data": {"item_id": "%(id)s"}, "annotations": [{"id": 12, "result": '
        '[{"from_name": "note", "value": {"text": ["x"]}}]}]}]',
        "task 1 (id 4), annotation 12: expected a `verdict` choice in the result",
    ),
    "a page file of another format": (
        '{"format": "other", "verdicts": []}',
        "the file: expected format 'cxrvqa-review-verdicts'; found 'other'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_imports_nothing_and_says_where_and_what(build: Path, tmp_path: Path, case: str) -> None:
    item = items_of(build, 1)[0]
    text, message = BAD_FILES[case]
    path = tmp_path / "bad.json"
    path.write_text(text % {"id": item["item_id"]}, encoding="utf-8")
    runs = rows(build, "SELECT count(*) AS n FROM runs")
    result = run(str(path), "--out", str(build), "--reviewer", "ana")
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert message in output and "Nothing was imported" in output, output
    assert output.startswith(f"error: {path}: expected review verdicts")
    assert rows(build, "SELECT count(*) AS n FROM review_verdicts") == [{"n": 0}]
    assert rows(build, "SELECT count(*) AS n FROM runs") == runs


def test_a_file_without_reviewer_needs_the_option(build: Path, tmp_path: Path) -> None:
    item = items_of(build, 1)[0]
    path = write_jsonl(tmp_path / "v.jsonl", [{"item_id": item["item_id"], "verdict": "correct"}])
    result = run(str(path), "--out", str(build))
    assert result.exit_code == 2
    assert "line 1: expected a reviewer; found none in the file: give --reviewer NAME" in " ".join(
        result.output.split()
    )
    assert run(str(path), "--out", str(build), "--reviewer", "ana").exit_code == 0


def test_a_failed_write_leaves_nothing(build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows go in one transaction: an error while writing leaves no verdict and a failed run."""
    from cxrvqa.review import importer

    items = items_of(build, 3)
    path = jsonl_file(tmp_path / "v.jsonl", items, [("wrong", False, "")] * 3)
    real_insert = Store.insert

    def failing_insert(self: Store, table: str, rows_: Any) -> int:
        real_insert(self, table, rows_)
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer.Store, "insert", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        CliRunner().invoke(app, ["review", "import", str(path), "--out", str(build)], catch_exceptions=False)
    monkeypatch.undo()
    assert rows(build, "SELECT count(*) AS n FROM review_verdicts") == [{"n": 0}]
    assert rows(build, "SELECT status, error FROM runs ORDER BY started_at DESC LIMIT 1") == [
        {"status": "failed", "error": "RuntimeError: disk full"}
    ]


def test_times_and_reviewers_from_the_file(build: Path, tmp_path: Path) -> None:
    item = items_of(build, 1)[0]
    path = label_studio_file(tmp_path / "ls.json", [item], [("correct", False, "")], reviewer="rad@example.org")
    assert run(str(path), "--out", str(build)).exit_code == 0
    row = rows(build, "SELECT reviewer, reviewed_at FROM review_verdicts")[0]
    assert row["reviewer"] == "rad@example.org"
    assert row["reviewed_at"] == datetime(2026, 1, 2, 3, 10, tzinfo=timezone.utc)


def test_every_problem_of_a_file_is_named_at_once(build: Path, tmp_path: Path) -> None:
    item = items_of(build, 1)[0]
    path = write_jsonl(
        tmp_path / "v.jsonl",
        [
            {"item_id": item["item_id"], "verdict": "correct"},
            {"item_id": item["item_id"], "verdict": "wrog"},
            {"item_id": "qa-elsewhere", "verdict": "wrong", "grammar": 2},
        ],
    )
    result = run(str(path), "--out", str(build))
    output = " ".join(result.output.split())
    assert result.exit_code == 2
    assert output == (
        f"error: {path}: expected review verdicts (jsonl), found 4 problem(s): line 2: expected a verdict, one of "
        "correct, wrong, unsupported, bad_question; found 'wrog'; line 3: expected grammar true or false (or yes/no, "
        "error/ok); found 2; line 1, line 3: expected a reviewer; found none in the file: give --reviewer NAME; "
        "line 3: expected an item id of this build; found 'qa-elsewhere' (is the file from another build?). "
        "Nothing was imported"
    )


def test_times_with_and_without_a_zone(build: Path, tmp_path: Path) -> None:
    items = items_of(build, 2)
    path = write_jsonl(
        tmp_path / "v.jsonl",
        [
            {"item_id": items[0]["item_id"], "verdict": "correct", "reviewed_at": "2026-03-04T05:06:07"},
            {"item_id": items[1]["item_id"], "verdict": "correct", "reviewed_at": "2026-03-04T05:06:07+02:00"},
        ],
    )
    assert run(str(path), "--out", str(build), "--reviewer", "ana").exit_code == 0
    times = [
        r["reviewed_at"].astimezone(timezone.utc)
        for r in rows(build, "SELECT reviewed_at FROM review_verdicts ORDER BY source")
    ]
    assert times == [
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc),  # no zone: read as UTC
        datetime(2026, 3, 4, 3, 6, 7, tzinfo=timezone.utc),
    ]
