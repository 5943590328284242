"""Writing DICOM files from pixels and header attributes: shared by the synthetic corpus and the test
factory (tests/dicom_factory.py), so that both write files the same way."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEG2000, JPEG2000Lossless

#: Transfer syntaxes whose pixel data `set_pixels` writes natively; JPEG 2000 goes through `compress`.
JPEG2000_SYNTAXES = {str(JPEG2000Lossless), str(JPEG2000)}


def new_dataset(sop_class: str, transfer_syntax: str, attributes: Mapping[str, Any]) -> Dataset:
    """A data set with its file meta information and the given attributes (by keyword)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3.4")
    return ds


def set_pixels(
    ds: Dataset,
    pixels: np.ndarray,
    *,
    bits_stored: int,
    photometric: str,
    samples_per_pixel: int = 1,
    declared_rows: int | None = None,
    declared_cols: int | None = None,
    pixel_bytes: bytes | None = None,
) -> None:
    """The image pixel module and native Pixel Data. ``declared_*`` and ``pixel_bytes`` let a test write a
    header that disagrees with its pixels."""
    rows, cols = pixels.shape[:2]
    ds.Rows = declared_rows or rows
    ds.Columns = declared_cols or cols
    ds.SamplesPerPixel = samples_per_pixel
    ds.PhotometricInterpretation = photometric
    if samples_per_pixel > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if pixels.dtype.itemsize == 1 else 16
    ds.BitsStored = min(bits_stored, ds.BitsAllocated)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixel_bytes if pixel_bytes is not None else pixels.tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated == 16 else "OB"


def compress_jpeg2000(ds: Dataset, pixels: np.ndarray, compression_ratio: float | None) -> None:
    """Encode the pixels as JPEG 2000 (lossless, or lossy at a compression ratio) with pylibjpeg-openjpeg;
    the pixel module must be set already."""
    if compression_ratio is None:
        ds.compress(JPEG2000Lossless, pixels, encoding_plugin="pylibjpeg")
    else:
        ds.compress(JPEG2000, pixels, encoding_plugin="pylibjpeg", j2k_cr=[compression_ratio])


def save(ds: Dataset, path: Path, preamble: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=preamble)
    return path
