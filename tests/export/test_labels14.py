"""labels14 export: the mapping (ancestors, uncertain policy, normal) and the exact file layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.config import Config
from cxrvqa.export.labels14 import LABELS14, label_of, study_labels
from cxrvqa.extraction.evaluation import score_labels14
from tests.extraction.test_stage import run_extract
from tests.reports.test_stage import run_stage as run_report_stage
from tests.reports.test_stage import write_jsonl

runner = CliRunner()
HEADER = ["filename", *LABELS14, "normal"]


def test_a_finding_takes_the_code_of_its_nearest_coded_ancestor() -> None:
    assert label_of("pleural_effusion") == "Effusion"
    assert label_of("cardiomegaly") == "Cardiomegaly"
    assert label_of(None) is None
    assert label_of("scoliosis") is None  # no ChestX-ray14 label for the spine


def test_uncertain_policy_and_normal() -> None:
    hedged = [("pneumonia", "lung", "uncertain", "possible"), ("pneumothorax", "pleura", "absent", None)]
    negative = study_labels(hedged)
    assert negative["Pneumonia"] == 0 and negative["normal"] == 0  # hedged abnormality: not a normal study
    assert study_labels(hedged, uncertain="positive")["Pneumonia"] == 1
    assert study_labels([("pneumothorax", "pleura", "absent", None)]) == {**dict.fromkeys(LABELS14, 0), "normal": 1}
    devices_only = study_labels([("pacemaker", "device", "present", None)])
    assert devices_only["normal"] == 1 and sum(devices_only[c] for c in LABELS14) == 0


def test_labellers_code_probable_differential_and_borderline_readings_as_positive() -> None:
    for certainty in ("probable", "differential", "borderline"):
        labels = study_labels([("cardiomegaly", "cardiovascular", "uncertain", certainty)])
        assert labels["Cardiomegaly"] == 1 and labels["normal"] == 0, certainty
    assert study_labels([("cardiomegaly", "cardiovascular", "uncertain", "possible")])["Cardiomegaly"] == 0


@pytest.fixture
def built(tmp_path: Path) -> Path:
    reports = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"study_id": "1", "patient_id": "p1", "text": "FINDINGS: Small left pleural effusion. Mild cardiomegaly."},
            {"study_id": "2", "patient_id": "p2", "text": "FINDINGS: Lungs are clear. No pneumothorax."},
            {"study_id": "3", "patient_id": "p3", "text": "IMPRESSION: Pneumonia cannot be excluded."},
        ],
    )
    config = Config(out_dir=tmp_path / "out", reports=reports, report_format="jsonl", extraction={"workers": 1})
    run_report_stage(config)
    run_extract(config)
    return config.out_dir


def read(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_cli_export_writes_the_gold_layout_and_eval_scores_it(built: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pred.csv"
    result = runner.invoke(app, ["export", "--out", str(built), "--format", "labels14", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    rows = read(dest)
    zeros = ["0"] * len(LABELS14)
    effusion_cardio = ["1" if c in ("Effusion", "Cardiomegaly") else "0" for c in LABELS14]
    assert rows == [HEADER, ["CXR1", *effusion_cardio, "0"], ["CXR2", *zeros, "1"], ["CXR3", *zeros, "0"]]
    positive = tmp_path / "pos.csv"
    runner.invoke(
        app, ["export", "--out", str(built), "--format", "labels14", "--dest", str(positive), "--uncertain", "positive"]
    )
    assert read(positive)[3] == ["CXR3", *("1" if c == "Pneumonia" else "0" for c in LABELS14), "0"]
    # scored against itself as gold: perfect
    report = score_labels14(dest, dest)
    assert (report.micro.f1, report.normal.f1, report.studies) == (1.0, 1.0, 3)
    scored = runner.invoke(app, ["eval", "labels14", "--pred", str(positive), "--gold", str(dest)])
    assert scored.exit_code == 0 and "Pneumonia" in scored.stdout


def test_cli_export_errors_are_clear(built: Path, tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["export", "--out", str(built), "--format", "coco", "--dest", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "unknown export format 'coco'" in unknown.output
    policy = runner.invoke(
        app,
        ["export", "--out", str(built), "--format", "labels14", "--dest", str(tmp_path / "x"), "--uncertain", "maybe"],
    )
    assert policy.exit_code == 2 and "--uncertain must be" in policy.output
    missing = runner.invoke(
        app, ["export", "--out", str(tmp_path / "none"), "--format", "labels14", "--dest", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and "no database at" in missing.output
