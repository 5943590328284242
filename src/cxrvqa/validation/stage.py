"""The validation stage over batches of studies: every current QA item through every validator.

An item is skipped when it was validated for its (item, template version, input) with the same
validators (names, versions, strictness), so a rerun validates only new or regenerated items, or
everything after a validator or a strictness changed. An item of a template only reworded since its earlier
version was validated (a question variant added: its question changed, nothing else) runs only the checks that read
the wording; the others give the verdicts they gave that version (`REUSE_SQL`, `Validator.reads_wording`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, NamedTuple

import orjson
import pyarrow as pa

from cxrvqa.config import Config
from cxrvqa.core.grading import STATUS_RANK, Grading, grade_item, grading, judge_capped
from cxrvqa.core.parallel import (
    BackgroundMap,
    Split,
    batched,
    collector_paused,
    pool_chunk_size,
    process_map,
    shutdown_pools,
    weighted_split,
)
from cxrvqa.core.provenance import stable_hash
from cxrvqa.core.resources import load_json_schema
from cxrvqa.errors import ConfigError
from cxrvqa.qa import stage as qa_stage
from cxrvqa.qa.generate import GenerationSettings
from cxrvqa.qa.study import ImageView, StudyView, study_view
from cxrvqa.qa.templates import Template
from cxrvqa.store import StageCounts, Store, in_studies, study_params
from cxrvqa.store.records import ITEM_COLUMNS
from cxrvqa.store.shards import Tables, write_tables
from cxrvqa.validation import readings
from cxrvqa.validation.validators import (
    OK,
    VALIDATORS,
    WORDING_ITEM_FIELDS,
    ImageFacts,
    ValidationContext,
    Validator,
    Verdict,
    active_validators,
    check_item,
    fail,
    schema_passes,
    with_schema_passed,
)

logger = logging.getLogger(__name__)

#: The stage's name (config `stages`, `run_stages.stage`, the flow's batch task `validate-batch`).
NAME = "validate"

#: Columns of an item as the validators see it: those schemas/qa_item.schema.json publishes, in its order.
ITEM_FIELDS = tuple(name for name in load_json_schema("qa_item.schema.json")["properties"] if name in ITEM_COLUMNS)
#: The least work in a batch worth the process pool, counted in items: a study counts `STUDY_ITEMS` items besides
#: its own, for reading its report (a template rebuild's batch of 2,000 studies holds ~4,700 pending items of the
#: one template, bench_scale at 10k studies: validated in this process, it took 10.0 s of the rebuild's 20).
POOL_MIN_ITEMS, STUDY_ITEMS = 5_000, 2


@dataclass(frozen=True)
class ValidateStageContext:
    settings: GenerationSettings
    backend: str
    strictness: dict[str, str]
    validators_version: str
    workers: int = 1
    text_only: bool = False  # a build without images: a text-VQA dataset, graded on its own criteria
    reader_version: str = ""  # of the kept sentence readings (`cxrvqa.validation.readings`); "": none kept
    #: (template id, its version, an earlier version of it that differs only in wording): `qa.stage.reworded`
    reworded: tuple[tuple[str, str, str], ...] = ()
    #: the runs whose validations a reworded item may take verdicts from: `qa.stage.same_runs`
    same_runs: tuple[str, ...] = ()


def prepare(config: Config, store: Store | None = None) -> ValidateStageContext:
    """The validators, their strictness and version. Given the build's store: whether the build holds no image
    at all (a text-VQA dataset, where a report-only item is no fault), which then is part of the version, and the
    QA stage's reworded templates and same runs (whose verdicts a reworded item may take)."""
    qa = qa_stage.prepare(config, store)
    unknown = sorted(set(config.strictness) - set(VALIDATORS))
    if unknown:
        raise ConfigError("strictness", f"unknown validators {unknown}; validators are {sorted(VALIDATORS)}")
    levels = {name: config.strictness.get(name, v.strictness) for name, v in VALIDATORS.items()}
    version = stable_hash(
        {
            "validators": {name: [v.version, levels[name]] for name, v in VALIDATORS.items()},
            "grading": grading().content_hash,
        }
    )
    text_only = store is not None and store.query("SELECT count(*) FROM current_images")[0][0] == 0
    if text_only:
        version = stable_hash({"validators": version, "text_only": True})
    return ValidateStageContext(
        qa.settings,
        qa.backend,
        levels,
        version,
        config.qa.workers,
        text_only=text_only,
        reader_version=readings.reader_version(),
        reworded=qa.reworded,
        same_runs=qa.same_runs,
    )


def record_grade_levels(store: Store) -> None:
    """`grade_levels` mirrors grades.yaml, so SQL can join codes to labels."""
    with store.transaction():
        store.con.execute("DELETE FROM grade_levels")
        store.insert("grade_levels", [{"grade": c, "label": n, "meaning": m} for c, n, m in grading().levels])


#: The current items (keys) whose latest validation is not by these validators, of the studies that
#: ``studies`` (on `qa_current` c) and ``done_studies`` (the same on `validation_done` d) keep; the last
#: parameter is the validators version. The latest only: validators set back (a strictness changed and changed
#: back) validate again, or the other validators' grades would stay current.
PENDING_SQL = (
    "SELECT c.* FROM qa_current c WHERE {studies} AND NOT EXISTS (SELECT 1 FROM validation_done d "
    "WHERE {done_studies} AND d.latest AND d.item_id = c.item_id AND d.template_version = c.template_version "
    "AND d.input_hash = c.input_hash AND d.validators_version = ?)"
)


class PendingStudies(NamedTuple):
    total: int  # current items
    n_pending: int  # of them not yet validated by these validators
    studies: list[str]  # the studies they belong to, in order
    items: list[int]  # each study's pending items
    current_studies: int  # the studies with current items


def pending_studies(store: Store, context: ValidateStageContext) -> PendingStudies:
    """The current items, those not yet validated by these validators and the studies they belong to."""
    [(total, current_studies)] = store.query("SELECT count(*), count(DISTINCT study_id) FROM qa_current")
    pending = PENDING_SQL.format(studies="true", done_studies="true")
    rows = store.query(
        f"SELECT study_id, count(*) FROM ({pending}) GROUP BY 1 ORDER BY 1", [context.validators_version]
    )
    studies, items = [study for study, _ in rows], [n for _, n in rows]
    return PendingStudies(total, sum(items), studies, items, current_studies)


def batches(pending: PendingStudies) -> Split:
    """How the pending studies become batches (`flows.build._batches`): ``size`` studies, or more where they hold
    fewer than half the items a current study has (a template's rebuild: ~2 of ~21 at 10k synthetic studies), so that
    a full build's batches are ``size`` studies whatever its items per study (`weighted_split`)."""
    items = dict(zip(pending.studies, pending.items, strict=True))
    return weighted_split(items.__getitem__, max(1, pending.total // (2 * max(1, pending.current_studies))))


@dataclass(frozen=True)
class StudyPayload:
    """One study's pending items and what validating them reads (sent to a worker process)."""

    study_id: str
    patient_id: str | None
    graph: str | None  # scene graph JSON; None when the study has no current graph
    quality: tuple[str, ...]
    images: tuple[ImageView, ...]
    items: list[dict[str, Any]]
    #: per item: `schema_passes` found it valid, so its schema check is not run again (empty: run for every item)
    schema_valid: list[bool] = field(default_factory=list)


def _load(store: Store, study_ids: list[str], context: ValidateStageContext) -> dict[str, StudyPayload]:
    graphs = {
        study: (patient, graph, quality)
        for study, patient, graph, quality in store.query(
            "SELECT g.study_id, r.patient_id, g.graph, g.quality FROM current_scene_graphs g "
            f"JOIN current_reports r USING (study_id) WHERE g.backend = ? AND {in_studies('g.study_id')}",
            [context.backend, *study_params(study_ids)],
        )
    }
    images = qa_stage.images_of(store, study_ids)
    payloads = {}
    for study in study_ids:
        patient, graph, quality = graphs.get(study, (None, None, []))
        payloads[study] = StudyPayload(study, patient, graph, tuple(quality), images.get(study, ()), [])
    return payloads


def _templates(context: ValidateStageContext) -> dict[str, tuple[Template, str]]:
    """The templates by id, with their versions (`ValidationContext.templates`): made once per chunk of studies and
    shared by their contexts (read only), not once per study."""
    return {t.id: (t, v) for t, v in context.settings.templates}


def _context_of(
    payload: StudyPayload, context: ValidateStageContext, templates: dict[str, tuple[Template, str]]
) -> ValidationContext:
    """The study's validation context; the items' recorded answer digests move from the items into it. Its view is
    made when a check first reads it (`ValidationContext.study`), the graph parsed by orjson (the same dicts as
    `json`): a rebuild of one template's items parses a graph per ~2.5 items (10k synthetic: 25 against 15 us a
    graph)."""
    view = partial(_view_of, payload) if payload.graph else None
    facts = {i.image_id: ImageFacts(i.png_cols, i.png_rows, i.view_plane) for i in payload.images}
    digests = {item["item_id"]: d for item in payload.items if (d := item.pop("answer_digest", None)) is not None}
    return ValidationContext(
        facts,
        templates,
        context.settings,
        view,
        text_only=context.text_only,
        item_ids=item_ids_of(payload.items),
        answer_digests=digests,
        graph_backend=context.backend,
    )


def _view_of(payload: StudyPayload) -> StudyView:
    return study_view(orjson.loads(payload.graph or ""), payload.patient_id, payload.images)


def item_ids_of(items: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """The ids of the items to validate, by template id (`ValidationContext.item_ids`)."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        wanted.setdefault(item["template_id"], set()).add(item["item_id"])
    return {template: frozenset(ids) for template, ids in wanted.items()}


def study_contexts(
    store: Store, study_ids: list[str], context: ValidateStageContext
) -> tuple[dict[str, ValidationContext], dict[str, list[str]]]:
    """Per study: the validators' context (images, scene-graph view, templates) and the graph's quality codes."""
    payloads, templates = _load(store, study_ids, context), _templates(context)
    return (
        {study: _context_of(p, context, templates) for study, p in payloads.items()},
        {study: list(p.quality) for study, p in payloads.items()},
    )


RESULT_COLUMNS = (
    "item_id",
    "template_version",
    "input_hash",
    "validator",
    "validator_version",
    "strictness",
    "status",
    "reason",
    "detail",
)
CHECK_COLUMNS = ("validator", "validator_version", "strictness")
DONE_COLUMNS = ("study_id", "item_id", "template_version", "input_hash", "status")
GRADE_COLUMNS = ("item_id", "template_version", "input_hash", "grade", "label", "weakest", "rule_grade", "rule_weakest")


def validate_studies(
    payloads: list[StudyPayload], context: ValidateStageContext, run_id: str, now: datetime
) -> dict[str, pa.Table]:
    """The validation_checks, validation_results, validation_done and qa_grades tables of some studies' items (pure;
    in a worker).

    A result row per check an item failed (migration 0021), not per check run: the checks the batch ran are one
    `validation_checks` row each, and the current view makes an item's passing checks from them. The cyclic garbage
    collector is paused meanwhile: the checks make many small objects, which set off full collections over every
    object of the process (spaCy's and medspaCy's rules included: ~10% of the step); the batch's few cyclic objects
    (~6 per item) are collected once it is back on."""
    with collector_paused():
        try:
            return _validate_studies(payloads, context, run_id, now)
        finally:
            _forget_readings()


def _forget_readings() -> None:
    """The report and evidence readings the checks cached, forgotten after each chunk of studies, so that a worker's
    memory does not grow with the build: almost every hit is within a study (10k build, 8,000 studies in one
    process: 35.0 s cleared every 250 studies against 38.2 s kept, 383 against 533 MB resident at the end). The
    readings of single sentences, claims and grammar verdicts of texts stay (`independent.forget_readings`):
    bounded, and hit across studies."""
    from cxrvqa.validation import independent, validators

    independent.forget_readings()
    validators.clear_caches()


def _validate_studies(
    payloads: list[StudyPayload], context: ValidateStageContext, run_id: str, now: datetime
) -> dict[str, pa.Table]:
    """`validate_studies` with the collector paused."""
    rules = grading()
    versions = _templates(context)
    active = active_validators(context.strictness)
    checks = [(v.name, v.version, level) for v, level in active]
    passed = with_schema_passed(active)
    failures: list[tuple] = []
    done: list[tuple] = []
    grades: list[tuple] = []
    for payload in payloads:
        ctx = _context_of(payload, context, versions)
        for index, item in enumerate(payload.items):
            key = (item["item_id"], item.pop("template_version"), item.pop("input_hash"))
            judge = item.pop("judge_grade"), item.pop("judge_weakest")
            reused = item.pop("reuse", None)
            valid = index < len(payload.schema_valid) and payload.schema_valid[index]
            run = passed if valid else active
            verdicts = check_item(item, ctx, run) if reused is None else _reusing(item, ctx, run, reused)
            worst, failed = _failed(key, verdicts, checks, failures)
            done.append((payload.study_id, *key, worst))
            template, _ = versions.get(item["template_id"], (None, None))
            grades.append((*key, *_grade(item, failed, payload.quality, template, judge, rules)))
    shared = {"validators_version": context.validators_version, "run_id": run_id, "created_at": now}
    return {
        "validation_checks": _table(CHECK_COLUMNS, checks if done else [], shared),
        "validation_results": _table(RESULT_COLUMNS, failures, shared),
        "validation_done": _table(DONE_COLUMNS, done, shared),
        "qa_grades": _table(GRADE_COLUMNS, grades, {**shared, "grading_version": rules.content_hash}),
    }


def _reusing(
    item: dict[str, Any], context: ValidationContext, active: tuple[tuple[Validator, str], ...], reused: list[dict]
) -> list[Verdict]:
    """The verdicts of an item whose earlier version differed from it only in wording (`REUSE_SQL`): the checks that
    read wording run, each other one gives the verdict it gave that version (a failure of ``reused``, else OK)."""
    fresh = iter(check_item(item, context, tuple(a for a in active if a[0].reads_wording)))
    failed = {r["validator"]: fail(r["reason"], r["detail"]) for r in reused}
    return [next(fresh) if v.reads_wording else failed.get(v.name, OK) for v, _ in active]


def _failed(
    key: tuple[str, str, str], verdicts: list[Verdict], checks: list[tuple[str, int, str]], failures: list[tuple]
) -> tuple[str, list[tuple[str, str | None]]]:
    """An item's worst status and its failed checks as (status, reason); a `validation_results` row of each is added
    to ``failures``. Most items pass every check (a verdict equal to OK passes): that is counted in C, not looped
    over."""
    worst, failed = "ok", []
    if verdicts.count(OK) == len(verdicts):
        return worst, failed
    for verdict, (name, version, level) in zip(verdicts, checks):
        if verdict.ok:
            continue
        failures.append((*key, name, version, level, level, verdict.reason, verdict.detail))
        failed.append((level, verdict.reason))
        if STATUS_RANK[level] > STATUS_RANK[worst]:
            worst = level
    return worst, failed


def _grade(
    item: dict[str, Any],
    failed: list[tuple[str, str | None]],
    quality: tuple[str, ...],
    template: Template | None,
    judge: tuple[int | None, str | None],
    rules: Grading,
) -> tuple[int, str, str, int, str]:
    """(grade, label, weakest, rule grade, rule weakest) of an item: the rules' grade, still capped by an LLM
    judge verdict (grade, weakest) of this very item (cxrvqa.validation.judge)."""
    judge_grade, judge_weakest = judge
    rule_grade, rule_weakest = grade_item(item, failed, list(quality), bool(template and template.closed_world))
    code, weakest = judge_capped(rule_grade, rule_weakest, judge_grade, judge_weakest)
    return code, rules.label(code), weakest, rule_grade, rule_weakest


def _table(names: tuple[str, ...], rows: list[tuple], constants: dict[str, Any]) -> pa.Table:
    """An Arrow table of the rows plus a column per constant (matched to the table by name on insert)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    arrays = {name: pa.array(values) for name, values in zip(names, columns, strict=True)}
    arrays.update({name: pa.repeat(value, len(rows)) for name, value in constants.items()})
    return pa.table(arrays)


@dataclass(frozen=True)
class ValidationWork:
    """A batch's studies with their pending items as one Arrow table in study order: the items become dicts in
    the worker processes (`validate_chunk`), not in the flow's process, which made and pickled them while the
    workers waited (100k build: 0.8 s of a batch's 2,000 studies, against 0.12 s for the Arrow table)."""

    payloads: list[StudyPayload]  # their `items` still empty
    items: pa.Table
    readings: dict[str, dict[str, str]] = field(default_factory=dict)  # per study, its sentences' kept readings


def warm_up() -> None:
    """The independent reader's spaCy pipeline and ConText rules, built in a worker before its first chunk (the flow
    asks while it balances the QA items, before the workers read ahead: `read_ahead`; 10k synthetic studies: a
    worker's first chunk 0.52 s of CPU, 0.29 s after this, the next ones ~0.23 s)."""
    from cxrvqa.validation import independent

    independent.read_sentence("No pneumothorax.")


#: Sentences per task of `read_ahead` (~120 us each: a task takes ~0.1 s, so the balance does not wait long for the
#: last ones).
READ_AHEAD_TEXTS = 1_000


def read_ahead(store: Store, run_id: str, workers: int) -> BackgroundMap[list[str], pa.Table]:
    """The readings of the current reports' sentences that none is kept for, made by the pool's ``workers`` while they
    would be idle (the flow's process balances the QA items before the validation starts) and taken kept by the
    validation (`load_batch`), whose workers no longer read them with spaCy beside the checks (10k synthetic
    studies, first build: spaCy's reading was ~15% of the validation workers' time, and 24% of the sentences were
    read twice: by both workers, or by a batch started ahead). Not waited for: `keep_read_ahead`."""
    reader = readings.reader_version()
    read = partial(readings.read_afresh, reader=reader, run_id=run_id)
    return BackgroundMap(read, batched(readings.unread(store, reader), READ_AHEAD_TEXTS), workers)


def keep_read_ahead(store: Store, ahead: BackgroundMap[list[str], pa.Table]) -> int:
    """The readings `read_ahead` made, kept in one transaction once they are all made; how many rows were offered
    (a text kept before keeps its row). A reading ahead that failed (a worker killed, say) is a warning, not the
    build's end: the validation reads those sentences itself, and fails in its own stage if reading them fails."""
    try:
        made = ahead.results()
    except Exception as error:  # noqa: BLE001 - an optimisation's failure; the validation redoes its work
        logger.warning("reading the sentences ahead of the validation failed, the validation reads them: %r", error)
        shutdown_pools()  # a broken pool is not the validation's
        return 0
    with store.transaction():
        return sum(store.insert("sentence_readings", rows) for rows in made)


def load_batch(store: Store, study_ids: list[str], context: ValidateStageContext) -> tuple[ValidationWork, StageCounts]:
    """The studies' pending items, each with what validating it reads. Every part of the query is narrowed
    to the batch's studies, so a batch costs about its own items, not the size of the build."""
    payloads = _load(store, study_ids, context)
    studies = study_params(study_ids)
    pending = PENDING_SQL.format(studies=in_studies("c.study_id"), done_studies=in_studies("d.study_id"))
    items = store.con.sql(  # a relation's Arrow table is its result itself; an executed cursor's is a copy
        f"WITH pending AS ({pending}) SELECT {', '.join('q.' + f for f in ITEM_FIELDS)}, q.template_version, "
        "q.input_hash, q.answer_digest, j.grade AS judge_grade, j.weakest AS judge_weakest FROM qa_items q "
        "SEMI JOIN pending USING (study_id, item_id, template_version, input_hash) "
        "LEFT JOIN (SELECT * FROM current_judge_results WHERE item_id IN (SELECT item_id FROM pending)) j "
        f"USING (item_id, template_version, input_hash) WHERE {in_studies('q.study_id')} "
        "ORDER BY q.study_id, q.item_id",
        params=[*studies, *studies, context.validators_version, *studies],
    ).to_arrow_table()
    if context.reworded and context.same_runs:
        items = items.append_column("reuse", _reused(store, items, studies, context))
    item_studies = set(items.column("study_id").to_pylist())
    kept = readings.load(store, sorted(item_studies), context.reader_version) if context.reader_version else {}
    return ValidationWork([p for p in payloads.values() if p.study_id in item_studies], items, kept), StageCounts()


#: Per pending item (`_pending`) of a reworded template (`_reworded`: `ValidateStageContext.reworded`), the failures
#: of the latest validation by these validators (the first parameter) of its earlier version: the same item id and
#: input hash, a template version that differs from its own only in wording, and the same value of every field the
#: validators read but the wording (`SAME`); validated by a run of the same code and generation settings (the second
#: parameter: `same_runs`). Parameter lists then narrow `validation_done` ({done_studies}) and `qa_items`
#: ({item_studies}) to the batch's studies; the last is the validators version again. The failures are the rows of
#: that validation (its time), as `current_validation_results` takes them.
REUSE_SQL = (
    "WITH earlier AS (SELECT n.item_id, n.template_version, n.input_hash, d.template_version AS earlier_version, "
    "d.run_id, d.created_at FROM _pending n JOIN _reworded w ON w.template_id = n.template_id AND "
    "w.template_version = n.template_version JOIN validation_done d ON d.item_id = n.item_id AND d.input_hash = "
    "n.input_hash AND d.template_version = w.earlier_version JOIN qa_items o ON o.item_id = n.item_id AND "
    "o.template_version = d.template_version AND o.input_hash = n.input_hash WHERE d.latest AND "
    "d.validators_version = ? AND d.run_id IN (SELECT unnest(?::VARCHAR[])) AND {done_studies} AND "
    "{item_studies} AND {same} QUALIFY row_number() OVER (PARTITION BY n.item_id, n.template_version, "
    "n.input_hash ORDER BY d.created_at DESC) = 1) "
    "SELECT e.item_id, e.template_version, e.input_hash, coalesce(list({{'validator': r.validator, 'reason': "
    "r.reason, 'detail': r.detail}} ORDER BY r.validator) FILTER (WHERE r.validator IS NOT NULL), []) "
    "FROM earlier e LEFT JOIN validation_results r ON r.item_id = e.item_id AND r.template_version = "
    "e.earlier_version AND r.input_hash = e.input_hash AND r.run_id = e.run_id AND r.created_at = e.created_at "
    "AND r.validators_version = ? AND r.status <> 'ok' GROUP BY ALL"
)
#: The fields an item's earlier version must have the same values of, for its checks that read no wording to keep
#: their verdicts: every field the validators read (`ITEM_FIELDS`) but the wording.
SAME = tuple(name for name in ITEM_FIELDS if name not in WORDING_ITEM_FIELDS)
#: `ValidationWork.items["reuse"]`: an item's reusable failures (None: no verdict to reuse).
REUSE_TYPE = pa.list_(pa.struct([("validator", pa.string()), ("reason", pa.string()), ("detail", pa.string())]))


def _reused(store: Store, items: pa.Table, studies: list[Any], context: ValidateStageContext) -> pa.Array:
    """Per pending item, in order: the failures of its earlier version, where its checks that read no wording may
    take that version's verdicts (`REUSE_SQL`; none failed: an empty list), else None."""
    names = ("template_id", "template_version", "earlier_version")
    reworded = pa.table({name: [row[i] for row in context.reworded] for i, name in enumerate(names)})
    sql = REUSE_SQL.format(
        done_studies=in_studies("d.study_id"),
        item_studies=in_studies("o.study_id"),
        same=" AND ".join(f"o.{name} IS NOT DISTINCT FROM n.{name}" for name in SAME),
    )
    with store.registered("_pending", items), store.registered("_reworded", reworded):
        params = [context.validators_version, list(context.same_runs), *studies, *studies, context.validators_version]
        rows = store.query(sql, params)
    found = {(item, version, hashed): failures for item, version, hashed, failures in rows}
    keys = zip(*(items.column(name).to_pylist() for name in ("item_id", "template_version", "input_hash")), strict=True)
    return pa.array([found.get(key) for key in keys], REUSE_TYPE)


def _chunks(work: ValidationWork, size: int) -> Iterator[tuple[list[StudyPayload], pa.Table, dict[str, str]]]:
    """The payloads ``size`` studies at a time, each chunk with its own items' rows (a compact copy: a slice
    would pickle the whole table) and the kept readings of its studies' sentences."""
    rows: dict[str, list[int]] = {}
    for index, study in enumerate(work.items.column("study_id").to_pylist()):
        rows.setdefault(study, []).append(index)
    for chunk in batched(work.payloads, size):
        kept = {text: r for payload in chunk for text, r in work.readings.get(payload.study_id, {}).items()}
        yield chunk, work.items.take([index for payload in chunk for index in rows[payload.study_id]]), kept


def validate_chunk(
    chunk: tuple[list[StudyPayload], pa.Table, dict[str, str]],
    context: ValidateStageContext,
    run_id: str,
    now: datetime,
) -> dict[str, pa.Table]:
    """`validate_studies` of a chunk whose items are still Arrow rows (in a worker), taking the kept readings of its
    sentences (`_chunks`) and returning those it made as `sentence_readings` rows. The rows
    become dicts with the collector paused too: made with it on, the ~25 objects an item's dict holds set off full
    collections over the worker's every object (10k build, 2,000 studies: 8.0 against 2.3 us an item). They are
    freed before it is back on, or its first collection walks them all (10k build: ~2% of validation)."""
    payloads, items, kept = chunk
    readings.use(kept)
    with collector_paused():
        try:
            tables = validate_studies(with_items(payloads, items), context, run_id, now)
        finally:
            for payload in payloads:
                payload.items.clear()
    made = readings.made(context.reader_version, run_id)
    if context.reader_version:
        tables["sentence_readings"] = made
    return tables


def with_items(payloads: list[StudyPayload], items: pa.Table) -> list[StudyPayload]:
    """The payloads with their items (rows of ``items``) as dicts, each marked where the schema check of the
    whole table at once (`schema_passes`, on the columns its dict keeps) found it valid."""
    by_study = {payload.study_id: payload for payload in payloads}
    for item, valid in zip(items.to_pylist(), schema_passes(items.select(ITEM_FIELDS)), strict=True):
        by_study[item["study_id"]].items.append(item)
        by_study[item["study_id"]].schema_valid.append(valid)
    return payloads


def compute_batch(work: ValidationWork, context: ValidateStageContext, run_id: str) -> Iterator[Tables]:
    """The result, done and grade rows of these studies' items, chunk by chunk over the worker processes (pure;
    the chunks are the pool's from the call on)."""
    workers = context.workers if work.items.num_rows + STUDY_ITEMS * len(work.payloads) >= POOL_MIN_ITEMS else 1
    chunk = pool_chunk_size(len(work.payloads), workers)
    return process_map(
        partial(validate_chunk, context=context, run_id=run_id, now=datetime.now(timezone.utc)),
        _chunks(work, chunk),
        workers,
        len(work.payloads),
    )


def starts_ahead(context: ValidateStageContext) -> bool:
    """A batch validates its own studies' items and reads nothing another batch writes (`cxrvqa.core.batch`)."""
    return True


def write_batch(
    store: Store, counts: StageCounts, parts: Iterable[Tables], context: ValidateStageContext
) -> StageCounts:
    """One row per item x validator, committed as a whole; every item counts as input, done or rejected."""

    def counted(parts: Iterable[Tables]) -> Iterator[Tables]:
        for part in parts:
            if "validation_done" in part:
                statuses = part["validation_done"].column("status").to_pylist()
                counts.n_input += len(statuses)
                counts.n_rejected += statuses.count("reject")
            yield part

    write_tables(store, counted(parts))
    counts.n_done = counts.n_input - counts.n_rejected
    return counts
