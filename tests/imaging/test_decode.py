"""Reduced-resolution decoding agrees with pydicom's full decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from cxrvqa.core.resources import resource
from cxrvqa.imaging.decode import decode, j2k_decomposition_levels
from cxrvqa.imaging.header import read_header

DEMO = Path(str(resource("demo", "images")))


def _full_then_shrink(ds: pydicom.Dataset, size: tuple[int, int]) -> np.ndarray:
    full = ds.pixel_array.astype(np.float32)
    return np.asarray(Image.fromarray(full, mode="F").resize(size, Image.Resampling.BOX))


def test_jpeg2000_decodes_reduced_with_the_stored_bit_depth() -> None:
    header = read_header(str(DEMO / "study3" / "chest_pa_j2k.dcm"))
    decoded = decode(header, (460, 489))
    assert decoded.method.startswith("jpeg2000_level") and decoded.reduction >= 2
    reference = _full_then_shrink(header.dataset, decoded.stored.shape[::-1])
    # Pillow scales samples to 16 bits; the decoder must give back 15-bit stored values.
    assert decoded.stored.max() < 2**15
    assert abs(decoded.stored.mean() - reference.mean()) / reference.mean() < 0.01


def test_padded_jpeg2000_codestream_is_decoded_reduced() -> None:
    header = read_header(str(DEMO / "study4" / "chest_dx.dcm"))
    decoded = decode(header, (355, 354))
    assert decoded.method == "jpeg2000_level2" and decoded.stored.shape == (354, 355)


def test_jpeg_baseline_uses_dct_scaling(fixtures: Path) -> None:
    header = read_header(str(fixtures / "siim_chest_pa.dcm"))
    decoded = decode(header, (256, 256))
    assert decoded.method == "jpeg_dct_1/4" and decoded.stored.shape == (256, 256)
    reference = _full_then_shrink(header.dataset, (256, 256))
    assert np.abs(decoded.stored.astype(float) - reference).mean() < 2.0


def test_rle_goes_through_pydicom_with_the_pylibjpeg_rle_plugin(fixtures: Path) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import RLELossless

    assert "pylibjpeg" in get_decoder(RLELossless).available_plugins  # pylibjpeg-rle: ~10x pydicom's own
    header = read_header(str(fixtures / "mr_small_rle.dcm"))
    decoded = decode(header, (16, 16))
    assert decoded.method == "pydicom" and decoded.stored.shape == (64, 64) and decoded.stored.dtype == np.int16


def test_decomposition_levels_from_the_cod_marker() -> None:
    header = read_header(str(DEMO / "study3" / "chest_pa_j2k.dcm"))
    codestream = next(pydicom.encaps.generate_frames(header.dataset.PixelData, number_of_frames=1))
    assert j2k_decomposition_levels(codestream) == 5


def test_reduced_jpeg2000_render_matches_the_full_resolution_render() -> None:
    """The low-pass samples sit on source pixel f*i: resampling must account for it (mean diff <= 2/255)."""
    from cxrvqa.imaging.convert import _resample, target_size
    from cxrvqa.imaging.window import to_display

    for name in ("study3/chest_pa_j2k.dcm", "study4/chest_dx.dcm"):
        header = read_header(str(DEMO / name))
        size = target_size(header.rows, header.cols, 0.25, None)
        full, _ = to_display(header.dataset.pixel_array, header.dataset, header.inverted, (0.5, 99.5))
        reference = np.asarray(Image.fromarray(full).resize(size, Image.Resampling.LANCZOS)).astype(float)
        decoded = decode(header, size)
        assert decoded.reduction >= 2
        display, _ = to_display(decoded.stored, header.dataset, header.inverted, (0.5, 99.5))
        ours = np.asarray(_resample(display, decoded.box, size)).astype(float)
        assert np.abs(ours - reference).mean() <= 2.0, name
