"""The QA item and answer-part records are the migrated tables' columns, and what the item schema publishes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from cxrvqa.core.resources import load_json_schema
from cxrvqa.store import Store
from cxrvqa.store.records import ANSWER_DIGEST, ITEM_COLUMNS, ITEM_SCHEMA, PART_SCHEMA

#: What every `qa_items` row ends with (added by the QA stage when it writes a batch).
PROVENANCE = pa.schema(
    [("run_id", pa.string()), ("code_version", pa.string()), ("created_at", pa.timestamp("us", tz="UTC"))]
)


def _columns(store: Store, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in store.query(f"DESCRIBE {table}")]


def _as_duckdb(store: Store, schema: pa.Schema) -> list[tuple[str, str]]:
    """The columns DuckDB makes of an Arrow table of this schema (its own type names)."""
    empty = schema.empty_table()  # noqa: F841 - read by name in the query
    store.con.execute("CREATE TEMP TABLE _record AS SELECT * FROM empty")
    try:
        return _columns(store, "_record")
    finally:
        store.con.execute("DROP TABLE _record")


def test_records_are_the_migrated_tables(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        item = _as_duckdb(store, pa.schema([*ITEM_SCHEMA, *PROVENANCE, ANSWER_DIGEST]))
        parts = _as_duckdb(store, PART_SCHEMA)
        assert item == _columns(store, "qa_items")
        assert sorted(parts) == sorted(_columns(store, "qa_answer_parts"))
    assert ("boxes", 'STRUCT("label" VARCHAR, x_min DOUBLE, y_min DOUBLE, x_max DOUBLE, y_max DOUBLE)[]') in item
    assert ("evidence_ids", "INTEGER[]") in item and ("created_at", "TIMESTAMP WITH TIME ZONE") in item


def test_the_item_schema_publishes_every_column_but_the_generator_s_own() -> None:
    published = load_json_schema("qa_item.schema.json")
    assert set(ITEM_COLUMNS) - set(published["properties"]) == {"template_version", "sample_u"}
    assert set(published["required"]) <= set(ITEM_COLUMNS)
