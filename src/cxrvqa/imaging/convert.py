"""One DICOM file to one PNG plus its `images` row, or to an `image_rejects` row.

This is the per-file pure part of the image stage; it runs inside worker processes and
never raises for a bad file: every outcome is a row.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import secrets
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrvqa.imaging.decode import decode
from cxrvqa.imaging.header import Header, acceptance_vocabulary, check_acceptance, read_header, scrub
from cxrvqa.imaging.models import ConversionJob, ImageRejection, RejectReason
from cxrvqa.imaging.pseudonym import pseudonym
from cxrvqa.imaging.window import to_display
from cxrvqa.provenance import code_version

logging.getLogger("pydicom").setLevel(logging.ERROR)


def target_size(rows: int, cols: int, scale: float, longest_side: int | None) -> tuple[int, int]:
    """(width, height) of the PNG: a fraction of each side, or a longest side (never upscaling)."""
    if longest_side is not None:
        scale = min(1.0, longest_side / max(rows, cols))
    return max(1, round(cols * scale)), max(1, round(rows * scale))


def view_of(header: Header) -> tuple[str, str, str]:
    """(view position, where it came from, plane) from ViewPosition, descriptions, then PatientOrientation."""
    vocab = acceptance_vocabulary()
    if header.view_position:
        view = vocab.view_lookup().get(header.view_position)
        if view:
            return view, "ViewPosition", vocab.plane_of(view)
    text = header.descriptions.lower()
    for view, patterns in vocab.data["view_description_patterns"].items():
        if any(re.search(pattern, text) for pattern in patterns):
            return view, "description", vocab.plane_of(view)
    directions = [d[:1] for d in header.patient_orientation[:2]]
    if len(directions) == 2 and ({"H", "F"} & set(directions)):
        if {"A", "P"} & set(directions):
            return "LATERAL", "PatientOrientation", "lateral"
        if {"L", "R"} & set(directions):
            return "unknown", "PatientOrientation", "frontal"
    return "unknown", "none", "unknown"


def _resample(display: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Image:
    """LANCZOS from the decoded extent ``box`` to ``size``; edge-pads when the extent reaches past the array."""
    rows, cols = display.shape
    if box == (0.0, 0.0, float(cols), float(rows)) and size == (cols, rows):
        return Image.fromarray(display, mode="L")
    if box[2] > cols or box[3] > rows:
        display = np.pad(display, ((0, 1), (0, 1)), mode="edge")
    return Image.fromarray(display, mode="L").resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)


def _png_bytes(image: Image.Image, level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)  # no text chunks: nothing from the header
    return buffer.getvalue()


def _write_pending(path: Path, data: bytes) -> Path:
    """Write next to the final path; the stage renames it once the row is known not to be a duplicate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pending = path.with_name(f".{path.name}.{secrets.token_hex(8)}.pending")
    pending.write_bytes(data)
    return pending


def reject_row(source_path: str, reason: RejectReason, detail: str, input_hash: str | None,
               recipe_version: str) -> dict[str, Any]:
    """An `image_rejects` row (without run_id, which the stage adds when it writes the batch)."""
    return {
        "source_path": source_path,
        "reason": str(reason),
        "detail": detail,
        "recipe_version": recipe_version,
        "input_hash": input_hash,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc),
    }


def _reject_row(job: ConversionJob, reason: RejectReason, detail: str) -> dict[str, Any]:
    return reject_row(job.source_path, reason, detail, job.input_hash, job.settings.recipe_version)


def convert_file(job: ConversionJob) -> tuple[str, dict[str, Any]]:
    """("image", images row) or ("reject", image_rejects row). Never raises for a bad file.

    An image row carries ``pending_png``: the written PNG, to be moved to ``png_path`` by
    the stage (or deleted when the image turns out to be a duplicate).
    """
    phi: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = read_header(job.absolute_path)
            phi = header.phi_values
            return "image", _convert(job, header)
    except ImageRejection as rejection:
        return "reject", _reject_row(job, rejection.reason, scrub(rejection.detail, phi))
    except MemoryError:
        return "reject", _reject_row(job, RejectReason.decode_failed, "MemoryError while decoding")
    except Exception as exc:  # noqa: BLE001 - a codec or library error on this one file
        return "reject", _reject_row(job, RejectReason.decode_failed, scrub(f"{type(exc).__name__}: {exc}", phi))


def _convert(job: ConversionJob, header: Header) -> dict[str, Any]:
    settings = job.settings
    body_source = check_acceptance(header, job.absolute_path, settings.max_pixels, settings.accept_empty_body_part)
    width, height = target_size(header.rows, header.cols, settings.scale, settings.longest_side)
    try:
        decoded = decode(header, (width, height))
    except Exception as exc:  # noqa: BLE001
        raise ImageRejection(RejectReason.decode_failed, f"{type(exc).__name__}: {exc}") from exc
    display, window = to_display(decoded.stored, header.dataset, header.inverted, settings.percentile_window)
    decode_method, decode_reduction, box = decoded.method, decoded.reduction, decoded.box
    del decoded  # free the stored-value array before encoding
    image = _resample(display, box, (width, height))
    png = _png_bytes(image, settings.png_compress_level)

    key = settings.pseudonym_key
    uids = header.uids
    image_id = pseudonym(key, "im", uids["sop"] or f"sha256:{job.input_hash}")
    study_id = job.study_id or pseudonym(key, "st", uids["study"] or f"sha256:{job.input_hash}")
    patient_id = job.patient_id or pseudonym(key, "pt", uids["patient"] or f"study:{study_id}")
    # Every path component is a hex digest: no header or manifest value can reach the file system.
    png_relative = Path("png") / settings.recipe_version[:8] / pseudonym(key, "sd", study_id, 16) / f"{image_id}.png"
    pending = _write_pending(Path(job.out_dir) / png_relative, png)

    view, view_source, plane = view_of(header)
    spacing = header.pixel_spacing
    return {
        "image_id": image_id,
        "recipe_version": settings.recipe_version,
        "study_id": study_id,
        "patient_id": patient_id,
        "series_id": pseudonym(key, "se", uids["series"]) if uids["series"] else None,
        "source_path": job.source_path,
        "png_path": png_relative.as_posix(),
        "pending_png": str(pending),
        "modality": header.modality,
        "body_part": header.body_part if body_source == "BodyPartExamined" else "",
        "view_position": view,
        "view_source": view_source,
        "view_plane": plane,
        "photometric": header.photometric,
        "inverted": header.inverted,
        "bits_allocated": header.bits_allocated,
        "bits_stored": header.bits_stored,
        "pixel_signed": header.signed,
        "transfer_syntax": header.transfer_syntax,
        "window_source": window.source,
        "window_center": window.center,
        "window_width": window.width,
        "decode_method": decode_method,
        "decode_reduction": decode_reduction,
        "rows": header.rows,
        "cols": header.cols,
        "png_rows": height,
        "png_cols": width,
        "scale_x": width / header.cols,
        "scale_y": height / header.rows,
        "pixel_spacing_row": spacing[0] if spacing else None,
        "pixel_spacing_col": spacing[1] if spacing else None,
        "png_spacing_row": spacing[0] * header.rows / height if spacing else None,
        "png_spacing_col": spacing[1] * header.cols / width if spacing else None,
        "spacing_source": header.spacing_source,
        "png_sha256": hashlib.sha256(png).hexdigest(),
        "input_hash": job.input_hash,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc),
    }
