"""JPEG and PNG inputs: recognise them by content, read their header, decode them reduced where possible.

Every decision that needs only the header (size, colour type) is made before any pixel is decoded.
8-bit images were windowed by their publisher and keep their values; 16-bit PNGs (PadChest) get the
percentile window that DICOMs without a window get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile
from pydicom.dataset import Dataset

from cxrvqa.imaging.decode import DecodedPixels, jpeg_draft
from cxrvqa.imaging.models import ImageRejection, RejectReason
from cxrvqa.imaging.window import DisplayWindow, to_display

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
#: Pillow modes read as grey as they are; RGB-like modes are grey only when their channels agree.
GREY_MODES = {"L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 16, "1": 8, "LA": 8}
COLOUR_MODES = {"RGB", "RGBA", "P", "PA", "YCbCr", "RGBX"}
#: Largest difference between the channels of an RGB pixel that still counts as grey (JPEG rounding).
GREY_TOLERANCE = 2

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is a reject, not a half-grey image


def sniff(magic: bytes) -> str:
    """'png', 'jpeg' or 'dicom' (anything else: the DICOM reader decides) from a file's first bytes."""
    if magic.startswith(PNG_MAGIC):
        return "png"
    if magic.startswith(JPEG_MAGIC):
        return "jpeg"
    return "dicom"


@dataclass
class RasterHeader:
    """What a JPEG or PNG header says, read without decoding pixels."""

    image: Image.Image  # opened lazily: no pixels decoded yet
    format: str  # png | jpeg
    rows: int
    cols: int
    bits: int  # 8 or 16 per sample


def read_raster_header(path: str, kind: str, max_pixels: int) -> RasterHeader:
    """Open ``path`` lazily and check what can be checked before decoding, or raise ImageRejection."""
    try:
        image = Image.open(path, formats=[kind.upper()])
    except OSError as exc:
        raise ImageRejection(RejectReason.decode_failed, f"{kind.upper()} header unreadable: {exc}") from exc
    cols, rows = image.size
    if image.mode not in GREY_MODES and image.mode not in COLOUR_MODES:
        raise ImageRejection(
            RejectReason.color_image,
            f"expected a greyscale {kind.upper()} (8- or 16-bit grey, or RGB with equal "
            f"channels), found mode {image.mode}",
        )
    if rows <= 0 or cols <= 0:
        raise ImageRejection(RejectReason.decode_failed, f"expected positive width and height, found {cols}x{rows}")
    if rows * cols > max_pixels:
        raise ImageRejection(
            RejectReason.too_large, f"declared {rows}x{cols} = {rows * cols} pixels, over the bound of {max_pixels}"
        )
    return RasterHeader(image, kind, rows, cols, GREY_MODES.get(image.mode, 8))


def _grey_of(rgb: np.ndarray) -> np.ndarray:
    """The first channel of an RGB(A) array whose colour channels agree, else a color_image rejection."""
    channels = rgb[..., :3].astype(np.int16)
    spread = int(np.abs(channels - np.roll(channels, 1, axis=-1)).max())
    if spread > GREY_TOLERANCE:
        raise ImageRejection(
            RejectReason.color_image, f"expected equal R, G and B (grey), found channels differing by up to {spread}"
        )
    return np.ascontiguousarray(rgb[..., 0])


def decode_raster(header: RasterHeader, target: tuple[int, int]) -> DecodedPixels:
    """Grey pixels of the image, DCT-reduced for JPEG; raises ImageRejection for colour, codec errors as they are."""
    image = header.image
    full_box = (0.0, 0.0, float(header.cols), float(header.rows))
    if header.format == "jpeg":
        grey = image.mode == "L"
        stored, reduction, box = jpeg_draft(image, "L" if grey else "RGB", target)
        return DecodedPixels(stored if grey else _grey_of(stored), reduction, f"jpeg_dct_1/{reduction}", box)
    image.load()
    if image.mode in COLOUR_MODES:
        rgb = image.convert("RGBA" if "A" in image.mode else "RGB")
        return DecodedPixels(_grey_of(np.asarray(rgb)), 1, "png", full_box)
    if image.mode in ("1", "LA"):
        image = image.convert("L")
    stored = np.asarray(image)
    if stored.dtype not in (np.uint8, np.uint16):  # mode I: 16-bit samples in int32
        stored = stored.astype(np.uint16)
    return DecodedPixels(stored, 1, "png", full_box)


def raster_display(stored: np.ndarray, percentile_window: tuple[float, float]) -> tuple[np.ndarray, DisplayWindow]:
    """8-bit samples as published (already windowed); 16-bit ones through the percentile window of DICOMs
    without a VOI (the same lookup-table code, over an empty header)."""
    if stored.dtype == np.uint8:
        return stored, DisplayWindow("as_published", None, None)
    return to_display(stored, Dataset(), False, percentile_window)
