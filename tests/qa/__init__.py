"""Helpers shared by the QA tests: scene graphs and study views built by hand."""

from __future__ import annotations

from typing import Any

from cxrvqa.extraction.vocab import vocabulary
from cxrvqa.qa.generate import ITEM_COLUMNS, GenerationSettings, generate_study
from cxrvqa.qa.study import Box, ImageView, StudyView, study_view
from cxrvqa.qa.templates import Template, builtin_templates

SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
FRONTAL = {"image_id": "img1", "view_position": "PA", "view_plane": "frontal", "png_cols": 512, "png_rows": 512}


def observation(number: int, finding: str, presence: str = "present", *, regions: list[str] | None = None,
                laterality: str | None = None, severity: str | None = None, change: str | None = None,
                evidence: list[int] | None = None) -> dict[str, Any]:
    """One scene-graph observation in the stored JSON shape."""
    return {"id": f"o{number}", "name": finding.replace("_", " "), "finding": finding, "unresolved_text": None,
            "category": vocabulary().findings[finding]["category"], "regions": list(regions or []),
            "laterality": laterality, "presence": presence, "severity": severity, "change": change,
            "modifiers": [], "evidence": [{"sentence_id": i, "start": 0, "end": 5} for i in (evidence or [])],
            "parent_id": None, "from_report": True, "derived_from": []}


def graph(study_id: str, sentences: list[str], observations: list[dict[str, Any]],
          indication: str | None = None) -> dict[str, Any]:
    """A scene graph: sentences get ids 0.. in order (findings section) and consecutive offsets."""
    rows, offset = [], 0
    for i, text in enumerate(sentences):
        rows.append({"id": i, "section": "findings", "text": text, "start": offset, "end": offset + len(text)})
        offset += len(text) + 1
    return {"study_id": study_id, "backend": "rules", "indication": indication, "sentences": rows,
            "observations": observations}


def image(spec: dict[str, Any]) -> ImageView:
    def boxes(key: str) -> tuple[Box, ...]:
        return tuple(Box(b["label"], *b["box"]) for b in spec.get(key, ()))

    return ImageView(spec["image_id"], spec["view_position"], spec["view_plane"], spec["png_cols"], spec["png_rows"],
                     boxes("finding_boxes"), boxes("region_boxes"))


def view_from_spec(spec: dict[str, Any], study_id: str = "s1", patient_id: str = "p1") -> StudyView:
    """A study view from a golden spec: sentences, observations (finding, presence, regions, laterality,
    severity, change, evidence sentence ids), indication, images (default: one frontal PA image)."""
    observations = [observation(i + 1, **o) for i, o in enumerate(spec.get("observations", ()))]
    built = graph(study_id, list(spec.get("sentences", ())), observations, spec.get("indication"))
    images = tuple(image(i) for i in spec.get("images", [FRONTAL]))
    return study_view(built, patient_id, images)


def template(template_id: str) -> Template:
    return next(t for t in builtin_templates() if t.id == template_id)


def settings(*templates: Template, seed: int = 0) -> GenerationSettings:
    return GenerationSettings(seed=seed, splits=SPLITS, templates=tuple((t, "v") for t in templates))


def items(view: StudyView, *templates: Template, seed: int = 0) -> list[dict[str, Any]]:
    """The item rows generate_study makes, as dicts of ITEM_COLUMNS."""
    rows, _, _ = generate_study(view, settings(*templates, seed=seed))
    return [dict(zip(ITEM_COLUMNS, row, strict=True)) for row in rows]


def generate(view: StudyView, *templates: Template, seed: int = 0) -> tuple[list[dict], list[tuple], dict[str, int]]:
    rows, parts, counts = generate_study(view, settings(*templates, seed=seed))
    return [dict(zip(ITEM_COLUMNS, row, strict=True)) for row in rows], parts, counts
