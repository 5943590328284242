"""The `cxrvqa` command line: build a dataset, show what a build did."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cxrvqa import progress
from cxrvqa.config import Config, load_config
from cxrvqa.errors import CxrvqaError
from cxrvqa.resources import resource
from cxrvqa.store import Store

app = typer.Typer(help="Build validated chest X-ray VQA datasets from DICOM images and reports.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)


@app.callback()
def _setup_logging() -> None:
    """Library warnings (e.g. the demo pseudonymisation key) are shown once, through rich."""
    logger = logging.getLogger("cxrvqa")
    logger.addHandler(RichHandler(console=console, show_time=False, show_path=False, markup=False))
    logger.setLevel(logging.INFO)
    logger.propagate = False  # Prefect's root handler would print it a second time


class _RichReporter:
    """Renders stage progress as rich progress bars."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int | None) -> None:
        self.tasks[stage] = self.bar.add_task(stage, total=total)

    def advance(self, stage: str, amount: int) -> None:
        self.bar.advance(self.tasks[stage], amount)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code=2)


def _demo_inputs() -> dict[str, Any]:
    demo = resource("demo")
    return {
        "images_dir": Path(str(demo / "dicom")),
        "manifest": Path(str(demo / "manifest.csv")),
        "reports": Path(str(demo / "reports.jsonl")),
        "report_format": "jsonl",
    }


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", help="Output folder (PNGs and cxrvqa.duckdb).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder tree of DICOM files.")] = None,
    reports: Annotated[Optional[Path], typer.Option("--reports", help="Reports file or folder.")] = None,
    report_format: Annotated[Optional[str], typer.Option("--report-format", help="iu | mimic | jsonl | csv")] = None,
    manifest: Annotated[Optional[Path], typer.Option("--manifest", help=(
        "CSV linking images to studies: study_id, patient_id, image_path (or IU's projections CSV)."))] = None,
    stages: Annotated[Optional[str], typer.Option("--stages", help="Comma-separated stages to run.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="At most N input files per stage.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML config file.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Decoding processes.")] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", help="PNG size as a fraction of each side.")] = None,
    longest_side: Annotated[Optional[int], typer.Option("--longest-side", help="PNG longest side in pixels.")] = None,
    extractor: Annotated[Optional[str], typer.Option("--extractor", help="Scene-graph backend: rules | llm.")] = None,
    llm_base_url: Annotated[Optional[str], typer.Option("--llm-base-url", help=(
        "OpenAI-compatible API, e.g. http://localhost:8000/v1 (key: $CXRVQA_LLM_API_KEY)."))] = None,
    llm_model: Annotated[Optional[str], typer.Option("--llm-model", help="Model name for --extractor llm.")] = None,
    llm_concurrency: Annotated[Optional[int], typer.Option("--llm-concurrency", help="Requests in flight.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Use the bundled demo data.")] = False,
) -> None:
    """Run the pipeline stages over the inputs and store everything under --out."""
    from flows.prefect_env import start_local_server

    start_local_server()  # its ~4 s start overlaps the imports and checks below
    overrides: dict[str, Any] = {
        "out_dir": out, "images_dir": images, "reports": reports, "report_format": report_format,
        "manifest": manifest, "limit": limit,
        "stages": [s.strip() for s in stages.split(",") if s.strip()] if stages else None,
        "imaging": {"workers": workers, "scale": scale, "longest_side": longest_side},
        "extraction": {"backend": extractor, "workers": workers,
                       "llm": {"base_url": llm_base_url, "model": llm_model, "max_concurrency": llm_concurrency}},
    }
    if demo:
        overrides = {**_demo_inputs(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        config = load_config(config_file, overrides)
        if not stages and not _stages_set_in(config_file):
            config.stages = [s for s in config.stages if _stage_input(config, s) is not None]
            if not config.stages:
                raise CxrvqaError("nothing to build: give --images DIR and/or --reports PATH (or --demo)")
        for stage in config.stages:
            if stage in STAGE_INPUTS and _stage_input(config, stage) is None:
                raise CxrvqaError(f"the {stage} stage needs {STAGE_INPUTS[stage]} (or --demo)")
        result = _run_build(config)
    except CxrvqaError as exc:
        _fail(exc)
        return
    console.print(f"run [bold]{result['run_id']}[/] completed")
    _print_status(config.db_path, run_id=result["run_id"])


#: Stages that read an input given on the command line; the others read the store.
STAGE_INPUTS = {"images": "--images DIR", "reports": "--reports PATH"}


def _stage_input(config: Config, stage: str) -> Path | None:
    """What a stage reads when it is not named in --stages: extraction follows the reports."""
    return {"images": config.images_dir, "reports": config.reports, "extract": config.reports}[stage]


def _stages_set_in(config_file: Path | None) -> bool:
    if config_file is None:
        return False
    from cxrvqa.config import read_config_file

    return "stages" in read_config_file(config_file)


def _run_build(config: Config) -> dict[str, Any]:
    from flows.build import build_dataset  # imported late: configures Prefect first
    from flows.prefect_env import lean_local_runs, wait_for_local_server

    wait_for_local_server()
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (Progress(*columns, console=console, transient=False) as bar, progress.reporting(_RichReporter(bar)),
          lean_local_runs()):
        return build_dataset(config)


@app.command()
def status(
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Runs, per-stage counts and reject reasons of the build under --out."""
    try:
        if as_json:
            typer.echo(json.dumps(collect_status(out / "cxrvqa.duckdb"), indent=2, default=str))
        else:
            _print_status(out / "cxrvqa.duckdb")
    except CxrvqaError as exc:
        _fail(exc)


def collect_status(db_path: Path, run_id: str | None = None) -> dict[str, Any]:
    with Store(db_path, read_only=True) as store:
        runs = store.query_dicts(
            "SELECT run_id, status, started_at, finished_at, code_version, error FROM runs ORDER BY started_at DESC"
        )
        selected = run_id or (runs[0]["run_id"] if runs else None)
        stages = store.query_dicts(
            "SELECT stage, status, n_input, n_skipped, n_done, n_rejected, round(seconds, 2) AS seconds "
            "FROM run_stages WHERE run_id = ? ORDER BY started_at", [selected]
        )
        tables = {
            "images": store.query("SELECT count(*) FROM current_images")[0][0],
            "image_rejects": store.query("SELECT count(*) FROM current_image_rejects")[0][0],
            "reports": store.query("SELECT count(*) FROM current_reports")[0][0],
            "sentences": store.query("SELECT count(*) FROM current_sentences")[0][0],
            "report_rejects": store.query("SELECT count(*) FROM report_rejects")[0][0],
            "scene_graphs": store.query("SELECT count(*) FROM current_scene_graphs")[0][0],
            "observations": store.query("SELECT count(*) FROM current_observations")[0][0],
            "extraction_failures": store.query("SELECT count(*) FROM current_extraction_failures")[0][0],
        }
        usage = store.query_dicts(
            "SELECT count(*) AS requests, coalesce(sum(prompt_tokens), 0) AS prompt_tokens, "
            "coalesce(sum(completion_tokens), 0) AS completion_tokens, count(*) FILTER (outcome <> 'ok') AS failed, "
            "round(coalesce(sum(seconds), 0), 1) AS request_seconds FROM llm_calls WHERE run_id = ?", [selected])[0]
        quality = store.query_dicts(
            "SELECT backend, code, count(*) AS n, min(study_id) AS example_study FROM "
            "(SELECT backend, study_id, unnest(quality) AS code FROM current_scene_graphs) "
            "GROUP BY backend, code ORDER BY backend, n DESC, code")
        reasons = store.query_dicts(
            "SELECT 'images' AS stage, reason, count(*) AS n, min(detail) AS example FROM current_image_rejects "
            "GROUP BY reason UNION ALL "
            "SELECT 'reports', reason, count(*), min(detail) FROM report_rejects GROUP BY reason UNION ALL "
            "SELECT 'extract', reason, count(*), min(error) FROM current_extraction_failures GROUP BY reason "
            "ORDER BY stage, n DESC, reason"
        )
    return {"runs": runs, "run_id": selected, "stages": stages, "tables": tables, "reject_reasons": reasons,
            "graph_quality": quality, "llm_usage": usage}


def _print_status(db_path: Path, run_id: str | None = None) -> None:
    info = collect_status(db_path, run_id)
    out = Console()
    runs = Table(title="Runs", title_justify="left")
    for column in ("run_id", "status", "started_at", "finished_at", "code_version"):
        runs.add_column(column, no_wrap=column == "run_id")
    for run in info["runs"][:10]:
        started, finished = (f"{run[c]:%Y-%m-%d %H:%M:%S}" if run[c] else "" for c in ("started_at", "finished_at"))
        runs.add_row(run["run_id"], run["status"], started, finished, run["code_version"])
    out.print(runs)
    stages = Table(title=f"Stages of run {info['run_id']}", title_justify="left")
    for column in ("stage", "status", "input", "skipped", "done", "rejected", "seconds"):
        stages.add_column(column, justify="right" if column not in ("stage", "status") else "left")
    for row in info["stages"]:
        stages.add_row(row["stage"], row["status"], *(str(row[c]) for c in
                                                      ("n_input", "n_skipped", "n_done", "n_rejected", "seconds")))
    out.print(stages)
    tables = info["tables"]
    out.print(f"current dataset: [bold]{tables['images']}[/] images ({tables['image_rejects']} files rejected), "
              f"[bold]{tables['reports']}[/] reports with {tables['sentences']} sentences "
              f"({tables['report_rejects']} records rejected), [bold]{tables['scene_graphs']}[/] scene graphs with "
              f"{tables['observations']} observations ({tables['extraction_failures']} extraction failures)")
    usage = info["llm_usage"]
    if usage["requests"]:
        out.print(f"LLM requests this run: [bold]{usage['requests']}[/] ({usage['failed']} not ok), "
                  f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens")
    _print_counts(out, "Scene-graph quality codes", ("backend", "code", "studies", "example study"),
                  [(r["backend"], r["code"], r["n"], r["example_study"]) for r in info["graph_quality"]])
    _print_counts(out, "Reject reasons", ("stage", "reason", "count", "example detail"),
                  [(r["stage"], r["reason"], r["n"], r["example"]) for r in info["reject_reasons"]])


def _print_counts(out: Console, title: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """A table of (group, code, count, example) rows; nothing when there are none."""
    if not rows:
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for group, code, count, example in rows:
        table.add_row(group, code, str(count), escape(example))
    out.print(table)


#: Export formats of this version (the others come with the QA stages).
EXPORT_FORMATS = ("labels14",)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build.")],
    export_format: Annotated[str, typer.Option("--format", help="labels14: study-level ChestX-ray14 labels CSV.")],
    dest: Annotated[Path, typer.Option("--dest", help="File to write.")],
    backend: Annotated[str, typer.Option("--backend", help="Scene graphs of this extraction backend.")] = "rules",
    uncertain: Annotated[str, typer.Option(
        "--uncertain", help="labels14: uncertain mentions count as 'negative' (0, the default) or 'positive' (1).")
    ] = "negative",
) -> None:
    """Write the current dataset in an external format (read-only over the store)."""
    from cxrvqa.export.labels14 import export_labels14

    try:
        if export_format not in EXPORT_FORMATS:
            raise CxrvqaError(f"unknown export format {export_format!r}; available: {list(EXPORT_FORMATS)}")
        if uncertain not in ("negative", "positive"):
            raise CxrvqaError(f"--uncertain must be 'negative' or 'positive', found {uncertain!r}")
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            rows = export_labels14(store, dest, backend=backend, uncertain=uncertain)  # type: ignore[arg-type]
    except CxrvqaError as exc:
        _fail(exc)
        return
    console.print(f"wrote {rows} studies to {escape(str(dest))}")


eval_app = typer.Typer(help="Score outputs against human labels.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("labels14")
def eval_labels14(
    pred: Annotated[Path, typer.Option("--pred", help="Predicted labels14 CSV.")],
    gold: Annotated[Path, typer.Option("--gold", help="Gold labels14 CSV (e.g. iu_dev_labels14.csv).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Per-label precision, recall, F1 and support; micro and macro over the 14 findings; normal."""
    from cxrvqa.extraction.evaluation import NORMAL, score_labels14

    try:
        report = score_labels14(pred, gold)
    except CxrvqaError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    table = Table(title=f"labels14: {report.studies} studies ({report.missing_in_pred} without a prediction, "
                        f"scored as all 0; {report.extra_in_pred} predictions not in gold)", title_justify="left")
    for column in ("label", "support", "tp", "fp", "fn", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for score in [*report.labels, report.normal, report.micro]:
        table.add_row(score.label, str(score.support), str(score.tp), str(score.fp), str(score.fn),
                      *("n/a" if value is None else f"{value:.3f}" for value in (score.precision, score.recall, score.f1)),
                      end_section=score.label in (report.labels[-1].label, NORMAL))
    table.add_row("macro", "", "", "", "", "", "", f"{report.macro_f1:.3f}")
    Console().print(table)


if __name__ == "__main__":
    app()
