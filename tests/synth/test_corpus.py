"""A corpus on disk: its files, its refusal to overwrite, its bad settings, and worker-independence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cxrvqa.errors import ConfigError, InputError
from cxrvqa.synth.corpus import DICOM, GOLD, MANIFEST, META, REPORTS, write_corpus


def test_the_files_of_a_corpus(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    summary = write_corpus(out, 30, seed=4, images=3, image_scale=0.05, j2k_share=0.0)
    reports = (out / REPORTS).read_bytes().splitlines()
    gold = (out / GOLD).read_bytes().splitlines()
    assert len(reports) == len(gold) == 30
    with open(out / MANIFEST, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["study_id"] for r in rows} == {"synth-s0000000", "synth-s0000001", "synth-s0000002"}
    assert all((out / DICOM / r["image_path"]).is_file() for r in rows)
    assert len(rows) == summary.images == sum(1 for p in (out / DICOM).rglob("*") if p.is_file())
    meta = json.loads((out / META).read_text())
    assert (meta["studies"], meta["image_studies"], meta["seed"], meta["images"]) == (30, 3, 4, len(rows))
    assert meta["transfer_syntaxes"].keys() <= {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # j2k_share 0
    assert meta["report_bytes"] == (out / REPORTS).stat().st_size
    assert set(meta["versions"]) == {"generator", "phrases", "code", "images", "image_spec"}


def test_reports_only_has_no_manifest(tmp_path: Path) -> None:
    write_corpus(tmp_path / "c", 5)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [GOLD, REPORTS, META]


def test_an_existing_corpus_is_never_overwritten(tmp_path: Path) -> None:
    write_corpus(tmp_path, 5)
    with pytest.raises(
        InputError,
        match=f"expected a new or empty folder for the corpus, found it already holds {REPORTS}, {GOLD}, {META}",
    ):
        write_corpus(tmp_path, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"studies": 0}, "--studies: expected a positive number of studies, found 0"),
        (
            {"studies": 5, "images": 6},
            "--images: expected a number of studies with images from 0 to --studies (5), found 6",
        ),
        (
            {"studies": 5, "image_scale": 2.0},
            "--image-scale: expected a fraction of the realistic image size from 0.05",
        ),
        ({"studies": 5, "j2k_share": 1.5}, "--j2k-share: expected a share of JPEG 2000 images from 0 to 1, found 1.5"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        write_corpus(tmp_path / "c", **kwargs)
    assert message in str(raised.value)
    assert not (tmp_path / "c").exists()


def test_worker_processes_change_nothing(tmp_path: Path) -> None:
    """Chunks are seeded by (seed, chunk): two workers write the same bytes as one."""
    write_corpus(tmp_path / "one", 2100, seed=8, workers=1)
    write_corpus(tmp_path / "two", 2100, seed=8, workers=2)
    for name in (REPORTS, GOLD):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
