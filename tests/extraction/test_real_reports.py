"""The rules extractor on real reports from $CXRVQA_DATA_DIR: the CheXpert labeler's labelled
samples (exact agreement) and the IU development set through the real stages (quality floors)."""

from __future__ import annotations

import csv
from pathlib import Path

from cxrvqa.config import Config
from cxrvqa.core.scene_graph import Sentence
from cxrvqa.core.text import split_sentences
from cxrvqa.core.vocab import vocabulary
from cxrvqa.export.labels14 import export_labels14
from cxrvqa.extraction.evaluation import score_labels14
from cxrvqa.extraction.rules import extract_scene_graph
from cxrvqa.store import Store
from tests.extraction.test_stage import run_extract
from tests.reports.test_stage import run_stage as run_report_stage

#: Just under what bench/eval_extraction.py reports for this version (micro-F1, normal F1).
MICRO_F1_FLOOR, NORMAL_F1_FLOOR = 0.91, 0.90
CHEXPERT_VALUES = {"1.0": "present", "0.0": "absent", "-1.0": "uncertain"}


def chexpert_label(finding: str | None) -> str | None:
    findings = vocabulary().findings
    while finding:
        code = findings[finding].get("codes", {}).get("chexpert")
        if code:
            return code
        finding = findings[finding].get("parent")
    return None


def test_chexpert_labeler_samples_agree_on_every_mentioned_observation(data_dir: Path) -> None:
    path = data_dir / "reports" / "chexpert_labeler_samples" / "labeled_reports.csv"
    disagreements, compared = [], 0
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = "IMPRESSION: " + row["Reports"]
            sentences = [
                Sentence(id=i, section=s.section, text=s.text, start=s.start, end=s.end)
                for i, s in enumerate(split_sentences(text))
            ]
            ours: dict[str, set[str]] = {}
            for observation in extract_scene_graph("sample", sentences).observations:
                label = chexpert_label(observation.finding)
                if label:
                    ours.setdefault(label, set()).add(observation.presence)
            for label, value in row.items():
                if label in ("Reports", "No Finding") or not value:
                    continue
                found = ours.get(label, set())
                said = next((p for p in ("present", "uncertain", "absent") if p in found), None)
                compared += 1
                if said != CHEXPERT_VALUES[value]:
                    disagreements.append((label, CHEXPERT_VALUES[value], said, row["Reports"][:80]))
    assert compared == 12 and disagreements == []


def test_iu_development_reports_through_the_stages(data_dir: Path, tmp_path: Path) -> None:
    config = Config(
        out_dir=tmp_path / "out",
        reports=data_dir / "reports" / "iu_dev_reports.csv",
        report_format="iu",
        extraction={"workers": 1},
    )
    run_report_stage(config, batch_size=1000)
    counts = run_extract(config, batch_size=1000)
    assert (counts.n_input, counts.n_done, counts.n_rejected) == (2848, 2848, 0)
    pred = tmp_path / "labels14.csv"
    with Store(config.db_path, read_only=True) as store:
        assert export_labels14(store, pred) == 2848
        assert (
            store.query("SELECT count(*) FROM current_scene_graphs WHERE list_contains(quality, 'not_english')")[0][0]
            == 0
        )
    report = score_labels14(pred, data_dir / "reports" / "iu_dev_labels14.csv")
    assert report.missing_in_pred == 0 and report.extra_in_pred == 0
    # floors just under the figures of bench/eval_extraction.py: a rule change that costs quality fails here
    assert report.micro.f1 >= MICRO_F1_FLOOR, report.micro
    assert report.normal.f1 >= NORMAL_F1_FLOOR, report.normal
