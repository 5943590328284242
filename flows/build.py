"""The `build_dataset` flow: runs the requested stages, in order, as sub-flows.

Flows only sequence; each task takes a batch (hundreds of items) and calls the library.
With no PREFECT_API_URL, Prefect runs in ephemeral mode (no server to start by hand).
With the dask executor, a batch's computing is a task on a Dask cluster (prefect-dask's task runner)
that returns Parquet shards, and this process merges them: it alone writes to DuckDB.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from itertools import chain, islice
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import quote

from cxrvqa.config import Config
from cxrvqa.core import progress
from cxrvqa.core.batch import BatchStage, Started, run_batch, start_batch, starts_ahead
from cxrvqa.core.parallel import (
    Split,
    batched,
    collector_frozen,
    shutdown_pools,
    start_forkserver,
    warm_workers,
    with_workers_for,
)
from cxrvqa.extraction import stage as extract_stage
from cxrvqa.imaging import boxes as box_import
from cxrvqa.imaging import stage as image_stage
from cxrvqa.qa import stage as qa_stage
from cxrvqa.reports import stage as report_stage
from cxrvqa.reports.loaders import load_reports
from cxrvqa.store import Store, finish_stage, open_writer, recorded_run, start_stage
from cxrvqa.store.runs import StageCounts
from cxrvqa.store.shards import ShardSet, Tables, clear_shards, merge_shards, shard_folder, write_shards
from cxrvqa.validation import judge as judge_stage
from cxrvqa.validation import readings
from cxrvqa.validation import stage as validate_stage
from cxrvqa.validation.dataset import checks_are_current, dataset_checks


def _run_stage(
    config: Config, run_id: str, stage: str, results: Iterable[StageCounts], total: int | None, skipped: int = 0
) -> dict[str, int]:
    """Bookkeeping around one stage: its run_stages row, progress, failure status. Once its batches are written, the
    worker pool is shut down: the next stage's workers fork afresh from the forkserver, without the caches this
    stage's grew with every study they saw (the extractor's, spaCy's strings, the answer programs', the checks'
    readings: 100k synthetic studies, the pool's peak during the QA stage 759 -> 660 MB).

    ``results``: the counts of each batch, as `_batches` computes and writes them.
    ``skipped``: inputs found done before any batch ran (they are counted as input and skipped).
    """
    store = open_writer(config.db_path)
    counts = start_stage(store, run_id, stage)
    counts.add(StageCounts(n_input=skipped, n_skipped=skipped))
    progress.start(stage, total)
    _STARTED.pop(stage, None)
    try:
        for batch_counts in results:
            counts.add(batch_counts)
    except BaseException:
        _STARTED.pop(stage, None)
        finish_stage(store, run_id, stage, counts, status="failed")
        raise
    finish_stage(store, run_id, stage, counts)
    shutdown_pools()
    return counts.as_dict()


#: Stage modules whose batches split into load (reads the store), compute (pure) and write (one transaction).
BATCH_STAGES: dict[str, BatchStage] = {
    stage.NAME: stage for stage in (image_stage, report_stage, extract_stage, qa_stage, validate_stage)
}


#: Per stage, its next batch as the batch before started it (`cxrvqa.core.batch.starts_ahead`).
_STARTED: dict[str, Started] = {}


@task(name="stage-batch", cache_policy=NO_CACHE)
def stage_batch(db_path: Path, run_id: str, stage: str, batch: list, context: Any, ahead: list | None) -> StageCounts:
    """One batch of a stage loaded, computed and written in this process (`cxrvqa.core.batch.run_batch`); the
    next batch (``ahead``) loaded and started first where the stage allows it, so the workers need not wait
    while this one is written."""
    module, store = BATCH_STAGES[stage], open_writer(db_path)
    try:
        started = _STARTED.pop(stage, None) or start_batch(module, store, run_id, batch, context)
        if ahead is not None and starts_ahead(module, context):
            _STARTED[stage] = start_batch(module, store, run_id, ahead, context)
        counts = run_batch(module, store, run_id, batch, context, started)
    except BaseException:
        _STARTED.pop(stage, None)  # the stage fails: its next batch is never written
        raise
    progress.advance(stage, len(batch))
    return counts


def _batches(
    config: Config,
    run_id: str,
    stage: str,
    items: Iterable,
    size: int,
    context: Any,
    on_dask: bool = True,
    split: Split = batched,
) -> Iterator[StageCounts]:
    """The counts of each batch, once it is written: computed here (local executor, or a stage that must stay with
    the database), or on the Dask cluster and merged here (dask). The batches are ``split(items, size)`` here (a
    stage's own: more items where they are light), ``size`` items on the cluster (`_dask_batches`)."""
    if config.executor.kind == "dask" and on_dask:
        return _dask_batches(config, run_id, stage, items, size, context)
    local = stage_batch.with_options(name=f"{stage}-batch")
    # quoted: Prefect would otherwise walk every record of the batch and the context looking for futures
    # (~1.6 s of a no-change rebuild at 10k studies)
    return (
        local(config.db_path, run_id, stage, quote(batch), quote(context), quote(ahead))
        for batch, ahead in _with_next(split(items, size))
    )


def _with_next(batches: Iterable[list]) -> Iterator[tuple[list, list | None]]:
    """Each batch with the one after it (None for the last)."""
    previous = None
    for batch in batches:
        if previous is not None:
            yield previous, batch
        previous = batch
    if previous is not None:
        yield previous, None


class Sealed:
    """A batch's input and its stage's context as one object that neither Prefect nor Dask looks inside: both
    walk lists, tuples, dicts and dataclasses (slow on thousands of records), and Dask turns Prefect's own
    `quote` into a plain tuple."""

    __slots__ = ("work", "context")

    def __init__(self, work: Any, context: Any):
        self.work, self.context = work, context


@task(name="compute-batch", cache_policy=NO_CACHE)
def compute_batch(
    compute: Callable[[Any, Any, str], Iterable[Tables]], batch_input: Sealed, run_id: str, folder: Path, batch: str
) -> ShardSet:
    """On a Dask worker: one batch's output tables, written as Parquet shards (a worker never opens the database)."""
    return write_shards(folder, batch, compute(batch_input.work, batch_input.context, run_id))


def _dask_batches(
    config: Config, run_id: str, stage: str, items: Iterable, size: int, context: Any
) -> Iterator[StageCounts]:
    """Read each batch's inputs here, compute it on the cluster, merge its shards here (in batch order), with
    two batches per worker thread in flight so that workers never wait for the merges. Where the items are
    known in advance (a list), batches are made smaller if that gives every worker thread two of them."""
    module = BATCH_STAGES[stage]
    store = open_writer(config.db_path)
    if hasattr(context, "workers"):  # the workers are the parallelism; daemon processes cannot start a pool
        context = replace(context, workers=1)
    folder = shard_folder(config.out_dir.resolve(), run_id, stage)
    submit = compute_batch.with_options(name=f"compute-{stage}-batch")
    runner = FlowRunContext.get().task_runner
    threads = sum(runner.client.nthreads().values()) if hasattr(runner, "client") else 1
    if isinstance(items, list):
        size = max(1, min(size, -(-len(items) // (2 * threads))))
    in_flight: deque = deque()

    def merged(size: int, counts: StageCounts, future: Any) -> StageCounts:
        written = merge_shards(future.result(), lambda parts: module.write_batch(store, counts, parts, context))
        progress.advance(stage, size)
        return written

    try:
        for number, batch in enumerate(batched(items, size)):
            work, counts = module.load_batch(store, batch, context)
            with _worker_settings():
                future = submit.submit(module.compute_batch, Sealed(work, context), run_id, folder, f"{number:06d}")
            in_flight.append((len(batch), counts, future))
            if len(in_flight) >= 2 * threads:
                yield merged(*in_flight.popleft())
        while in_flight:
            yield merged(*in_flight.popleft())
    finally:
        for *_, future in in_flight:  # a failed batch fails the stage: the rest is not merged
            future.wrapped_future.cancel()


@contextmanager
def _worker_settings() -> Iterator[None]:
    """Tasks run on the workers with the settings of this process: point them at the API this process uses,
    also when that is Prefect's ephemeral server (otherwise each worker would start one of its own)."""
    if get_current_settings().api.url:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(FlowRunContext.get().client.api_url)}):
        yield


@contextmanager
def _task_runner(config: Config) -> Iterator[TaskRunner | None]:
    """The stages' task runner: Prefect's default (local executor), or prefect-dask's on the build's Dask
    cluster, whose workers were checked to see the out folder and reach the Prefect API."""
    if config.executor.kind != "dask":
        yield None
        return
    from prefect_dask import DaskTaskRunner

    from cxrvqa.cluster import check_workers, scheduler_address

    with scheduler_address(config.executor) as address:
        with _worker_settings():
            inputs = (config.images_dir,) if "images" in config.stages and config.images_dir else ()
            check_workers(address, config.out_dir, get_current_settings().api.url, inputs, preload=(__name__,))
        yield DaskTaskRunner(address=address)


@flow(name="ingest-images")
def ingest_images(config: Config, run_id: str) -> dict[str, int]:
    context = image_stage.prepare(config)

    def files() -> Iterator[str]:
        return context.source_files(config.limit)

    def missing() -> Iterator[StageCounts]:  # manifest rows whose file is absent (not knowable under --limit)
        if context.manifest and config.limit is None:
            yield image_stage.write_missing_images(open_writer(config.db_path), run_id, context, files())

    batches = _batches(config, run_id, "images", files(), config.imaging.batch_size, context)
    counts = _run_stage(config, run_id, "images", chain(batches, missing()), total=sum(1 for _ in files()))
    image_stage.retire_absent(open_writer(config.db_path), run_id, config, context, files())
    return counts


@flow(name="ingest-reports")
def ingest_reports(config: Config, run_id: str) -> dict[str, int]:
    context = report_stage.prepare(config)
    fingerprint = report_stage.input_fingerprint(config, context)
    known = report_stage.known_input(open_writer(config.db_path), fingerprint)
    if known is not None:  # the files and the store are as the last complete read left them
        return _run_stage(config, run_id, "reports", (), total=None, skipped=known)
    studies = report_stage.InputStudies()
    records = studies.count(report_stage.reject_duplicate_studies(load_reports(config.reports, config.report_format)))
    if config.limit is not None:  # --limit N: the first N report records (reports and rejects)
        records = islice(records, config.limit)
    counts = _run_stage(config, run_id, "reports", _report_batches(config, run_id, records, context), total=None)
    store = open_writer(config.db_path)
    warning = report_stage.retire_absent(store, run_id, config, studies)
    report_stage.record_input(store, run_id, fingerprint, counts["n_input"], warning)
    return counts


def _report_batches(
    config: Config, run_id: str, records: Iterator, context: report_stage.ReportStageContext
) -> Iterator[StageCounts]:
    """The reports stage's batches: locally, the first `POOL_MIN_RECORDS` records (rounded up to whole batches) are
    parsed in this process and the rest, a large input, by the worker processes; on a Dask cluster, by its workers."""
    size = config.report_limits.batch_size
    if config.executor.kind == "dask":
        return _batches(config, run_id, "reports", records, size, context)
    first = islice(records, -(-report_stage.POOL_MIN_RECORDS // size) * size)
    return chain(
        _batches(config, run_id, "reports", first, size, replace(context, workers=1)),
        _batches(config, run_id, "reports", records, size, context),
    )


@flow(name="extract-scene-graphs")
def extract(config: Config, run_id: str) -> dict[str, int]:
    context = extract_stage.prepare(config)
    extract_stage.restore_current(open_writer(config.db_path), context)
    total, pending = extract_stage.pending_studies(open_writer(config.db_path), context)
    context = with_workers_for(context, len(pending), extract_stage.POOL_MIN_STUDIES)
    # the llm backend stays with the database under any executor: its cache and budget live there
    batches = _batches(
        config,
        run_id,
        "extract",
        pending,
        config.extraction.batch_size,
        context,
        on_dask=context.backend == "rules",
    )
    return _run_stage(config, run_id, "extract", batches, total=len(pending), skipped=total - len(pending))


@task(name="import-boxes", cache_policy=NO_CACHE)
def import_boxes(config: Config, run_id: str) -> dict[str, int]:
    """Box annotation files, matched to the current images (a `boxes` row in run_stages)."""
    store = open_writer(config.db_path)
    counts = start_stage(store, run_id, "boxes")
    for path in config.qa.boxes:
        summary = box_import.import_boxes(store, path, fmt="auto", run_id=run_id)
        counts.add(
            StageCounts(
                n_input=summary.n_rows,
                n_skipped=summary.n_skipped,
                n_done=summary.n_imported,
                n_rejected=summary.n_rejected,
            )
        )
    finish_stage(store, run_id, "boxes", counts)
    return counts.as_dict()


@flow(name="generate-qa")
def generate_qa(config: Config, run_id: str) -> dict[str, int]:
    store = open_writer(config.db_path)
    context = qa_stage.prepare(config, store)
    if config.qa.boxes:
        import_boxes(config, run_id)
    qa_stage.record_inputs(store, run_id, context)
    total, pending = qa_stage.pending_work(store, context)
    context = with_workers_for(context, len(pending), qa_stage.POOL_MIN_STUDIES)
    with open_writer(config.db_path).memory_limited(config.qa_memory_limit()):
        counts = _run_stage(
            config,
            run_id,
            "qa",
            _batches(config, run_id, "qa", pending, config.qa.batch_size, context, split=qa_stage.batches(context)),
            total=len(pending),
            skipped=total - len(pending),
        )
    if not (context.workers > 1 and config.executor.kind == "local" and "validate" in config.stages):
        qa_stage.balance(store, run_id, context)
        return counts
    # the pool's workers would idle while this process balances: they read the reports for the validation
    warm_workers(validate_stage.warm_up, context.workers)
    ahead = validate_stage.read_ahead(store, run_id, context.workers)
    try:
        qa_stage.balance(store, run_id, context)
    except BaseException:
        ahead.cancel()
        raise
    validate_stage.keep_read_ahead(store, ahead)
    return counts


@flow(name="validate-qa")
def validate(config: Config, run_id: str) -> dict[str, int]:
    context = validate_stage.prepare(config, open_writer(config.db_path))
    readings.forget_others(open_writer(config.db_path), context.reader_version)
    validate_stage.record_grade_levels(open_writer(config.db_path))
    pending = validate_stage.pending_studies(open_writer(config.db_path), context)
    split = validate_stage.batches(pending)
    with open_writer(config.db_path).memory_limited(config.validate_memory_limit()):
        counts = _run_stage(
            config,
            run_id,
            "validate",
            _batches(config, run_id, "validate", pending.studies, config.qa.batch_size, context, split=split),
            total=len(pending.studies),
            skipped=pending.total - pending.n_pending,
        )
    if not checks_are_current(open_writer(config.db_path)):
        dataset_checks(open_writer(config.db_path), run_id, config.qa.prior_margin)
    judge_context = judge_stage.prepare_judge(config)
    if judge_context is not None:
        eligible, keys = judge_stage.pending_items(open_writer(config.db_path), judge_context)
        # the judge asks the LLM server from here under any executor (its cache and budget live in the store)
        _run_stage(
            config,
            run_id,
            "judge",
            (
                judge_batch(config.db_path, run_id, quote(batch), quote(judge_context))
                for batch in batched(keys, config.judge.batch_size)
            ),
            total=len(keys),
            skipped=eligible - len(keys),
        )
    return counts


@task(name="judge-batch", cache_policy=NO_CACHE)
def judge_batch(
    db_path: Path, run_id: str, batch: list[tuple[str, str, str]], context: judge_stage.JudgeContext
) -> StageCounts:
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
    if config.uses_local_pool():
        start_forkserver()  # its imports beside this process's first steps (the reports stage uses one core)
    qa_stage.check_templates(config)  # before any stage runs (and before a run is recorded)
    stages: dict[str, dict[str, int]] = {}
    with Store(config.db_path, memory_limit=config.duckdb_memory_limit) as store, recorded_run(store, config) as run_id:
        clear_shards(config.out_dir)  # of a build killed before merging them: their batches are pending again
        try:
            with collector_frozen(), _task_runner(config) as task_runner:
                for stage in config.stages:
                    stage_flow = STAGE_FLOWS[stage]
                    if task_runner is not None:
                        stage_flow = stage_flow.with_options(task_runner=task_runner)
                    stages[stage] = stage_flow(config, run_id)
        finally:
            clear_shards(config.out_dir)
    return {"run_id": run_id, "stages": stages}
