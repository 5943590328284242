"""Synthetic DICOM files for tests: each argument maps to one header attribute (written by the same
functions as the synthetic corpus, cxrvqa.synth.dicom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.uid import ComputedRadiographyImageStorage, CTImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit

from cxrvqa.synth.dicom import new_dataset, save, set_pixels

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
    attributes: dict[str, object] = {"Modality": modality}
    if body_part is not None:
        attributes["BodyPartExamined"] = body_part
    if view_position is not None:
        attributes["ViewPosition"] = view_position
    attributes.update(PHI if phi else {})
    attributes.update(uids or {})
    if frames is not None:
        attributes["NumberOfFrames"] = frames
    if window is not None:
        attributes["WindowCenter"], attributes["WindowWidth"] = window
    if rescale is not None:
        attributes["RescaleSlope"], attributes["RescaleIntercept"] = rescale
    if pixel_spacing is not None:
        attributes["PixelSpacing"] = list(pixel_spacing)
    ds = new_dataset(
        CTImageStorage if modality == "CT" else ComputedRadiographyImageStorage,
        JPEGBaseline8Bit if jpeg_garbage else ExplicitVRLittleEndian,
        attributes,
    )
    set_pixels(
        ds,
        pixels,
        bits_stored=bits_stored,
        photometric=photometric,
        samples_per_pixel=samples_per_pixel,
        declared_rows=declared_rows,
        declared_cols=declared_cols,
        pixel_bytes=pixel_bytes,
    )
    if not with_pixel_data:
        del ds.PixelData
    elif jpeg_garbage:
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 this is not a JPEG stream \xff\xd9"])
        ds["PixelData"].VR = "OB"
    return save(ds, path, preamble)
