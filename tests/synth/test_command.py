"""`cxrvqa synth` on the command line, and a `cxrvqa build` of what it writes (reports, images, manifest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import Store
from cxrvqa.synth.corpus import DICOM, GOLD, MANIFEST, REPORTS
from cxrvqa.synth.score import read_jsonl

runner = CliRunner(env={"COLUMNS": "400"})


def test_synth_command_writes_a_corpus_and_says_how_to_build_it(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    result = runner.invoke(app, ["synth", "--studies", "40", "--out", str(out), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert len((out / REPORTS).read_bytes().splitlines()) == 40 and (out / GOLD).is_file()
    assert "40 reports and gold graphs" in result.output
    assert f"cxrvqa build --reports {out / REPORTS} --report-format jsonl --out BUILD_DIR" in " ".join(
        result.output.split()
    )


def test_synth_command_fails_clearly_on_bad_settings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--studies", "3", "--images", "4", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "--images: expected a number of studies with images from 0 to --studies (3), found 4" in " ".join(
        result.output.split()
    )


@pytest.mark.flow
def test_build_of_a_synthetic_corpus(tmp_path: Path) -> None:
    corpus, build = tmp_path / "corpus", tmp_path / "build"
    made = runner.invoke(
        app,
        [
            "synth",
            "--studies",
            "20",
            "--images",
            "20",
            "--out",
            str(corpus),
            "--seed",
            "1",
            "--image-scale",
            "0.1",
            "--j2k-share",
            "0.2",
        ],
    )
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        app,
        [
            "build",
            "--reports",
            str(corpus / REPORTS),
            "--report-format",
            "jsonl",
            "--images",
            str(corpus / DICOM),
            "--manifest",
            str(corpus / MANIFEST),
            "--out",
            str(build),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    n_images = len((corpus / MANIFEST).read_text().splitlines()) - 1
    with Store(build / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT stage, status, n_done, n_rejected FROM run_stages ORDER BY started_at")[:3] == [
            ("images", "completed", n_images, 0),
            ("reports", "completed", 20, 0),
            ("extract", "completed", 20, 0),
        ]
        assert (
            store.query("SELECT count(DISTINCT study_id) FROM current_images JOIN current_reports USING (study_id)")[0][
                0
            ]
            == 20
        )
        assert store.query("SELECT count(*) FROM current_qa_items")[0][0] > 20 * 10
        assert store.query("SELECT status FROM runs") == [("completed",)]
        stored = set(store.query("SELECT study_id, finding, presence FROM current_observations WHERE from_report"))
    gold = {(g["study_id"], o["finding"], o["presence"]) for g in read_jsonl(corpus / GOLD) for o in g["observations"]}
    # the build's graphs are the rules extractor's: they agree with the gold on nearly every fact
    assert len(gold & stored) / len(gold) > 0.9
