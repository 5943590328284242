"""`cxrvqa diff RUN_A RUN_B`: which items the dataset gained, lost or changed from one run to another, and why.

Each change is put down to its first cause in this order, per study and template:
- `study retired`, `image retired`: a build with --prune retired the item's study (its report left the input)
  or its image (its file did);
- `input edit`: the study's report changed (or the study is new, or gone from the dataset);
- `scene graph or images`: the report is the same but what the QA stage read of the study changed (an
  extraction rule, a new image, new boxes: the item's QA input hash);
- `template or generator`: the template's version changed (its file, a plugin program, the vocabularies,
  the generator code, the seed or the splits);
- `selection`: none of these; the item was made both times but kept only once (balancing, de-duplication).
A change by selection in a study nobody edited is what an edit elsewhere did to the balance: the change log
names it so (issue 17: "an edit to two reports changed 72 items in 30 untouched studies").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cxrvqa.audit.summary import as_of, run_info
from cxrvqa.store import Store

CAUSES = ("study retired", "image retired", "input edit", "scene graph or images", "template or generator", "selection")
KINDS = ("added", "removed", "changed")
#: Templates the audit's change log lists (those with the most changed items; `cxrvqa diff` lists all).
TOP_CHANGED_TEMPLATES = 10


@dataclass
class Snapshot:
    items: dict[str, tuple]  # item_id -> (study, template, version, input hash, question, answer)
    reports: dict[str, str]  # study -> report input hash
    qa_inputs: dict[str, set[str]]  # study -> QA input hashes of its items
    versions: dict[str, set[str]]  # template -> versions of its items
    images: dict[str, str | None]  # item_id -> its image
    retired: set[tuple[str, str]]  # (study | image, key) retired as of the run


@dataclass
class DatasetDiff:
    run_a: str
    run_b: str
    counts: Counter = field(default_factory=Counter)  # (kind, cause) -> items
    templates: dict[str, Counter] = field(default_factory=dict)  # template -> kind -> items
    studies: Counter = field(default_factory=Counter)  # kind of study change -> studies
    retired: Counter = field(default_factory=Counter)  # 'study:ID' / 'image:ID' retired -> its items removed
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "items": [{"kind": k, "cause": c, "n": n} for (k, c), n in sorted(self.counts.items())],
            "templates": {t: dict(c) for t, c in sorted(self.templates.items())},
            "studies": dict(self.studies),
            "retired": dict(sorted(self.retired.items())),
            "examples": self.examples,
        }


def _snapshot(store: Store, run_id: str) -> Snapshot:
    with as_of(store, run_id):
        rows = store.query(
            "SELECT item_id, study_id, template_id, template_version, input_hash, question, answer, "
            "image_id FROM current_qa_items"
        )
        reports = dict(store.query("SELECT study_id, input_hash FROM current_reports"))
        retired = set(store.query("SELECT kind, key FROM current_retirements"))
    snapshot = Snapshot({r[0]: tuple(r[1:-1]) for r in rows}, reports, {}, {}, {r[0]: r[-1] for r in rows}, retired)
    for study, template, version, input_hash, _, _ in snapshot.items.values():
        snapshot.qa_inputs.setdefault(study, set()).add(input_hash)
        snapshot.versions.setdefault(template, set()).add(version)
    return snapshot


def _cause(study: str, template: str, image: str | None, a: Snapshot, b: Snapshot) -> str:
    if ("study", study) in b.retired - a.retired:
        return "study retired"
    if image is not None and ("image", image) in b.retired - a.retired:
        return "image retired"
    if a.reports.get(study) != b.reports.get(study):
        return "input edit"
    if (
        a.qa_inputs.get(study, set()) != b.qa_inputs.get(study, set())
        and a.qa_inputs.get(study)
        and b.qa_inputs.get(study)
    ):
        return "scene graph or images"
    before, after = a.versions.get(template, set()), b.versions.get(template, set())
    if before and after and before != after:  # a template with items only once: its items were selected once
        return "template or generator"
    return "selection"


def dataset_diff(store: Store, run_a: str, run_b: str, limit: int = 10) -> DatasetDiff:
    """The items of the dataset as of run_b against those as of run_a, each change with its cause (pure reads)."""
    run_info(store, run_a)
    run_info(store, run_b)
    a, b = _snapshot(store, run_a), _snapshot(store, run_b)
    diff = DatasetDiff(run_a, run_b)
    changes = [("removed", i, a.items[i], None) for i in sorted(set(a.items) - set(b.items))]
    changes += [("added", i, None, b.items[i]) for i in sorted(set(b.items) - set(a.items))]
    changes += [
        ("changed", i, a.items[i], b.items[i])
        for i in sorted(set(a.items) & set(b.items))
        if a.items[i][4:] != b.items[i][4:]
    ]
    for kind, item_id, old, new in changes:
        study, template = (new or old)[0], (new or old)[1]
        image = a.images.get(item_id, b.images.get(item_id))
        cause = _cause(study, template, image, a, b)
        if cause in ("study retired", "image retired"):
            diff.retired[f"study:{study}" if cause == "study retired" else f"image:{image}"] += 1
        diff.counts[(kind, cause)] += 1
        diff.templates.setdefault(template, Counter())[kind] += 1
        if len(diff.examples) < limit:
            diff.examples.append(
                {
                    "kind": kind,
                    "cause": cause,
                    "item_id": item_id,
                    "study_id": study,
                    "template_id": template,
                    "before": old[4:] if old else None,
                    "after": new[4:] if new else None,
                }
            )
    diff.studies["new"] = len(set(b.reports) - set(a.reports))
    diff.studies["retired"] = sum(1 for s in set(a.reports) - set(b.reports) if ("study", s) in b.retired)
    diff.studies["gone"] = len(set(a.reports) - set(b.reports)) - diff.studies["retired"]
    diff.studies["edited"] = sum(1 for s in set(a.reports) & set(b.reports) if a.reports[s] != b.reports[s])
    touched = {(new or old)[0] for kind, _, old, new in changes}
    diff.studies["with changed items but no input edit"] = sum(
        1 for s in touched if a.reports.get(s) == b.reports.get(s)
    )
    return diff
