"""The parquet and hf exports: a folder with one Parquet file per split (`<split>.parquet`) and a
dataset card (README.md) whose YAML front matter lists the split files, so that
`datasets.load_dataset("parquet", data_dir=DEST)`, `datasets.load_dataset(DEST)`, DuckDB
(`SELECT * FROM 'DEST/*.parquet'`) and pyarrow read it directly. Nested fields (answer parts,
boxes, evidence, provenance) are Parquet lists and structs.

What differs:
- parquet: `image` is the PNG path relative to the build folder (a string); nothing else is
  specific to one reader.
- hf: `image` is a `datasets` Image feature, a struct {bytes: null, path: the absolute PNG path},
  and each file carries the `datasets` features in its schema metadata (key `huggingface`), so
  `load_dataset` decodes images to PIL on the machine of the build and `push_to_hub` embeds the PNG
  bytes. The absolute paths tie an hf export to the build's location: re-export after moving it.

Items are written once, in study then item id order, to a temporary Parquet file in the partial
folder, then copied into one file per split that has items (a split without items has no file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cxrvqa.errors import CxrvqaError
from cxrvqa.core.atomic import atomic_folder
from cxrvqa.export.card import dataset_card
from cxrvqa.export.items import (
    EVERY_ITEM,
    RELATIVE_IMAGE,
    ExportSummary,
    Selection,
    ordered_items,
    split_names,
    sql_literal,
)
from cxrvqa.store import Store

#: Names an earlier parquet/hf export leaves in its folder (an existing --dest is replaced only then).
OWNED_NAMES = re.compile(r"README\.md|[A-Za-z0-9_]+\.parquet")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_]+")
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"


def hf_image(root: Path) -> str:
    """SQL of the hf image column: the datasets Image struct with the PNG's absolute path."""
    return (
        f"CASE WHEN im.png_path IS NULL THEN NULL "
        f"ELSE {{'bytes': NULL::BLOB, 'path': {sql_literal(str(root) + '/')} || im.png_path}} END"
    )


def _value_type(kind: pa.DataType) -> str:
    for test, dtype in (
        (pa.types.is_string, "string"),
        (pa.types.is_large_string, "large_string"),
        (pa.types.is_boolean, "bool"),
        (pa.types.is_int32, "int32"),
        (pa.types.is_int64, "int64"),
        (pa.types.is_float64, "float64"),
        (pa.types.is_binary, "binary"),
    ):
        if test(kind):
            return dtype
    raise CxrvqaError(f"no datasets feature for the Arrow type {kind} of an exported column")


def hf_feature(kind: pa.DataType) -> dict[str, Any]:
    """The `datasets` feature (as Features.to_dict() writes it, datasets >= 4) of an Arrow type."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return {"feature": hf_feature(kind.value_type), "_type": "List"}
    if pa.types.is_struct(kind):
        return {kind.field(i).name: hf_feature(kind.field(i).type) for i in range(kind.num_fields)}
    return {"dtype": _value_type(kind), "_type": "Value"}


def hf_features(schema: pa.Schema, image: str = "image") -> dict[str, Any]:
    """Features of every column, the ``image`` column as a datasets Image."""
    return {f.name: {"_type": "Image"} if f.name == image else hf_feature(f.type) for f in schema}


def export_parquet(store: Store, dest: Path, selection: Selection = EVERY_ITEM, hf: bool = False) -> ExportSummary:
    """Write the selected items to ``dest``/<split>.parquet plus README.md; ``hf`` as described above."""
    fmt = "hf" if hf else "parquet"
    root = store.path.parent.resolve()
    splits = [selection.split] if selection.split else split_names(store)
    unusable = [s for s in splits if not _SPLIT_NAME.fullmatch(s)]
    if unusable:
        raise CxrvqaError(
            f"splits {unusable} cannot name files; split names of a {fmt} export are letters, digits "
            "and underscores (qa.splits in the config)"
        )
    with atomic_folder(dest, OWNED_NAMES) as folder:
        everything = folder / "items.parquet.partial"
        with ordered_items(store, selection, everything, hf_image(root) if hf else RELATIVE_IMAGE) as (
            items,
            per_split,
        ):
            options = PARQUET_OPTIONS
            if hf:
                metadata = json.dumps({"info": {"features": hf_features(pq.read_schema(everything))}})
                options += f", KV_METADATA {{huggingface: {sql_literal(metadata)}}}"
            for split in per_split:
                target = folder / f"{split}.parquet"
                store.query(
                    f"COPY (SELECT * FROM {items} WHERE split = ?) TO {sql_literal(str(target))} ({options})", [split]
                )
        (folder / "README.md").write_text(dataset_card(store, folder, per_split, selection, fmt), encoding="utf-8")
    return ExportSummary(fmt, dest, sum(per_split.values()), per_split, image_root=root)
