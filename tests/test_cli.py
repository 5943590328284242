"""The QA-facing commands of the CLI: templates list / lint / preview, import-boxes, --templates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import _demo_inputs, app
from cxrvqa.config import load_config
from cxrvqa.core.resources import resource
from cxrvqa.store import Store

pytestmark = pytest.mark.flow
runner = CliRunner(env={"COLUMNS": "400"})  # rich wraps at the terminal width


def _flat(text: str) -> str:
    return " ".join(text.split())


QUESTIONS = Path(str(resource("prompts", "questions")))


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo built once (all stages, demo boxes included)."""
    from flows.build import build_dataset

    out = tmp_path_factory.mktemp("demo")
    build_dataset(load_config(None, {**_demo_inputs(), "out_dir": out, "imaging": {"workers": 1}}))
    return out


def test_templates_list_shows_every_builtin() -> None:
    result = runner.invoke(app, ["templates", "list"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert "37 question templates" in result.output and len(rows) == 37
    assert any(r.split("│")[1].strip() == "finding_presence" for r in rows)


def test_templates_lint_passes_the_builtins_and_names_bad_files(tmp_path: Path) -> None:
    assert runner.invoke(app, ["templates", "lint"]).exit_code == 0
    bad = tmp_path / "bad_one.yaml"
    bad.write_text(
        (QUESTIONS / "finding_presence.yaml")
        .read_text()
        .replace("id: finding_presence", "id: bad_one")
        .replace("program: has_finding", "program: no_such_program")
    )
    good = tmp_path / "good_one.yaml"
    good.write_text((QUESTIONS / "finding_presence.yaml").read_text().replace("id: finding_presence", "id: good_one"))
    result = runner.invoke(app, ["templates", "lint", str(tmp_path)])
    assert result.exit_code == 1
    output = _flat(result.output)
    assert f"FAIL {bad} - program: expected one of [" in output and "found 'no_such_program' ok" in output
    assert f"ok {good}" in output and "2 file(s), 1 with problems" in output


def test_templates_preview_writes_nothing(demo_out: Path) -> None:
    before = _count(demo_out, "qa_items")
    result = runner.invoke(app, ["templates", "preview", "finding_box", "--out", str(demo_out), "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    # a finding's boxes in box-id order (ids hash the box file's content: the order is not the point here)
    assert {(i["study_id"], frozenset(i["answer"].split("; "))) for i in items} == {
        ("demo-s1", frozenset({"[38, 20, 100, 75]"})),
        ("demo-s3", frozenset({"[312, 325, 340, 353]", "[105, 175, 130, 200]"})),
        ("demo-s3", frozenset({"[325, 375, 425, 463]"})),
        ("demo-s4", frozenset({"[63, 213, 163, 300]"})),
    }
    assert _count(demo_out, "qa_items") == before
    unknown = runner.invoke(app, ["templates", "preview", "no_such", "--out", str(demo_out)])
    assert unknown.exit_code == 2 and "no template 'no_such'" in _flat(unknown.output)


def test_import_boxes_command_skips_what_it_imported(demo_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(demo_out, out)
    result = runner.invoke(app, ["import-boxes", "--out", str(out), str(resource("demo", "boxes.csv"))])
    assert result.exit_code == 0, result.output
    assert "11 rows, 0 imported, 9 already imported, 2 rejected (no_box 1, box_outside_image 1)" in _flat(result.output)
    bad_size = runner.invoke(
        app, ["import-boxes", "--out", str(out), "--reference-size", "big", str(resource("demo", "boxes.csv"))]
    )
    assert bad_size.exit_code == 2 and "expected COLSxROWS like 1024x1024, found 'big'" in _flat(bad_size.output)


def test_build_with_a_user_template_adds_only_its_items(demo_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(demo_out, out)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pleural_question.yaml").write_text(
        "id: pleural_question\nversion: 1\nquestion_type: is_there\nstrategy: finding\nanswer_format: yes_no\n"
        "program: has_finding\narguments: finding\ndraw: {findings: [pleural_effusion]}\n"
        "variants: ['Any fluid in the pleural space?']\n"
        "examples: [{report: 'Small left pleural effusion.', answer: 'yes'}]\n"
    )
    before = _count(out, "qa_items")
    result = runner.invoke(app, ["build", "--demo", "--out", str(out), "--templates", str(mine)])
    assert result.exit_code == 0, result.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        new = store.query(
            "SELECT study_id, answer FROM qa_items WHERE run_id = (SELECT max(run_id) FROM runs) ORDER BY study_id"
        )
        assert new == [
            ("900000000000000000000000000000000000001", "no"),
            ("demo-s1", "no"),
            ("demo-s2", "no"),
            ("demo-s3", "yes"),
            ("demo-s4", "no"),
            ("s50000005", "yes"),
            ("s50000005", "yes"),
        ]
        assert store.query("SELECT count(*) FROM qa_items")[0][0] == before + 7  # s50000005: PA and lateral
        stage = store.query(
            "SELECT n_input, n_skipped FROM run_stages WHERE stage = 'qa' AND run_id = (SELECT max(run_id) FROM runs)"
        )
        assert stage == [(6, 0)]


def test_the_demo_cards_measure_the_question_only_baseline(demo_out: Path, tmp_path: Path) -> None:
    """`make demo`'s two exports (every item as jsonl, grade B or better as parquet): under the default seed and
    split shares, two of the demo's patients are in val and test (src/cxrvqa/demo/README.md), so that both cards
    give the baseline (train -> val/test)."""
    with Store(demo_out / "cxrvqa.duckdb", read_only=True) as store:
        splits = dict(store.query("SELECT DISTINCT study_id, split FROM current_qa_items ORDER BY 1"))
    assert splits == {
        "demo-s1": "train",
        "demo-s2": "val",
        "demo-s3": "train",
        "demo-s4": "test",
        "s50000005": "train",
        "900000000000000000000000000000000000001": "train",
    }
    jsonl, folder = tmp_path / "qa.jsonl", tmp_path / "parquet"
    for args, card in (
        (["--format", "jsonl", "--dest", str(jsonl)], tmp_path / "qa.jsonl.card.md"),
        (["--format", "parquet", "--dest", str(folder), "--min-grade", "B"], folder / "README.md"),
    ):
        result = runner.invoke(app, ["export", "--out", str(demo_out), *args])
        assert result.exit_code == 0, result.output
        text = card.read_text(encoding="utf-8")
        assert "Not measurable" not in text and "| answer format | held-out items |" in text
        # the demo keeps two choice items, both in train (six studies balance one set of options): no held-out
        # choice item to score
        baseline = text.split("## Question-only baseline")[1].split("\n## ")[0]
        assert "\n| yes_no | " in baseline and "\n| multiple_choice | " not in baseline


def _count(out: Path, table: str) -> int:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return store.query(f"SELECT count(*) FROM {table}")[0][0]


def test_limit_counts_report_records(tmp_path: Path) -> None:
    """`--limit N` reads the first N report records (issue 17: it used to count input files only)."""
    reports = tmp_path / "reports.csv"
    reports.write_text(
        "study_id,patient_id,text\n"
        + "".join(f"s{i},p{i},FINDINGS: Small left pleural effusion. IMPRESSION: Effusion.\n" for i in range(5))
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--reports",
            str(reports),
            "--report-format",
            "csv",
            "--out",
            str(out),
            "--stages",
            "reports",
            "--limit",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _count(out, "reports") == 3


def test_a_build_without_images_is_graded_as_text_vqa(tmp_path: Path) -> None:
    """Issue 17: report-only items of a build without images are not all capped at C (no_image), so an export
    of grade B or better is not empty; the card says the dataset is text VQA."""
    reports = tmp_path / "reports.csv"
    reports.write_text(
        "study_id,patient_id,text\n"
        + "".join(
            f"s{i},p{i},FINDINGS: Small left pleural effusion. No pneumothorax. The lungs are otherwise clear. "
            f"Heart size is normal. IMPRESSION: Small left pleural effusion.\n"
            for i in range(6)
        )
    )
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["build", "--reports", str(reports), "--report-format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        reasons = store.query("SELECT count(*) FROM current_validation_results WHERE reason = 'no_image'")[0][0]
        best = store.query("SELECT max(grade) FROM current_qa_grades")[0][0]
    assert reasons == 0 and best >= 5
    dest = tmp_path / "export"
    result = runner.invoke(
        app, ["export", "--out", str(out), "--format", "parquet", "--dest", str(dest), "--min-grade", "B"]
    )
    assert result.exit_code == 0, result.output
    assert "text-VQA dataset" in (dest / "README.md").read_text()
    # the card beside a one-file export says so too
    jsonl = tmp_path / "items.jsonl"
    result = runner.invoke(app, ["export", "--out", str(out), "--format", "jsonl", "--dest", str(jsonl)])
    assert result.exit_code == 0, result.output
    assert "This is a text-VQA dataset (its build had no images)" in (tmp_path / "items.jsonl.card.md").read_text()


def test_diff_names_what_changed_between_two_runs_and_why(tmp_path: Path) -> None:
    """Issue 17: `cxrvqa diff RUN_A RUN_B` lists items added, removed and changed with their causes; an edit of one
    report changes items of that study by `input edit`."""
    reports = tmp_path / "reports.csv"
    lines = [
        f"s{i},p{i},FINDINGS: Small left pleural effusion. No pneumothorax. The lungs are clear. Heart size is "
        f"normal. IMPRESSION: Small left pleural effusion.\n"
        for i in range(6)
    ]
    reports.write_text("study_id,patient_id,text\n" + "".join(lines))
    out = tmp_path / "out"
    runner = CliRunner()
    build = ["build", "--reports", str(reports), "--report-format", "csv", "--out", str(out)]
    assert runner.invoke(app, build).exit_code == 0
    lines[2] = "s2,p2,FINDINGS: Large right pneumothorax. Heart size is normal. IMPRESSION: Right pneumothorax.\n"
    reports.write_text("study_id,patient_id,text\n" + "".join(lines))
    assert runner.invoke(app, build).exit_code == 0
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        first, second = [r[0] for r in store.query("SELECT run_id FROM runs ORDER BY started_at")][-2:]
    result = runner.invoke(app, ["diff", first, second, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    diff = json.loads(result.output)
    edit = sum(row["n"] for row in diff["items"] if row["cause"] == "input edit")
    assert edit > 0 and diff["studies"]["edited"] == 1
    assert all(e["study_id"] == "s2" for e in diff["examples"] if e["cause"] == "input edit")
    # same code and templates: what changed elsewhere is the balance's selection, named as such
    assert {row["cause"] for row in diff["items"]} <= {"input edit", "selection"}
    same = json.loads(runner.invoke(app, ["diff", second, second, "--out", str(out), "--json"]).output)
    assert same["items"] == [] and same["studies"]["edited"] == 0
    text = runner.invoke(app, ["diff", first, second, "--out", str(out)])
    assert text.exit_code == 0 and "input edit" in text.output
    unknown = runner.invoke(app, ["diff", "nope", second, "--out", str(out)])
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.output
