"""Retiring studies and images a build's input no longer has (`cxrvqa build --prune`).

A study of the current dataset whose report is absent from a build's complete reports input, or an image whose
file is absent from its complete images folder, is "absent". With --prune the build retires it: a `retirements`
row (the run, the reason, the input looked in), after which the `current_*` views leave it out, and with it its
scene graph and items (no row is deleted but the retired items' keys in `qa_current`, the derived table of the
current dataset's keys; older runs stay queryable). Without --prune the build warns how many
are absent. A retired study or image found in a later build's input is restored (a `restored` row).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from cxrvqa.core.provenance import code_version
from cxrvqa.store.db import Store

logger = logging.getLogger(__name__)

RETIRED, RESTORED = "retired", "restored"
ABSENT_FROM_INPUT, BACK_IN_INPUT = "absent_from_input", "back_in_input"

#: Per kind: the current ones (key, name in the input, input hash), and the latest row of the given retired ones.
_CURRENT = {
    "study": "SELECT study_id, study_id, input_hash FROM current_reports",
    "image": "SELECT image_id, source_path, input_hash FROM current_images",
}
_LATEST = {
    "study": "SELECT study_id, study_id, input_hash FROM reports WHERE study_id IN (SELECT unnest(?::VARCHAR[])) "
    "QUALIFY row_number() OVER (PARTITION BY study_id ORDER BY created_at DESC) = 1",
    "image": "SELECT image_id, source_path, input_hash FROM images WHERE image_id IN (SELECT unnest(?::VARCHAR[])) "
    "QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY created_at DESC) = 1",
}
#: What a kind is called in messages, and what names it in the input.
_WORDS = {"study": ("study", "studies", "report"), "image": ("image", "images", "file")}


@dataclass(frozen=True)
class Absence:
    """What one build found of the current studies (or images) in its input."""

    kind: str  # study | image
    absent: int  # current ones the input lacks
    retired: int  # of them, retired by this build (--prune)
    restored: int  # retired earlier, back in the input
    examples: tuple[str, ...] = ()  # a few absent ones, as the input names them (study id, file path)

    def message(self, source: str) -> str | None:
        """The warning a build without --prune gives (None: nothing absent, or retired)."""
        if not self.absent or self.retired:
            return None
        singular, plural, named_by = _WORDS[self.kind]
        noun = singular if self.absent == 1 else plural
        return (
            f"{self.absent} {noun} of the current dataset ({', '.join(self.examples)}"
            f"{', ...' if self.absent > len(self.examples) else ''}) {'has' if self.absent == 1 else 'have'} "
            f"no {named_by} in {source}: their "
            f"items stay current; rebuild with --prune to retire them"
        )


def reconcile(
    store: Store, run_id: str, kind: str, seen: Iterable[str], source: str, prune: bool, n_examples: int = 3
) -> Absence:
    """Compare the current studies (kind ``study``: study ids) or images (``image``: stored source paths) with
    ``seen``, the names a build's complete input has; restore the retired ones seen again, and with ``prune``
    retire the absent ones. One `retirements` row per study or image retired or restored; logs the warning
    of a build without --prune."""
    seen = set(seen)
    absent = sorted(row for row in store.query(_CURRENT[kind]) if row[1] not in seen)
    retired = {key for (key,) in store.query("SELECT key FROM current_retirements WHERE kind = ?", [kind])}
    back = sorted(row for row in store.query(_LATEST[kind], [sorted(retired)]) if row[1] in seen) if retired else []
    now = datetime.now(timezone.utc)

    def rows(found: list[tuple[str, str, str]], action: str, reason: str, detail: str) -> list[dict]:
        return [
            {
                "kind": kind,
                "key": key,
                "action": action,
                "reason": reason,
                "detail": detail,
                "input_hash": input_hash,
                "run_id": run_id,
                "code_version": code_version(),
                "created_at": now,
            }
            for key, _, input_hash in found
        ]

    written = rows(back, RESTORED, BACK_IN_INPUT, f"found again in {source}")
    if prune:
        written += rows(absent, RETIRED, ABSENT_FROM_INPUT, f"absent from {source}")
    if written:
        store.insert("retirements", written)
    if prune and absent:  # at once, also in a build whose QA stage does not run (it then selects without them)
        column = "study_id" if kind == "study" else "image_id"
        store.con.execute(
            f"DELETE FROM qa_current WHERE item_id IN (SELECT item_id FROM qa_items WHERE {column} IN "
            "(SELECT unnest(?::VARCHAR[])))",
            [[key for key, _, _ in absent]],
        )
    absence = Absence(
        kind, len(absent), len(absent) if prune else 0, len(back), tuple(name for _, name, _ in absent[:n_examples])
    )
    warning = absence.message(source)
    if warning:
        logger.warning(warning)
    for n, done, where in ((absence.retired, "retired", "absent from"), (absence.restored, "restored", "back in")):
        if n:
            logger.info(f"{done} {n} {_WORDS[kind][0 if n == 1 else 1]} {where} {source}")
    return absence
