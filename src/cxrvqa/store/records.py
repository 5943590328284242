"""The QA item and its answer parts declared once, as (column, Arrow type) in the order the generator fills
its rows: the column lists, the Arrow schemas the QA stage writes and the fields the validators read are
derived from these, and tests/store/test_records.py ties them to the migrated `qa_items` and
`qa_answer_parts` tables (column names and types) and to schemas/qa_item.schema.json.
"""

from __future__ import annotations

import hashlib
from operator import itemgetter
from typing import Any

import pyarrow as pa

_TEXTS = pa.list_(pa.string())
_BOX = pa.struct(
    [
        ("label", pa.string()),
        ("x_min", pa.float64()),
        ("y_min", pa.float64()),
        ("x_max", pa.float64()),
        ("y_max", pa.float64()),
    ]
)

#: A generated QA item (`qa.generate.generate_study`'s item rows).
QA_ITEM = (
    ("item_id", pa.string()),
    ("template_id", pa.string()),
    ("template_version", pa.string()),
    ("study_id", pa.string()),
    ("patient_id", pa.string()),
    ("image_id", pa.string()),
    ("view_plane", pa.string()),
    ("question_type", pa.string()),
    ("strategy", pa.string()),
    ("skill", pa.string()),
    ("answer_format", pa.string()),
    ("question", pa.string()),
    ("answer", pa.string()),
    ("options", _TEXTS),
    ("correct_option", pa.string()),
    ("findings", _TEXTS),
    ("regions", _TEXTS),
    ("boxes", pa.list_(_BOX)),
    ("evidence_ids", pa.list_(pa.int32())),
    ("arguments", pa.string()),
    ("polarity", pa.bool_()),
    ("sample_u", pa.float64()),
    ("split", pa.string()),
)
#: A part of a multi-part answer, part 0 the main answer (`generate_study`'s part rows).
ANSWER_PART = (
    ("item_id", pa.string()),
    ("part_index", pa.int32()),
    ("kind", pa.string()),
    ("text", pa.string()),
    ("findings", _TEXTS),
    ("regions", _TEXTS),
)

ITEM_COLUMNS = tuple(name for name, _ in QA_ITEM)
PART_COLUMNS = tuple(name for name, _ in ANSWER_PART)
#: `qa_items` as the QA stage computes it: the item and the graph it came from (provenance is added on write).
ITEM_SCHEMA = pa.schema([*QA_ITEM, ("graph_id", pa.string()), ("backend", pa.string()), ("input_hash", pa.string())])
#: `qa_answer_parts`: a part and the version of its item.
PART_SCHEMA = pa.schema([*ANSWER_PART, ("template_version", pa.string()), ("input_hash", pa.string())])

#: What an item's answer program decides (`validators.check_answer_program` compares them with a regeneration).
ANSWER_FIELDS = ("question", "answer", "options", "correct_option", "findings", "regions")
#: `qa_items.answer_digest` (migration 0022): the digest of ANSWER_FIELDS when the QA stage made the item, after
#: the provenance columns.
ANSWER_DIGEST = ("answer_digest", pa.string())
#: A generator row's ANSWER_FIELDS, as a tuple (in C: answer_digest runs once per item).
_answer_values = itemgetter(*(ITEM_COLUMNS.index(name) for name in ANSWER_FIELDS))


def answer_digest(item: dict[str, Any] | tuple) -> str:
    """The digest of an item's ANSWER_FIELDS, from a generator row (a tuple of ITEM_COLUMNS) or an item dict."""
    values = _answer_values(item) if isinstance(item, tuple) else tuple(map(item.get, ANSWER_FIELDS))
    return hashlib.blake2b(repr(values).encode(), digest_size=12).hexdigest()
