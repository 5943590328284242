"""The display lookup table: modality rescale, VOI LUT / window / percentile, inversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from cxrvqa.imaging.window import to_display


def _ds(**attributes: object) -> Dataset:
    ds = Dataset()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def test_linear_window_follows_the_dicom_formula() -> None:
    stored = np.array([[0, 1000, 1500, 2000, 2500, 3000, 4095]], dtype=np.uint16)
    display, window = to_display(stored, _ds(WindowCenter=2000, WindowWidth=1001), False, (0.5, 99.5))
    # PS3.3 C.11.2.1.2: below c - 0.5 - (w-1)/2 -> 0, above c - 0.5 + (w-1)/2 -> max, linear between.
    assert display.tolist() == [[0, 0, 0, 128, 255, 255, 255]]
    assert (window.source, window.center, window.width) == ("window", 2000.0, 1001.0)


def test_rescale_is_applied_before_the_window() -> None:
    stored = np.array([[0, 100, 200]], dtype=np.uint16)
    ds = _ds(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=201)
    display, _ = to_display(stored, ds, False, (0.5, 99.5))
    assert display.tolist() == [[0, 128, 255]]


def test_inversion_maps_black_to_white() -> None:
    stored = np.array([[0, 4095]], dtype=np.uint16)
    display, _ = to_display(stored, _ds(WindowCenter=2048, WindowWidth=4096), True, (0.5, 99.5))
    assert display.tolist() == [[255, 0]]


def test_percentile_window_when_the_header_has_none() -> None:
    rng = np.random.default_rng(0)
    stored = rng.integers(1000, 3000, size=(200, 200)).astype(np.uint16)
    stored[0, :10] = 65000  # a few hot pixels must not flatten the image
    display, window = to_display(stored, _ds(), False, (0.5, 99.5))
    assert window.source == "percentile"
    assert 1000 <= window.center - window.width / 2 <= 1030 and 2970 <= window.center + window.width / 2 <= 3000
    assert display.min() == 0 and display.max() == 255 and 100 < display.mean() < 155


def test_unusable_header_window_falls_back_to_percentile() -> None:
    stored = np.full((50, 50), 40000, dtype=np.uint16)
    stored[:25] = 50000
    display, window = to_display(stored, _ds(WindowCenter=2725, WindowWidth=5310), False, (0.5, 99.5))
    assert window.source == "percentile_header_window_unusable"
    assert set(np.unique(display).tolist()) == {0, 255}


def test_eight_bit_without_window_keeps_its_range() -> None:
    stored = np.array([[0, 17, 200, 255]], dtype=np.uint8)
    display, window = to_display(stored, _ds(), False, (0.5, 99.5))
    assert display.tolist() == [[0, 17, 200, 255]] and window.source == "full_range"


def test_signed_pixels_use_the_whole_domain() -> None:
    stored = np.array([[-1000, 0, 1000]], dtype=np.int16)
    display, _ = to_display(stored, _ds(WindowCenter=0, WindowWidth=2001), False, (0.5, 99.5))
    assert display.tolist() == [[0, 128, 255]]


def test_constant_image_does_not_divide_by_zero() -> None:
    display, window = to_display(np.full((8, 8), 7, np.uint16), _ds(), False, (0.5, 99.5))
    assert window.source == "min_max" and display.max() == 0


def test_voi_lut_sequence_is_used(fixtures: Path) -> None:
    ds = pydicom.dcmread(fixtures / "vlut_04_voi_lut_sequence.dcm")
    display, window = to_display(ds.pixel_array, ds, False, (0.5, 99.5))
    assert window.source == "voi_lut_sequence"
    expected = pydicom.pixels.apply_voi_lut(ds.pixel_array, ds, prefer_lut=True).astype(float)
    expected = np.rint((expected - expected.min()) / (expected.max() - expected.min()) * 255)
    assert np.abs(display.astype(float) - expected).max() <= 1


@pytest.mark.parametrize(("function", "expected"), [("SIGMOID", [30, 128, 225]), ("LINEAR_EXACT", [0, 128, 255])])
def test_voi_lut_functions(function: str, expected: list[int]) -> None:
    stored = np.array([[0, 2048, 4095]], dtype=np.uint16)
    display, _ = to_display(
        stored, _ds(WindowCenter=2048, WindowWidth=4096, VOILUTFunction=function), False, (0.5, 99.5)
    )
    assert display.tolist() == [expected]
