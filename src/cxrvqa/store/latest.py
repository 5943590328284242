"""Tables whose `current_*` view keeps the latest row per key, and the `latest` marker that says which.

Validation results, done rows, grades and judge verdicts are history: a rebuild under new validators, a judge
verdict or a review adds rows and never deletes. The current views used to pick each key's newest row with a
window over every row of every run (`row_number() OVER (PARTITION BY key ORDER BY created_at DESC)`), a sort of
the whole history on each read. Instead each row carries `latest`, kept at write time (`Store.insert`): a new
row is latest (where `condition` holds) and demotes the rows of its key that were; the views filter on it.

`cxrvqa audit --run X` reads the tables as of run X: its temporary views recompute the marker over the rows of
runs up to X with the old window (`as_of_marker`), so the same views answer for any run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Latest:
    """One marked table: the key whose newest row is current, and which rows may be current at all."""

    key: tuple[str, ...]
    condition: str = "true"       # SQL over the table's columns; rows where it fails are never latest

    def partition(self) -> str:
        return ", ".join(self.key)


_ITEM = ("item_id", "template_version", "input_hash")

#: Marked tables (migration 0018 added the column and marked the existing rows as the window did).
MARKED: dict[str, Latest] = {
    "validation_results": Latest((*_ITEM, "validator")),
    "validation_done": Latest(_ITEM),
    "qa_grades": Latest(_ITEM),
    "judge_results": Latest(_ITEM, "status = 'ok'"),   # the latest verdict; a later failure leaves it current
}


def insert_sql(table: str, source: str) -> list[str]:
    """The statements that insert ``source``'s rows (a relation holding the table's columns but `latest`) into
    ``table`` and keep its marker: demote the latest rows of the keys that get a new latest row, then insert."""
    marked = MARKED[table]
    on = " AND ".join(f"t.{k} = b.{k}" for k in marked.key)
    return [
        f"UPDATE {table} t SET latest = false FROM (SELECT DISTINCT {marked.partition()} FROM {source} "
        f"WHERE {marked.condition}) b WHERE t.latest AND {on}",
        f"INSERT INTO {table} BY NAME SELECT *, ({marked.condition}) AS latest FROM {source}",
    ]


def as_of_marker(table: str) -> str:
    """A select-list replacement that recomputes `latest` over the rows a query sees (a run's history)."""
    marked = MARKED[table]
    return (f"REPLACE (({marked.condition}) AND row_number() OVER (PARTITION BY {marked.partition()}, "
            f"({marked.condition}) ORDER BY created_at DESC) = 1 AS latest)")
