"""One DICOM, JPEG or PNG file to one PNG plus its `images` row, or to an `image_rejects` row.

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

from cxrvqa.core.provenance import code_version
from cxrvqa.imaging.decode import DecodedPixels, decode
from cxrvqa.imaging.header import Header, acceptance_vocabulary, check_acceptance, read_header, scrub
from cxrvqa.imaging.models import ConversionJob, ImageRejection, ManifestEntry, RejectReason
from cxrvqa.imaging.pseudonym import pseudonym
from cxrvqa.imaging.raster import PNG_MAGIC, decode_raster, raster_display, read_raster_header, sniff
from cxrvqa.imaging.window import DisplayWindow, to_display

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


def reject_row(
    source_path: str, reason: RejectReason, detail: str, input_hash: str | None, recipe_version: str
) -> dict[str, Any]:
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

    DICOM, JPEG and PNG are told apart by content, not by name. An image row carries
    ``pending_png``: the written PNG, to be moved to ``png_path`` by the stage (or deleted when
    the image turns out to be a duplicate).
    """
    phi: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with open(job.absolute_path, "rb") as handle:
                    kind = sniff(handle.read(len(PNG_MAGIC)))
            except OSError as exc:
                raise ImageRejection(
                    RejectReason.unreadable_file, f"{type(exc).__name__}: {exc.strerror or exc}"
                ) from exc
            if kind != "dicom":
                return "image", _convert_raster(job, kind)
            header = read_header(job.absolute_path)
            phi = header.phi_values
            return "image", _convert_dicom(job, header)
    except ImageRejection as rejection:
        return "reject", _reject_row(job, rejection.reason, scrub(rejection.detail, phi))
    except MemoryError:
        return "reject", _reject_row(job, RejectReason.decode_failed, "MemoryError while decoding")
    except Exception as exc:  # noqa: BLE001 - a codec or library error on this one file
        return "reject", _reject_row(job, RejectReason.decode_failed, scrub(f"{type(exc).__name__}: {exc}", phi))


def _decoded(decode_call: Any) -> DecodedPixels:
    try:
        return decode_call()
    except ImageRejection:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageRejection(RejectReason.decode_failed, f"{type(exc).__name__}: {exc}") from exc


def _convert_dicom(job: ConversionJob, header: Header) -> dict[str, Any]:
    settings = job.settings
    body_source = check_acceptance(
        header,
        job.absolute_path,
        settings.max_pixels,
        settings.accept_empty_body_part,
        settings.accept_burned_in_annotation,
    )
    size = target_size(header.rows, header.cols, settings.scale, settings.longest_side)
    decoded = _decoded(lambda: decode(header, size))
    display, window = to_display(decoded.stored, header.dataset, header.inverted, settings.percentile_window)
    uids = header.uids
    view = view_of(header)
    spacing = header.pixel_spacing
    return _image_row(
        job,
        decoded,
        display,
        window,
        size,
        (header.rows, header.cols),
        view,
        {
            "source_format": "dicom",
            "series_id": pseudonym(settings.pseudonym_key, "se", uids["series"]) if uids["series"] else None,
            "modality": header.modality,
            "body_part": header.body_part if body_source == "BodyPartExamined" else "",
            "photometric": header.photometric,
            "inverted": header.inverted,
            "bits_allocated": header.bits_allocated,
            "bits_stored": header.bits_stored,
            "pixel_signed": header.signed,
            "transfer_syntax": header.transfer_syntax,
            "pixel_spacing_row": spacing[0] if spacing else None,
            "pixel_spacing_col": spacing[1] if spacing else None,
            "png_spacing_row": spacing[0] * header.rows / size[1] if spacing else None,
            "png_spacing_col": spacing[1] * header.cols / size[0] if spacing else None,
            "spacing_source": header.spacing_source,
        },
        uids,
    )


def _convert_raster(job: ConversionJob, kind: str) -> dict[str, Any]:
    settings = job.settings
    header = read_raster_header(job.absolute_path, kind, settings.max_pixels)
    size = target_size(header.rows, header.cols, settings.scale, settings.longest_side)
    decoded = _decoded(lambda: decode_raster(header, size))
    display, window = raster_display(decoded.stored, settings.percentile_window)
    return _image_row(
        job,
        decoded,
        display,
        window,
        size,
        (header.rows, header.cols),
        ("unknown", "none", "unknown"),
        {
            "source_format": kind,
            "series_id": None,
            "modality": "",
            "body_part": "",
            "photometric": "MONOCHROME2",
            "inverted": False,
            "bits_allocated": header.bits,
            "bits_stored": header.bits,
            "pixel_signed": False,
            "transfer_syntax": "",
            "pixel_spacing_row": None,
            "pixel_spacing_col": None,
            "png_spacing_row": None,
            "png_spacing_col": None,
            "spacing_source": "none",
        },
        {"sop": "", "study": "", "patient": ""},
    )


def _view(entry: ManifestEntry | None, header_view: tuple[str, str, str]) -> tuple[str, str, str]:
    """The metadata file's view position where it gives a known one, else the header's."""
    if entry is not None and entry.view_position:
        vocab = acceptance_vocabulary()
        view = vocab.view_lookup().get(entry.view_position.strip().upper())
        if view:
            return view, "manifest", vocab.plane_of(view)
    return header_view


def _ids(job: ConversionJob, uids: dict[str, str]) -> tuple[str, str, str]:
    """(image_id, study_id, patient_id): from the manifest entry, else from the DICOM UIDs, else from the
    file's content hash, all pseudonymised."""
    key, entry = job.settings.pseudonym_key, job.entry
    content = f"sha256:{job.input_hash}"
    own_key = entry.image_key if entry is not None else ""
    image_id = pseudonym(key, "im", own_key or uids["sop"] or content)
    study_id = entry.study_id if entry is not None else pseudonym(key, "st", uids["study"] or content)
    patient_id = entry.patient_id if entry is not None else pseudonym(key, "pt", uids["patient"] or f"study:{study_id}")
    return image_id, study_id, patient_id


def _image_row(
    job: ConversionJob,
    decoded: DecodedPixels,
    display: np.ndarray,
    window: DisplayWindow,
    size: tuple[int, int],
    shape: tuple[int, int],
    header_view: tuple[str, str, str],
    attributes: dict[str, Any],
    uids: dict[str, str],
) -> dict[str, Any]:
    """Resample, encode and write the PNG, and the `images` row: ids from the manifest entry, else from
    the DICOM UIDs, else from the file's content hash, all pseudonymised."""
    settings, entry = job.settings, job.entry
    decode_method, decode_reduction, box = decoded.method, decoded.reduction, decoded.box
    del decoded  # free the stored-value array before encoding
    width, height = size
    rows, cols = shape
    png = _png_bytes(_resample(display, box, size), settings.png_compress_level)

    key = settings.pseudonym_key
    image_id, study_id, patient_id = _ids(job, uids)
    # Every path component is a hex digest: no header or manifest value can reach the file system.
    png_relative = Path("png") / settings.recipe_version[:8] / pseudonym(key, "sd", study_id, 16) / f"{image_id}.png"
    pending = _write_pending(Path(job.out_dir) / png_relative, png)

    view, view_source, plane = _view(entry, header_view)
    return {
        "image_id": image_id,
        "recipe_version": settings.recipe_version,
        "study_id": study_id,
        "patient_id": patient_id,
        "source_path": job.source_path,
        "png_path": png_relative.as_posix(),
        "pending_png": str(pending),
        "view_position": view,
        "view_source": view_source,
        "view_plane": plane,
        **attributes,
        "id_source": (
            f"manifest:{entry.layout}" if entry is not None else "dicom_uids" if uids["sop"] else "file_content"
        ),
        "source_split": entry.split or None if entry is not None else None,
        "window_source": window.source,
        "window_center": window.center,
        "window_width": window.width,
        "decode_method": decode_method,
        "decode_reduction": decode_reduction,
        "rows": rows,
        "cols": cols,
        "png_rows": height,
        "png_cols": width,
        "scale_x": width / cols,
        "scale_y": height / rows,
        "png_sha256": hashlib.sha256(png).hexdigest(),
        "input_hash": job.input_hash,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc),
    }
