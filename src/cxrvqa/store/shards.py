"""Parquet shards: batch outputs computed away from the database, loaded into it by its one writer.

A stage's batch is read from the store, computed, and written back. With the Dask executor the
computing happens on a worker, which must not open the DuckDB file (DuckDB has one writer, and the
worker may be on another host): it writes the batch's output tables as Parquet files under
``<out>/shards/<run_id>/<stage>/`` and returns where they are; the flow process then loads them
with the stage's own writer, in one transaction per batch, and deletes them.

A shard written but never merged (the build was killed) is never merged later: the next build
deletes every earlier run's shards, and since the store decides what is pending, the batch is
simply computed again. So no row is ever loaded twice.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

import pyarrow as pa
import pyarrow.parquet as pq

from cxrvqa.store.db import WRITTEN_ONCE, Store

#: Rows of one table: an Arrow table or row dicts (matched to the table's columns by name).
Rows = Union[pa.Table, Sequence[Mapping[str, Any]]]
#: What a batch computes, part by part: table name -> rows.
Tables = Mapping[str, Rows]
#: The folder under the build's out folder that holds the shards of runs in progress.
SHARDS_DIR = "shards"

T = TypeVar("T")


def n_rows(rows: Rows) -> int:
    return rows.num_rows if isinstance(rows, pa.Table) else len(rows)


def as_rows(rows: Rows) -> list[dict[str, Any]]:
    """Row dicts, for writers that look at each row (images: duplicates and PNG paths)."""
    return rows.to_pylist() if isinstance(rows, pa.Table) else list(rows)


def merged(parts: Iterable[Tables], tables: Iterable[str]) -> Iterator[Tables]:
    """The parts' rows as one part, a list per table of ``tables`` (a batch computed in chunks, written at once),
    read from the parts when first asked for: their computing may start before (`cxrvqa.core.batch`)."""
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in tables}
    for part in parts:
        for table, part_rows in part.items():
            rows[table].extend(as_rows(part_rows))
    yield rows


#: DuckDB's rows per row group: a table's Arrow parts are held until they make one (`write_tables`).
ROW_GROUP_ROWS = 122_880


def write_tables(store: Store, parts: Iterable[Tables]) -> Counter[str]:
    """Insert every part's tables in one transaction (a batch is never half-written); rows per table.

    A table's Arrow parts with the same columns are held until they make a row group, then inserted as one, and
    the rest at the end: a QA batch's 125k item rows came in 8 parts, and one insert of them all took 1.7-1.9 s
    against 2.3-2.4 s for 500k rows (10k synthetic build's `qa_items`, 4 commits); a validation chunk's few
    `validation_checks` rows cost an insert each. Rows of a table written once (`INSERT OR IGNORE`: the first of a
    key wins) and row dicts are inserted as they come. So a part's rows may not be in the store yet when the next
    part is made: a stage whose parts read the store must not rely on its earlier parts (none does: a part that reads
    it, the reports stage's `_restoring`, is the batch's only one)."""
    written: Counter[str] = Counter()
    held: dict[str, list[pa.Table]] = {}
    with store.transaction():
        for part in parts:
            for table, rows in part.items():
                if not isinstance(rows, pa.Table) or table in WRITTEN_ONCE:
                    written[table] += store.insert(table, rows)
                    continue
                if table in held and held[table][0].column_names != rows.column_names:
                    written[table] += store.insert(table, _joined(held.pop(table)))
                held.setdefault(table, []).append(rows)
                if sum(t.num_rows for t in held[table]) >= ROW_GROUP_ROWS:
                    written[table] += store.insert(table, _joined(held.pop(table)))
        for table, tables in held.items():
            written[table] += store.insert(table, _joined(tables))
    return written


def _joined(tables: list[pa.Table]) -> pa.Table:
    """Parts of one table as one table (`write_tables` joins parts with the same columns; a batch's shard joins
    all, a column missing from a part null there); a column that is all null in a part has the null type there, and
    takes the others' type. Other types are not cast as DuckDB would cast each part's: integers
    beside floats become floats, and types that do not promote (text beside numbers) raise. The stages' parts of a
    table come from one schema or one row builder."""
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")


@dataclass(frozen=True)
class ShardSet:
    """The Parquet files of one computed batch: (table, path) pairs; a table without rows has none."""

    files: tuple[tuple[str, str], ...]

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(table for table, _ in self.files)


def shard_folder(out_dir: Path, run_id: str, stage: str) -> Path:
    return Path(out_dir) / SHARDS_DIR / run_id / stage


def write_shards(folder: Path, batch: str, parts: Iterable[Tables]) -> ShardSet:
    """Write one batch's parts as ``<folder>/<batch>-<table>.parquet``, one file per table.

    Each file appears whole or not at all (written under a temporary name, then renamed). Parts of a
    table are joined first; their types may differ where one part had only nulls in a column."""
    pieces: dict[str, list[pa.Table]] = {}
    for part in parts:
        for table, rows in part.items():
            arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
            if arrow.num_rows:
                pieces.setdefault(table, []).append(arrow)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for table, tables in pieces.items():
        final = folder / f"{batch}-{table}.parquet"
        temporary = folder / f".{final.name}.{os.getpid()}.tmp"
        pq.write_table(_joined(tables), temporary)
        os.replace(temporary, final)
        files.append((table, str(final)))
    return ShardSet(tuple(files))


def read_shards(shards: ShardSet) -> dict[str, pa.Table]:
    return {table: pq.read_table(path) for table, path in shards.files}


def merge_shards(shards: ShardSet, write: Callable[[Iterable[Tables]], T]) -> T:
    """Load one batch's shards through the stage's writer (the same one the local executor uses: one
    transaction), then delete them. A crash between the two leaves shards that the next build deletes."""
    result = write([read_shards(shards)])
    for _, path in shards.files:
        Path(path).unlink(missing_ok=True)
    return result


def clear_shards(out_dir: Path) -> int:
    """Delete every shard under ``out_dir`` (left by a build that was killed before merging them, or between
    merging and deleting); returns how many files went. Only the database's one writer calls this, before
    its first stage and after its last."""
    root = Path(out_dir) / SHARDS_DIR
    if not root.is_dir():
        return 0
    removed = sum(1 for path in root.rglob("*") if path.is_file())
    shutil.rmtree(root)
    return removed
