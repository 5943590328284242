"""Synthetic DICOMs: decoded by the real image stage, with the header variety and the views the reports
promise, realistic sizes, and no identifier of theirs in what the stage stores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pydicom
import pytest

from cxrvqa.config import Config
from cxrvqa.core.batch import run_batch
from cxrvqa.core.parallel import batched
from cxrvqa.imaging import stage
from cxrvqa.store import Store, start_run
from cxrvqa.synth.corpus import DICOM, MANIFEST, write_corpus
from cxrvqa.synth.images import ImageJob, image_jobs, write_image
from cxrvqa.synth.reports import make_chunk

SEED = 9  # 12 studies whose 22 images cover every modality, photometric, view and view encoding


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    write_corpus(out, 12, seed=SEED, images=12, j2k_share=0.3, image_scale=0.1)
    return out


@pytest.fixture(scope="module")
def ingested(corpus: Path, tmp_path_factory) -> Config:
    config = Config(
        out_dir=tmp_path_factory.mktemp("build"),
        images_dir=corpus / DICOM,
        manifest=corpus / MANIFEST,
        imaging={"workers": 1},
    )
    with Store(config.db_path) as store:
        run_id = start_run(store, config)
        context = stage.prepare(config)
        for batch in batched(stage.iter_source_files(context.images_dir), 8):
            run_batch(stage, store, run_id, batch, context)
    return config


def _expected_views() -> dict[str, str]:
    plans = make_chunk(SEED, 0, 12, plans_below=12).plans
    return {relative: job.view for job, relative in image_jobs(SEED, plans, Path("/unused"), 0.1, 0.3)}


def test_every_image_is_decoded_and_joined_to_its_study(ingested: Config) -> None:
    expected = _expected_views()
    with Store(ingested.db_path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM image_rejects")[0][0] == 0
        rows = store.query_dicts("SELECT * FROM images")
    assert len(rows) == len(expected) == 20
    for row in rows:
        view = expected[row["source_path"]]
        assert row["study_id"] == row["source_path"].split("/")[1]  # from the manifest
        if view == "LATERAL":
            assert row["view_plane"] == "lateral"
        else:
            assert (row["view_position"], row["view_plane"]) == (view, "frontal")
        assert (ingested.out_dir / row["png_path"]).is_file()


def test_the_headers_have_the_promised_variety(ingested: Config) -> None:
    with Store(ingested.db_path, read_only=True) as store:
        rows = store.query_dicts("SELECT * FROM images")
    assert {r["modality"] for r in rows} == {"CR", "DX"}
    assert {r["photometric"] for r in rows} == {"MONOCHROME1", "MONOCHROME2"}
    assert all(r["inverted"] == (r["photometric"] == "MONOCHROME1") for r in rows)
    assert {12, 16} <= {r["bits_stored"] for r in rows}
    syntaxes = Counter(r["transfer_syntax"] for r in rows)
    assert "1.2.840.10008.1.2.1" in syntaxes and {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"} & set(syntaxes)
    assert {r["view_source"] for r in rows} == {"ViewPosition", "description", "PatientOrientation"}
    assert {r["spacing_source"] for r in rows} == {"PixelSpacing", "ImagerPixelSpacing"}
    methods = {r["decode_method"] for r in rows}  # JPEG 2000 ones decoded at a reduced resolution
    assert "pydicom" in methods and any(m.startswith("jpeg2000_level") for m in methods)


def test_no_identifier_of_a_file_reaches_the_images_table(corpus: Path, ingested: Config) -> None:
    identifiers = set()
    for path in (corpus / DICOM).rglob("*"):
        if path.is_file():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            identifiers |= {
                str(ds.PatientName),
                ds.PatientID,
                ds.AccessionNumber,
                ds.StudyInstanceUID,
                ds.SOPInstanceUID,
                ds.PatientBirthDate,
            }
    with Store(ingested.db_path, read_only=True) as store:
        values = {str(v) for row in store.query("SELECT * FROM images") for v in row}
    assert identifiers and not identifiers & values


def test_images_are_realistic_in_size(tmp_path: Path) -> None:
    plan = make_chunk(SEED, 0, 1, plans_below=1).plans[0]
    written = write_image(ImageJob(SEED, plan, 0, plan.views[0], str(tmp_path / "full.dcm"), 1.0, 0.0))
    ds = pydicom.dcmread(written.path)
    spacing = float((ds.get("PixelSpacing") or ds.ImagerPixelSpacing)[0])
    assert 2000 <= min(ds.Rows, ds.Columns) and max(ds.Rows, ds.Columns) <= 3200
    assert 0.13 <= spacing <= 0.2 and 340 <= ds.Rows * spacing <= 440  # a 35-43 cm detector
    assert str(ds.file_meta.TransferSyntaxUID) in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # j2k_share 0
    assert written.bytes > ds.Rows * ds.Columns * 2
    # the same job writes the same pixels
    again = write_image(ImageJob(SEED, plan, 0, plan.views[0], str(tmp_path / "again.dcm"), 1.0, 0.0))
    assert (tmp_path / "full.dcm").read_bytes() == Path(again.path).read_bytes()
