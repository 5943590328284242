"""The selection of an export: grade labels and split names checked against the build, with clear errors;
the ordered items it takes; and the CLI's errors for formats, grades and splits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.errors import CxrvqaError
from cxrvqa.export.items import Selection, ordered_items, select, split_names
from cxrvqa.store import Store
from tests.export.conftest import db_rows

runner = CliRunner()
GRADES = "['A++', 'A+', 'A', 'B', 'C', 'D']"


@pytest.mark.flow
def test_selection_from_labels_and_splits(demo: Path, tmp_path: Path) -> None:
    studies = {r["item_id"]: r["study_id"] for r in db_rows(demo, "SELECT item_id, study_id FROM current_qa_items")}
    with Store(demo / "cxrvqa.duckdb", read_only=True) as store:
        assert split_names(store) == ["train", "val", "test"]
        assert select(store) == Selection()
        assert select(store, "A", "val") == Selection(4, "A", "val")
        assert select(store, "A", "val").describe() == "grade >= A, split val"
        with pytest.raises(CxrvqaError, match=re.escape(f"unknown grade 'a'; grades are {GRADES}")):
            select(store, "a")
        with pytest.raises(
            CxrvqaError, match=re.escape("unknown split 'dev'; the build's splits are ['train', 'val', 'test']")
        ):
            select(store, None, "dev")
        counted = {}
        for grade, split in ((None, None), ("A+", None), (None, "test"), ("A+", "test")):
            path = tmp_path / f"{grade}-{split}.parquet"
            with ordered_items(store, select(store, grade, split), path) as (items, per_split):
                ids = [i for (i,) in store.query(f"SELECT item_id FROM {items}")]
                counted[(grade, split)] = per_split
            assert not path.exists()
            assert ids == sorted(ids, key=lambda i: (studies[i], i)) and len(ids) == sum(per_split.values())
    rows = db_rows(
        demo,
        "SELECT q.split, g.grade FROM current_qa_items q "
        "JOIN current_qa_grades g USING (item_id, template_version, input_hash)",
    )
    expected = {}
    for grade, split in counted:
        chosen = [
            r["split"] for r in rows if (split is None or r["split"] == split) and (grade is None or r["grade"] >= 5)
        ]
        expected[(grade, split)] = {s: chosen.count(s) for s in ("train", "val", "test") if s in chosen}
    assert counted == expected and list(counted[(None, None)]) == ["train", "val", "test"]


def test_a_build_without_grades_cannot_be_filtered_by_grade(tmp_path: Path) -> None:
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        with pytest.raises(CxrvqaError, match="the build has no grades; run the validate stage first"):
            select(store, "A")


@pytest.mark.flow
def test_cli_errors_are_clear(demo: Path, tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = runner.invoke(app, ["export", "--out", str(demo), "--dest", str(tmp_path / "x"), *args])
        assert result.exit_code == 2
        return " ".join(result.output.split())

    assert "unknown export format 'csv'; available: ['jsonl', 'parquet', 'hf', 'llava', 'labels14']" in run(
        "--format", "csv"
    )
    assert f"unknown grade 'E'; grades are {GRADES}" in run("--format", "jsonl", "--min-grade", "E")
    assert "unknown split 'training'" in run("--format", "parquet", "--split", "training")
    assert "labels14 has one row per study" in run("--format", "labels14", "--split", "val")
    (tmp_path / "folder").mkdir()
    result = runner.invoke(app, ["export", "--out", str(demo), "--format", "jsonl", "--dest", str(tmp_path / "folder")])
    assert result.exit_code == 2 and "expected a file to write, found a folder" in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()
