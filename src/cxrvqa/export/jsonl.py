"""The jsonl export: one QA item per line, with every field of `schemas/qa_item.schema.json`.

The lines are what `cxrvqa validate-file` reads: an exported file validates against its build with
the verdicts and grades stored for it. `image` is the PNG path relative to the build folder.
"""

from __future__ import annotations

from pathlib import Path

from cxrvqa.export.atomic import atomic_file
from cxrvqa.export.items import EVERY_ITEM, ExportSummary, Selection, ordered_items, sql_literal
from cxrvqa.store import Store


def export_jsonl(store: Store, dest: Path, selection: Selection = EVERY_ITEM) -> ExportSummary:
    """Write the selected items to ``dest`` (one JSON object per line, study then item id order)."""
    with atomic_file(dest) as partial, \
            ordered_items(store, selection, partial.with_name(partial.name + ".items.parquet")) as (items, per_split):
        store.query(f"COPY (SELECT * FROM {items}) TO {sql_literal(str(partial))} (FORMAT json)")
    return ExportSummary("jsonl", dest, sum(per_split.values()), per_split, image_root=store.path.parent.resolve())
