"""Tables whose `current_*` view keeps the latest row per key, and the `latest` marker that says which.

Validation results, done rows, grades and judge verdicts are history: a rebuild under new validators, a judge
verdict or a review adds rows and never deletes. The current views used to pick each key's newest row with a
window over every row of every run (`row_number() OVER (PARTITION BY key ORDER BY created_at DESC)`), a sort of
the whole history on each read. Instead each row carries `latest`, kept at write time (`Store.insert`): a new
row is latest (where `condition` holds) and demotes the rows of its key that were; the views filter on it.
The demotion is one pass over the table per transaction (a batch), not one per insert (a batch's parts): new
rows are written pending (NULL) and settled when the transaction commits (`settle`). A transaction writes at
most one row per key (a validation batch validates each item once, a judge batch judges each item once): two
rows of one key in one transaction would both be marked latest.

`cxrvqa audit --run X` reads the tables as of run X: its temporary views recompute the marker over the rows of
runs up to X with the old window (`as_of_marker`), so the same views answer for any run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Latest:
    """One marked table: the key whose newest row is current, and which rows may be current at all."""

    key: tuple[str, ...]
    condition: str = "true"  # SQL over the table's columns; rows where it fails are never latest

    def partition(self) -> str:
        return ", ".join(self.key)


_ITEM = ("item_id", "template_version", "input_hash")

#: Marked tables (migration 0019 added the column and marked the existing rows as the window did).
MARKED: dict[str, Latest] = {
    "validation_results": Latest((*_ITEM, "validator")),
    "validation_done": Latest(_ITEM),
    "qa_grades": Latest(_ITEM),
    "judge_results": Latest(_ITEM, "status = 'ok'"),  # the latest verdict; a later failure leaves it current
}


def insert_sql(table: str, source: str) -> str:
    """The statement that inserts ``source``'s rows (a relation holding the table's columns but `latest`) into
    ``table`` inside a transaction: the rows that may be latest get the marker NULL (pending), decided by
    `settle` at commit."""
    condition = MARKED[table].condition
    return (
        f"INSERT INTO {table} BY NAME SELECT *, CASE WHEN {condition} THEN NULL ELSE false END AS latest FROM {source}"
    )


def settle(con: "duckdb.DuckDBPyConnection", table: str) -> None:
    """At commit, once per table and transaction (one pass over the table however many inserts it had): demote
    the latest rows of the keys that got pending rows, then make the pending rows latest.

    The pending rows are found by `latest IS NULL`, which the row groups' statistics answer without reading
    the committed ones. The demotion (~0.2 s over 6M rows) runs only when a probe finds a latest row of a pending
    key: none in the common cases, a batch of new items (a first build, a new template) or of new versions of
    items (an edited template: the item ids recur, with another template version; a probe on the item id alone
    found them and set off the demotion for nothing)."""
    marked = MARKED[table]
    if con.execute(
        f"SELECT 1 FROM {table} t SEMI JOIN (SELECT DISTINCT {marked.partition()} FROM {table} WHERE latest IS NULL) "
        f"b USING ({marked.partition()}) WHERE t.latest LIMIT 1"
    ).fetchall():
        on = " AND ".join(f"t.{k} = b.{k}" for k in marked.key)
        con.execute(
            f"UPDATE {table} t SET latest = false FROM (SELECT DISTINCT {marked.partition()} FROM {table} "
            f"WHERE latest IS NULL) b WHERE t.latest AND {on}"
        )
    con.execute(f"UPDATE {table} SET latest = true WHERE latest IS NULL")


def as_of_marker(table: str) -> str:
    """A select-list replacement that recomputes `latest` over the rows a query sees (a run's history)."""
    marked = MARKED[table]
    return (
        f"REPLACE (({marked.condition}) AND row_number() OVER (PARTITION BY {marked.partition()}, "
        f"({marked.condition}) ORDER BY created_at DESC) = 1 AS latest)"
    )
