"""The validation stage over batches of studies: every current QA item through every validator.

An item is skipped when it was validated for its (item, template version, input) with the same
validators (names, versions, strictness), so a rerun validates only new or regenerated items, or
everything after a validator or a strictness changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from cxrvqa.config import Config
from cxrvqa.errors import ConfigError
from cxrvqa.provenance import stable_hash
from cxrvqa.qa import stage as qa_stage
from cxrvqa.qa.generate import GenerationSettings
from cxrvqa.qa.study import study_view
from cxrvqa.store import StageCounts, Store
from cxrvqa.validation.grading import grade_item, grading
from cxrvqa.validation.validators import VALIDATORS, ImageFacts, ValidationContext, run_validators

#: Columns of an item as the validators see it (schemas/qa_item.schema.json).
ITEM_FIELDS = ("item_id", "study_id", "patient_id", "image_id", "view_plane", "template_id", "question_type",
               "strategy", "skill", "answer_format", "question", "answer", "options", "correct_option", "findings",
               "regions", "boxes", "evidence_ids", "arguments", "polarity", "split")
STATUS_RANK = {"ok": 0, "warn": 1, "reject": 2}


@dataclass(frozen=True)
class ValidateStageContext:
    settings: GenerationSettings
    backend: str
    strictness: dict[str, str]
    validators_version: str


def prepare(config: Config) -> ValidateStageContext:
    qa = qa_stage.prepare(config)
    unknown = sorted(set(config.strictness) - set(VALIDATORS))
    if unknown:
        raise ConfigError("strictness", f"unknown validators {unknown}; validators are {sorted(VALIDATORS)}")
    levels = {name: config.strictness.get(name, v.strictness) for name, v in VALIDATORS.items()}
    version = stable_hash({"validators": {name: [v.version, levels[name]] for name, v in VALIDATORS.items()},
                           "grading": grading().content_hash})
    return ValidateStageContext(qa.settings, qa.backend, levels, version)


def record_grade_levels(store: Store) -> None:
    """`grade_levels` mirrors grades.yaml, so SQL can join codes to labels."""
    with store.transaction():
        store.con.execute("DELETE FROM grade_levels")
        store.insert("grade_levels", [{"grade": c, "label": n, "meaning": m} for c, n, m in grading().levels])


def pending_studies(store: Store, context: ValidateStageContext) -> tuple[int, int, list[str]]:
    """(current items, items not yet validated by these validators, the studies they belong to)."""
    total = store.query("SELECT count(*) FROM current_qa_items")[0][0]
    rows = store.query(
        "SELECT q.study_id, count(*) FROM current_qa_items q WHERE NOT EXISTS (SELECT 1 FROM validation_done d "
        "WHERE d.item_id = q.item_id AND d.template_version = q.template_version AND d.input_hash = q.input_hash "
        "AND d.validators_version = ?) GROUP BY 1 ORDER BY 1", [context.validators_version])
    return total, sum(n for _, n in rows), [study for study, _ in rows]


def study_contexts(store: Store, study_ids: list[str], context: ValidateStageContext
                   ) -> tuple[dict[str, ValidationContext], dict[str, list[str]]]:
    """Per study: the validators' context (images, scene-graph view, templates) and the graph's quality codes."""
    graphs = {study: (patient, graph, quality) for study, patient, graph, quality in store.query(
        "SELECT g.study_id, r.patient_id, g.graph, g.quality FROM current_scene_graphs g "
        "JOIN current_reports r USING (study_id) WHERE g.backend = ? AND g.study_id IN (SELECT unnest(?::VARCHAR[]))",
        [context.backend, study_ids])}
    images = qa_stage.images_of(store, study_ids)
    templates = {t.id: (t, v) for t, v in context.settings.templates}
    contexts = {}
    for study in study_ids:
        patient, graph, _ = graphs.get(study, (None, None, []))
        view = study_view(json.loads(graph), patient, images.get(study, ())) if graph else None
        facts = {i.image_id: ImageFacts(i.png_cols, i.png_rows, i.view_plane) for i in images.get(study, ())}
        contexts[study] = ValidationContext(facts, templates, context.settings, view)
    return contexts, {study: list(row[2]) for study, row in graphs.items()}


def validate_batch(store: Store, run_id: str, study_ids: list[str], context: ValidateStageContext) -> StageCounts:
    """Validate the pending items of these studies; one row per item x validator, committed as a whole."""
    items = store.query_dicts(
        f"SELECT {', '.join('q.' + f for f in ITEM_FIELDS)}, q.template_version, q.input_hash FROM current_qa_items q "
        "WHERE q.study_id IN (SELECT unnest(?::VARCHAR[])) AND NOT EXISTS (SELECT 1 FROM validation_done d "
        "WHERE d.item_id = q.item_id AND d.template_version = q.template_version AND d.input_hash = q.input_hash "
        "AND d.validators_version = ?) ORDER BY q.study_id, q.item_id", [study_ids, context.validators_version])
    contexts, quality = study_contexts(store, study_ids, context)
    templates = {t.id: (t, v) for t, v in context.settings.templates}
    now = datetime.now(timezone.utc)
    results: list[dict] = []
    done: list[dict] = []
    grades: list[dict] = []
    rules = grading()
    for item in items:
        study = item["study_id"]
        ctx = contexts[study]
        key = {"item_id": item["item_id"], "template_version": item.pop("template_version"),
               "input_hash": item.pop("input_hash")}
        worst, failed = "ok", []
        for validator, verdict, level in run_validators(item, ctx, context.strictness):
            status = "ok" if verdict.ok else level
            worst = max(worst, status, key=STATUS_RANK.__getitem__)
            if not verdict.ok:
                failed.append((status, verdict.reason))
            results.append({**key, "validator": validator.name, "validator_version": validator.version,
                            "strictness": level, "status": status, "reason": verdict.reason,
                            "detail": verdict.detail, "validators_version": context.validators_version,
                            "run_id": run_id, "created_at": now})
        done.append({**key, "validators_version": context.validators_version, "status": worst, "run_id": run_id,
                     "created_at": now})
        template = templates.get(item["template_id"])
        code, weakest = grade_item(item, failed, quality.get(study, []),
                                   bool(template and template[0].closed_world))
        grades.append({**key, "grade": code, "label": rules.label(code), "weakest": weakest,
                       "grading_version": rules.content_hash, "validators_version": context.validators_version,
                       "run_id": run_id, "created_at": now})
    with store.transaction():
        store.insert("validation_results", results)
        store.insert("validation_done", done)
        store.insert("qa_grades", grades)
    return StageCounts(n_input=len(items), n_done=sum(d["status"] != "reject" for d in done),
                       n_rejected=sum(d["status"] == "reject" for d in done))
