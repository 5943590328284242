"""Read a DICOM header without touching pixel data, and decide whether to accept it.

Every decision here is made from the header alone, so that rejected or oversized files
are never decoded and never allocated.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.imaging.models import ImageRejection, RejectReason

PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
NATIVE_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
}
#: Attributes whose values identify a person or a visit: scrubbed from every message.
PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "AccessionNumber",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "StationName",
    "DeviceSerialNumber",
)


@dataclass(frozen=True)
class AcceptanceVocabulary:
    """The parsed `schemas/vocab/dicom_acceptance.yaml`."""

    data: dict[str, Any]
    content_hash: str

    @property
    def radiograph_modalities(self) -> set[str]:
        return set(self.data["radiograph_modalities"])

    def view_lookup(self) -> dict[str, str]:
        return {raw.upper(): view for view, raws in self.data["view_positions"].items() for raw in raws}

    def plane_of(self, view: str) -> str:
        for plane, views in self.data["view_planes"].items():
            if view in views:
                return plane
        return "unknown"


@lru_cache(maxsize=1)
def acceptance_vocabulary() -> AcceptanceVocabulary:
    data, digest = load_checked_yaml("schemas/vocab/dicom_acceptance.yaml", "dicom_acceptance.schema.json")
    return AcceptanceVocabulary(data, digest)


@dataclass
class Header:
    """The header attributes the image stage uses, typed and defaulted."""

    dataset: Dataset
    modality: str = ""
    sop_class: str = ""
    body_part: str = ""
    descriptions: str = ""
    view_position: str = ""
    patient_orientation: list[str] = field(default_factory=list)
    photometric: str = ""
    samples_per_pixel: int = 1
    rows: int = 0
    cols: int = 0
    frames: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    signed: bool = False
    transfer_syntax: str = ""
    pixel_length: int | None = None  # None: undefined (encapsulated) or unknown
    pixel_offset: int | None = None
    has_pixel_data: bool = False
    presentation_lut_shape: str = ""
    burned_in_annotation: str = ""  # YES | NO | '' (absent)
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str = "none"
    uids: dict[str, str] = field(default_factory=dict)
    phi_values: list[str] = field(default_factory=list)

    @property
    def inverted(self) -> bool:
        """Bone must come out white: MONOCHROME1 and an INVERSE presentation LUT both mean invert."""
        return self.photometric == "MONOCHROME1" or self.presentation_lut_shape == "INVERSE"


def scrub(text: str, phi_values: list[str], limit: int = 500) -> str:
    """Remove identifying header values from a message before it is stored or logged."""
    for value in sorted(phi_values, key=len, reverse=True):
        if len(value) >= 3:
            text = text.replace(value, "[redacted]")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _int(ds: Dataset, keyword: str, default: int) -> int:
    value = ds.get(keyword, None)
    if value in (None, ""):
        return default
    return int(value)


def read_header(path: str) -> Header:
    """Parse the header (pixel data deferred) or raise ImageRejection."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ImageRejection(RejectReason.unreadable_file, f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    if magic[:2] == b"\x1f\x8b":
        raise ImageRejection(RejectReason.not_dicom, "gzip-compressed file: decompress it to a DICOM file first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, defer_size=1024)
            forced = False
        except InvalidDicomError:
            try:
                ds = pydicom.dcmread(path, defer_size=1024, force=True)
            except Exception as exc:  # noqa: BLE001 - any parser failure means 'not DICOM'
                raise ImageRejection(
                    RejectReason.not_dicom, f"no DICOM preamble and not parseable as a data set ({type(exc).__name__})"
                ) from exc
            forced = True
        except Exception as exc:  # noqa: BLE001
            raise ImageRejection(RejectReason.unreadable_header, f"{type(exc).__name__}: {exc}") from exc
    try:
        return _parse_header(ds, path, forced)
    except ImageRejection:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed value anywhere in the header
        raise ImageRejection(RejectReason.unreadable_header, f"{type(exc).__name__}: {exc}") from exc


def _parse_header(ds: Dataset, path: str, forced: bool) -> Header:
    identity = [kw for kw in ("SOPClassUID", "Modality", "Rows", "Columns", "StudyInstanceUID") if kw in ds]
    if forced and len(identity) < 2:
        raise ImageRejection(
            RejectReason.not_dicom,
            f"no DICOM preamble and the content does not parse as an image data set "
            f"({len(ds)} element(s) read, none of SOPClassUID/Modality/Rows/Columns)",
        )
    if not identity:
        raise ImageRejection(
            RejectReason.unreadable_header,
            f"header has no image attributes (SOPClassUID, Modality, Rows, Columns): {len(ds)} element(s) read",
        )
    phi = [_text(ds, kw) for kw in PHI_KEYWORDS if kw in ds]
    header = Header(dataset=ds, phi_values=[v for v in phi if v])
    header.modality = _text(ds, "Modality").upper()
    header.sop_class = _text(ds, "SOPClassUID")
    header.body_part = _text(ds, "BodyPartExamined").upper()
    header.descriptions = " | ".join(
        _text(ds, kw) for kw in ("StudyDescription", "SeriesDescription", "ProtocolName") if _text(ds, kw)
    )
    header.view_position = _text(ds, "ViewPosition").upper()
    orientation = ds.get("PatientOrientation", None)
    if orientation:
        values = orientation if isinstance(orientation, list | pydicom.multival.MultiValue) else [orientation]
        header.patient_orientation = [str(v).upper() for v in values]
    header.photometric = _text(ds, "PhotometricInterpretation").upper()
    header.samples_per_pixel = _int(ds, "SamplesPerPixel", 1)
    header.rows = _int(ds, "Rows", 0)
    header.cols = _int(ds, "Columns", 0)
    header.frames = _int(ds, "NumberOfFrames", 1)
    header.bits_allocated = _int(ds, "BitsAllocated", 0)
    header.bits_stored = _int(ds, "BitsStored", header.bits_allocated)
    header.signed = _int(ds, "PixelRepresentation", 0) == 1
    meta = getattr(ds, "file_meta", None)
    header.transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    header.presentation_lut_shape = _text(ds, "PresentationLUTShape").upper()
    header.burned_in_annotation = _text(ds, "BurnedInAnnotation").upper()
    raw = ds._dict.get(PIXEL_DATA_TAG)  # the deferred element: length and offset without reading the value
    if raw is not None:
        header.has_pixel_data = True
        length = getattr(raw, "length", None)
        header.pixel_length = None if length in (None, UNDEFINED_LENGTH) else int(length)
        header.pixel_offset = getattr(raw, "value_tell", None)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = ds.get(keyword, None)
        if spacing and len(spacing) == 2 and all(float(v) > 0 for v in spacing):
            header.pixel_spacing = (float(spacing[0]), float(spacing[1]))
            header.spacing_source = keyword
            break
    header.uids = {
        "sop": _text(ds, "SOPInstanceUID"),
        "study": _text(ds, "StudyInstanceUID"),
        "series": _text(ds, "SeriesInstanceUID"),
        "patient": _text(ds, "PatientID"),
    }
    return header


def check_acceptance(
    header: Header, path: str, max_pixels: int, accept_empty_body_part: bool, accept_burned_in_annotation: bool = False
) -> str:
    """Raise ImageRejection unless the header describes a single-frame grey chest radiograph without
    identifying text burned into its pixels (unless ``accept_burned_in_annotation``).

    Returns how the body part was established (for the `body_part` column).
    """
    vocab = acceptance_vocabulary().data
    established = _check_chest(header, vocab, accept_empty_body_part)
    _check_pixels(header, vocab, path, max_pixels, accept_burned_in_annotation)
    return established


def _check_chest(header: Header, vocab: dict, accept_empty_body_part: bool) -> str:
    """Raise ImageRejection unless the modality is a radiograph's (or a secondary capture's that says chest) and
    the body part or the descriptions say chest; returns how the body part was established."""
    modality = header.modality
    is_radiograph = modality in vocab["radiograph_modalities"] or (
        not modality and header.sop_class in vocab["radiograph_sop_classes"]
    )
    is_secondary = not is_radiograph and (
        modality in vocab["secondary_capture_modalities"]
        and (modality or any(header.sop_class.startswith(p) for p in vocab["secondary_capture_sop_class_prefixes"]))
    )
    if not is_radiograph and not is_secondary:
        found = f"Modality {modality!r}" if modality else f"no Modality (SOP class {header.sop_class or 'missing'})"
        raise ImageRejection(
            RejectReason.unsupported_modality,
            f"expected a chest radiograph (CR, DX, or a secondary capture that says chest), found {found}",
        )
    text = header.descriptions.lower()
    says_chest = header.body_part in vocab["chest_body_parts"] or any(
        re.search(rf"\b{re.escape(word)}\b", text) for word in vocab["chest_keywords"]
    )
    says_other = any(re.search(rf"\b{re.escape(word)}\b", text) for word in vocab["non_chest_keywords"])
    if header.body_part and header.body_part not in vocab["chest_body_parts"]:
        raise ImageRejection(
            RejectReason.not_chest, f"expected BodyPartExamined CHEST or THORAX, found {header.body_part!r}"
        )
    if is_secondary and not says_chest:
        raise ImageRejection(
            RejectReason.not_chest,
            f"secondary capture (Modality {modality or 'missing'}) with no body part or description that says chest",
        )
    if not header.body_part and not says_chest:
        if says_other:
            raise ImageRejection(
                RejectReason.not_chest, "BodyPartExamined is empty and the descriptions name another body part"
            )
        if not accept_empty_body_part:
            raise ImageRejection(
                RejectReason.not_chest, "BodyPartExamined is empty (policy accept_empty_body_part is off)"
            )
    return "BodyPartExamined" if header.body_part else ("description" if says_chest else "empty")


def _check_pixels(header: Header, vocab: dict, path: str, max_pixels: int, accept_burned_in_annotation: bool) -> None:
    """Raise ImageRejection unless the pixels are one frame of grey, of a sane declared size, without burned-in
    annotation (unless accepted)."""
    if header.burned_in_annotation == "YES" and not accept_burned_in_annotation:
        raise ImageRejection(
            RejectReason.burned_in_annotation,
            "BurnedInAnnotation is YES: identifying text may be written into the pixels "
            "(policy imaging.accept_burned_in_annotation is off)",
        )
    if not header.has_pixel_data:
        raise ImageRejection(RejectReason.no_pixel_data, "no Pixel Data (7FE0,0010) element")
    if header.frames > 1:
        raise ImageRejection(RejectReason.multi_frame, f"expected 1 frame, found NumberOfFrames {header.frames}")
    if header.samples_per_pixel != 1 or header.photometric not in vocab["accepted_photometric"]:
        raise ImageRejection(
            RejectReason.color_image,
            f"expected a greyscale image (MONOCHROME1/2, 1 sample per pixel), found "
            f"PhotometricInterpretation {header.photometric or 'missing'!r} with {header.samples_per_pixel} sample(s)",
        )
    if header.rows <= 0 or header.cols <= 0 or header.bits_allocated <= 0:
        raise ImageRejection(
            RejectReason.unreadable_header,
            f"expected positive Rows, Columns and BitsAllocated, found {header.rows}, {header.cols}, "
            f"{header.bits_allocated}",
        )
    if header.rows * header.cols > max_pixels:
        raise ImageRejection(
            RejectReason.too_large,
            f"declared {header.rows}x{header.cols} = {header.rows * header.cols} pixels, "
            f"over the bound of {max_pixels}",
        )
    _check_pixel_length(header, path)


def _check_pixel_length(header: Header, path: str) -> None:
    expected = header.rows * header.cols * header.samples_per_pixel * header.frames
    expected = (expected + 7) // 8 if header.bits_allocated == 1 else expected * (header.bits_allocated // 8)
    if header.transfer_syntax in NATIVE_TRANSFER_SYNTAXES or not header.transfer_syntax:
        if header.pixel_length is not None and header.pixel_length < expected:
            raise ImageRejection(
                RejectReason.pixel_data_short,
                f"expected {expected} bytes of Pixel Data for {header.rows}x{header.cols}x{header.bits_allocated} bit, "
                f"found {header.pixel_length}",
            )
    if header.pixel_length is not None and header.pixel_offset is not None:
        available = os.path.getsize(path) - header.pixel_offset
        if available < header.pixel_length:
            raise ImageRejection(
                RejectReason.pixel_data_short,
                f"Pixel Data declares {header.pixel_length} bytes but the file ends after {max(available, 0)}",
            )
