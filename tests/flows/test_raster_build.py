"""End to end: a MIMIC-CXR-JPG-shaped tree (JPEGs, metadata and split files, report tree) through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import Store

pytestmark = pytest.mark.flow
runner = CliRunner(env={"COLUMNS": "400"})
MIMIC = Path(__file__).parents[1] / "data" / "raster" / "mimic_cxr_jpg"


def test_mimic_cxr_jpg_tree_gives_items_with_views_and_the_official_split(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "build",
            "--out",
            str(out),
            "--workers",
            "1",
            "--images",
            str(MIMIC / "images"),
            "--manifest",
            str(MIMIC / "mimic-cxr-2.0.0-metadata.csv"),
            "--manifest",
            str(MIMIC / "mimic-cxr-2.0.0-split.csv"),
            "--reports",
            str(MIMIC / "reports"),
            "--report-format",
            "mimic",
            "--split-from",
            "manifest",
        ],
    )
    assert result.exit_code == 0, result.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        views = dict(
            store.query(
                "SELECT view_position, view_plane FROM current_images WHERE id_source = 'manifest:mimic_cxr_jpg'"
            )
        )
        items = store.query_dicts(
            "SELECT q.study_id, q.image_id, q.question, q.split, i.view_plane "
            "FROM current_qa_items q LEFT JOIN current_images i USING (image_id)"
        )
    assert views == {"PA": "frontal", "LATERAL": "lateral", "AP": "frontal"}
    assert items and all(item["image_id"] for item in items)
    assert {item["study_id"]: item["split"] for item in items} == {"s50000001": "train", "s50000002": "test"}
    sided = [
        item
        for item in items
        if " left" in item["question"].lower()
        or "right" in item["question"].lower()
        or "which side" in item["question"].lower()
    ]
    assert sided and {item["view_plane"] for item in sided} == {"frontal"}
    assert any(item["view_plane"] == "lateral" for item in items)

    status = json.loads(runner.invoke(app, ["status", "--out", str(out), "--json"]).output)
    reasons = {(r["stage"], r["reason"]): r for r in status["reject_reasons"]}
    assert reasons[("images", "missing_image")]["n"] == 1
    assert reasons[("images", "not_in_manifest")]["n"] == 1
    assert "file_content" in reasons[("images", "not_in_manifest")]["example"]


def test_chexpert_plus_csv_links_images_and_reports_by_path(tmp_path: Path) -> None:
    """The one CheXpert Plus CSV as manifest and as report table: the study of its report is its image's."""
    root = Path(__file__).parents[1] / "data" / "raster" / "chexpert_plus"
    table = str(root / "df_chexpert_plus_240401.csv")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "build",
            "--out",
            str(out),
            "--workers",
            "1",
            "--images",
            str(root),
            "--manifest",
            table,
            "--reports",
            table,
            "--report-format",
            "chexpert_plus",
        ],
    )
    assert result.exit_code == 0, result.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT study_id, patient_id FROM current_reports") == [
            ("patient00002/study1", "patient00002")
        ]
        assert store.query("SELECT study_id, patient_id, id_source FROM current_images") == [
            ("patient00002/study1", "patient00002", "manifest:chexpert_plus")
        ]
        items = store.query("SELECT study_id, image_id FROM current_qa_items")
    assert items and all(study == "patient00002/study1" and image for study, image in items)
