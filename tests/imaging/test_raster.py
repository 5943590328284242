"""JPEG and PNG inputs: detection by content, decoding, rendering and every reject (tests/data/raster/cases)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxrvqa.imaging.models import RejectReason
from cxrvqa.imaging.raster import sniff
from tests.dicom_factory import make_dicom
from tests.imaging.helpers import SETTINGS, convert, png_array

CASES = Path(__file__).parents[1] / "data" / "raster" / "cases"

#: file -> (outcome, reject reason or decode method, a part of the reject detail)
EXPECTED = {
    "grey.jpg": ("image", "jpeg_dct_1/4", None),
    "grey_rgb.jpg": ("image", "jpeg_dct_1/4", None),
    "grey_rgb.png": ("image", "png", None),
    "grey16.png": ("image", "png", None),
    "named_like_dicom.dcm": ("image", "jpeg_dct_1/4", None),
    "colour.png": ("reject", RejectReason.color_image, "expected equal R, G and B (grey), found channels differing"),
    "colour.jpg": ("reject", RejectReason.color_image, "expected equal R, G and B (grey), found channels differing"),
    "truncated.jpg": ("reject", RejectReason.decode_failed, "truncated"),
    "truncated.png": ("reject", RejectReason.decode_failed, "truncated"),
    "corrupt.jpg": ("reject", RejectReason.decode_failed, "JPEG header unreadable"),
    "huge_header.png": (
        "reject",
        RejectReason.too_large,
        "declared 100000x100000 = 10000000000 pixels, over the bound of 50000000",
    ),
    "text_named.jpg": ("reject", RejectReason.not_dicom, ""),
}


def test_every_case_is_covered() -> None:
    assert {p.name for p in CASES.iterdir()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_gets_its_outcome(name: str, tmp_path: Path) -> None:
    kind, row = convert(CASES / name, tmp_path)
    outcome, code, detail = EXPECTED[name]
    assert kind == outcome, row
    if kind == "image":
        assert row["decode_method"] == code
    else:
        assert row["reason"] == code
        assert detail in row["detail"]


def test_content_decides_the_format_not_the_name() -> None:
    assert sniff((CASES / "named_like_dicom.dcm").read_bytes()[:8]) == "jpeg"
    assert sniff((CASES / "grey16.png").read_bytes()[:8]) == "png"
    assert sniff(b"DICM\x00\x00\x00\x00") == "dicom"


def test_eight_bit_images_keep_the_publishers_window(tmp_path: Path) -> None:
    kind, row = convert(CASES / "grey_rgb.png", tmp_path)
    source = np.asarray(Image.open(CASES / "grey_rgb.png"))[..., 0]
    expected = np.asarray(Image.fromarray(source).resize((64, 64), Image.Resampling.LANCZOS), dtype=float)
    assert (row["window_source"], row["window_center"], row["bits_allocated"], row["source_format"]) == (
        "as_published",
        None,
        8,
        "png",
    )
    assert (row["png_cols"], row["png_rows"], row["decode_reduction"]) == (64, 64, 1)
    assert np.abs(png_array(row).astype(float) - expected).mean() < 1.0


def test_jpeg_is_decoded_at_the_smallest_dct_scale(tmp_path: Path) -> None:
    kind, row = convert(CASES / "grey.jpg", tmp_path)
    full = np.asarray(Image.open(CASES / "grey.jpg").convert("L"))
    expected = np.asarray(Image.fromarray(full).resize((64, 64), Image.Resampling.LANCZOS), dtype=float)
    assert (row["decode_reduction"], row["source_format"], row["transfer_syntax"]) == (4, "jpeg", "")
    assert np.abs(png_array(row).astype(float) - expected).mean() < 2.0


def test_sixteen_bit_png_gets_the_percentile_window(tmp_path: Path) -> None:
    kind, row = convert(CASES / "grey16.png", tmp_path)
    stored = np.asarray(Image.open(CASES / "grey16.png"))
    low, high = np.percentile(stored, (0.5, 99.5))
    assert (row["window_source"], row["bits_allocated"]) == ("percentile", 16)
    assert abs(row["window_center"] - (low + high) / 2) < 16 and abs(row["window_width"] - (high - low)) < 32
    rendered = png_array(row)
    assert rendered.min() <= 5 and rendered.max() >= 250  # the window spreads the 12-bit values over 0..255


def test_ids_of_unlisted_files_are_pseudonyms_of_their_content(tmp_path: Path) -> None:
    kind, row = convert(CASES / "grey.jpg", tmp_path)
    assert row["image_id"].startswith("im-") and row["study_id"].startswith("st-")
    assert row["patient_id"].startswith("pt-") and row["id_source"] == "file_content"
    assert (row["view_position"], row["view_plane"]) == ("unknown", "unknown")


def test_a_too_large_declaration_is_rejected_before_decoding(tmp_path: Path) -> None:
    # the file holds 64 bytes of pixels: a decode would fail, so the reason proves no decode was tried
    kind, row = convert(CASES / "huge_header.png", tmp_path, replace(SETTINGS, max_pixels=10**11))
    assert (kind, row["reason"]) == ("reject", RejectReason.decode_failed)


def test_burned_in_annotation_is_rejected_unless_kept(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "burned.dcm", phi=False, uids={"SOPInstanceUID": "1.2.3.4"})
    ds = pydicom.dcmread(path)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(path)
    kind, row = convert(path, tmp_path / "out")
    assert (kind, row["reason"]) == ("reject", RejectReason.burned_in_annotation)
    assert row["detail"].startswith("BurnedInAnnotation is YES")
    kind, row = convert(path, tmp_path / "out", replace(SETTINGS, accept_burned_in_annotation=True))
    assert (kind, row["source_format"], row["id_source"]) == ("image", "dicom", "dicom_uids")
