"""The image stage over every file of $CXRVQA_DATA_DIR/dicom, with the expected outcome of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa.config import Config
from cxrvqa.imaging.pseudonym import pseudonym
from cxrvqa.store import Store
from tests.imaging.test_stage import run_stage

pytestmark = pytest.mark.data

IMAGE = "image"
UID_PSEUDONYM = pseudonym(
    Config().privacy.resolved_key()[0], "uid", "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819", 16
)
EXPECTED = {
    "MANIFEST.csv": "not_dicom",
    # Real chest radiographs: all accepted.
    "cxr/DX_J2K_0Padding.dcm": IMAGE,
    "cxr/DX_chest_PA_J2KR_966_fixed.dcm": IMAGE,
    "cxr/NIH_google_dicom_No_Finding.dcm": IMAGE,
    "cxr/RG1_J2KI.dcm": IMAGE,
    "cxr/RG1_UNCR.dcm": IMAGE,
    "cxr/SIIM_<uid>.dcm": IMAGE,  # the file is named by its SOP Instance UID: stored pseudonymised
    # Same SOP Instance UID as the SIIM file, other pixels: a second file of one instance.
    "cxr_header_variants/Fake_MONOHR1.dcm": "duplicate_image",
    "corrupt_or_edge/DX_chest_PA_J2KR_966_BROKEN.dcm": "decode_failed",
    "corrupt_or_edge/GH1376_pixeldata_too_short.dcm": "unsupported_modality",
    "corrupt_or_edge/JPEG2000-embedded-sequence-delimiter.dcm": "unsupported_modality",
    "corrupt_or_edge/MR_truncated.dcm": "unsupported_modality",
    "corrupt_or_edge/RG2_JPLY_BROKEN.dcm": "not_chest",
    "corrupt_or_edge/emri_small_jpeg_2k_lossless_too_short.dcm": "unreadable_header",
    "corrupt_or_edge/meta_missing_tsyntax.dcm": "unreadable_header",
    "corrupt_or_edge/no_meta.dcm": "not_dicom",
    "corrupt_or_edge/rtplan_truncated.dcm": "unsupported_modality",
    "corrupt_or_edge/vlut_04_VOILUTSequence.dcm": "not_chest",
    "corrupt_or_edge/zipMR.gz": "not_dicom",
    "non_xray/CT1_J2KI.dcm": "unsupported_modality",
    "non_xray/CT_small.dcm": "unsupported_modality",
    "non_xray/MR_small_RLE.dcm": "unsupported_modality",
    "non_xray/OBXXXX1A_rle.dcm": "unsupported_modality",
    "non_xray/US1_J2KI.dcm": "unsupported_modality",
    "non_xray/emri_small_jpeg_ls_lossless.dcm": "unsupported_modality",
    "non_xray/liver_1frame.dcm": "unsupported_modality",
    "non_xray/reportsi.dcm": "unsupported_modality",
    "non_xray/rtplan.dcm": "unsupported_modality",
    "non_xray/test-SR.dcm": "unsupported_modality",
    "xray_non_chest/CR_cspine_16x16_6154.dcm": "not_chest",
    "xray_non_chest/MG_GH133_VOILUT.dcm": "unsupported_modality",
    "xray_non_chest/RG2_JPLY_fixed.dcm": "not_chest",
    "xray_non_chest/RG3_J2KI.dcm": "not_chest",
    "xray_non_chest/XA_multiframe_HasFragmentSequence.dcm": "unsupported_modality",
    # A veterinary DX whose header says THORAX: indistinguishable from a human chest DX (data README).
    "xray_non_chest/highdicom_dx_image_cat_thorax.dcm": IMAGE,
}


def test_every_shared_dicom_has_its_expected_outcome(data_dir: Path, tmp_path: Path) -> None:
    config = Config(out_dir=tmp_path / "out", images_dir=data_dir / "dicom", imaging={"workers": 2})
    counts = run_stage(config, batch_size=16)
    with Store(config.db_path, read_only=True) as store:
        outcome = {path: IMAGE for (path,) in store.query("SELECT source_path FROM images")}
        rejects = store.query("SELECT source_path, reason, detail FROM image_rejects")
    outcome.update({path: reason for path, reason, _ in rejects})
    assert outcome == {path.replace("<uid>", UID_PSEUDONYM): value for path, value in EXPECTED.items()}
    assert counts.n_input == len(EXPECTED) == counts.n_done + counts.n_rejected
    assert all(detail for _, _, detail in rejects)


def test_decode_failure_keeps_the_codec_message(data_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    broken = data_dir / "dicom/corrupt_or_edge/DX_chest_PA_J2KR_966_BROKEN.dcm"
    (images / "broken.dcm").write_bytes(broken.read_bytes())
    config = Config(out_dir=tmp_path / "out", images_dir=images, imaging={"workers": 1})
    run_stage(config)
    with Store(config.db_path, read_only=True) as store:
        reason, detail = store.query("SELECT reason, detail FROM image_rejects")[0]
    assert reason == "decode_failed" and "Unable to decode" in detail


def _decodable_single_frames(data_dir: Path) -> list[str]:
    import csv

    with open(data_dir / "dicom" / "MANIFEST.csv", newline="") as handle:
        return [
            row["file"].removeprefix("dicom/")
            for row in csv.DictReader(handle)
            if row["decode"].startswith("OK")
            and row["NumberOfFrames"] in ("", "1")
            and row["PhotometricInterpretation"].startswith("MONOCHROME")
        ]


def test_every_codec_of_the_shared_data_decodes(data_dir: Path) -> None:
    """JPEG baseline/extended/lossless, JPEG 2000, RLE, uncompressed: whatever the file's body part."""
    from cxrvqa.imaging.convert import target_size
    from cxrvqa.imaging.decode import decode
    from cxrvqa.imaging.header import read_header

    files = _decodable_single_frames(data_dir)
    syntaxes = set()
    for relative in files:
        header = read_header(str(data_dir / "dicom" / relative))
        width, height = target_size(header.rows, header.cols, 0.25, None)
        decoded = decode(header, (width, height))
        rows, cols = decoded.stored.shape
        assert rows >= height and cols >= width, relative
        assert abs(rows * decoded.reduction - header.rows) <= decoded.reduction, relative
        syntaxes.add(header.transfer_syntax)
    assert {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2",
    } <= syntaxes


def test_jpeg_ls_codec_is_installed(data_dir: Path) -> None:
    """The only JPEG-LS file is multi-frame (rejected by the stage), but its codec must work."""
    import pydicom

    ds = pydicom.dcmread(data_dir / "dicom/non_xray/emri_small_jpeg_ls_lossless.dcm")
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    assert ds.pixel_array.shape == (10, 64, 64)
