"""Run the per-file converter the way the stage does, for unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrvqa.config import Config
from cxrvqa.core.batch import run_batch
from cxrvqa.core.parallel import batched
from cxrvqa.core.provenance import sha256_file
from cxrvqa.imaging import stage
from cxrvqa.imaging.convert import convert_file
from cxrvqa.imaging.models import ConversionJob, ManifestEntry, RenderSettings
from cxrvqa.store import StageCounts, Store, start_run
from tests.dicom_factory import make_dicom

SETTINGS = RenderSettings(
    scale=0.25,
    longest_side=None,
    png_compress_level=1,
    max_pixels=50_000_000,
    percentile_window=(0.5, 99.5),
    accept_empty_body_part=True,
    pseudonym_key=b"unit-test-key",
    recipe_version="unit-test-recipe",
)


def four_chest_dicoms(images: Path) -> None:
    """s0/img0.dcm .. s3/img3.dcm: four chest radiographs without PHI, one study each."""
    for index in range(4):
        make_dicom(
            images / f"s{index}" / f"img{index}.dcm",
            phi=False,
            uids={"SOPInstanceUID": f"1.2.3.{index}", "StudyInstanceUID": f"1.2.4.{index}"},
        )


def convert(
    path: Path, out_dir: Path, settings: RenderSettings = SETTINGS, entry: ManifestEntry | None = None
) -> tuple[str, dict[str, Any]]:
    digest = sha256_file(path) if path.exists() else "0" * 64
    return convert_file(ConversionJob(str(path), path.name, digest, str(out_dir), entry, settings))


def png_array(row: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(row["pending_png"]))


def run_stage(config: Config, batch_size: int = 3) -> StageCounts:
    """What the flow does, without Prefect: one call per batch, one writer."""
    total = StageCounts()
    with Store(config.db_path) as store:
        run_id = start_run(store, config)
        context = stage.prepare(config)
        for batch in batched(context.source_files(config.limit), batch_size):
            total.add(run_batch(stage, store, run_id, batch, context))
        if context.manifest and config.limit is None:
            total.add(stage.write_missing_images(store, run_id, context, context.source_files()))
    return total
