"""Retiring studies and images a rebuild's input no longer has (issue 17: "Deleted reports stay in the dataset"),
through the CLI as a user runs it: build 6 reports and 2 images, rebuild with 5 reports and 1 image (a warning),
then with --prune (retired: rows with the run and reason, items no longer current, nothing deleted), the change
log and the audit; then the input complete again (restored).

Inputs: two demo DICOMs (study1, study2) with a manifest of their own, the two demo reports of those studies and
four short reports written here (synthetic text, nobody's data).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import _demo_inputs, app
from cxrvqa.store import Store

pytestmark = pytest.mark.flow
runner = CliRunner(env={"COLUMNS": "400"})

EXTRA = {
    f"ret-s{i}": text
    for i, text in enumerate(
        (
            "FINDINGS: Small left pleural effusion. No pneumothorax. Heart size is normal. IMPRESSION: Left effusion.",
            "FINDINGS: Right lower lobe consolidation. No pleural effusion. IMPRESSION: Right lower lobe pneumonia.",
            "FINDINGS: Mild cardiomegaly. The lungs are clear. IMPRESSION: Mild cardiomegaly.",
            "FINDINGS: Large right pneumothorax. Heart size is normal. IMPRESSION: Right pneumothorax.",
        ),
        start=3,
    )
}
GONE_STUDY = "ret-s6"
GONE_IMAGE = "study2/IMG0001"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _write_reports(path: Path, leave_out: str | None = None) -> Path:
    demo = [json.loads(line) for line in Path(_demo_inputs()["reports"]).read_text().splitlines()]
    records = [r for r in demo if r["study_id"] in ("demo-s1", "demo-s2")]
    records += [{"study_id": s, "patient_id": s.replace("-s", "-p"), "text": t} for s, t in EXTRA.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records if r["study_id"] != leave_out))
    return path


def _query(out: Path, sql: str, params: list | None = None) -> list[tuple]:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return store.query(sql, params)


def test_a_rebuild_with_prune_retires_the_studies_and_images_its_input_lacks(tmp_path: Path) -> None:
    demo = Path(_demo_inputs()["images_dir"])
    images = tmp_path / "images"
    for study in ("study1", "study2"):
        shutil.copytree(demo / study, images / study)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"study_id,patient_id,image_path\ndemo-s1,demo-p1,study1/chest_pa.dcm\ndemo-s2,demo-p2,{GONE_IMAGE}\n"
    )
    out = tmp_path / "out"

    def build(reports: Path, *flags: str):
        result = runner.invoke(
            app,
            [
                "build",
                "--images",
                str(images),
                "--manifest",
                str(manifest),
                "--reports",
                str(reports),
                "--report-format",
                "jsonl",
                "--out",
                str(out),
                *flags,
            ],
        )
        assert result.exit_code == 0, result.output
        return result

    build(_write_reports(tmp_path / "six.jsonl"))
    studies = "SELECT study_id, count(*) FROM current_qa_items GROUP BY 1 ORDER BY 1"
    before = dict(_query(out, studies))
    gone_image_id = _query(out, "SELECT image_id FROM current_images WHERE source_path = ?", [GONE_IMAGE])[0][0]
    image_items = _query(out, "SELECT count(*) FROM current_qa_items WHERE image_id = ?", [gone_image_id])[0][0]
    assert len(before) == 6 and before[GONE_STUDY] > 0 and image_items > 0

    # the input lost a report and an image: without --prune their items stay current, and the build says so
    (images / GONE_IMAGE).unlink()
    five = _write_reports(tmp_path / "five.jsonl", leave_out=GONE_STUDY)
    warned = _flat(build(five).output)
    assert (
        f"1 study of the current dataset ({GONE_STUDY}) has no report in --reports {five}: their items stay "
        "current; rebuild with --prune to retire them"
    ) in warned
    assert f"1 image of the current dataset ({GONE_IMAGE}) has no file in --images {images}" in warned
    assert dict(_query(out, studies)) == before and _query(out, "SELECT count(*) FROM retirements") == [(0,)]

    build(five, "--prune")
    kept_run, pruned_run = [r for (r,) in _query(out, "SELECT run_id FROM runs ORDER BY started_at")][-2:]
    assert _query(out, "SELECT kind, key, action, reason, detail, run_id FROM retirements ORDER BY kind DESC") == [
        ("study", GONE_STUDY, "retired", "absent_from_input", f"absent from --reports {five}", pruned_run),
        ("image", gone_image_id, "retired", "absent_from_input", f"absent from --images {images}", pruned_run),
    ]
    after = dict(_query(out, studies))
    assert GONE_STUDY not in after and set(after) == set(before) - {GONE_STUDY}
    assert _query(out, "SELECT count(*) FROM current_qa_items WHERE image_id = ?", [gone_image_id]) == [(0,)]
    # nothing deleted: the report and the items stay as history
    assert _query(out, "SELECT count(*) FROM reports WHERE study_id = ?", [GONE_STUDY]) == [(1,)]
    assert (
        _query(out, "SELECT count(DISTINCT item_id) FROM qa_items WHERE study_id = ?", [GONE_STUDY])[0][0]
        >= before[GONE_STUDY]
    )

    changes = json.loads(runner.invoke(app, ["diff", kept_run, pruned_run, "--out", str(out), "--json"]).output)
    removed = {row["cause"]: row["n"] for row in changes["items"] if row["kind"] == "removed"}
    assert removed["study retired"] == before[GONE_STUDY] and removed["image retired"] == image_items
    assert changes["studies"]["retired"] == 1 and changes["studies"]["gone"] == 0

    audit = json.loads(runner.invoke(app, ["audit", "--out", str(out), "--json"]).output)
    assert audit["retired_total"] == 2
    assert [(r["kind"], r["name"], r["reason"], r["items"]) for r in audit["retired"]] == [
        ("study", GONE_STUDY, "absent_from_input", before[GONE_STUDY]),
        ("image", GONE_IMAGE, "absent_from_input", image_items),
    ]
    assert (
        audit["changes"]["run_a"] == kept_run
        and {"kind": "removed", "cause": "study retired", "n": before[GONE_STUDY]} in audit["changes"]["items"]
    )
    terminal = _flat(runner.invoke(app, ["audit", "--out", str(out)]).output)
    assert f"Retired by run {pruned_run}: 2" in terminal
    assert f"│ study │ {GONE_STUDY} │ absent_from_input │ {before[GONE_STUDY]} │" in terminal
    assert f"Changes {kept_run} -> {pruned_run}" in terminal
    page = tmp_path / "audit.html"
    assert runner.invoke(app, ["audit", "--out", str(out), "--html", str(page)]).exit_code == 0
    html = page.read_text()
    assert '<section id="retired">' in html and f"<td>{GONE_IMAGE}</td>" in html
    assert '<section id="changes">' in html and "<td>study retired</td>" in html

    # the input complete again: both come back; an item of another study changes only in a question whose share
    # the restore moved out of its tolerance (stable balancing keeps the thresholds the retirement left while
    # their shares stay within it: six studies' questions are small, so a few are balanced again)
    shutil.copytree(demo / "study2", images / "study2", dirs_exist_ok=True)
    keys = (
        "SELECT item_id, study_id, template_id, CASE WHEN options IS NULL THEN arguments "
        "ELSE list_sort(options)::VARCHAR END FROM current_qa_items"
    )
    pruned = set(_query(out, keys))
    restored = _flat(build(_write_reports(tmp_path / "six-again.jsonl"), "--prune").output)
    assert "restored 1 study back in" in restored and "restored 1 image back in" in restored
    image_study = _query(out, "SELECT study_id FROM current_images WHERE image_id = ?", [gone_image_id])[0][0]
    again = dict(_query(out, studies))
    assert set(again) == set(before) and again[GONE_STUDY] > 0
    rebalanced = set(
        _query(
            out,
            "SELECT template_id, arguments FROM current_qa_question_balance "
            "WHERE basis = 'rebalanced' UNION SELECT template_id, options::VARCHAR "
            "FROM current_qa_choice_balance WHERE basis = 'rebalanced'",
        )
    )
    elsewhere = {row for row in pruned ^ set(_query(out, keys)) if row[1] not in (GONE_STUDY, image_study)}
    assert elsewhere and {row[2:] for row in elsewhere} <= rebalanced
    assert _query(out, "SELECT count(*) FROM current_retirements") == [(0,)]


def test_prune_refuses_a_limited_input(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "build",
            "--reports",
            str(_write_reports(tmp_path / "r.jsonl")),
            "--report-format",
            "jsonl",
            "--out",
            str(tmp_path / "out"),
            "--limit",
            "2",
            "--prune",
        ],
    )
    assert result.exit_code == 2
    assert "--prune retires what the input lacks, and --limit reads a part of the input" in _flat(result.output)


def test_the_warning_names_a_few_and_counts_all() -> None:
    from cxrvqa.store.retire import Absence

    assert Absence("study", 5, 0, 0, ("s1", "s2", "s3")).message("--reports r.csv") == (
        "5 studies of the current dataset (s1, s2, s3, ...) have no report in --reports r.csv: their items stay "
        "current; rebuild with --prune to retire them"
    )
    assert Absence("image", 2, 0, 0, ("a.dcm", "b.dcm")).message("--images d") == (
        "2 images of the current dataset (a.dcm, b.dcm) have no file in --images d: their items stay current; "
        "rebuild with --prune to retire them"
    )
    assert Absence("study", 5, 5, 0, ("s1",)).message("--reports r.csv") is None  # retired: no warning
    assert Absence("study", 0, 0, 2).message("--reports r.csv") is None
