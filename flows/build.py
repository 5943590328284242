"""The `build_dataset` flow: runs the requested stages, in order, as sub-flows.

Flows only sequence; each task takes a batch (hundreds of items) and calls the library.
With no PREFECT_API_URL, Prefect runs in ephemeral mode (no server to start by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from flows.prefect_env import configure_prefect_environment

configure_prefect_environment()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from cxrvqa import progress  # noqa: E402
from cxrvqa.config import Config  # noqa: E402
from cxrvqa.extraction import stage as extract_stage  # noqa: E402
from cxrvqa.imaging import boxes as box_import  # noqa: E402
from cxrvqa.imaging import stage as image_stage  # noqa: E402
from cxrvqa.parallel import batched  # noqa: E402
from cxrvqa.qa import stage as qa_stage  # noqa: E402
from cxrvqa.reports import stage as report_stage  # noqa: E402
from cxrvqa.reports.loaders import load_reports  # noqa: E402
from cxrvqa.store import Store, finish_run, finish_stage, open_writer, start_run, start_stage  # noqa: E402
from cxrvqa.store.runs import StageCounts  # noqa: E402
from cxrvqa.validation import judge as judge_stage  # noqa: E402
from cxrvqa.validation import stage as validate_stage  # noqa: E402
from cxrvqa.validation.dataset import dataset_checks  # noqa: E402


@task(name="ingest-image-batch", cache_policy=NO_CACHE)
def ingest_image_batch(db_path: Path, run_id: str, batch: list[str],
                       context: image_stage.ImageStageContext) -> StageCounts:
    counts = image_stage.ingest_batch(open_writer(db_path), run_id, batch, context)
    progress.advance("images", counts.n_input)
    return counts


def _run_stage(config: Config, run_id: str, stage: str, batches: Iterable[list],
               run_batch: Callable[[list], StageCounts], total: int | None, skipped: int = 0) -> dict[str, int]:
    """Bookkeeping around one stage: its run_stages row, progress, failure status.

    ``skipped``: inputs found done before any batch ran (they are counted as input and skipped).
    """
    store = open_writer(config.db_path)
    counts = start_stage(store, run_id, stage)
    counts.add(StageCounts(n_input=skipped, n_skipped=skipped))
    progress.start(stage, total)
    try:
        for batch in batches:
            counts.add(run_batch(batch))
    except BaseException:
        finish_stage(store, run_id, stage, counts, status="failed")
        raise
    finish_stage(store, run_id, stage, counts)
    return counts.as_dict()


@flow(name="ingest-images")
def ingest_images(config: Config, run_id: str) -> dict[str, int]:
    context = image_stage.prepare(config)

    def files() -> Iterator[str]:
        return image_stage.iter_source_files(context.images_dir, config.limit)

    return _run_stage(config, run_id, "images", batched(files(), config.imaging.batch_size),
                      lambda batch: ingest_image_batch(config.db_path, run_id, batch, context),
                      total=sum(1 for _ in files()))


@task(name="ingest-report-batch", cache_policy=NO_CACHE)
def ingest_report_batch(db_path: Path, run_id: str, batch: list,
                        context: report_stage.ReportStageContext) -> StageCounts:
    counts = report_stage.ingest_batch(open_writer(db_path), run_id, batch, context)
    progress.advance("reports", counts.n_input)
    return counts


@flow(name="ingest-reports")
def ingest_reports(config: Config, run_id: str) -> dict[str, int]:
    context = report_stage.prepare(config)
    records = report_stage.reject_duplicate_studies(load_reports(config.reports, config.report_format))
    return _run_stage(config, run_id, "reports", batched(records, config.report_limits.batch_size),
                      lambda batch: ingest_report_batch(config.db_path, run_id, batch, context), total=None)


@task(name="extract-batch", cache_policy=NO_CACHE)
def extract_batch(db_path: Path, run_id: str, batch: list[str],
                  context: extract_stage.ExtractStageContext) -> StageCounts:
    counts = extract_stage.extract_batch(open_writer(db_path), run_id, batch, context)
    progress.advance("extract", counts.n_input)
    return counts


@flow(name="extract-scene-graphs")
def extract(config: Config, run_id: str) -> dict[str, int]:
    context = extract_stage.prepare(config)
    total, pending = extract_stage.pending_studies(open_writer(config.db_path), context)
    context = extract_stage.with_workers_for(context, len(pending))
    return _run_stage(config, run_id, "extract", batched(pending, config.extraction.batch_size),
                      lambda batch: extract_batch(config.db_path, run_id, batch, context), total=len(pending),
                      skipped=total - len(pending))


@task(name="generate-qa-batch", cache_policy=NO_CACHE)
def generate_qa_batch(db_path: Path, run_id: str, batch: list[tuple[str, list[str]]],
                      context: qa_stage.QAStageContext) -> StageCounts:
    counts = qa_stage.generate_batch(open_writer(db_path), run_id, batch, context)
    progress.advance("qa", counts.n_input)
    return counts


@task(name="import-boxes", cache_policy=NO_CACHE)
def import_boxes(config: Config, run_id: str) -> dict[str, int]:
    """Box annotation files, matched to the current images (a `boxes` row in run_stages)."""
    store = open_writer(config.db_path)
    counts = start_stage(store, run_id, "boxes")
    for path in config.qa.boxes:
        summary = box_import.import_boxes(store, path, fmt="auto", run_id=run_id)
        counts.add(StageCounts(n_input=summary.n_rows, n_skipped=summary.n_skipped, n_done=summary.n_imported,
                               n_rejected=summary.n_rejected))
    finish_stage(store, run_id, "boxes", counts)
    return counts.as_dict()


@flow(name="generate-qa")
def generate_qa(config: Config, run_id: str) -> dict[str, int]:
    context = qa_stage.prepare(config)
    store = open_writer(config.db_path)
    if config.qa.boxes:
        import_boxes(config, run_id)
    qa_stage.record_inputs(store, run_id, context)
    total, pending = qa_stage.pending_work(store, context)
    context = qa_stage.with_workers_for(context, len(pending))
    counts = _run_stage(config, run_id, "qa", batched(pending, config.qa.batch_size),
                        lambda batch: generate_qa_batch(config.db_path, run_id, batch, context), total=len(pending),
                        skipped=total - len(pending))
    qa_stage.balance(store, run_id, context)
    return counts


@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(db_path: Path, run_id: str, batch: list[str],
                   context: validate_stage.ValidateStageContext) -> StageCounts:
    counts = validate_stage.validate_batch(open_writer(db_path), run_id, batch, context)
    progress.advance("validate", len(batch))
    return counts


@flow(name="validate-qa")
def validate(config: Config, run_id: str) -> dict[str, int]:
    context = validate_stage.prepare(config)
    validate_stage.record_grade_levels(open_writer(config.db_path))
    total, n_pending, pending = validate_stage.pending_studies(open_writer(config.db_path), context)
    counts = _run_stage(config, run_id, "validate", batched(pending, config.qa.batch_size),
                        lambda batch: validate_batch(config.db_path, run_id, batch, context), total=len(pending),
                        skipped=total - n_pending)
    dataset_checks(open_writer(config.db_path), run_id)
    judge_context = judge_stage.prepare_judge(config)
    if judge_context is not None:
        eligible, keys = judge_stage.pending_items(open_writer(config.db_path), judge_context)
        _run_stage(config, run_id, "judge", batched(keys, config.judge.batch_size),
                   lambda batch: judge_batch(config.db_path, run_id, batch, judge_context), total=len(keys),
                   skipped=eligible - len(keys))
    return counts


@task(name="judge-batch", cache_policy=NO_CACHE)
def judge_batch(db_path: Path, run_id: str, batch: list[tuple[str, str, str]],
                context: judge_stage.JudgeContext) -> StageCounts:
    counts = judge_stage.judge_batch(open_writer(db_path), run_id, batch, context)
    progress.advance("judge", len(batch))
    return counts


STAGE_FLOWS: dict[str, Callable[[Config, str], dict[str, int]]] = {
    "images": ingest_images,
    "reports": ingest_reports,
    "extract": extract,
    "qa": generate_qa,
    "validate": validate,
}


@flow(name="build_dataset")
def build_dataset(config: Config) -> dict[str, Any]:
    """Run every stage of ``config.stages``; returns the run id and per-stage counts."""
    with Store(config.db_path, memory_limit=config.duckdb_memory_limit) as store:
        run_id = start_run(store, config)
        stages: dict[str, dict[str, int]] = {}
        try:
            for stage in config.stages:
                stages[stage] = STAGE_FLOWS[stage](config, run_id)
        except BaseException as exc:
            finish_run(store, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        finish_run(store, run_id, "completed")
    return {"run_id": run_id, "stages": stages}
