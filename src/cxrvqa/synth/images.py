"""Synthetic chest radiographs as DICOM files: realistic sizes and header variety, cheap pixels.

The header variety comes from `schemas/vocab/synth_images.yaml` (checked against what the image
stage accepts); the pixels are a smooth anatomy-like attenuation map (body, lungs, mediastinum,
heart, spine, diaphragm, ribs) drawn at 1/8 of the size, resized and given noise: ~50 ms for a
3000 x 2500 image, so a 2,000-study image set is mostly disk writes. Everything is derived from
(seed, study, image): an image does not depend on which other images are written.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.errors import ResourceError
from cxrvqa.imaging.header import acceptance_vocabulary
from cxrvqa.synth.dicom import compress_jpeg2000, new_dataset, save, set_pixels
from cxrvqa.synth.reports import ImagePlan

FILE = "schemas/vocab/synth_images.yaml"
#: Bump when the same seed would give other images.
IMAGE_VERSION = "synth-images/1"
#: A UID root of the form 2.25.<128-bit integer> (ISO/IEC 9834-8), made from a hash: unique and fake.
_UID_ROOT = "2.25."
_DOWNSAMPLE = 8


@dataclass(frozen=True)
class ImageSpec:
    data: dict[str, Any]
    content_hash: str


@lru_cache(maxsize=1)
def image_spec() -> ImageSpec:
    """The header variety file, checked against the acceptance vocabulary of the image stage."""
    data, digest = load_checked_yaml(FILE, "synth_images.schema.json")
    accepted = acceptance_vocabulary()
    rules = accepted.data
    for entry in data["modalities"]:
        if entry["modality"] not in rules["radiograph_modalities"]:
            raise ResourceError(
                FILE,
                f"modality {entry['modality']!r} is not a radiograph modality the image "
                f"stage accepts ({rules['radiograph_modalities']})",
            )
    for key in ("body_parts", "portable_body_parts"):
        for entry in data[key]:
            if entry["value"] and entry["value"].upper() not in rules["chest_body_parts"]:
                raise ResourceError(FILE, f"{key}: {entry['value']!r} is not a chest body part")
            if not entry["value"] and "chest" not in entry.get("StudyDescription", "").lower():
                raise ResourceError(FILE, f"{key}: an empty body part needs a StudyDescription that says chest")
    lookup = accepted.view_lookup()
    for view, encodings in data["views"].items():
        for encoding in encodings:
            raw = encoding.get("ViewPosition", "").upper()
            read = lookup.get(raw, "unknown")
            if raw and read != view and not accepted.plane_of(view) == accepted.plane_of(read) == "lateral":
                raise ResourceError(FILE, f"views.{view}: ViewPosition {raw!r} is not read as a {view} view")
    models = {m["modality"] for m in data["manufacturers"]}
    missing = {m["modality"] for m in data["modalities"]} - models
    if missing:
        raise ResourceError(FILE, f"no manufacturer for modalities {sorted(missing)}")
    return ImageSpec(data, digest)


@dataclass(frozen=True)
class ImageJob:
    """One file to write (picklable, for a process pool)."""

    seed: int
    plan: ImagePlan
    number: int  # image number within the study
    view: str  # PA | AP | LATERAL
    path: str  # absolute
    scale: float  # of the realistic pixel count per side
    j2k_share: float | None  # overrides the JPEG 2000 weights of the spec


@dataclass(frozen=True)
class WrittenImage:
    path: str
    bytes: int
    seconds: float
    transfer_syntax: str
    rows: int
    cols: int


def _rng(seed: int, *key: object) -> random.Random:
    return random.Random(":".join(["cxrvqa-synth-image", str(seed), *map(str, key)]))


def _weighted(rng: random.Random, entries: list[dict]) -> dict:
    return rng.choices(entries, weights=[e["weight"] for e in entries])[0]


def make_uid(seed: int, *key: object) -> str:
    digest = hashlib.sha256(":".join(["cxrvqa-synth-uid", str(seed), *map(str, key)]).encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def file_name(seed: int, plan: ImagePlan, number: int, view: str) -> str:
    """The image's path relative to the DICOM folder: patient/study/file, some files without a suffix."""
    bare = _rng(seed, plan.index, number, "name").random() < image_spec().data["bare_name_share"]
    name = f"IM{number + 1:04d}" if bare else f"{number + 1:02d}_{view.lower()}.dcm"
    return f"{plan.patient_id}/{plan.study_id}/{name}"


def _study_header(seed: int, plan: ImagePlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes shared by a study's images, the study's acquisition choices)."""
    spec = image_spec().data
    rng = _rng(seed, plan.index, "study")
    patient = _rng(seed, plan.patient_number, "patient")
    modality = _weighted(rng, spec["modalities"])
    manufacturer = rng.choice([m for m in spec["manufacturers"] if m["modality"] == modality["modality"]])
    body = _weighted(rng, spec["portable_body_parts" if plan.portable else "body_parts"])
    birth = plan.study_date - timedelta(days=365 * plan.age + patient.randrange(365))
    family = patient.choice(spec["family_names"])
    given = patient.choice(spec["given_names"][plan.sex])
    attributes = {
        "PatientName": f"{family}^{given}",
        "PatientID": f"SYN{patient.randrange(10**7, 10**8)}",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": plan.sex,
        "PatientAge": f"{plan.age:03d}Y",
        "StudyInstanceUID": make_uid(seed, plan.index, "study"),
        "StudyDate": plan.study_date.strftime("%Y%m%d"),
        "StudyTime": f"{rng.randrange(24):02d}{rng.randrange(60):02d}00",
        "AccessionNumber": f"A{rng.randrange(10**8, 10**9)}",
        "StudyID": str(plan.index + 1),
        "InstitutionName": rng.choice(spec["institutions"]),
        "ReferringPhysicianName": rng.choice(spec["physicians"]),
        "Manufacturer": manufacturer["Manufacturer"],
        "ManufacturerModelName": manufacturer["ManufacturerModelName"],
        "Modality": modality["modality"],
        "BodyPartExamined": body["value"],
    }
    if body.get("StudyDescription"):
        attributes["StudyDescription"] = body["StudyDescription"]
    detector = _weighted(rng, spec["detectors"])
    acquisition = {
        "sop_class": modality["sop_class"],
        "spacing_keywords": rng.choice(modality["spacing"]),
        "spacing": rng.choice(modality["pixel_spacing_mm"]),
        "detector": detector,
        "photometric": _weighted(rng, spec["photometric"])["value"],
        "bits": _weighted(rng, spec["bits_stored"])["value"],
    }
    return attributes, acquisition


def write_image(job: ImageJob) -> WrittenImage:
    """Write one synthetic radiograph; returns what was written and how long it took."""
    started = time.perf_counter()
    spec = image_spec().data
    plan = job.plan
    attributes, acquisition = _study_header(job.seed, plan)
    rng = _rng(job.seed, plan.index, job.number)
    encoding = _weighted(rng, spec["views"][job.view])
    syntaxes = spec["transfer_syntaxes"]
    if job.j2k_share is not None:
        native = sum(s["weight"] for s in syntaxes if not s.get("jpeg2000"))
        j2k = sum(s["weight"] for s in syntaxes if s.get("jpeg2000"))
        share = min(max(job.j2k_share, 0.0), 1.0)
        syntaxes = [
            {**s, "weight": (s["weight"] / j2k * share if s.get("jpeg2000") else s["weight"] / native * (1 - share))}
            for s in syntaxes
        ]
    syntax = _weighted(rng, syntaxes)
    detector, spacing = acquisition["detector"], acquisition["spacing"] / job.scale
    rows = max(64, round(detector["rows_cm"] * 10 / spacing))
    cols = max(64, round(detector["cols_cm"] * 10 / spacing))
    bits, photometric = acquisition["bits"], acquisition["photometric"]
    pixels = radiograph_pixels(
        np.random.default_rng(rng.getrandbits(64)), rows, cols, job.view, bits, invert=photometric == "MONOCHROME1"
    )
    attributes = {
        **attributes,
        "SeriesInstanceUID": make_uid(job.seed, plan.index, job.number, "series"),
        "SOPInstanceUID": make_uid(job.seed, plan.index, job.number, "sop"),
        "SeriesNumber": job.number + 1,
        "InstanceNumber": 1,
        "ViewPosition": encoding.get("ViewPosition", ""),
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "ContentDate": attributes["StudyDate"],
        "ContentTime": attributes["StudyTime"],
    }
    for keyword in ("SeriesDescription", "PatientOrientation"):
        if keyword in encoding:
            attributes[keyword] = encoding[keyword]
    for keyword in acquisition["spacing_keywords"]:
        attributes[keyword] = [spacing, spacing]
    if rng.random() < spec["window_share"]:
        top = 2**bits - 1
        attributes["WindowCenter"], attributes["WindowWidth"] = round(top * 0.5), round(top * 0.9)
    if rng.random() < spec["rescale_share"]:
        attributes["RescaleSlope"], attributes["RescaleIntercept"], attributes["RescaleType"] = 1, 0, "US"
    ds = new_dataset(
        acquisition["sop_class"], "1.2.840.10008.1.2.1" if syntax.get("jpeg2000") else syntax["uid"], attributes
    )
    set_pixels(ds, pixels, bits_stored=bits, photometric=photometric)
    if syntax.get("jpeg2000"):
        compress_jpeg2000(ds, pixels, syntax.get("compression_ratio"))
    path = Path(job.path)
    save(ds, path)
    return WrittenImage(
        job.path, path.stat().st_size, time.perf_counter() - started, str(ds.file_meta.TransferSyntaxUID), rows, cols
    )


def radiograph_pixels(
    rng: np.random.Generator, rows: int, cols: int, view: str, bits: int, invert: bool = False
) -> np.ndarray:
    """A uint16 image that looks like a chest radiograph from afar: attenuation (bone bright) mapped to
    ``bits`` stored bits, inverted for MONOCHROME1 so that it displays the same."""
    h, w = max(8, rows // _DOWNSAMPLE), max(8, cols // _DOWNSAMPLE)
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    jitter = rng.uniform(-0.04, 0.04, size=8).astype(np.float32)

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return np.clip(1.0 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 0.0, 1.0) ** 0.35

    attenuation = 0.06 + 0.4 * ellipse(0.0 + jitter[0], 0.55, 0.98, 0.8)  # body
    if view == "LATERAL":
        lungs = ellipse(0.05 + jitter[1], 0.45 + jitter[2], 0.55, 0.38)
        attenuation = attenuation - 0.28 * lungs
        attenuation = attenuation + 0.3 * ellipse(-0.25 + jitter[3], 0.62, 0.3, 0.2)  # heart
        attenuation = attenuation + 0.3 * np.clip(1 - np.abs(x - 0.62 - jitter[4]) / 0.09, 0, 1) * (y > 0.15)
    else:
        lungs = np.maximum(
            ellipse(-0.42 + jitter[1], 0.46 + jitter[2], 0.3, 0.34),
            ellipse(0.42 + jitter[3], 0.46 + jitter[2], 0.3, 0.34),
        )
        attenuation = attenuation - 0.3 * lungs
        attenuation = attenuation + 0.22 * np.clip(1 - np.abs(x - jitter[4]) / 0.14, 0, 1) * (y > 0.12)
        attenuation = attenuation + 0.28 * ellipse(0.14 + jitter[5], 0.64, 0.3, 0.17)  # heart
        attenuation = attenuation + 0.12 * np.clip(1 - np.abs(x) / 0.05, 0, 1)  # spine
    ribs = np.maximum(np.sin(2 * np.pi * (y * 9.0 + 0.9 * x * x + jitter[6])), 0) ** 3
    attenuation = attenuation + 0.07 * ribs * lungs
    attenuation = attenuation + 0.22 * np.clip((y - 0.8 - jitter[7]) / 0.08, 0, 1)  # diaphragm, abdomen
    attenuation = attenuation * (0.9 + 0.1 * y)  # heel effect
    top = 2**bits - 1
    noise = max(1, top // 200)
    scaled = np.clip(attenuation, 0.0, 1.0) * (top - noise) * 0.95
    image = np.asarray(Image.fromarray(scaled.astype(np.uint16)).resize((cols, rows), Image.Resampling.BILINEAR))
    image = image + rng.integers(0, noise, size=(rows, cols), dtype=np.uint16)
    if invert:
        np.subtract(top, image, out=image)
    return image


def image_jobs(
    seed: int, plans: list[ImagePlan], dicom_dir: Path, scale: float, j2k_share: float | None
) -> list[tuple[ImageJob, str]]:
    """Every image of the planned studies, with its path relative to ``dicom_dir`` (for the manifest)."""
    jobs = []
    for plan in plans:
        for number, view in enumerate(plan.views):
            relative = file_name(seed, plan, number, view)
            jobs.append((ImageJob(seed, plan, number, view, str(dicom_dir / relative), scale, j2k_share), relative))
    return jobs
