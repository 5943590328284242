"""`cxrvqa templates preview`: a template's items on stored scene graphs, written nowhere.

The quickest loop when adding a template: edit the YAML, lint it, preview it on real graphs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxrvqa.errors import CxrvqaError
from cxrvqa.qa.generate import GenerationSettings, generate_study
from cxrvqa.qa.stage import images_of
from cxrvqa.qa.study import study_view
from cxrvqa.qa.templates import load_templates, template_version
from cxrvqa.store import Store
from cxrvqa.store.records import ITEM_COLUMNS


def preview_template(
    store: Store,
    template_id: str,
    template_dirs: tuple[Path, ...] = (),
    *,
    study: str | None = None,
    limit: int = 20,
    backend: str = "rules",
    seed: int = 0,
    errors: list | None = None,
) -> list[dict[str, Any]]:
    """The items (before balancing) that ``template_id`` makes on up to ``limit`` current graphs. With
    ``errors``, bad files of ``template_dirs`` are collected there (the good ones are previewed) unless the
    template asked for is one of them."""
    found: list = []
    templates = {t.id: t for t in load_templates(template_dirs, errors=found)}
    for exc in found:
        if errors is None or Path(getattr(exc, "source", "")).stem == template_id:
            raise exc
    if errors is not None:
        errors.extend(found)
    if template_id not in templates:
        raise CxrvqaError(f"no template {template_id!r}; known: {', '.join(sorted(templates))}")
    template = templates[template_id]
    rows = store.query(
        "SELECT g.study_id, r.patient_id, g.graph FROM current_scene_graphs g JOIN current_reports r USING (study_id) "
        "WHERE g.backend = ? AND (? IS NULL OR g.study_id = ?) ORDER BY g.study_id LIMIT ?",
        [backend, study, study, limit],
    )
    if study is not None and not rows:
        raise CxrvqaError(f"study {study!r} has no current {backend} scene graph in {store.path}")
    splits = (("train", 0.8), ("val", 0.1), ("test", 0.1))
    settings = GenerationSettings(
        seed=seed, splits=splits, templates=((template, template_version(template, seed, splits)),)
    )
    images = images_of(store, [row[0] for row in rows])
    items = []
    for study_id, patient_id, graph in rows:
        view = study_view(json.loads(graph), patient_id, images.get(study_id, ()))
        item_rows, _, _ = generate_study(view, settings)
        items.extend(dict(zip(ITEM_COLUMNS, row, strict=True)) for row in item_rows)
    return items
