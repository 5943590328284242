"""Helpers shared by the QA tests: scene graphs and study views built by hand."""

from __future__ import annotations

from typing import Any

from cxrvqa.core.vocab import vocabulary
from cxrvqa.qa.generate import GenerationSettings, generate_study
from cxrvqa.qa.study import Box, ImageView, StudyView, study_view
from cxrvqa.qa.templates import Template, builtin_templates
from cxrvqa.store.records import ITEM_COLUMNS

SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
FRONTAL = {"image_id": "img1", "view_position": "PA", "view_plane": "frontal", "png_cols": 512, "png_rows": 512}


def observation(
    number: int,
    finding: str,
    presence: str = "present",
    *,
    regions: list[str] | None = None,
    laterality: str | None = None,
    severity: str | None = None,
    change: str | None = None,
    evidence: list[int] | None = None,
    certainty: str | None = None,
    modifiers: list[str] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """One scene-graph observation in the stored JSON shape (an uncertain one is `possible` unless told;
    ``name``: the report's words, default the finding id's)."""
    if presence == "uncertain" and certainty is None:
        certainty = "possible"
    return {
        "id": f"o{number}",
        "name": name or finding.replace("_", " "),
        "finding": finding,
        "unresolved_text": None,
        "category": vocabulary().findings[finding]["category"],
        "regions": list(regions or []),
        "laterality": laterality,
        "presence": presence,
        "certainty": certainty,
        "severity": severity,
        "change": change,
        "modifiers": list(modifiers or []),
        "evidence": [{"sentence_id": i, "start": 0, "end": 5} for i in (evidence or [])],
        "parent_id": None,
        "from_report": True,
        "derived_from": [],
    }


def graph(
    study_id: str,
    sentences: list[str],
    observations: list[dict[str, Any]],
    indication: str | None = None,
    statements: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A scene graph: sentences get ids 0.. in order (findings section) and consecutive offsets;
    statements: normal statements as {id, sentence_id, regions}."""
    rows, offset = [], 0
    for i, text in enumerate(sentences):
        rows.append({"id": i, "section": "findings", "text": text, "start": offset, "end": offset + len(text)})
        offset += len(text) + 1
    return {
        "study_id": study_id,
        "backend": "rules",
        "indication": indication,
        "sentences": rows,
        "observations": observations,
        "statements": list(statements or []),
    }


def image(spec: dict[str, Any]) -> ImageView:
    def boxes(key: str) -> tuple[Box, ...]:
        return tuple(Box(b["label"], *b["box"]) for b in spec.get(key, ()))

    return ImageView(
        spec["image_id"],
        spec["view_position"],
        spec["view_plane"],
        spec["png_cols"],
        spec["png_rows"],
        boxes("finding_boxes"),
        boxes("region_boxes"),
    )


def view_from_spec(spec: dict[str, Any], study_id: str = "s1", patient_id: str = "p1") -> StudyView:
    """A study view from a golden spec: sentences, observations (finding, presence, certainty, regions,
    laterality, severity, change, modifiers, evidence sentence ids), normal statements ({id, sentence_id,
    regions}), indication, images (default: one frontal PA image)."""
    observations = [observation(i + 1, **o) for i, o in enumerate(spec.get("observations", ()))]
    built = graph(
        study_id, list(spec.get("sentences", ())), observations, spec.get("indication"), spec.get("statements")
    )
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


# -- synthetic studies (the MCQ letter test and bench/bench_qa.py) ---------------------------------------------
#: finding -> {laterality: regions}; None: a midline finding
SITES: dict[str, dict[str | None, list[str]]] = {
    "pleural_effusion": {
        "left": ["left_pleura", "left_costophrenic_angle"],
        "right": ["right_pleura"],
        "bilateral": ["pleura"],
    },
    "pneumothorax": {"left": ["left_apex", "left_pleura"], "right": ["right_apex", "right_pleura"]},
    "consolidation": {
        "left": ["left_lower_lobe", "lingula", "left_upper_lobe"],
        "right": ["right_lower_lobe", "right_middle_lobe", "right_upper_lobe"],
    },
    "pneumonia": {"left": ["left_lower_lobe", "retrocardiac"], "right": ["right_lower_lobe", "right_middle_lobe"]},
    "atelectasis": {"left": ["left_base", "left_lower_lobe"], "right": ["right_base"], "bilateral": ["bases"]},
    "lung_opacity": {"left": ["left_mid_zone"], "right": ["right_upper_zone"], "bilateral": ["lungs"]},
    "edema": {"bilateral": ["lungs", "perihilar"]},
    "nodule": {
        "left": ["left_upper_lobe", "left_apex"],
        "right": ["right_upper_lobe", "right_lower_lobe"],
        "bilateral": ["lungs"],
    },
    "mass": {"left": ["left_hilum"], "right": ["right_hilum", "right_upper_lobe"]},
    "emphysema": {"bilateral": ["lungs", "upper_zones"]},
    "interstitial_lung_disease": {"bilateral": ["lungs", "lower_zones"]},
    "cardiomegaly": {None: ["heart"]},
    "enlarged_cardiomediastinum": {None: ["mediastinum"]},
    "mediastinal_widening": {None: ["upper_mediastinum"]},
    "hilar_enlargement": {"left": ["left_hilum"], "right": ["right_hilum"], "bilateral": ["hila"]},
    "aortic_calcification": {None: ["aortic_arch"]},
    "tortuous_aorta": {None: ["aorta"]},
    "rib_fracture": {"left": ["left_ribs"], "right": ["right_ribs"]},
    "scoliosis": {None: ["thoracic_spine"]},
    "degenerative_spine_changes": {None: ["thoracic_spine"]},
    "hiatal_hernia": {None: ["upper_abdomen"]},
    "subcutaneous_emphysema": {"left": ["left_chest_wall"], "right": ["right_chest_wall"]},
    "endotracheal_tube": {None: ["trachea"]},
    "enteric_tube": {None: ["stomach", "esophagus"]},
    "central_venous_catheter": {"left": ["superior_vena_cava"], "right": ["superior_vena_cava"]},
    "pacemaker": {"left": ["left_chest_wall"]},
    "sternotomy_wires": {None: ["sternum"]},
}
SEVERITIES = ("minimal", "mild", "moderate", "severe", "mild_to_moderate")
CHANGES = ("new", "worsened", "improved", "unchanged")
INDICATIONS = ("Shortness of breath.", "Chest pain.", "Fever and cough.", "Line placement.", "___ with hypoxia.", None)


def synthetic_study(rng: Any, index: int, n_patients: int | None = None) -> tuple[dict[str, Any], str, list[dict]]:
    """(scene graph, patient id, image specs) of a random but realistic study number ``index``:
    0-6 observations from SITES, present / absent / uncertain, with regions, side, severity and change,
    one sentence each; one or two images (frontal PA or AP, then lateral)."""
    study_id = f"s{index:07d}"
    patient_id = f"p{rng.randrange(n_patients) if n_patients else index // 2:07d}"
    sentences, observations = [], []
    for number, finding in enumerate(rng.sample(sorted(SITES), rng.randint(0, 6)), start=1):
        presence = rng.choices(("present", "absent", "uncertain"), (0.45, 0.45, 0.10))[0]
        side = rng.choice(sorted(SITES[finding], key=str))
        regions = [rng.choice(SITES[finding][side])] if presence != "absent" or rng.random() < 0.2 else []
        name = finding.replace("_", " ")
        text = {
            "present": f"There is {side or 'a'} {name}.",
            "absent": f"No {name}.",
            "uncertain": f"Possible {name}.",
        }[presence]
        sentences.append(text)
        severity = rng.choice(SEVERITIES) if presence == "present" and rng.random() < 0.3 else None
        change = rng.choice(CHANGES) if presence != "absent" and rng.random() < 0.15 else None
        observations.append(
            observation(
                number,
                finding,
                presence,
                regions=regions,
                laterality=side if presence != "absent" else None,
                severity=severity,
                change=change,
                evidence=[len(sentences) - 1],
            )
        )
    built = graph(study_id, sentences, observations, rng.choice(INDICATIONS))
    position = rng.choice(("PA", "PA", "AP"))
    images = [
        {
            "image_id": f"{study_id}-1",
            "view_position": position,
            "view_plane": "frontal",
            "png_cols": 512,
            "png_rows": 512 + rng.randrange(64),
        }
    ]
    if rng.random() < 0.5:
        images.append(
            {
                "image_id": f"{study_id}-2",
                "view_position": "LL",
                "view_plane": "lateral",
                "png_cols": 512,
                "png_rows": 512,
            }
        )
    return built, patient_id, images


def fill_store(
    store: Any, first: int, n: int, *, seed: int = 0, run_id: str = "synthetic", n_patients: int | None = None
) -> int:
    """Insert studies ``first`` .. ``first + n - 1`` of synthetic_study (random.Random(seed + first)) as
    `reports`, `scene_graphs` and `images` rows, the columns the QA stage reads plus the required ones,
    in one bulk insert per table. Returns the number of images."""
    import hashlib
    import json
    import random
    from datetime import datetime, timezone

    import pyarrow as pa

    rng = random.Random(seed * 1_000_003 + first)
    now = datetime.now(timezone.utc)
    reports: dict[str, list] = {c: [] for c in ("study_id", "patient_id", "report_hash", "input_hash")}
    graphs: dict[str, list] = {
        c: [] for c in ("graph_id", "study_id", "report_hash", "input_hash", "n_observations", "graph")
    }
    images: dict[str, list] = {
        c: [] for c in ("image_id", "study_id", "patient_id", "view_position", "view_plane", "png_rows", "png_cols")
    }
    for index in range(first, first + n):
        built, patient, specs = synthetic_study(rng, index, n_patients)
        text = json.dumps(built, separators=(",", ":"))
        digest = hashlib.md5(text.encode()).hexdigest()
        reports["study_id"].append(built["study_id"])
        reports["patient_id"].append(patient)
        reports["report_hash"].append(digest)
        reports["input_hash"].append(digest)
        graphs["graph_id"].append("g-" + digest)
        graphs["study_id"].append(built["study_id"])
        graphs["report_hash"].append(digest)
        graphs["input_hash"].append(digest)
        graphs["n_observations"].append(len(built["observations"]))
        graphs["graph"].append(text)
        for spec in specs:
            images["image_id"].append(spec["image_id"])
            images["study_id"].append(built["study_id"])
            images["patient_id"].append(patient)
            for key in ("view_position", "view_plane", "png_rows", "png_cols"):
                images[key].append(spec[key])

    def constant(table: dict[str, list], **values: Any) -> pa.Table:
        rows = len(next(iter(table.values())))
        arrow = pa.table(table)
        for name, value in values.items():
            arrow = arrow.append_column(name, pa.array([value] * rows))
        return arrow

    common = {"run_id": run_id, "code_version": "synthetic", "created_at": now}
    n_images = len(images["image_id"])
    with store.transaction():
        store.insert(
            "reports",
            constant(
                reports,
                source="synthetic",
                source_format="jsonl",
                text="",
                indication="",
                comparison="",
                technique="",
                findings="",
                impression="",
                other="",
                n_sentences=0,
                parser_version="synthetic",
                **common,
            ),
        )
        store.insert(
            "scene_graphs",
            constant(
                graphs, backend="rules", parser_version="synthetic", extractor_version="synthetic", **common
            ).append_column("quality", pa.array([[]] * n, pa.list_(pa.string()))),
        )
        store.insert(
            "images",
            constant(
                images,
                recipe_version="synthetic",
                source_path="x.dcm",
                png_path="x.png",
                view_source="ViewPosition",
                photometric="MONOCHROME2",
                inverted=False,
                window_source="window",
                decode_method="full",
                decode_reduction=1,
                rows=2048,
                cols=2048,
                scale_x=0.25,
                scale_y=0.25,
                png_sha256="0",
                input_hash="0",
                **common,
            ),
        )
    return n_images
