"""A synthetic corpus on disk, in the layout `cxrvqa build` reads.

    DIR/reports.jsonl       one report per line: study_id, patient_id, text   (--reports, --report-format jsonl)
    DIR/gold_graphs.jsonl   the known scene graph of each report, same order (backend "synthetic")
    DIR/dicom/...           DICOMs of the first --images studies             (--images)
    DIR/manifest.csv        study_id, patient_id, image_path                  (--manifest)
    DIR/synth.json          what was made: seed, counts, versions; written last, so its presence means complete

Reports are made in chunks (over a process pool when workers > 1) and streamed to disk: memory
stays flat at any corpus size. Images are written by the pool one file per task.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from cxrvqa.core import progress
from cxrvqa.core.parallel import stream_map
from cxrvqa.core.provenance import code_version
from cxrvqa.errors import ConfigError, InputError
from cxrvqa.synth.reports import CHUNK, GENERATOR_VERSION, ImagePlan, generator, make_chunk

REPORTS, GOLD, MANIFEST, DICOM, META = "reports.jsonl", "gold_graphs.jsonl", "manifest.csv", "dicom", "synth.json"


@dataclass
class CorpusSummary:
    out: str
    seed: int
    studies: int
    image_studies: int
    images: int = 0
    report_seconds: float = 0.0
    report_cpu_seconds: float = 0.0  # of this process only: with workers > 1 the generation runs elsewhere
    image_seconds: float = 0.0
    report_bytes: int = 0
    gold_bytes: int = 0
    image_bytes: int = 0
    transfer_syntaxes: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def studies_per_second(self) -> float:
        return self.studies / self.report_seconds if self.report_seconds else 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.image_seconds if self.image_seconds else 0.0


def _check_arguments(out: Path, studies: int, images: int, j2k_share: float | None, image_scale: float) -> None:
    """Refuse bad numbers, and an output folder holding any corpus file, before anything is written."""
    if studies < 1:
        raise ConfigError("--studies", f"expected a positive number of studies, found {studies}")
    if not 0 <= images <= studies:
        raise ConfigError(
            "--images", f"expected a number of studies with images from 0 to --studies ({studies}), found {images}"
        )
    if not 0.05 <= image_scale <= 1.0:
        raise ConfigError(
            "--image-scale", f"expected a fraction of the realistic image size from 0.05 to 1, found {image_scale}"
        )
    if j2k_share is not None and not 0.0 <= j2k_share <= 1.0:
        raise ConfigError("--j2k-share", f"expected a share of JPEG 2000 images from 0 to 1, found {j2k_share}")
    existing = [name for name in (REPORTS, GOLD, MANIFEST, DICOM, META) if (out / name).exists()]
    if existing:
        raise InputError(str(out), "a new or empty folder for the corpus", f"it already holds {', '.join(existing)}")


def write_corpus(
    out: Path,
    studies: int,
    seed: int = 0,
    images: int = 0,
    workers: int = 1,
    j2k_share: float | None = None,
    image_scale: float = 1.0,
) -> CorpusSummary:
    """Write a corpus of ``studies`` reports (+ gold graphs), and DICOMs for the first ``images`` studies."""
    _check_arguments(out, studies, images, j2k_share, image_scale)
    out.mkdir(parents=True, exist_ok=True)
    gen = generator()
    summary = CorpusSummary(
        str(out),
        seed,
        studies,
        images,
        versions={"generator": GENERATOR_VERSION, "phrases": gen.book.content_hash, "code": code_version()},
    )

    started, cpu_started = time.perf_counter(), time.process_time()
    plans: list[ImagePlan] = []
    progress.start("reports", studies)
    make = partial(make_chunk, seed, total=studies, plans_below=images)
    with open(out / REPORTS, "wb") as reports, open(out / GOLD, "wb") as gold:
        for chunk in stream_map(make, range(math.ceil(studies / CHUNK)), workers):
            reports.write(chunk.reports)
            gold.write(chunk.gold)
            plans.extend(chunk.plans)
            progress.advance("reports", chunk.count)
    summary.report_seconds = time.perf_counter() - started
    summary.report_cpu_seconds = time.process_time() - cpu_started
    summary.report_bytes = (out / REPORTS).stat().st_size
    summary.gold_bytes = (out / GOLD).stat().st_size

    if images:
        _write_images(out, plans, seed, workers, j2k_share, image_scale, summary)
    (out / META).write_text(
        json.dumps(
            {
                **asdict(summary),
                "j2k_share": j2k_share,
                "image_scale": image_scale,
                "files": {
                    "reports": REPORTS,
                    "gold": GOLD,
                    "manifest": MANIFEST if images else None,
                    "dicom": DICOM if images else None,
                },
            },
            indent=2,
        )
        + "\n"
    )
    return summary


def _write_images(
    out: Path,
    plans: list[ImagePlan],
    seed: int,
    workers: int,
    j2k_share: float | None,
    image_scale: float,
    summary: CorpusSummary,
) -> None:
    from cxrvqa.synth.images import IMAGE_VERSION, image_jobs, image_spec, write_image

    summary.versions.update(images=IMAGE_VERSION, image_spec=image_spec().content_hash)
    jobs = image_jobs(seed, plans, out / DICOM, image_scale, j2k_share)
    with open(out / MANIFEST, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("study_id", "patient_id", "image_path"))
        writer.writerows((job.plan.study_id, job.plan.patient_id, relative) for job, relative in jobs)
    started = time.perf_counter()
    syntaxes: Counter[str] = Counter()
    progress.start("images", len(jobs))
    for written in stream_map(write_image, (job for job, _ in jobs), workers, ahead=1):
        summary.images += 1
        summary.image_bytes += written.bytes
        syntaxes[written.transfer_syntax] += 1
        progress.advance("images", 1)
    summary.image_seconds = time.perf_counter() - started
    summary.transfer_syntaxes = dict(sorted(syntaxes.items()))
