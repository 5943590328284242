"""Synthetic DICOM files for tests: each argument maps to one header attribute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, ComputedRadiographyImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit

PHI = {
    "PatientName": "Doe^Jane^Quincy",
    "PatientID": "MRN-99887766",
    "PatientBirthDate": "19450607",
    "InstitutionName": "Saint Example Memorial Hospital",
    "AccessionNumber": "ACC-55443322",
    "ReferringPhysicianName": "Who^Doctor",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1111111111",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.2222222222",
    "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.3333333333",
}


def gradient(rows: int, cols: int, bits: int = 12) -> np.ndarray:
    """A smooth, non-constant test image covering most of the bit range."""
    y, x = np.mgrid[0:rows, 0:cols]
    values = (x / max(cols - 1, 1) * 0.7 + y / max(rows - 1, 1) * 0.3) * (2**bits - 1)
    return values.astype(np.uint16 if bits > 8 else np.uint8)


def make_dicom(
    path: Path,
    *,
    modality: str = "CR",
    body_part: str | None = "CHEST",
    view_position: str | None = "PA",
    pixels: np.ndarray | None = None,
    rows: int = 64,
    cols: int = 48,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    samples_per_pixel: int = 1,
    frames: int | None = None,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    pixel_spacing: tuple[float, float] | None = (0.2, 0.2),
    declared_rows: int | None = None,
    declared_cols: int | None = None,
    pixel_bytes: bytes | None = None,
    with_pixel_data: bool = True,
    jpeg_garbage: bool = False,
    uids: dict[str, str] | None = None,
    phi: bool = True,
    preamble: bool = True,
) -> Path:
    if pixels is None:
        pixels = gradient(rows, cols, bits_stored)
    rows, cols = pixels.shape[:2]
    meta = FileMetaDataset()
    sop_class = CTImageStorage if modality == "CT" else ComputedRadiographyImageStorage
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg_garbage else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if view_position is not None:
        ds.ViewPosition = view_position
    for keyword, value in (PHI if phi else {}).items():
        setattr(ds, keyword, value)
    for keyword, value in (uids or {}).items():
        setattr(ds, keyword, value)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3.4")
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
    if frames is not None:
        ds.NumberOfFrames = frames
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if with_pixel_data:
        if jpeg_garbage:
            ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 this is not a JPEG stream \xff\xd9"])
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = pixel_bytes if pixel_bytes is not None else pixels.tobytes()
            ds["PixelData"].VR = "OW" if ds.BitsAllocated == 16 else "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=preamble)
    return path
