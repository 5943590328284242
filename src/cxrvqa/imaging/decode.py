"""Pixel decoding at the lowest resolution the codec can give for the target size.

JPEG 2000 decodes to a wavelet resolution level and baseline JPEG to a DCT scale (both are
proper low-pass filters, so the result stays anti-aliased); everything else goes through
pydicom and its pylibjpeg plugins at full resolution.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import openjpeg
from PIL import Image
from pydicom.encaps import generate_frames

from cxrvqa.imaging.header import Header

JPEG2000_SYNTAXES = {
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
}
JPEG_BASELINE_SYNTAX = "1.2.840.10008.1.2.4.50"

Image.MAX_IMAGE_PIXELS = None  # size bounds are enforced from the DICOM, JPEG or PNG header before decoding


@dataclass
class DecodedPixels:
    stored: np.ndarray  # 2-D stored values (before any LUT), possibly reduced
    reduction: int  # the codec's downscale factor (1 = full resolution)
    method: str
    #: The full image's extent in ``stored``'s pixel coordinates (left, top, right, bottom), for resampling.
    #: A JPEG 2000 low-pass sample i sits on source pixel f*i, not on the centre of a block of f pixels,
    #: so its extent starts (f-1)/(2f) in and may reach past the last sample.
    box: tuple[float, float, float, float]


def _first_frame(header: Header) -> bytes:
    return next(generate_frames(header.dataset.PixelData, number_of_frames=1))


def _trim_padding(codestream: bytes) -> bytes:
    """Drop zero padding after the end-of-codestream marker (some writers pad to even length)."""
    end = codestream.rfind(b"\xff\xd9")
    if end >= 0 and not codestream[end + 2 :].strip(b"\x00"):
        return codestream[: end + 2]
    return codestream


def j2k_decomposition_levels(codestream: bytes) -> int:
    """Number of wavelet decomposition levels from the COD marker of the main header."""
    start = codestream.find(b"\xff\x4f\xff\x51")  # SOC + SIZ: also skips a JP2 wrapper if present
    if start < 0:
        raise ValueError("no JPEG 2000 codestream start (SOC/SIZ) found")
    end = codestream.find(b"\xff\x90", start)  # first tile-part (SOT) ends the main header
    cod = codestream.find(b"\xff\x52", start, end if end > 0 else None)
    if cod < 0:
        raise ValueError("no COD marker in the JPEG 2000 main header")
    return codestream[cod + 9]


def _reduction_steps(header: Header, target: tuple[int, int], limit: int) -> int:
    """Largest power-of-two reduction that keeps both sides at least the target size."""
    steps = 0
    while steps < limit:
        factor = 2 ** (steps + 1)
        if math.ceil(header.cols / factor) < target[0] or math.ceil(header.rows / factor) < target[1]:
            break
        steps += 1
    return steps


def _decode_jpeg2000(header: Header, target: tuple[int, int]) -> DecodedPixels:
    codestream = _trim_padding(_first_frame(header))
    parameters = openjpeg.get_parameters(codestream)
    if parameters["is_signed"] or parameters["precision"] > 16:
        raise ValueError("signed or >16-bit JPEG 2000 is left to pydicom")
    steps = _reduction_steps(header, target, j2k_decomposition_levels(codestream))
    while True:
        image = Image.open(io.BytesIO(codestream))
        image.reduce = steps  # Pillow's JPEG 2000 plugin decodes only the needed resolution levels
        try:
            image.load()
            break
        except OSError:
            # OpenJPEG refuses some reductions of some codestreams; one level less usually works.
            if steps == 0:
                raise
            steps -= 1
    stored = np.asarray(image)
    if image.mode.startswith("I;16") and parameters["precision"] < 16:
        stored = stored >> (16 - parameters["precision"])  # Pillow scales samples up to 16 bits
    factor = 2**steps
    start = (factor - 1) / (2 * factor)
    box = (start, start, (header.cols - 0.5) / factor + 0.5, (header.rows - 0.5) / factor + 0.5)
    return DecodedPixels(stored, factor, f"jpeg2000_level{steps}", box)


def jpeg_draft(
    image: Image.Image, mode: str, target: tuple[int, int]
) -> tuple[np.ndarray, int, tuple[float, float, float, float]]:
    """(pixels in ``mode``, DCT reduction, full-image extent) of a JPEG decoded at the smallest DCT scale
    (1/2, 1/4 or 1/8, never below ``target``), for `_resample`."""
    cols, rows = image.size
    image.draft(mode, target)
    image = image.convert(mode) if image.mode != mode else image
    stored = np.asarray(image)
    reduction = max(1, round(cols / stored.shape[1]))
    box = (0.0, 0.0, cols / reduction, rows / reduction)  # DCT scaling averages aligned blocks
    return stored, reduction, box


def _decode_jpeg_baseline(header: Header, target: tuple[int, int]) -> DecodedPixels:
    stored, reduction, box = jpeg_draft(Image.open(io.BytesIO(_first_frame(header))), "L", target)
    return DecodedPixels(stored, reduction, f"jpeg_dct_1/{reduction}", box)


def decode(header: Header, target: tuple[int, int]) -> DecodedPixels:
    """Decode the single frame, reduced where the codec allows; raises on codec errors.

    A reduced decode that fails falls back to pydicom's full decode, whose error (if it
    fails too) is the one reported.
    """
    syntax = header.transfer_syntax
    reduced = None
    if syntax in JPEG2000_SYNTAXES and not header.signed and header.bits_allocated <= 16:
        reduced = _decode_jpeg2000
    elif syntax == JPEG_BASELINE_SYNTAX and header.bits_allocated == 8 and header.samples_per_pixel == 1:
        reduced = _decode_jpeg_baseline
    if reduced is not None:
        try:
            return reduced(header, target)
        except Exception:  # noqa: BLE001 - pydicom gets its chance below
            pass
    stored = header.dataset.pixel_array
    if stored.ndim != 2:
        raise ValueError(f"expected a 2-D single-frame array, found shape {stored.shape}")
    if stored.dtype.itemsize > 2:
        raise ValueError(f"expected 8- or 16-bit pixels, found {stored.dtype}")
    return DecodedPixels(stored, 1, "pydicom", (0.0, 0.0, float(header.cols), float(header.rows)))
