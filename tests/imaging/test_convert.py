"""Per-file conversion: every reject code, rendering, sizes, privacy of paths."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrvqa.imaging.convert import target_size
from cxrvqa.imaging.models import ManifestEntry, RejectReason
from tests.dicom_factory import gradient, make_dicom
from tests.imaging.helpers import SETTINGS, convert, png_array


def test_accepts_a_chest_radiograph_and_reports_its_geometry(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "in" / "a.dcm", rows=400, cols=300, pixel_spacing=(0.15, 0.2))
    kind, row = convert(path, tmp_path / "out")
    assert kind == "image"
    assert (row["rows"], row["cols"], row["png_rows"], row["png_cols"]) == (400, 300, 100, 75)
    assert row["scale_x"] == pytest.approx(0.25) and row["scale_y"] == pytest.approx(0.25)
    assert row["png_spacing_row"] == pytest.approx(0.6) and row["png_spacing_col"] == pytest.approx(0.8)
    assert row["spacing_source"] == "PixelSpacing"
    assert (row["view_position"], row["view_source"], row["view_plane"]) == ("PA", "ViewPosition", "frontal")
    assert row["body_part"] == "CHEST" and row["photometric"] == "MONOCHROME2" and row["inverted"] is False
    image = Image.open(row["pending_png"])
    assert image.mode == "L" and image.size == (75, 100)
    assert not image.info.get("text") and not any(k for k in image.info if k not in ("dpi",))


def test_png_has_no_text_chunks(tmp_path: Path) -> None:
    kind, row = convert(make_dicom(tmp_path / "a.dcm"), tmp_path / "out")
    data = Path(row["pending_png"]).read_bytes()
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf"):
        assert chunk not in data


@pytest.mark.parametrize(
    ("rows", "cols", "scale", "longest", "expected"),
    [
        (1955, 1841, 0.25, None, (460, 489)),
        (3000, 2500, 0.25, None, (625, 750)),
        (3000, 2500, 0.25, 1024, (853, 1024)),
        (400, 300, 0.25, 1024, (300, 400)),
        (3, 3, 0.1, None, (1, 1)),
    ],
)
def test_target_size(rows: int, cols: int, scale: float, longest: int | None, expected: tuple[int, int]) -> None:
    assert target_size(rows, cols, scale, longest) == expected


def test_text_file_is_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("FINDINGS: no pneumothorax.\n" * 20)
    kind, row = convert(path, tmp_path / "out")
    assert (kind, row["reason"]) == ("reject", RejectReason.not_dicom)


def test_gzip_file_is_not_dicom_and_says_so(tmp_path: Path) -> None:
    source = make_dicom(tmp_path / "a.dcm")
    packed = tmp_path / "a.dcm.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    kind, row = convert(packed, tmp_path / "out")
    assert row["reason"] == RejectReason.not_dicom and "gzip" in row["detail"]


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    kind, row = convert(tmp_path / "gone.dcm", tmp_path / "out")
    assert row["reason"] == RejectReason.unreadable_file and "FileNotFoundError" in row["detail"]


def test_header_without_image_attributes_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\x00")
    kind, row = convert(path, tmp_path / "out")
    assert row["reason"] == RejectReason.unreadable_header


def test_file_without_preamble_is_read(tmp_path: Path) -> None:
    kind, row = convert(make_dicom(tmp_path / "raw", preamble=False), tmp_path / "out")
    assert kind == "image"


@pytest.mark.parametrize(
    ("kwargs", "reason", "in_detail"),
    [
        ({"modality": "CT"}, RejectReason.unsupported_modality, "'CT'"),
        ({"modality": "MG"}, RejectReason.unsupported_modality, "'MG'"),
        ({"body_part": "HIP"}, RejectReason.not_chest, "'HIP'"),
        ({"modality": "OT", "body_part": None}, RejectReason.not_chest, "secondary capture"),
        ({"with_pixel_data": False}, RejectReason.no_pixel_data, "Pixel Data"),
        ({"frames": 2}, RejectReason.multi_frame, "NumberOfFrames 2"),
        (
            {"pixels": np.zeros((8, 8, 3), np.uint8), "photometric": "RGB", "samples_per_pixel": 3},
            RejectReason.color_image,
            "'RGB'",
        ),
        ({"photometric": "PALETTE COLOR"}, RejectReason.color_image, "'PALETTE COLOR'"),
        ({"declared_rows": 10000, "declared_cols": 9000}, RejectReason.too_large, "90000000 pixels"),
        ({"pixel_bytes": b"\x00" * 100}, RejectReason.pixel_data_short, "found 100"),
        ({"jpeg_garbage": True, "pixels": gradient(16, 16, 8), "bits_stored": 8}, RejectReason.decode_failed, ""),
    ],
)
def test_reject_codes(tmp_path: Path, kwargs: dict, reason: RejectReason, in_detail: str) -> None:
    kind, row = convert(make_dicom(tmp_path / "x.dcm", **kwargs), tmp_path / "out")
    assert kind == "reject"
    assert row["reason"] == reason
    assert in_detail in row["detail"]
    assert not list((tmp_path / "out").rglob("*.png*"))


def test_too_large_is_decided_before_reading_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrvqa.imaging import convert as convert_module

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decode must not be called for an oversized image")

    monkeypatch.setattr(convert_module, "decode", no_decoding)
    path = make_dicom(tmp_path / "big.dcm", declared_rows=30000, declared_cols=30000, pixel_bytes=b"\x00" * 64)
    assert convert(path, tmp_path / "out")[1]["reason"] == RejectReason.too_large


def test_truncated_file_is_pixel_data_short(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "t.dcm", rows=64, cols=64)
    path.write_bytes(path.read_bytes()[:-500])
    kind, row = convert(path, tmp_path / "out")
    assert row["reason"] == RejectReason.pixel_data_short and "file ends" in row["detail"]


def test_empty_body_part_follows_policy(tmp_path: Path) -> None:
    from dataclasses import replace

    path = make_dicom(tmp_path / "e.dcm", body_part="")
    assert convert(path, tmp_path / "out")[0] == "image"
    strict = replace(SETTINGS, accept_empty_body_part=False)
    assert convert(path, tmp_path / "out2", strict)[1]["reason"] == RejectReason.not_chest


def test_monochrome1_header_comes_out_inverted(fixtures: Path, tmp_path: Path) -> None:
    _, normal = convert(fixtures / "siim_chest_pa.dcm", tmp_path / "a")
    _, relabelled = convert(fixtures / "siim_fake_monochrome1.dcm", tmp_path / "b")
    assert (normal["inverted"], relabelled["inverted"]) == (False, True)
    a, b = png_array(normal).astype(int), png_array(relabelled).astype(int)
    assert a.shape == b.shape == (256, 256)
    assert np.abs((255 - a) - b).max() <= 1
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] < -0.99


def test_monochrome1_with_inverse_presentation_lut_is_inverted_once(fixtures: Path, tmp_path: Path) -> None:
    kind, row = convert(fixtures / "dx_cat_thorax_inverse.dcm", tmp_path / "out")
    assert kind == "image" and row["inverted"] is True and row["window_source"] == "window"


def test_monochrome1_synthetic_is_the_inverse(tmp_path: Path) -> None:
    from dataclasses import replace

    full_size = replace(SETTINGS, scale=1.0)  # no resampling: the display LUTs alone must be exact inverses
    pixels = gradient(40, 40, 12)
    _, m2 = convert(make_dicom(tmp_path / "m2.dcm", pixels=pixels, window=(2048, 4096)), tmp_path / "o1", full_size)
    _, m1 = convert(
        make_dicom(tmp_path / "m1.dcm", pixels=pixels, window=(2048, 4096), photometric="MONOCHROME1"),
        tmp_path / "o2",
        full_size,
    )
    assert np.array_equal(255 - png_array(m2), png_array(m1))


def test_ids_are_pseudonyms_and_paths_stay_inside_the_output(tmp_path: Path) -> None:
    hostile = {"SOPInstanceUID": "../../../escape", "StudyInstanceUID": "/etc/passwd"}
    path = make_dicom(tmp_path / "h.dcm", uids=hostile)
    out = tmp_path / "out"
    kind, row = convert(path, out, entry=ManifestEntry("../../up/and/away", "p1", "generic"))
    assert kind == "image"
    pending = Path(row["pending_png"]).resolve()
    assert pending.is_relative_to(out.resolve())
    assert (out / row["png_path"]).resolve().is_relative_to((out / "png").resolve())
    assert ".." not in row["png_path"] and "escape" not in row["png_path"]
    assert row["image_id"].startswith("im-") and "escape" not in row["image_id"]
    assert row["study_id"] == "../../up/and/away"  # the manifest's id is data, never a path


def test_pseudonyms_depend_on_the_key(tmp_path: Path) -> None:
    from dataclasses import replace

    path = make_dicom(tmp_path / "k.dcm")
    _, first = convert(path, tmp_path / "a")
    _, again = convert(path, tmp_path / "b")
    _, other_key = convert(path, tmp_path / "c", replace(SETTINGS, pseudonym_key=b"another-key"))
    assert first["image_id"] == again["image_id"] and first["study_id"] == again["study_id"]
    assert first["image_id"] != other_key["image_id"] and first["patient_id"] != other_key["patient_id"]


def test_view_from_patient_orientation_and_description(tmp_path: Path) -> None:
    import pydicom

    lateral = make_dicom(tmp_path / "lat.dcm", view_position=None)
    ds = pydicom.dcmread(lateral)
    ds.PatientOrientation = ["A", "F"]
    ds.save_as(lateral)
    assert convert(lateral, tmp_path / "o")[1]["view_plane"] == "lateral"
    described = make_dicom(tmp_path / "desc.dcm", view_position=None)
    ds = pydicom.dcmread(described)
    ds.SeriesDescription = "CHEST AP PORTABLE"
    ds.save_as(described)
    row = convert(described, tmp_path / "o2")[1]
    assert (row["view_position"], row["view_source"]) == ("AP", "description")
    bare = make_dicom(tmp_path / "bare.dcm", view_position=None)
    assert convert(bare, tmp_path / "o3")[1]["view_position"] == "unknown"
