"""Run the per-file converter the way the stage does, for unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrvqa.imaging.convert import convert_file
from cxrvqa.imaging.models import ConversionJob, ManifestEntry, RenderSettings
from cxrvqa.provenance import sha256_file

SETTINGS = RenderSettings(
    scale=0.25, longest_side=None, png_compress_level=1, max_pixels=50_000_000,
    percentile_window=(0.5, 99.5), accept_empty_body_part=True, pseudonym_key=b"unit-test-key",
    recipe_version="unit-test-recipe",
)


def convert(path: Path, out_dir: Path, settings: RenderSettings = SETTINGS, entry: ManifestEntry | None = None
            ) -> tuple[str, dict[str, Any]]:
    digest = sha256_file(path) if path.exists() else "0" * 64
    return convert_file(ConversionJob(str(path), path.name, digest, str(out_dir), entry, settings))


def png_array(row: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(row["pending_png"]))
