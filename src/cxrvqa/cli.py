"""The `cxrvqa` command line: build a dataset, show what a build did."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cxrvqa.audit.command import audit_command, diff_command
from cxrvqa.audit.summary import ReasonCount, grade_counts, reason_counts, table_counts
from cxrvqa.config import Config, drop_unset, load_config, merge_settings
from cxrvqa.console import RichReporter, console, fail
from cxrvqa.core import progress
from cxrvqa.core.prior import FORMAT_COLUMNS, PriorFigure, format_rows, headline, stored_prior
from cxrvqa.core.resources import resource
from cxrvqa import uptodate
from cxrvqa.errors import CxrvqaError
from cxrvqa.review.command import review_app
from cxrvqa.store import Store
from cxrvqa.synth.command import synth as synth_command

app = typer.Typer(
    help="Build validated chest X-ray VQA datasets from DICOM images and reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _setup_logging() -> None:
    """Library warnings (e.g. the demo pseudonymisation key) are shown once, through rich."""
    logger = logging.getLogger("cxrvqa")
    logger.addHandler(RichHandler(console=console, show_time=False, show_path=False, markup=False))
    logger.setLevel(logging.INFO)
    logger.propagate = False  # Prefect's root handler would print it a second time


#: `cxrvqa validate-file` exits with this code when any line is not ok (rejected or not an item); 2 is an
#: error that stopped it (no such file, no build).
VALIDATE_FILE_NOT_OK = 1


def _demo_inputs() -> dict[str, Any]:
    demo = resource("demo")
    return {
        "images_dir": Path(str(demo / "images")),
        "manifest": [
            Path(str(demo / name))
            for name in (
                "manifest.csv",
                "mimic-cxr-2.0.0-metadata.csv",
                "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
            )
        ],
        "reports": Path(str(demo / "reports.jsonl")),
        "report_format": "jsonl",
        "qa": {"boxes": [Path(str(demo / "boxes.csv"))]},
    }


# The options of `cxrvqa build` (a table of data: flag, type, help).
_BuildOut = Annotated[Path, typer.Option("--out", help="Output folder (PNGs and cxrvqa.duckdb).")]
_BuildImages = Annotated[Optional[Path], typer.Option("--images", help="Folder tree of DICOM, JPEG or PNG files.")]
_BuildReports = Annotated[Optional[Path], typer.Option("--reports", help="Reports file or folder.")]
_BuildReportFormat = Annotated[
    Optional[str],
    typer.Option(
        "--report-format",
        help=(
            "iu | mimic | jsonl | csv, or a corpus's report table: chexpert_plus (df_chexpert_plus_*.csv) | "
            "rexgradient (ReXGradient-160K metadata/*_metadata.csv)."
        ),
    ),
]
_BuildManifest = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--manifest",
        help=(
            "Metadata CSV linking images to studies, recognised by its header: MIMIC-CXR-JPG metadata (and its split "
            "file), CheXpert / CheXpert Plus, NIH Data_Entry_2017, PadChest, IU projections, or study_id, "
            "patient_id, image_path; repeatable."
        ),
    ),
]
_BuildSplitFrom = Annotated[
    Optional[str],
    typer.Option(
        "--split-from",
        help=(
            "Item splits: hash (patient-level keyed hash, the default) or manifest (the dataset's official split, "
            "from a split file given with --manifest, where a study has one)."
        ),
    ),
]
_BuildStages = Annotated[Optional[str], typer.Option("--stages", help="Comma-separated stages to run.")]
_BuildLimit = Annotated[
    Optional[int],
    typer.Option(
        "--limit",
        help=("At most N inputs per input stage: N image files and N report records (for a quick trial build)."),
    ),
]
_BuildConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML config file.")]
_BuildWorkers = Annotated[Optional[int], typer.Option("--workers", help="Decoding processes.")]
_BuildScale = Annotated[Optional[float], typer.Option("--scale", help="PNG size as a fraction of each side.")]
_BuildLongestSide = Annotated[Optional[int], typer.Option("--longest-side", help="PNG longest side in pixels.")]
_BuildExtractor = Annotated[Optional[str], typer.Option("--extractor", help="Scene-graph backend: rules | llm.")]
_BuildLlmBaseUrl = Annotated[
    Optional[str],
    typer.Option(
        "--llm-base-url", help=("OpenAI-compatible API, e.g. http://localhost:8000/v1 (key: $CXRVQA_LLM_API_KEY).")
    ),
]
_BuildLlmModel = Annotated[Optional[str], typer.Option("--llm-model", help="Model name for --extractor llm.")]
_BuildLlmConcurrency = Annotated[Optional[int], typer.Option("--llm-concurrency", help="Requests in flight.")]
_BuildExecutor = Annotated[
    Optional[str],
    typer.Option(
        "--executor",
        help=(
            "Where batches are computed: local (this machine; the default) or dask (a Dask cluster, given by "
            "--dask-address or started by --dask-local)."
        ),
    ),
]
_BuildDaskAddress = Annotated[
    Optional[str],
    typer.Option(
        "--dask-address",
        help=(
            "Scheduler of an existing Dask cluster, e.g. tcp://HOST:8786; its workers need the out folder on a "
            "shared filesystem at the same path."
        ),
    ),
]
_BuildDaskLocal = Annotated[
    Optional[int],
    typer.Option(
        "--dask-local",
        help=("Start a Dask LocalCluster of N worker processes for the build (to try the dask executor)."),
    ),
]
_BuildTemplates = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--templates",
        help=(
            "Folder of your own question templates (*.yaml), loaded beside the built-in ones; repeatable. Recorded "
            "with the run: a later build into the same --out keeps them unless --forget-templates."
        ),
    ),
]
_BuildPrograms = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--programs",
        help=(
            "Python file of your own answer programs (a plugin; see README, 'Answer programs'); repeatable; recorded "
            "with the run like --templates."
        ),
    ),
]
_BuildForgetTemplates = Annotated[
    bool,
    typer.Option(
        "--forget-templates",
        help=("Do not keep the template folders and program files recorded by the last run into --out."),
    ),
]
_BuildBoxes = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--boxes", help=("Box annotation CSV (VinDr or NIH style) to import before QA generation; repeatable.")
    ),
]
_BuildJudge = Annotated[
    Optional[bool],
    typer.Option(
        "--judge/--no-judge",
        help=("Also grade QA items with the LLM judge (CXR-QBA criteria), asking the --llm-base-url server."),
    ),
]
_BuildFromStage = Annotated[
    Optional[str],
    typer.Option(
        "--from-stage",
        help=(
            "Start at this stage (images | reports | extract | qa | validate): the earlier ones are not run, this "
            "one and the later ones redo what changed. Stages after reports read the store (no --reports needed)."
        ),
    ),
]
_BuildOnlyFailed = Annotated[
    Optional[bool],
    typer.Option(
        "--only-failed",
        help=(
            "Retry only image decode/read failures (with --images) and failed extractions, then regenerate and "
            "validate what they changed; new inputs wait for a normal build."
        ),
    ),
]
_BuildPrune = Annotated[
    Optional[bool],
    typer.Option(
        "--prune",
        help=(
            "The inputs are complete: retire the studies whose report and the images whose file they no longer have "
            "(their items leave the current dataset, the rows stay as history; cxrvqa audit lists them). Without it "
            "a build warns how many are absent."
        ),
    ),
]
_BuildRehash = Annotated[
    Optional[bool],
    typer.Option(
        "--rehash",
        help=(
            "Hash every image file (sha256) and read the whole reports input to find what changed. Without it a "
            "rebuild hashes only new image files and those whose size, modification time or inode differ from what "
            "the last build recorded, and reads no reports input whose files all stayed so; a file rewritten in "
            "place with the same size and its modification time set back is found only with --rehash."
        ),
    ),
]
_BuildDemo = Annotated[bool, typer.Option("--demo", help="Use the bundled demo data.")]
_BuildDebug = Annotated[
    bool,
    typer.Option(
        "--debug",
        help=(
            "Show the traceback of an error (without it, a failed run's traceback goes to a log file under "
            "--out/logs, named in the error line)."
        ),
    ),
]


@app.command()
def build(
    out: _BuildOut = None,
    images: _BuildImages = None,
    reports: _BuildReports = None,
    report_format: _BuildReportFormat = None,
    manifest: _BuildManifest = None,
    split_from: _BuildSplitFrom = None,
    stages: _BuildStages = None,
    limit: _BuildLimit = None,
    config_file: _BuildConfigFile = None,
    workers: _BuildWorkers = None,
    scale: _BuildScale = None,
    longest_side: _BuildLongestSide = None,
    extractor: _BuildExtractor = None,
    llm_base_url: _BuildLlmBaseUrl = None,
    llm_model: _BuildLlmModel = None,
    llm_concurrency: _BuildLlmConcurrency = None,
    executor: _BuildExecutor = None,
    dask_address: _BuildDaskAddress = None,
    dask_local: _BuildDaskLocal = None,
    templates: _BuildTemplates = None,
    programs: _BuildPrograms = None,
    forget_templates: _BuildForgetTemplates = False,
    boxes: _BuildBoxes = None,
    judge: _BuildJudge = None,
    from_stage: _BuildFromStage = None,
    only_failed: _BuildOnlyFailed = None,
    prune: _BuildPrune = None,
    rehash: _BuildRehash = None,
    demo: _BuildDemo = False,
    debug: _BuildDebug = False,
) -> None:
    """Run the pipeline stages over the inputs and store everything under --out."""
    overrides = _build_overrides(dict(locals()))  # the options as given (locals() holds only them here)
    if demo:
        overrides = merge_settings(_demo_inputs(), drop_unset(overrides))
    flags = {"stages": stages, "from_stage": from_stage, "forget_templates": forget_templates}
    invocation = _invocation(config_file, overrides, {**flags, "stages_in_file": _stages_set_in(config_file)})
    if invocation is not None and _said_up_to_date(*invocation):
        return
    from flows.prefect_env import start_local_server

    try:
        start_local_server()  # its ~4 s start overlaps the imports and checks below (or one kept from a build before)
        config = _build_config(config_file, overrides, stages, from_stage, forget_templates)
    except CxrvqaError as exc:
        fail(exc, debug=debug)
        return
    log = config.out_dir / "logs" / f"build-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    try:
        result = _run_and_record(config, None if debug else log, invocation)
    except CxrvqaError as exc:
        fail(exc, log, debug)
        return
    console.print(f"run [bold]{result['run_id']}[/] completed")
    _print_status(config.db_path, run_id=result["run_id"], brief=True)


def _run_and_record(config: Config, log: Path | None, invocation: tuple[Config, str] | None) -> dict[str, Any]:
    """The build; then, where its repeat is known to do nothing, the record that finds that repeat up to date
    (`cxrvqa.uptodate`), with the inputs' stats taken before the run."""
    repeatable = invocation is not None and _repeatable_build(invocation[0], config)
    inputs = uptodate.inputs_before(config) if repeatable else None
    with _warnings_kept() as warnings:
        result = _run_build(config, log)
    failed_extractions = result["stages"].get("extract", {}).get("n_rejected", 0)  # retried by a repeat
    if invocation is not None and inputs is not None and not warnings and not failed_extractions:
        uptodate.record(config, invocation[1], result["run_id"], inputs)
    return result


def _invocation(
    config_file: Path | None, overrides: dict[str, Any], flags: dict[str, Any]
) -> tuple[Config, str] | None:
    """The settings as given (before the database adds the last run's templates) and their key for
    `cxrvqa.uptodate`; None where they do not load (the build then says why)."""
    try:
        given = load_config(config_file, overrides)
    except CxrvqaError:
        return None
    return given, uptodate.invocation_key(given, flags)


def _said_up_to_date(given: Config, key: str) -> bool:
    """Where nothing a repeat of the last build depends on changed: say so, show its status, and run nothing."""
    run_id = uptodate.up_to_date(given, key) if uptodate.repeatable(given) else None
    if run_id is None:
        return False
    console.print(
        f"up to date: the inputs, settings, code and database are as run [bold]{run_id}[/] left them, so no stage "
        "has anything to do (--rehash runs every stage)"
    )
    _print_status(given.db_path, run_id=run_id, brief=True)
    return True


def _repeatable_build(given: Config, config: Config) -> bool:
    """Settings whose completed build a repeat is known to find with nothing to do, and that kept no templates of
    an earlier run (a repeat must say so again)."""
    kept = (given.qa.template_dirs, given.qa.program_modules) != (config.qa.template_dirs, config.qa.program_modules)
    return uptodate.repeatable(config) and not kept


@contextlib.contextmanager
def _warnings_kept() -> Iterator[list[logging.LogRecord]]:
    """The warnings cxrvqa logs inside the block (a build that warned is not recorded as up to date: a repeat
    must warn again)."""
    kept: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = _Keep(level=logging.WARNING)
    logging.getLogger("cxrvqa").addHandler(handler)
    try:
        yield kept
    finally:
        logging.getLogger("cxrvqa").removeHandler(handler)


def _build_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The settings that `cxrvqa build`'s options give (None where an option was not given)."""
    o = options
    stages, workers, programs = o["stages"], o["workers"], o["programs"]
    return {
        "out_dir": o["out"],
        "images_dir": o["images"],
        "reports": o["reports"],
        "report_format": o["report_format"],
        "manifest": o["manifest"] or None,
        "limit": o["limit"],
        "stages": [s.strip() for s in stages.split(",") if s.strip()] if stages else None,
        "imaging": {"workers": workers, "scale": o["scale"], "longest_side": o["longest_side"], "rehash": o["rehash"]},
        "report_limits": {"reread": o["rehash"]},
        "extraction": {
            "backend": o["extractor"],
            "workers": workers,
            "llm": {"base_url": o["llm_base_url"], "model": o["llm_model"], "max_concurrency": o["llm_concurrency"]},
        },
        "qa": {
            "template_dirs": o["templates"] or None,
            "program_modules": programs or None,
            "boxes": o["boxes"] or None,
            "workers": workers,
            "split_from": o["split_from"],
        },
        "judge": {"enabled": o["judge"]},
        "only_failed": o["only_failed"],
        "prune": o["prune"],
        "executor": {
            "kind": o["executor"] or ("dask" if o["dask_address"] or o["dask_local"] else None),
            "dask_address": o["dask_address"],
            "dask_local_workers": o["dask_local"],
        },
    }


def _build_config(
    config_file: Path | None,
    overrides: dict[str, Any],
    stages: str | None,
    from_stage: str | None,
    forget_templates: bool,
) -> Config:
    """The build's settings, checked before any flow starts: the stages to run and their inputs, the templates,
    the judge and the database (raises CxrvqaError on the first problem)."""
    config = load_config(config_file, overrides)
    if from_stage is not None or config.only_failed:
        config.stages = _resumed_stages(config, from_stage, given=bool(stages))
    elif not stages and not _stages_set_in(config_file):
        config.stages = [s for s in config.stages if _stage_input(config, s) is not None]
        if not config.stages:
            raise CxrvqaError("nothing to build: give --images DIR and/or --reports PATH (or --demo)")
    for stage in config.stages:
        if stage in STAGE_INPUTS and _stage_input(config, stage) is None:
            raise CxrvqaError(f"the {stage} stage needs {STAGE_INPUTS[stage]} (or --demo)")
    if not forget_templates:
        _keep_recorded_templates(config)
    from cxrvqa.qa.stage import check_templates

    check_templates(config)  # a bad template, or one whose worked examples fail, stops the build here
    if "validate" in config.stages:
        from cxrvqa.validation.judge import prepare_judge

        prepare_judge(config)  # so does a judge without a server, model or known min_grade
    _check_inputs(config)  # so does an unreadable, empty or wrongly laid out reports, manifest or box file
    with Store(config.db_path):  # and a database another build holds, before any flow starts
        pass
    return config


def _keep_recorded_templates(config: Config) -> None:
    """A rebuild into an --out whose last run used template folders or program files (and that names none
    itself) keeps them, and says so: forgetting --templates must not drop their items silently. One that names
    others says which recorded ones it leaves out (their templates' items leave the dataset)."""
    if not config.db_path.is_file():
        return
    given = config.qa.model_fields_set
    from cxrvqa.store.runs import last_config

    with Store(config.db_path) as store:  # writable: a build migrates an --out of an older schema
        recorded = last_config(store)
    if recorded is None:
        return
    for key, flag in (("template_dirs", "--templates"), ("program_modules", "--programs")):
        kept = getattr(recorded.qa, key)
        left_out = [p for p in kept if p not in getattr(config.qa, key)]
        if key not in given and kept:
            setattr(config.qa, key, kept)
            console.print(
                f"[yellow]note:[/] keeping {flag} {', '.join(escape(str(p)) for p in kept)} of the last run "
                f"(--forget-templates: build without them)",
                soft_wrap=True,
            )
        elif left_out:
            console.print(
                f"[yellow]note:[/] leaving out {flag} {', '.join(escape(str(p)) for p in left_out)} of the "
                f"last run: the items of their templates leave the dataset (name them again to keep them)",
                soft_wrap=True,
            )


#: Stages that read an input given on the command line; the others read the store.
STAGE_INPUTS = {"images": "--images DIR", "reports": "--reports PATH"}


def _check_inputs(config: Config) -> None:
    """Raise InputError for an input file the stages to run cannot use at all, before any flow starts."""
    if "reports" in config.stages and config.reports is not None:
        from cxrvqa.reports.loaders import check_reports_input

        check_reports_input(config.reports, config.report_format)
    if "images" in config.stages and config.manifest is not None:
        from cxrvqa.imaging.manifest import load_manifests

        load_manifests(config.manifest)
    if "qa" in config.stages:
        from cxrvqa.imaging.boxes import check_box_file

        for path in config.qa.boxes:
            check_box_file(path)


def _stage_input(config: Config, stage: str) -> Path | None:
    """What a stage reads when it is not named in --stages: extraction, QA and validation follow the reports."""
    return {
        "images": config.images_dir,
        "reports": config.reports,
        "extract": config.reports,
        "qa": config.reports,
        "validate": config.reports,
    }[stage]


def _resumed_stages(config: Config, from_stage: str | None, given: bool) -> list[str]:
    """The stages of --from-stage / --only-failed: stages that read an input run when it is given (the named
    start stage must have it); extraction, QA and validation read the store. --only-failed never ingests
    reports (a report's rejection is decided by its text) and starts at images or extraction."""
    from cxrvqa.config import PIPELINE_STAGES

    if given:
        raise CxrvqaError("--stages cannot be combined with --from-stage or --only-failed")
    start = from_stage or "images"
    if start not in PIPELINE_STAGES:
        raise CxrvqaError(f"--from-stage: unknown stage {start!r}; stages are {list(PIPELINE_STAGES)}")
    chosen = [
        s
        for s in PIPELINE_STAGES[PIPELINE_STAGES.index(start) :]
        if s not in STAGE_INPUTS or s == from_stage or _stage_input(config, s) is not None
    ]
    if config.only_failed:
        chosen = [s for s in chosen if s != "reports"]
    return chosen


def _stages_set_in(config_file: Path | None) -> bool:
    if config_file is None:
        return False
    from cxrvqa.config import read_config_file

    return "stages" in read_config_file(config_file)


def _run_build(config: Config, log: Path | None) -> dict[str, Any]:
    """The build flow; with a ``log``, Prefect's traceback of a failed run goes there, not to the console."""
    from flows.build import build_dataset  # imported late: configures Prefect first
    from flows.prefect_env import lean_local_runs, prefect_errors_to, wait_for_local_server

    uptodate.forget(config)  # a build that stops half-way leaves no record
    wait_for_local_server()
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Progress(*columns, console=console, transient=False) as bar,
        progress.reporting(RichReporter(bar)),
        lean_local_runs(),
        prefect_errors_to(log) if log is not None else contextlib.nullcontext(),
    ):
        return build_dataset(config)


@app.command()
def status(
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    template_dirs: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--templates",
            help=("Template folder(s) to tell what is stale against, instead of those the last run recorded."),
        ),
    ] = None,
    programs: Annotated[
        Optional[list[Path]],
        typer.Option("--programs", help=("Answer-program file(s) to load, instead of those the last run recorded.")),
    ] = None,
) -> None:
    """Runs, per-stage counts and reject reasons of the build under --out."""
    qa = {"template_dirs": template_dirs, "program_modules": programs}
    try:
        if as_json:
            typer.echo(json.dumps(collect_status(out / "cxrvqa.duckdb", qa=qa), indent=2, default=str))
        else:
            _print_status(out / "cxrvqa.duckdb", qa=qa)
    except CxrvqaError as exc:
        fail(exc)


def collect_status(
    db_path: Path, run_id: str | None = None, brief: bool = False, qa: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything `status` shows. ``brief`` (the summary a build prints) leaves out the reject reasons, the
    items per question type and format, and what the next build would redo: on a large build they take
    seconds (the validation reasons read every result row, the formats every item: 4.7 s at 100k studies;
    staleness asks every stage), and the build just redid what was stale."""
    # capped like a build's store: uncapped, DuckDB may take 80% of the machine's memory for these queries
    with Store(db_path, read_only=True, memory_limit=Config().duckdb_memory_limit) as store:
        runs = store.query_dicts(
            "SELECT run_id, status, started_at, finished_at, code_version, error FROM runs ORDER BY started_at DESC"
        )
        selected = run_id or (runs[0]["run_id"] if runs else None)
        stages = store.query_dicts(
            "SELECT stage, status, n_input, n_skipped, n_done, n_rejected, round(seconds, 2) AS seconds "
            "FROM run_stages WHERE run_id = ? ORDER BY started_at",
            [selected],
        )
        tables = table_counts(store)
        grades = [{"grade": g.grade, "label": g.label, "n": g.n} for g in grade_counts(store)]
        qa_formats, reasons, work = (None, None, None) if brief else _status_detail(store, qa)
        prior = [asdict(f) for f in headline(stored_prior(store))]
        balance = store.query_dicts(BALANCE_SQL)
        usage = store.query_dicts(
            "SELECT count(*) AS requests, coalesce(sum(prompt_tokens), 0) AS prompt_tokens, "
            "coalesce(sum(completion_tokens), 0) AS completion_tokens, count(*) FILTER (outcome <> 'ok') AS failed, "
            "round(coalesce(sum(seconds), 0), 1) AS request_seconds FROM llm_calls WHERE run_id = ?",
            [selected],
        )[0]
        quality = store.query_dicts(
            "SELECT backend, code, count(*) AS n, min(study_id) AS example_study FROM "
            "(SELECT backend, study_id, unnest(quality) AS code FROM current_scene_graphs) "
            "GROUP BY backend, code ORDER BY backend, n DESC, code"
        )
    return {
        "runs": runs,
        "run_id": selected,
        "stages": stages,
        "tables": tables,
        "reject_reasons": reasons,
        "graph_quality": quality,
        "llm_usage": usage,
        "qa_formats": qa_formats,
        "grades": grades,
        "stale": work,
        "question_only_baseline": prior,
        "balance": balance,
    }


def _status_detail(
    store: Store, qa: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]] | None]:
    """What a brief status leaves out, being slow on a large build: the items per question type and format,
    the reject reasons, and what the next build would redo (None when no run recorded its config)."""
    from cxrvqa.staleness import stale_work
    from cxrvqa.store.runs import last_config

    qa_formats = store.query_dicts(
        "SELECT question_type, answer_format, count(*) AS n, count(DISTINCT template_id) AS templates, "
        "round(avg(polarity::INTEGER), 3) AS yes_share FROM current_qa_items GROUP BY ALL ORDER BY ALL"
    )
    reasons = sorted(map(_status_reason, reason_counts(store)), key=lambda r: (r["stage"], -r["n"], r["reason"]))
    config = last_config(store)
    if config is not None:
        config = _with_qa(config, qa)
    work = [w.as_dict() for w in stale_work(store, config)] if config is not None else None
    return qa_formats, reasons, work


#: What the latest per-question balance kept, per kind of question: yes/no (template and arguments) and
#: multiple choice (template and set of options): questions, those missing an answer, those the build
#: balanced again (an edit elsewhere moved their share out of the tolerance), candidates and kept items.
BALANCE_SQL = """
SELECT 'yes/no' AS kind, count(*) AS questions, count(*) FILTER (missing IS NOT NULL) AS missing_an_answer,
       count(*) FILTER (basis = 'rebalanced') AS rebalanced, coalesce(sum(n_positive + n_negative), 0) AS candidates,
       coalesce(sum(n_positive_kept + n_negative_kept), 0) AS kept FROM current_qa_question_balance
UNION ALL
SELECT 'multiple choice', count(*), count(*) FILTER (least = 0), count(*) FILTER (rebalanced), coalesce(sum(n), 0),
       coalesce(sum(kept), 0)
FROM (SELECT min(n_items) AS least, bool_or(basis = 'rebalanced') AS rebalanced, sum(n_items) AS n,
             sum(n_kept) AS kept FROM current_qa_choice_balance GROUP BY template_id, template_version, options)"""


def _with_qa(config: Config, qa: dict[str, Any] | None) -> Config:
    """The recorded config with the --templates / --programs given now (None: keep the recorded ones)."""
    for key, value in (qa or {}).items():
        if value:
            setattr(config.qa, key, value)
    return config


def _status_reason(reason: ReasonCount) -> dict[str, Any]:
    """A reason as `status` lists it: validation reasons as 'validator: reason' under 'validate (status)'."""
    stage, code = reason.stage, reason.reason
    if stage == "validate":
        stage, code = f"validate ({reason.status})", f"{reason.validator}: {reason.reason}"
    elif stage == "dataset":
        stage = "dataset check"
    return {"stage": stage, "reason": code, "n": reason.n, "example": reason.example}


def _print_status(
    db_path: Path, run_id: str | None = None, brief: bool = False, qa: dict[str, Any] | None = None
) -> None:
    info = collect_status(db_path, run_id, brief, qa=qa)
    out = Console()
    _print_runs(out, info)
    _print_dataset(out, info)
    _print_problems(out, info, db_path)


def _print_runs(out: Console, info: dict[str, Any]) -> None:
    """The last ten runs, and the stages of the run shown."""
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
        stages.add_row(
            row["stage"],
            row["status"],
            *(str(row[c]) for c in ("n_input", "n_skipped", "n_done", "n_rejected", "seconds")),
        )
    out.print(stages)


def _print_dataset(out: Console, info: dict[str, Any]) -> None:
    """The current dataset: table counts, QA items per format, grades, balance, the question-only baseline."""
    tables = info["tables"]
    out.print(
        f"current dataset: [bold]{tables['images']}[/] images ({tables['image_rejects']} files rejected), "
        f"[bold]{tables['reports']}[/] reports with {tables['sentences']} sentences "
        f"({tables['report_rejects']} records rejected), [bold]{tables['scene_graphs']}[/] scene graphs with "
        f"{tables['observations']} observations ({tables['extraction_failures']} extraction failures)"
    )
    if tables["qa_items"] and info["qa_formats"] is None:
        out.print(f"QA items: [bold]{tables['qa_items']}[/] (boxes: {tables['boxes']})")
    elif tables["qa_items"]:
        qa = Table(title=f"QA items: {tables['qa_items']} (boxes: {tables['boxes']})", title_justify="left")
        for column in ("question type", "answer format", "items", "templates", "yes share"):
            qa.add_column(column, justify="right" if column in ("items", "templates", "yes share") else "left")
        for row in info["qa_formats"]:
            qa.add_row(
                row["question_type"],
                row["answer_format"],
                str(row["n"]),
                str(row["templates"]),
                "" if row["yes_share"] is None else f"{row['yes_share']:.3f}",
            )
        out.print(qa)
    if tables["qa_items"] and any(g["n"] for g in info["grades"]):
        out.print("grades: " + ", ".join(f"[bold]{g['label']}[/] {g['n']}" for g in info["grades"]))
    for row in info["balance"]:
        if row["questions"]:
            out.print(
                f"balanced per question ({row['kind']}): kept [bold]{row['kept']}[/] of {row['candidates']} "
                f"candidates in {row['questions']} questions, {row['missing_an_answer']} missing an answer "
                f"(nothing kept), {row['rebalanced']} balanced again by the last build"
            )
    if info["question_only_baseline"]:
        prior = Table(
            title="Question-only baseline: the train split's majority answer per question, on the "
            "held-out items (cxrvqa audit: per template)",
            title_justify="left",
        )
        for column in FORMAT_COLUMNS:
            prior.add_column(column, justify="left" if column == "answer format" else "right")
        for row in format_rows(PriorFigure(**f) for f in info["question_only_baseline"]):
            prior.add_row(*row)
        out.print(prior)
    elif tables["qa_items"]:
        out.print("question-only baseline: not measurable (it needs items of the train split and of another split)")


def _print_problems(out: Console, info: dict[str, Any], db_path: Path) -> None:
    """LLM usage, scene-graph quality codes, reject reasons and what is stale."""
    usage = info["llm_usage"]
    if usage["requests"]:
        out.print(
            f"LLM requests this run: [bold]{usage['requests']}[/] ({usage['failed']} not ok), "
            f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens"
        )
    _print_counts(
        out,
        "Scene-graph quality codes",
        ("backend", "code", "studies", "example study"),
        [(r["backend"], r["code"], r["n"], r["example_study"]) for r in info["graph_quality"]],
    )
    if info["reject_reasons"] is None:
        out.print(
            "items per question type and format, reject reasons and what is stale: "
            f"cxrvqa status --out {escape(str(db_path.parent))}; "
            f"failures in detail: cxrvqa audit --out {escape(str(db_path.parent))}"
        )
    else:
        _print_counts(
            out,
            "Reject reasons",
            ("stage", "reason", "count", "example detail"),
            [(r["stage"], r["reason"], r["n"], r["example"]) for r in info["reject_reasons"]],
        )
    if info["stale"]:
        _print_counts(
            out,
            "Stale: what the next build redoes",
            ("stage", "what", "count", "why"),
            [(w["stage"], w["subject"], w["n"], w["why"]) for w in info["stale"]],
        )
    elif info["stale"] is not None and info["runs"]:
        out.print("nothing stale: a rebuild with the same settings redoes nothing (new inputs aside)")


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


#: Export formats: QA items (jsonl, parquet, hf, llava) and study-level labels (labels14).
EXPORT_FORMATS = ("jsonl", "parquet", "hf", "llava", "labels14")


# The options of `cxrvqa export`.
_ExportOut = Annotated[Path, typer.Option("--out", help="Output folder of a build.")]
_ExportFormat = Annotated[
    str,
    typer.Option(
        "--format",
        help=(
            "jsonl: one QA item per line (what validate-file reads). parquet: a folder with one Parquet file per "
            "split and a dataset card, image paths relative to the build. hf: the same with datasets "
            "Image features "
            "(absolute image paths). llava: LLaVA conversation JSON (items without an image are left out). "
            "labels14: study-level ChestX-ray14 labels CSV."
        ),
    ),
]
_ExportDest = Annotated[
    Path,
    typer.Option(
        "--dest", help=("File (jsonl, llava, labels14) or folder (parquet, hf) to write; replaced atomically.")
    ),
]
_ExportMinGrade = Annotated[
    Optional[str],
    typer.Option(
        "--min-grade",
        help=("Only items graded G or better (A++, A+, A, B, C, D: schemas/vocab/grades.yaml); default: every item."),
    ),
]
_ExportSplit = Annotated[Optional[str], typer.Option("--split", help="Only items of this split (train | val | test).")]
_ExportBalance = Annotated[
    Optional[str],
    typer.Option(
        "--balance",
        help=(
            "per-question: an evaluation profile, per split and question (template and arguments) as many 'yes' as "
            "'no' items (each option of a choice as often), chosen by item-hash thresholds that stay put across "
            "rebuilds, so that the question alone answers about half; with --min-grade, balanced over the items "
            "graded that well; the card states it and its question-only baseline."
        ),
    ),
]
_ExportBackend = Annotated[str, typer.Option("--backend", help="labels14: scene graphs of this extraction backend.")]
_ExportUncertain = Annotated[
    str,
    typer.Option(
        "--uncertain", help="labels14: uncertain mentions count as 'negative' (0, the default) or 'positive' (1)."
    ),
]


@app.command()
def export(
    out: _ExportOut,
    export_format: _ExportFormat,
    dest: _ExportDest,
    min_grade: _ExportMinGrade = None,
    split: _ExportSplit = None,
    balance: _ExportBalance = None,
    backend: _ExportBackend = "rules",
    uncertain: _ExportUncertain = "negative",
) -> None:
    """Write the current dataset in an external format (read-only over the store)."""
    try:
        if export_format not in EXPORT_FORMATS:
            raise CxrvqaError(f"unknown export format {export_format!r}; available: {list(EXPORT_FORMATS)}")
        if export_format == "labels14":
            if min_grade is not None or split is not None or balance is not None:
                raise CxrvqaError("--min-grade, --split and --balance select QA items; labels14 has one row per study")
            _export_labels14(out, dest, backend, uncertain)
            return
        summary, selection, seconds = _export_items(out, dest, export_format, min_grade, split, balance)
    except CxrvqaError as exc:
        fail(exc)
        return
    _print_export(summary, selection, seconds, export_format, dest)


def _export_labels14(out: Path, dest: Path, backend: str, uncertain: str) -> None:
    from cxrvqa.export.labels14 import export_labels14

    if uncertain not in ("negative", "positive"):
        raise CxrvqaError(f"--uncertain must be 'negative' or 'positive', found {uncertain!r}")
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        rows = export_labels14(store, dest, backend=backend, uncertain=uncertain)  # type: ignore[arg-type]
    console.print(f"wrote {rows} studies to {escape(str(dest))}")


def _export_items(
    out: Path, dest: Path, export_format: str, min_grade: str | None, split: str | None, balance: str | None
) -> tuple[Any, Any, float]:
    """Write the selected QA items; returns the writer's summary, the selection and the seconds it took."""
    from cxrvqa.export.items import select
    from cxrvqa.export.jsonl import export_jsonl
    from cxrvqa.export.llava import export_llava
    from cxrvqa.export.parquet import export_parquet

    writers = {
        "jsonl": export_jsonl,
        "parquet": export_parquet,
        "llava": export_llava,
        "hf": lambda store, dest, selection: export_parquet(store, dest, selection, hf=True),
    }
    limit = load_config(None, {"out_dir": out}).duckdb_memory_limit  # DuckDB spills its sorts beyond it
    with Store(out / "cxrvqa.duckdb", read_only=True, memory_limit=limit) as store:
        selection = select(store, min_grade, split, balance)
        started = time.perf_counter()
        summary = writers[export_format](store, dest, selection)
        seconds = time.perf_counter() - started
    return summary, selection, seconds


def _print_export(summary: Any, selection: Any, seconds: float, export_format: str, dest: Path) -> None:
    splits = "".join(f"{s} {n}, " for s, n in summary.per_split.items())
    console.print(
        f"wrote {summary.items} items ({splits}{selection.describe()}) to {escape(str(dest))} "
        f"in {seconds:.1f} s ({summary.items / max(seconds, 1e-9):,.0f} items/s)"
    )
    for reason, n in summary.skipped.items():
        console.print(f"skipped {n} items: {reason}" + (" (LLaVA needs an image)" if reason == "no_image" else ""))
    if not summary.items:
        console.print(
            "[yellow]warning:[/] no item was written"
            + (": the folder holds the card only" if export_format in ("parquet", "hf") else "")
        )
    root = escape(str(summary.image_root))
    console.print(
        f"image paths are absolute, in {root}"
        if export_format == "hf"
        else f"image paths are relative to the build folder {root}"
        + (" (use it as --image_folder)" if export_format == "llava" else "")
    )


templates_app = typer.Typer(help="Question templates: list, check, preview.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
TemplateDirs = Annotated[Optional[list[Path]], typer.Option("--templates", help="Folder of your own templates.")]
ProgramFiles = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--programs",
        help=(
            "Python file of your own answer programs (a plugin registering with "
            "cxrvqa.qa.programs.program); repeatable."
        ),
    ),
]


def _warn_broken(errors: list[CxrvqaError]) -> None:
    """Bad template files that a list or a preview skipped (the build would stop at them)."""
    for exc in errors:
        console.print(f"[yellow]warning:[/] skipped {escape(str(exc))}", soft_wrap=True)


@templates_app.command("list")
def templates_list(template_dirs: TemplateDirs = None, programs: ProgramFiles = None) -> None:
    """Every template (built-in and --templates folders) with its type, format and program."""
    from cxrvqa.qa.plugins import load_programs
    from cxrvqa.qa.templates import load_templates

    errors: list = []
    try:
        load_programs(programs or ())
        templates = load_templates(tuple(template_dirs or ()), errors=errors)
    except CxrvqaError as exc:
        fail(exc)
        return
    _warn_broken(errors)
    table = Table(title=f"{len(templates)} question templates", title_justify="left")
    for column in ("id", "type", "strategy", "skill", "format", "program", "arguments", "negatives", "source"):
        table.add_column(column)
    for t in templates:
        table.add_row(
            t.id,
            t.question_type,
            t.strategy,
            t.skill or "",
            t.answer_format,
            t.program,
            t.arguments,
            t.negatives,
            escape(t.source),
        )
    Console().print(table)


@templates_app.command("lint")
def templates_lint(
    files: Annotated[
        Optional[list[Path]], typer.Argument(help="Template files or folders (default: built-ins).")
    ] = None,
    programs: ProgramFiles = None,
) -> None:
    """Check template files against the schema, the programs and the vocabularies, and run their worked
    examples (the expected answer must be the program's); exit 1 on any problem."""
    from cxrvqa.core.resources import resource
    from cxrvqa.qa.plugins import load_programs
    from cxrvqa.qa.templates import lint_paths

    try:
        load_programs(programs or ())
    except CxrvqaError as exc:
        fail(exc)
        return
    paths: list[Path] = []
    for item in files or [Path(str(resource("prompts", "questions")))]:
        paths.extend(sorted(item.glob("*.yaml")) if item.is_dir() else [item])
    results = lint_paths(paths)
    out = Console()
    for path, problems in results.items():
        if problems:
            out.print(f"[red]FAIL[/] {escape(path)}")
            for problem in problems:
                out.print(f"  - {escape(problem)}")
        else:
            out.print(f"[green]ok[/]   {escape(path)}")
    bad = sum(bool(p) for p in results.values())
    out.print(f"{len(results)} file(s), {bad} with problems")
    if bad or not results:
        raise typer.Exit(code=1)


@templates_app.command("preview")
def templates_preview(
    template_id: Annotated[str, typer.Argument(help="Template id (file name without .yaml).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build.")],
    study: Annotated[Optional[str], typer.Option("--study", help="Only this study.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most N studies.")] = 20,
    template_dirs: TemplateDirs = None,
    programs: ProgramFiles = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What a template would produce on the stored scene graphs, without writing anything (a broken file
    in a --templates folder is skipped with a warning unless it is the one previewed)."""
    from cxrvqa.qa.plugins import load_programs
    from cxrvqa.qa.preview import preview_template

    errors: list = []
    try:
        load_programs(programs or ())
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            items = preview_template(
                store, template_id, tuple(template_dirs or ()), study=study, limit=limit, errors=errors
            )
    except CxrvqaError as exc:
        fail(exc)
        return
    _warn_broken(errors)
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(title=f"{template_id}: {len(items)} item(s) (before balancing)", title_justify="left")
    for column in ("study", "image", "question", "answer", "options"):
        table.add_column(column)
    for item in items:
        options = " ".join(f"{letter}) {text}" for letter, text in zip("ABCD", item["options"] or [], strict=False))
        answer = item["answer"] + (f"  [{item['correct_option']}]" if item["correct_option"] else "")
        table.add_row(
            item["study_id"], (item["image_id"] or "")[:14], escape(item["question"]), escape(answer), escape(options)
        )
    Console().print(table)


@templates_app.command("programs")
def templates_programs(
    programs: ProgramFiles = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every answer program (built-in, entry points, --programs files): what it answers, its arguments,
    formats, the template keys it reads and, for yes/no about a finding, what 'yes' means."""
    from cxrvqa.qa.plugins import load_programs
    from cxrvqa.qa.programs import PROGRAMS

    try:
        load_programs(programs or ())
    except CxrvqaError as exc:
        fail(exc)
        return
    found = [PROGRAMS[name].describe() for name in sorted(PROGRAMS)]
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    yes_means = {
        "present": "yes = the finding is present",
        "absent": "yes = the finding is ruled out (absent)",
        "uncertain": "yes = the finding is only hedged",
    }
    table = Table(title=f"{len(found)} answer programs", title_justify="left")
    for column in ("program", "answers", "arguments", "formats", "yes/no", "keys it reads", "source"):
        table.add_column(column)
    for p in found:
        options = f" ({p['options'][0]}-{p['options'][1]} options)" if p["options"] else ""
        table.add_row(
            p["name"],
            escape(str(p["answers"])),
            ", ".join(p["arguments"]),
            ", ".join(p["formats"]) + options,
            yes_means.get(p["yes_when"] or "", ""),
            ", ".join(p["uses"]),
            escape(str(p["source"])),
        )
    Console().print(table)


@app.command("validate-file")
def validate_file_command(
    items: Annotated[Path, typer.Argument(help="QA items as JSON lines (the jsonl export layout).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build: its images, reports and graphs.")],
    dest: Annotated[Path, typer.Option("--dest", help="Verdicts file to write (JSON lines, one per input line).")],
    config_file: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            help=("Config file (strictness, seed, splits, templates); default: the settings of the build's last run."),
        ),
    ] = None,
    template_dirs: Annotated[
        Optional[list[Path]],
        typer.Option("--templates", help=("Template folder(s) instead of those of the config / the last run.")),
    ] = None,
    programs: ProgramFiles = None,
) -> None:
    """Run every validator over items from a file, against a build; nothing is written to the build.
    Exit code 0 when every line is ok, 1 when any line is rejected or is not an item, 2 on an error."""
    from cxrvqa.store.runs import last_config
    from cxrvqa.validation.files import validate_file
    from cxrvqa.validation.stage import prepare

    try:
        with Store(out / "cxrvqa.duckdb", read_only=True) as store:
            # item ids and splits depend on the build's seed and splits: check items against the build's own
            config = load_config(config_file, {"out_dir": out}) if config_file else last_config(store)
            if config is None:
                raise CxrvqaError(f"{out} holds no build yet: run `cxrvqa build --out {out}` first")
            config = _with_qa(config, {"template_dirs": template_dirs, "program_modules": programs})
            summary = validate_file(store, items, dest, prepare(config, store))
    except CxrvqaError as exc:
        fail(exc)
        return
    console.print(
        f"{summary.lines} line(s): {summary.ok} ok, {summary.rejected} rejected, {summary.unreadable} "
        f"not a JSON object; verdicts in {escape(str(dest))}"
    )
    if summary.ok < summary.lines:
        raise typer.Exit(code=VALIDATE_FILE_NOT_OK)


@app.command("import-boxes")
def import_boxes_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder of a build (its images are matched).")],
    path: Annotated[Path, typer.Argument(help="Annotation CSV: VinDr (image_id, class_name, x_min, ...) or NIH.")],
    box_format: Annotated[str, typer.Option("--format", help="vindr | nih | auto")] = "auto",
    reference_size: Annotated[
        Optional[str],
        typer.Option(
            "--reference-size",
            help=("COLSxROWS of the image the boxes were drawn on (default: DICOM size; NIH: 1024x1024)."),
        ),
    ] = None,
) -> None:
    """Import box annotations, matched to the stored images and rescaled to their PNGs."""
    from cxrvqa.imaging.boxes import import_boxes
    from cxrvqa.store import recorded_run

    try:
        size = None
        if reference_size:
            try:
                cols, rows = (int(v) for v in reference_size.lower().split("x"))
            except ValueError as exc:
                raise CxrvqaError(
                    f"--reference-size: expected COLSxROWS like 1024x1024, found {reference_size!r}"
                ) from exc
            size = (cols, rows)
        with (
            Store(out / "cxrvqa.duckdb") as store,
            recorded_run(store, load_config(None, {"out_dir": out, "stages": []})) as run_id,
        ):
            summary = import_boxes(
                store,
                path,
                fmt=box_format,
                run_id=run_id,  # type: ignore[arg-type]
                reference_size=size,
            )
    except CxrvqaError as exc:
        fail(exc)
        return
    reasons = ", ".join(f"{reason} {n}" for reason, n in summary.reasons.most_common()) or "none"
    console.print(
        f"{escape(summary.source_file)} ({summary.fmt}): {summary.n_rows} rows, {summary.n_imported} "
        f"imported, {summary.n_skipped} already imported, {summary.n_rejected} rejected ({reasons}); "
        f"run {run_id}. Rebuild to regenerate the QA of the studies whose boxes changed."
    )


eval_app = typer.Typer(help="Score outputs against human labels.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("labels14")
def eval_labels14(
    pred: Annotated[Path, typer.Option("--pred", help="Predicted labels14 CSV.")],
    gold: Annotated[Path, typer.Option("--gold", help="Gold labels14 CSV (e.g. iu_dev_labels14.csv).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Per-label precision, recall, F1 and support; micro and macro over the 14 findings; normal."""
    from cxrvqa.core.vocab import NORMAL
    from cxrvqa.extraction.evaluation import score_labels14

    try:
        report = score_labels14(pred, gold)
    except CxrvqaError as exc:
        fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    table = Table(
        title=f"labels14: {report.studies} studies ({report.missing_in_pred} without a prediction, "
        f"scored as all 0; {report.extra_in_pred} predictions not in gold)",
        title_justify="left",
    )
    for column in ("label", "support", "tp", "fp", "fn", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for score in [*report.labels, report.normal, report.micro]:
        table.add_row(
            score.label,
            str(score.support),
            str(score.tp),
            str(score.fp),
            str(score.fn),
            *("n/a" if value is None else f"{value:.3f}" for value in (score.precision, score.recall, score.f1)),
            end_section=score.label in (report.labels[-1].label, NORMAL),
        )
    table.add_row("macro", "", "", "", "", "", "", f"{report.macro_f1:.3f}")
    Console().print(table)


app.command("audit")(audit_command)
app.command("diff")(diff_command)
app.command("synth")(synth_command)
app.add_typer(review_app, name="review")


def main() -> None:
    """The console script. The process ends without Python's last cyclic collections over everything it made: a
    build leaves millions of objects (Prefect, spaCy, the templates, the study views), and walking them again only
    to free them at exit took ~0.6-0.7 s of every build and rebuild on 2 cores. Objects still in reference cycles
    are left to the operating system, unfinalised: every resource is closed before (the stores, logs and clusters by
    their context managers, the pools and the local Prefect server at exit)."""
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
