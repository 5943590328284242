"""`cxrvqa review sample` and `cxrvqa review import` (registered in cxrvqa.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from cxrvqa.console import console, fail
from cxrvqa.errors import CxrvqaError
from cxrvqa.store import Store

review_app = typer.Typer(
    help="Human review: sample current items for reviewers, import their verdicts.", no_args_is_help=True
)


@review_app.command("sample")
def sample_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build.")],
    dest: Annotated[
        Path,
        typer.Option(
            "--dest",
            help=(
                "File to write: *.jsonl (jsonl export lines), *.html (a review page), *.label-studio.json "
                "(Label Studio "
                "tasks, labeling config beside it as *.xml) or *.argilla.json (Argilla records)."
            ),
        ),
    ],
    n: Annotated[int, typer.Option("--n", help="Items to draw (all of them when the dataset has fewer).")] = 300,
    stratify: Annotated[
        Optional[str],
        typer.Option(
            "--stratify", help=("template | grade: an equal share per template or grade (default: a uniform sample).")
        ),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            help=("Random seed: the same dataset and seed give the same sample (default: a fresh one, printed)."),
        ),
    ] = None,
    fmt: Annotated[
        Optional[str],
        typer.Option("--format", help=("jsonl | html | label-studio | argilla (default: from the name of --dest).")),
    ] = None,
) -> None:
    """Draw a reproducible random sample of the current items and write it for reviewers."""
    from cxrvqa.review.sample import draw, format_of, write_sample

    try:
        chosen = format_of(dest, fmt)
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            sample = draw(store, n, seed, stratify)
            summary = write_sample(store, out, dest, sample, chosen)
    except CxrvqaError as exc:
        fail(exc)
        return
    strata = f", {len(sample.strata)} {sample.stratify} strata" if sample.stratify else ""
    extra = "".join(f" and {escape(str(p))}" for p in summary.extra_files)
    console.print(
        f"wrote {len(sample.item_ids)} of {sample.population} current items (seed {sample.seed}{strata}) "
        f"as {chosen} to {escape(str(dest))}{extra}",
        soft_wrap=True,
    )


_ImportVerdicts = Annotated[
    Path,
    typer.Argument(
        help=(
            "Verdicts: the review page's saved file, a Label Studio JSON export, Argilla records, or JSON lines "
            "{item_id, verdict, grammar, note}."
        )
    ),
]
_ImportReviewer = Annotated[
    Optional[str],
    typer.Option(
        "--reviewer",
        help=("Who reviewed: the reviewer of every verdict in the file (default: the names the file gives)."),
    ),
]
_ImportFormat = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        help=("html (the page's saved file) | label-studio | argilla | jsonl (default: recognised from the content)."),
    ),
]


@review_app.command("import")
def import_command(
    verdicts: _ImportVerdicts,
    out: Annotated[Path, typer.Option("--out", help="Output folder of the build the items come from.")],
    reviewer: _ImportReviewer = None,
    fmt: _ImportFormat = None,
) -> None:
    """Import reviewers' verdicts: each caps its item's grade (validator human_review) while the item is unchanged."""
    from cxrvqa.config import load_config
    from cxrvqa.review.importer import plan_import, write_import
    from cxrvqa.store import recorded_run
    from cxrvqa.store.runs import last_config

    try:
        with Store(out / "cxrvqa.duckdb") as store:
            plan = plan_import(store, verdicts, reviewer, fmt)
            run_id = None
            if plan.rows:
                # the run keeps the build's settings, so that `status` still compares against them
                config = last_config(store) or load_config(None, {"out_dir": out})
                with recorded_run(store, config.model_copy(update={"stages": []})) as run_id:
                    write_import(store, plan, run_id)
    except CxrvqaError as exc:
        fail(exc)
        return
    counts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(plan.by_verdict.items())) or "none"
    console.print(
        f"{escape(str(verdicts))} ({plan.format}): {plan.read} verdicts read, {len(plan.rows)} imported "
        f"({counts}) from {len(plan.reviewers)} reviewer(s)"
        + (f", {plan.replaced} replaced by a later verdict of the same reviewer" if plan.replaced else "")
        + (f"; run {run_id}" if run_id else ""),
        soft_wrap=True,
    )
    if plan.stale:
        console.print(
            f"[yellow]{len(plan.stale)} verdict(s) not imported: their item changed or left the dataset "
            "since it was reviewed (review it again):[/]"
        )
        for stale in plan.stale[:20]:
            console.print(f"  {escape(stale.source)}: {escape(stale.item_id)} {escape(stale.why)}", soft_wrap=True)
        if len(plan.stale) > 20:
            console.print(f"  ... and {len(plan.stale) - 20} more")
