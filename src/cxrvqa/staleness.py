"""What the next build would redo, and why: per stage, the work not yet done under the versions that the
installed code, vocabularies, prompts and templates give now (with the settings of the build's last run).

It asks each stage's own `pending_*` function (the very selection a build makes), then explains the
pending work from what the store holds: a changed version (and from which), a new input, a failure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from cxrvqa.config import Config
from cxrvqa.errors import CxrvqaError
from cxrvqa.extraction import stage as extract_stage
from cxrvqa.imaging.stage import render_settings
from cxrvqa.qa import stage as qa_stage
from cxrvqa.store import Store
from cxrvqa.validation import judge as judge_stage
from cxrvqa.validation import stage as validate_stage


@dataclass(frozen=True)
class StaleWork:
    stage: str
    subject: str  # a template id, the extractor, the validators, the rendering recipe
    n: int  # studies (extract, qa), items (validate, judge) or images
    why: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stale_work(store: Store, config: Config) -> list[StaleWork]:
    """Every piece of pending work of the stages after ingestion, grouped by its reason."""
    found = _images(store, config) + _extraction(store, config) + _qa(store, config) + _validation(store, config)
    return found + _judge(store, config)


def _images(store: Store, config: Config) -> list[StaleWork]:
    recipe = render_settings(config).recipe_version
    rows = store.query(
        "SELECT recipe_version, count(*) FROM current_images WHERE recipe_version <> ? GROUP BY 1 ORDER BY 1", [recipe]
    )
    return [
        StaleWork("images", "rendering recipe", n, f"rendered with recipe {old}, the settings now give {recipe}")
        for old, n in rows
    ]


def _extraction(store: Store, config: Config) -> list[StaleWork]:
    try:
        context = extract_stage.prepare(config)
    except CxrvqaError as exc:  # e.g. the llm backend without a server configured
        return [StaleWork("extract", config.extraction.backend, 0, f"cannot tell: {exc}")]
    _, pending = extract_stage.pending_studies(store, context)
    if not pending:
        return []
    reasons = Counter()
    for _, old_version, same_report, failed in store.query(
        "SELECT p.study_id, g.extractor_version, g.report_hash = r.report_hash AND g.parser_version = "
        "r.parser_version, EXISTS (SELECT 1 FROM extraction_failures f WHERE f.study_id = p.study_id AND "
        "f.backend = ? AND f.extractor_version = ?) FROM (SELECT unnest(?::VARCHAR[]) AS study_id) p "
        "JOIN current_reports r USING (study_id) LEFT JOIN (SELECT * FROM scene_graphs WHERE backend = ? QUALIFY "
        "row_number() OVER (PARTITION BY study_id ORDER BY created_at DESC) = 1) g USING (study_id)",
        [context.backend, context.extractor_version, pending, context.backend],
    ):
        if failed:
            reasons["failed before: retried"] += 1
        elif old_version is None:
            reasons["new report, never extracted"] += 1
        elif not same_report:
            reasons["report changed"] += 1
        else:
            reasons[
                f"{context.backend} extractor version changed ({old_version} -> {context.extractor_version}: "
                f"rules, vocabularies, prompt, model or code)"
            ] += 1
    return [StaleWork("extract", context.backend, n, why) for why, n in sorted(reasons.items())]


def _qa(store: Store, config: Config) -> list[StaleWork]:
    context = qa_stage.prepare(config)
    _, pending = qa_stage.pending_work(store, context)
    per_template = Counter(template for _, templates in pending for template in templates)
    if not per_template:
        return []
    done_versions: dict[str, set[str]] = {}
    for template, version in store.query("SELECT DISTINCT template_id, template_version FROM qa_done"):
        done_versions.setdefault(template, set()).add(version)
    versions = {t.id: v for t, v in context.templates}
    found = []
    for template, n in sorted(per_template.items()):
        seen = done_versions.get(template, set())
        if not seen:
            why = "new template"
        elif versions[template] not in seen:
            why = f"template changed (version {versions[template]}, was {', '.join(sorted(seen))})"
        else:
            why = "studies with a new or changed scene graph or images"
        found.append(StaleWork("qa", template, n, why))
    return found


def _validation(store: Store, config: Config) -> list[StaleWork]:
    context = validate_stage.prepare(config, store)
    # the stage's own pending selection, each item with a validators version that did validate it (if any)
    pending = validate_stage.PENDING_SQL.format(studies="true", done_studies="true")
    rows = store.query(
        "SELECT (SELECT any_value(d.validators_version) FROM validation_done d WHERE d.item_id = q.item_id AND "
        "d.template_version = q.template_version AND d.input_hash = q.input_hash) AS old, count(*) "
        f"FROM ({pending}) q GROUP BY 1 ORDER BY 1 NULLS FIRST",
        [context.validators_version],
    )
    return [
        StaleWork(
            "validate",
            "validators",
            n,
            "new items, never validated"
            if old is None
            else f"validators, their strictness or the grades changed ({old} -> {context.validators_version})",
        )
        for old, n in rows
    ]


def _judge(store: Store, config: Config) -> list[StaleWork]:
    try:
        context = judge_stage.prepare_judge(config)
    except CxrvqaError as exc:
        return [StaleWork("judge", "llm judge", 0, f"cannot tell: {exc}")]
    if context is None:
        return []
    _, keys = judge_stage.pending_items(store, context)
    return (
        [StaleWork("judge", "llm judge", len(keys), f"not judged by judge version {context.judge_version}")]
        if keys
        else []
    )
