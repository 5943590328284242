"""The image stage over batches: skipping, duplicates, manifest, privacy of every output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cxrvqa.config import Config
from cxrvqa.errors import InputError
from cxrvqa.imaging.manifest import load_manifests
from cxrvqa.store import Store
from tests.dicom_factory import PHI, gradient, make_dicom
from tests.imaging.helpers import four_chest_dicoms, run_stage


@pytest.fixture
def config(tmp_path: Path) -> Config:
    images = tmp_path / "images"
    four_chest_dicoms(images)
    make_dicom(images / "ct.dcm", modality="CT", phi=False, uids={"SOPInstanceUID": "1.2.3.99"})
    return Config(out_dir=tmp_path / "out", images_dir=images, imaging={"workers": 1})


def test_every_file_becomes_exactly_one_row(config: Config) -> None:
    counts = run_stage(config)
    assert (counts.n_input, counts.n_done, counts.n_rejected, counts.n_skipped) == (5, 4, 1, 0)
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM images")[0][0] == 4
        assert store.query("SELECT source_path, reason FROM image_rejects") == [("ct.dcm", "unsupported_modality")]
        for png_path, png_rows in store.query("SELECT png_path, png_rows FROM images"):
            assert (config.out_dir / png_path).is_file() and png_rows == 16
    assert not list(config.out_dir.rglob("*.pending"))


def test_rerun_converts_nothing(config: Config) -> None:
    run_stage(config)
    pngs = {p: p.stat().st_mtime_ns for p in config.out_dir.rglob("*.png")}
    counts = run_stage(config)
    assert (counts.n_input, counts.n_skipped, counts.n_done, counts.n_rejected) == (5, 5, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in config.out_dir.rglob("*.png")} == pngs
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM images")[0][0] == 4
        assert store.query("SELECT count(*) FROM image_rejects")[0][0] == 1


def test_new_and_changed_files_are_the_only_work_on_rerun(config: Config) -> None:
    run_stage(config)
    make_dicom(config.images_dir / "new" / "n.dcm", phi=False, uids={"SOPInstanceUID": "1.2.3.50"})
    counts = run_stage(config)
    assert (counts.n_skipped, counts.n_done) == (5, 1)


def test_changed_recipe_renders_again(config: Config) -> None:
    run_stage(config)
    config.imaging.scale = 0.5
    counts = run_stage(config)
    assert counts.n_done == 4
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(DISTINCT recipe_version) FROM images")[0][0] == 2
        assert store.query("SELECT min(png_rows) FROM current_images")[0][0] == 32
    config.imaging.scale = 0.25  # set back: the first recipe's images are current again (they were skipped)
    assert run_stage(config).n_done == 4
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT count(*), max(png_rows) FROM current_images") == [(4, 16)]
        assert store.query("SELECT count(*) FROM images")[0][0] == 8


def test_duplicates_are_rejected_with_a_reason(config: Config) -> None:
    (config.images_dir / "copy.dcm").write_bytes((config.images_dir / "s0" / "img0.dcm").read_bytes())
    make_dicom(
        config.images_dir / "zz_same_uid.dcm",
        pixels=gradient(64, 48, 10),
        phi=False,
        uids={"SOPInstanceUID": "1.2.3.1"},
    )
    run_stage(config, batch_size=100)
    with Store(config.db_path, read_only=True) as store:
        rejects = dict(store.query("SELECT source_path, detail FROM image_rejects WHERE reason = 'duplicate_image'"))
    # A folder's files come before its sub-folders, so the top-level files are the first of each pair.
    assert set(rejects) == {"s0/img0.dcm", "s1/img1.dcm"}
    assert "identical content to 'copy.dcm'" in rejects["s0/img0.dcm"]
    assert "same SOP Instance UID as 'zz_same_uid.dcm'" in rejects["s1/img1.dcm"]


def test_manifest_links_images_to_studies(config: Config, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("study_id,patient_id,image_path\nS-1,P-1,s0/img0.dcm\nS-1,P-1,s1/img1.dcm\n")
    config.manifest = manifest
    run_stage(config)
    with Store(config.db_path, read_only=True) as store:
        rows = dict(store.query("SELECT source_path, study_id FROM images"))
    assert rows["s0/img0.dcm"] == rows["s1/img1.dcm"] == "S-1"
    assert rows["s2/img2.dcm"].startswith("st-")


def test_the_iu_projections_csv_is_a_manifest(tmp_path: Path) -> None:
    projections = tmp_path / "iu_projections.csv"
    projections.write_text(
        "uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Frontal\n"
        "1,1_IM-0001-3001.dcm.png,Lateral\n10,10_IM-0002-1001.dcm.png,Frontal\n"
    )
    manifest = load_manifests([projections])
    # the PNG of the Kaggle copy, or the DICOM it was made from, anywhere under --images
    assert manifest.entry("1_IM-0001-4001.dcm").study_id == "1"
    assert manifest.entry("png/1_IM-0001-3001.dcm.png").view_position == "Lateral"
    assert (manifest.entry("10_IM-0002-1001.dcm").study_id, manifest.entry("10_IM-0002-1001.dcm").patient_id) == (
        "10",
        "10",
    )


def test_manifest_with_unknown_columns_names_the_layouts(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("study,image\nS,x.dcm\n")
    with pytest.raises(
        InputError,
        match=r"expected the header row of a known metadata file: .*"
        r"generic \(study_id, patient_id, image_path\)",
    ):
        load_manifests([manifest])


def test_limit_bounds_the_files(config: Config) -> None:
    config.limit = 2
    assert run_stage(config).n_input == 2


def test_no_phi_reaches_pngs_tables_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    make_dicom(images / "a.dcm")  # accepted, full PHI header
    make_dicom(images / "b.dcm", body_part="KNEE", uids={"SOPInstanceUID": "1.2.826.0.1.3680043.8.498.44"})
    make_dicom(images / "c.dcm", pixel_bytes=b"\x00" * 10, uids={"SOPInstanceUID": "1.2.826.0.1.3680043.8.498.45"})
    config = Config(out_dir=tmp_path / "out", images_dir=images, imaging={"workers": 1})
    caplog.set_level(logging.DEBUG)
    assert run_stage(config).n_done == 1
    captured = capfd.readouterr()
    texts = [caplog.text, captured.out, captured.err]
    with Store(config.db_path, read_only=True) as store:
        for table in ("images", "image_rejects", "runs", "run_stages"):
            texts.extend(str(row) for row in store.query(f"SELECT * FROM {table}"))
    blobs = [p.read_bytes() for p in config.out_dir.rglob("*") if p.is_file()]
    for value in PHI.values():
        assert not any(value in text for text in texts), f"{value!r} leaked into a table or log"
        assert not any(value.encode() in blob for blob in blobs), f"{value!r} leaked into an output file"
        assert value not in "".join(str(p) for p in config.out_dir.rglob("*"))


def test_uids_in_file_names_are_pseudonymised(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.777"
    images = tmp_path / "images"
    make_dicom(images / uid / f"{uid}.dcm", phi=False, uids={"SOPInstanceUID": uid})
    make_dicom(images / "v1.2.3" / "scan 2024.01.02.dcm", phi=False, uids={"SOPInstanceUID": "1.2.3.9"})
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"study_id,patient_id,image_path\nS-7,P-7,{uid}/{uid}.dcm\n")
    config = Config(out_dir=tmp_path / "out", images_dir=images, manifest=manifest, imaging={"workers": 1})
    run_stage(config)
    with Store(config.db_path, read_only=True) as store:
        paths = dict(store.query("SELECT study_id, source_path FROM images"))
    assert uid not in paths["S-7"] and paths["S-7"].startswith("uid-") and paths["S-7"].endswith(".dcm")
    assert "v1.2.3/scan 2024.01.02.dcm" in paths.values()  # versions and dates are not UIDs
    assert run_stage(config).n_skipped == 2
