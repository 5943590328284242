"""The jsonl export: one QA item per line, with every field of `schemas/qa_item.schema.json`.

The lines are what `cxrvqa validate-file` reads: an exported file validates against its build with
the verdicts and grades stored for it. `image` is the PNG path relative to the build folder. Its card (counts,
question-only baseline) is `<dest>.card.md`.
"""

from __future__ import annotations

from pathlib import Path

from cxrvqa.core.atomic import atomic_file
from cxrvqa.export.card import card_path, sidecar_card
from cxrvqa.export.items import EVERY_ITEM, ExportSummary, Selection, ordered_items, sql_literal
from cxrvqa.store import Store


def export_jsonl(store: Store, dest: Path, selection: Selection = EVERY_ITEM) -> ExportSummary:
    """Write the selected items to ``dest`` (one JSON object per line, study then item id order) and its card
    beside it (`<dest>.card.md`)."""
    with (
        atomic_file(dest) as partial,
        ordered_items(store, selection, partial.with_name(partial.name + ".items.parquet")) as (items, per_split),
    ):
        store.query(f"COPY (SELECT * FROM {items}) TO {sql_literal(str(partial))} (FORMAT json)")
        card = sidecar_card(store, dest, items, per_split, selection, "jsonl")
    with atomic_file(card_path(dest)) as partial:
        partial.write_text(card, encoding="utf-8")
    return ExportSummary("jsonl", dest, sum(per_split.values()), per_split, image_root=store.path.parent.resolve())
