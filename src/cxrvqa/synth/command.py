"""`cxrvqa synth`: write a synthetic corpus (registered in cxrvqa.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def synth(
    studies: Annotated[int, typer.Option("--studies", help="Number of studies (reports).")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the corpus.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same corpus.")] = 0,
    images: Annotated[int, typer.Option("--images", help="Write DICOMs for the first M studies.")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Processes.")] = 1,
    j2k_share: Annotated[
        Optional[float],
        typer.Option(
            "--j2k-share", help="Share of JPEG 2000 images (default: the spec's, ~12%; encoding costs ~1 s each)."
        ),
    ] = None,
    image_scale: Annotated[
        float, typer.Option("--image-scale", help="Image size as a fraction of realistic (2000-3100 px a side).")
    ] = 1.0,
) -> None:
    """Synthetic reports with their known scene graphs, and matching DICOMs, in the layout `cxrvqa build` reads."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cxrvqa.console import RichReporter, console, fail
    from cxrvqa.core import progress
    from cxrvqa.errors import CxrvqaError
    from cxrvqa.synth.corpus import DICOM, GOLD, MANIFEST, REPORTS, write_corpus

    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar, progress.reporting(RichReporter(bar)):
            summary = write_corpus(
                out, studies, seed=seed, images=images, workers=workers, j2k_share=j2k_share, image_scale=image_scale
            )
    except CxrvqaError as exc:
        fail(exc)
        return
    console.print(
        f"{summary.studies} reports and gold graphs in {summary.report_seconds:.1f} s "
        f"({summary.studies_per_second:,.0f} studies/s, "
        f"{(summary.report_bytes + summary.gold_bytes) / summary.studies / 1024:.1f} KiB per study)"
    )
    if summary.images:
        console.print(
            f"{summary.images} DICOMs of {summary.image_studies} studies in {summary.image_seconds:.1f} s "
            f"({summary.images_per_second:.1f} images/s, {summary.image_bytes / summary.images / 2**20:.1f} "
            f"MiB each); transfer syntaxes {summary.transfer_syntaxes}"
        )
    build = f"cxrvqa build --reports {out / REPORTS} --report-format jsonl"
    if summary.images:
        build += f" --images {out / DICOM} --manifest {out / MANIFEST}"
    console.print(f"build it with: {build} --out BUILD_DIR; gold graphs: {out / GOLD}")
