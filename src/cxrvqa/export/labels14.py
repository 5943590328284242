"""Study-level ChestX-ray14 labels from the current scene graphs, in the layout of NegBio's
OpenI gold standard (`filename` = `CXR<study_id>`, the 14 labels in ChestX-ray14 order, `normal`).

A label is 1 when the study has a present observation whose finding, or its nearest ancestor
with a `chestxray14` code in the findings vocabulary, carries that label.

Uncertain observations follow the labellers' convention, not the scene graph's: NegBio and the IU
MeSH coders code each reading a radiologist names as positive, so a probable reading ("likely
atelectasis"), each candidate of a differential ("atelectasis or scarring") and a borderline one
("borderline cardiomegaly") are 1 (LABELLED_CERTAINTIES), but a size called normal at its upper limit ("heart
size upper limits of normal": modifier `top_normal`) is a normal one, as the IU coders read it: 0, and the study
may be normal. Hedged mentions ("may represent pneumonia",
"cannot exclude effusion": certainty `possible`) are 0 by default, as in the gold standard;
`uncertain="positive"` counts every uncertain mention as 1 (CheXpert's U-ones policy). `normal` is 1
when no finding outside the device, technical and normal categories is
present or uncertain: a hedged abnormality is not a normal study under either policy.
Absent and unmentioned findings are 0.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from cxrvqa.core.atomic import atomic_file
from cxrvqa.core.scene_graph import TOP_NORMAL
from cxrvqa.core.vocab import NORMAL, NOT_ABNORMAL, finding_labels, vocabulary
from cxrvqa.errors import InputError
from cxrvqa.store import Store

#: The gold standard's column order (ChestX-ray14's label order), then `normal`.
LABELS14 = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
UncertainPolicy = Literal["negative", "positive"]
#: Certainties of an uncertain observation that the labellers' convention codes as positive.
LABELLED_CERTAINTIES = frozenset({"probable", "differential", "borderline"})


def label_of(finding: str | None) -> str | None:
    """The chestxray14 label of a finding or of its nearest coded ancestor."""
    findings = vocabulary().findings
    while finding is not None:
        code = findings[finding].get("codes", {}).get("chestxray14")
        if code:
            return code
        finding = findings[finding].get("parent")
    return None


def study_labels(
    observations: Iterable[tuple[str | None, str | None, str, str | None]], uncertain: UncertainPolicy = "negative"
) -> dict[str, int]:
    """Labels of one study from its (finding, category, presence, certainty) tuples."""
    labels = dict.fromkeys(LABELS14, 0)
    abnormal = False
    for finding, category, presence, certainty in observations:
        if presence == "absent":
            continue
        if category not in NOT_ABNORMAL:
            abnormal = True
        if presence == "present" or certainty in LABELLED_CERTAINTIES or uncertain == "positive":
            label = label_of(finding)
            if label:
                labels[label] = 1
    labels[NORMAL] = 0 if abnormal else 1
    return labels


def export_labels14(store: Store, dest: Path, backend: str = "rules", uncertain: UncertainPolicy = "negative") -> int:
    """Write one row per current scene graph of ``backend``; returns the number of rows."""
    if set(LABELS14) != finding_labels():
        raise InputError(
            "schemas/vocab/findings.yaml", f"chestxray14 codes {sorted(LABELS14)}", f"{sorted(finding_labels())}"
        )
    studies: dict[str, list[tuple[str | None, str | None, str, str | None]]] = {
        study: []
        for (study,) in store.query(
            "SELECT study_id FROM current_scene_graphs WHERE backend = ? ORDER BY study_id", [backend]
        )
    }
    for study, finding, category, presence, certainty in store.query(
        "SELECT study_id, finding, category, presence, certainty FROM current_observations "
        "WHERE backend = ? AND NOT list_contains(modifiers, ?)",
        [backend, TOP_NORMAL],
    ):
        studies[study].append((finding, category, presence, certainty))
    with atomic_file(dest) as partial, open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", *LABELS14, NORMAL])
        for study, observations in studies.items():
            labels = study_labels(observations, uncertain)
            writer.writerow([f"CXR{study}", *(labels[c] for c in (*LABELS14, NORMAL))])
    return len(studies)
