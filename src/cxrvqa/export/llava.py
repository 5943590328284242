"""The llava export: LLaVA's conversation JSON, the layout VLM fine-tuning scripts read
(`--data_path FILE --image_folder BUILD_FOLDER`): a list of
{"id", "image", "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": ...}]}.

`image` is the PNG path relative to the build folder. A multiple-choice question lists its options in the
human turn ("A. ...", one per line) with LLaVA's instruction to answer with the letter, and the gpt turn is
the letter; other questions are answered with the stored answer. Items without an image cannot be
trained on with an image token: they are left out and counted (`no_image`). Wording: schemas/vocab/export.yaml.
Its card (counts, question-only baseline of the written items) is `<dest>.card.md`.
"""

from __future__ import annotations

from pathlib import Path

from cxrvqa.core.atomic import atomic_file
from cxrvqa.export.card import card_path, sidecar_card
from cxrvqa.export.items import EVERY_ITEM, ExportSummary, Selection, export_data, ordered_items, sql_literal
from cxrvqa.store import Store

#: The conversation of an item, over the exported columns (aliased `x`).
_CONVERSATION = """[
    {{'from': 'human', 'value': {token} || chr(10) || x.question || CASE WHEN x.options IS NULL THEN '' ELSE
        chr(10) || array_to_string(list_transform(range(len(x.options)),
                                                  lambda k: chr(65 + k::INTEGER) || '. ' || x.options[k + 1]), chr(10))
        || chr(10) || {instruction} END}},
    {{'from': 'gpt', 'value': CASE WHEN x.options IS NULL THEN x.answer ELSE x.correct_option END}}]"""


def export_llava(store: Store, dest: Path, selection: Selection = EVERY_ITEM) -> ExportSummary:
    """Write the selected items that have an image to ``dest`` (one JSON array, study then item id order)."""
    wording = export_data()["llava"]
    conversation = _CONVERSATION.format(
        token=sql_literal(wording["image_token"]), instruction=sql_literal(wording["multiple_choice_instruction"])
    )
    with (
        atomic_file(dest) as partial,
        ordered_items(store, selection, partial.with_name(partial.name + ".items.parquet")) as (items, per_split),
    ):
        (written,) = store.query(
            f"COPY (SELECT x.item_id AS id, x.image, {conversation} AS conversations FROM {items} x "
            f"WHERE x.image IS NOT NULL) TO {sql_literal(str(partial))} (FORMAT json, ARRAY true)"
        )[0]
        written_splits = dict(store.query(f"SELECT split, count(*) FROM {items} WHERE image IS NOT NULL GROUP BY 1"))
        card = sidecar_card(
            store,
            dest,
            f"(SELECT * FROM {items} WHERE image IS NOT NULL)",
            {s: written_splits[s] for s in per_split if s in written_splits},
            selection,
            "llava",
        )
    with atomic_file(card_path(dest)) as partial:
        partial.write_text(card, encoding="utf-8")
    without_image = sum(per_split.values()) - written
    return ExportSummary(
        "llava",
        dest,
        written,
        skipped={"no_image": without_image} if without_image else {},
        image_root=store.path.parent.resolve(),
    )
