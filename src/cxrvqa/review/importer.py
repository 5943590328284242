"""`cxrvqa review import`: reviewers' verdicts become `review_verdicts` rows, and through the views a
`human_review` validator result and a grade cap of each reviewed item (migration 0012).

A verdict applies to the item as it was reviewed: when the file gives the version the reviewer saw (every
format `review sample` writes does) and the item has changed since, the verdict is not imported but listed as
stale (the item must be reviewed again), and so is a verdict on an item no longer in the current dataset. An
item id the build never had is an error: the file belongs to another build. What a verdict counts as (status,
reason, cap) is grades.yaml's `review` at import time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cxrvqa.core.grading import grading, review_result
from cxrvqa.errors import ConfigError
from cxrvqa.review.verdicts import Verdict, file_error, parse_verdicts
from cxrvqa.store import Store


@dataclass(frozen=True)
class Stale:
    """A verdict left out: its item changed, or left the dataset, since it was reviewed."""

    source: str
    item_id: str
    why: str


@dataclass
class ImportPlan:
    """What an import would write, checked against the build; nothing is written yet."""

    path: Path
    format: str
    read: int  # verdicts in the file
    rows: list[dict[str, Any]] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)
    replaced: int = 0  # later verdicts of the same reviewer on the same item

    @property
    def by_verdict(self) -> Counter:
        return Counter(row["verdict"] for row in self.rows)

    @property
    def reviewers(self) -> list[str]:
        return sorted({row["reviewer"] for row in self.rows})


def plan_import(store: Store, path: Path, reviewer: str | None = None, fmt: str | None = None) -> ImportPlan:
    """Read the file and match every verdict to its current item; an InputError naming every problem (bad
    values, unknown item ids, no reviewer) before anything is written."""
    if reviewer is not None and not reviewer.strip():
        raise ConfigError("--reviewer", "expected a name, found an empty one")
    found_format, verdicts, problems = parse_verdicts(path, fmt)
    nameless = [v.source for v in verdicts if not (reviewer or v.reviewer)]
    if nameless:
        problems.append(
            f"{', '.join(nameless[:5])}{' ...' if len(nameless) > 5 else ''}: expected a reviewer; "
            "found none in the file: give --reviewer NAME"
        )
    ids = sorted({v.item_id for v in verdicts})
    known = {
        item_id
        for (item_id,) in store.query(
            "SELECT DISTINCT item_id FROM qa_items WHERE item_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        )
    }
    problems += [
        f"{v.source}: expected an item id of this build; found {v.item_id!r} (is the file from another build?)"
        for v in verdicts
        if v.item_id not in known
    ]
    if problems:
        raise file_error(path, found_format, problems)
    current = {
        item_id: (template_version, input_hash, version)
        for item_id, template_version, input_hash, version in store.query(
            "SELECT item_id, template_version, input_hash, item_version FROM current_item_versions(?::VARCHAR[])", [ids]
        )
    }
    plan = ImportPlan(Path(path), found_format, len(verdicts))
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    now = datetime.now(timezone.utc)
    for v in verdicts:
        why = _why_stale(v, current.get(v.item_id))
        if why:
            plan.stale.append(Stale(v.source, v.item_id, why))
            continue
        template_version, input_hash, version = current[v.item_id]
        row = _row(v, reviewer or v.reviewer or "", template_version, input_hash, version, path, now)
        plan.replaced += (v.item_id, row["reviewer"]) in latest
        latest[(v.item_id, row["reviewer"])] = row
    plan.rows = list(latest.values())
    return plan


def _why_stale(v: Verdict, current: tuple[str, str, str] | None) -> str | None:
    if current is None:
        return "no longer in the current dataset"
    template_version, input_hash, version = current
    if v.item_version is not None and v.item_version != current[2]:
        return f"changed since it was sampled (version {v.item_version[:12]}, now {version[:12]})"
    if v.item_version is None and v.key is not None and v.key != (template_version, input_hash):
        return (
            f"regenerated since it was exported (template_version/input_hash {v.key[0]}/{v.key[1][:12]}, now "
            f"{template_version}/{input_hash[:12]})"
        )
    return None


def _row(
    v: Verdict, reviewer: str, template_version: str, input_hash: str, version: str, path: Path, now: datetime
) -> dict[str, Any]:
    result = review_result(v.verdict, v.grammar)
    return {
        "item_id": v.item_id,
        "item_version": version,
        "template_version": template_version,
        "input_hash": input_hash,
        "reviewer": reviewer.strip(),
        "verdict": v.verdict,
        "grammar": v.grammar,
        "note": v.note,
        "status": result.status,
        "reason": result.reason,
        "grade": result.grade,
        "label": None if result.grade is None else grading().label(result.grade),
        "weakest": result.weakest,
        "source": f"{Path(path).name} {v.source}",
        "reviewed_at": v.reviewed_at,
        "created_at": now,
    }


def write_import(store: Store, plan: ImportPlan, run_id: str) -> int:
    """Write the plan's verdicts in one transaction (all or none); returns the rows written."""
    with store.transaction():
        return store.insert("review_verdicts", [{**row, "run_id": run_id} for row in plan.rows])
