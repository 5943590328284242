"""Typed records of the image stage."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RejectReason(StrEnum):
    """Stable reason codes of `image_rejects.reason`."""

    unreadable_file = "unreadable_file"  # the OS could not read the file
    not_dicom = "not_dicom"  # neither a DICOM data set nor a JPEG or PNG (gzip, text, garbage)
    unreadable_header = "unreadable_header"  # DICOM, but the header cannot be parsed or lacks image attributes
    unsupported_modality = "unsupported_modality"  # CT, MR, US, MG, XA, SR, SEG, RTPLAN, ...
    not_chest = "not_chest"  # a radiograph of another body part
    no_pixel_data = "no_pixel_data"
    multi_frame = "multi_frame"
    color_image = "color_image"
    too_large = "too_large"  # declared size over the bound, decided before decoding
    pixel_data_short = "pixel_data_short"  # fewer pixel bytes than Rows x Columns x bits declare
    decode_failed = "decode_failed"  # the codec raised; detail has its message
    duplicate_image = "duplicate_image"  # same SOP instance as another file with other content
    burned_in_annotation = "burned_in_annotation"  # BurnedInAnnotation YES: identifying text in the pixels
    missing_image = "missing_image"  # a manifest row names a file that is not under --images


#: Rejects that a later attempt can turn into an image (a read error, a codec installed or fixed since):
#: `cxrvqa build --only-failed` retries them; the others are decided by the file's content.
RETRYABLE_REJECTS = frozenset({RejectReason.unreadable_file, RejectReason.decode_failed})


@dataclass(frozen=True)
class RenderSettings:
    """Everything a worker needs to turn one file into a PNG; picklable."""

    scale: float
    longest_side: int | None
    png_compress_level: int
    max_pixels: int
    percentile_window: tuple[float, float]
    accept_empty_body_part: bool
    pseudonym_key: bytes
    recipe_version: str
    accept_burned_in_annotation: bool = False


@dataclass(frozen=True)
class ManifestEntry:
    """What a dataset's metadata file says about one image (`cxrvqa.imaging.manifest`)."""

    study_id: str
    patient_id: str
    layout: str  # id of the layout in schemas/vocab/manifest_layouts.yaml
    image_key: str = ""  # the dataset's own image id (MIMIC dicom_id): image_id is its pseudonym
    view_position: str = ""  # as the metadata gives it, before normalisation
    split: str = ""  # the dataset's official split, when a split file was given


@dataclass(frozen=True)
class ConversionJob:
    """One file to convert: where it is, how it is named in tables, where its PNG goes."""

    absolute_path: str
    source_path: str  # relative to the images folder, DICOM UIDs in it pseudonymised
    input_hash: str
    out_dir: str
    entry: ManifestEntry | None  # from the manifest, when listed there
    settings: RenderSettings


@dataclass
class ImageRejection(Exception):
    """Raised inside the conversion of one file; becomes an `image_rejects` row."""

    reason: RejectReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"
