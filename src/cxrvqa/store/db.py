"""The DuckDB store: one file, one writer, versioned DDL, bulk writes.

DuckDB locks the file for the process that opens it for writing; a second process gets
a StoreLockedError that names the holder instead of a raw IOException.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cxrvqa.errors import SchemaVersionError, StoreError, StoreLockedError
from cxrvqa.store.latest import MARKED, insert_sql, settle

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def _migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every packaged migration, in order."""
    folder = resources.files("cxrvqa.store") / "migrations"
    found = []
    for node in folder.iterdir():
        match = _MIGRATION_NAME.match(node.name)
        if match:
            found.append((int(match.group(1)), node.name, node.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"packaged migrations are not numbered 1..N without gaps: {versions}")
    return found


SCHEMA_VERSION = len(_migrations())

#: Caches keyed by their primary key: a row is written once, a row whose key is there already is ignored (also a
#: repeat inside one insert: two workers read the same sentence).
WRITTEN_ONCE = frozenset({"sentence_readings"})

#: The writable store this process holds per database file (DuckDB allows one writer).
_writers: dict[Path, "Store"] = {}


def in_studies(column: str) -> str:
    """A filter keeping a batch's studies (its parameters: `study_params`). The range lets DuckDB skip row
    groups (rows are written in study order) and push the filter below the `current_*` views' windows, which
    partition by study, so a batch reads about its own rows instead of every row; the list keeps exactly
    the batch."""
    return f"{column} BETWEEN ? AND ? AND {column} IN (SELECT unnest(?::VARCHAR[]))"


def study_params(study_ids: Sequence[str]) -> list:
    """The parameters of `in_studies` for these study ids."""
    return [min(study_ids, default=""), max(study_ids, default=""), list(study_ids)]


#: A writer's write-ahead log is folded into the database past this size, not DuckDB's 16MB. A stage commits a batch
#: at a time (~60k items at 10k studies), so at 16MB nearly every commit checkpointed, rewriting the tables' last row
#: groups and their metadata, a cost that grows with the table. 10k synthetic build's 623k `qa_items` rows in 10
#: commits, appended to 5.6M rows already there: 4.3 s of commits at 16MB, 1.6 s at 64MB (2.3 s at 32MB and at
#: 128MB), the fold left for `close` 0.06 against 0.14 s; the file is no larger. Rows not checkpointed yet are held
#: by the buffer pool (under its memory limit; 100k synthetic build: the whole tree's peak 1,958 MB).
CHECKPOINT_THRESHOLD = "64MB"

#: A writer's checkpoints do not merge row groups (DuckDB's vacuum tasks). A batch's commit of more rows than a row
#: group holds (122,880) writes them ahead as row groups of their own and leaves the last one part full; merging at
#: the next checkpoint read, compressed and wrote every such group and its neighbours again, and left the space of
#: the old ones free in the file. 500k `qa_items` rows of the 10k synthetic build in 4 commits of 125k rows: commits
#: 2.8-3.6 s either way, then the checkpoint 1.6-2.7 s and a 47.5-54.3 MB file with merging, 0.01 s and 27.3 MB
#: without (in commits of 122,880 rows, none to merge: 0.00 s and 26.5 MB). Row groups whose rows are all deleted are
#: still dropped; a partly deleted one keeps its deleted rows' space until they all are (a template's keys replaced
#: in `qa_current`: its old rows' groups go once their other rows are replaced too).
VACUUM_TASKS = 0


def open_writer(path: Path) -> "Store":
    """The writable Store this process already holds for ``path``.

    Flows and tasks pass the database path, not the Store: Prefect keeps task and flow
    parameters alive in its run contexts, which would keep the connection alive too.
    """
    store = _writers.get(Path(path).resolve())
    if store is None:
        raise StoreError(f"no open writer for {path} in this process: open it with Store({path}) first")
    return store


class Store:
    """A connection to the project database, migrated to the current schema on open."""

    def __init__(self, path: Path, *, read_only: bool = False, memory_limit: str | None = None):
        """``memory_limit`` (e.g. "1GB") caps DuckDB's buffer pool, which otherwise caches up to 80% of
        RAM and so grows with the database; queries spill to disk beyond it."""
        self.path = Path(path)
        self.read_only = read_only
        self.memory_limit = memory_limit
        self._in_transaction = False
        self._pending: set[str] = set()  # marked tables inserted into in this transaction, settled at commit
        self._after_rollback: list[tuple[str, str]] = []  # settings to set back once the transaction is rolled back
        if read_only and not self.path.exists():
            raise StoreError(f"no database at {self.path}: run `cxrvqa build --out {self.path.parent}` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" in message.lower():
                match = _LOCK_HOLDER.search(message)
                holder = f"PID {match.group(2)} ({match.group(1)})" if match else None
                raise StoreLockedError(str(self.path), holder) from exc
            raise StoreError(f"cannot open database {self.path}: {message}") from exc
        if not read_only:
            self.con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            self.con.execute(f"SET max_vacuum_tasks = {VACUUM_TASKS}")
        if memory_limit is not None:
            try:
                self.con.execute(f"SET memory_limit = '{memory_limit}'")
            except duckdb.Error as exc:
                self.con.close()
                raise StoreError(
                    f"memory limit {memory_limit!r}: expected a size like '1GB' or '512MB' ({exc})"
                ) from exc
        try:
            self._check_schema()
        except BaseException:
            self.con.close()  # a refused store must not stay open (this process could not open it again)
            raise
        if not read_only:
            _writers[self.path.resolve()] = self

    @contextmanager
    def memory_limited(self, limit: str) -> Iterator[None]:
        """DuckDB capped at ``limit`` meanwhile, then at its cap before. Lowering the cap drops the cached blocks
        beyond it, and the process's memory falls with them."""
        self.con.execute(f"SET memory_limit = '{limit}'")
        try:
            yield
        finally:
            if self.memory_limit is None:
                self.con.execute("RESET memory_limit")
            else:
                self.con.execute(f"SET memory_limit = '{self.memory_limit}'")

    @contextmanager
    def optimizers_off(self, *names: str) -> Iterator[None]:
        """DuckDB's optimizer passes ``names`` (as `disabled_optimizers` names them) off meanwhile, then as before."""
        [(before,)] = self.con.execute("SELECT current_setting('disabled_optimizers')").fetchall()
        self.con.execute("SET disabled_optimizers = ?", [",".join(filter(None, [before, *names]))])
        try:
            yield
        finally:
            self._set_back("disabled_optimizers", before)

    def _set_back(self, setting: str, value: str) -> None:
        """``SET setting = value`` now, or once this transaction is rolled back where a failed statement aborted it
        (DuckDB then refuses every statement but ROLLBACK; the statement's own error is the one raised)."""
        try:
            self.con.execute(f"SET {setting} = ?", [value])
        except duckdb.TransactionException:
            if not self._in_transaction:  # a transaction not this Store's: nothing would set it back
                raise
            self._after_rollback.append((setting, value))

    def _check_schema(self) -> None:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchall()[0][0]
        current = 0
        if exists:
            current = self.con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(str(self.path), current, SCHEMA_VERSION)
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(
                f"database {self.path} has schema version {current}, expected {SCHEMA_VERSION}; "
                "open it for writing once (any `cxrvqa build`) to migrate it"
            )
        self._migrate(current)

    def _migrate(self, current: int) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ DEFAULT now())"
        )
        for version, name, sql in _migrations():
            if version <= current:
                continue
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(sql)
                self.con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
                self.con.execute("COMMIT")
            except duckdb.Error as exc:
                self.con.execute("ROLLBACK")
                raise StoreError(f"migration {name} failed on {self.path}: {exc}") from exc

    # -- reading -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def rows_state(self, sources: Sequence[str]) -> list[Any]:
        """Per source (a table, or a table and its WHERE clause), its row count and newest `created_at` in epoch
        microseconds: of tables written by inserts, where a row changed in place gets a newer `created_at`, an equal
        state holds the same rows (what a rebuild compares to skip what the rows gave last time)."""
        counts = ", ".join(f"(SELECT count(*) FROM {s}), (SELECT epoch_us(max(created_at)) FROM {s})" for s in sources)
        return list(self.query(f"SELECT {counts}")[0])

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- writing -------------------------------------------------------------------------
    def insert(self, table: str, rows: Sequence[Mapping[str, Any]] | pa.Table) -> int:
        """Bulk insert through Arrow, matching columns by name. Returns the row count.

        A table with a `latest` marker (cxrvqa.store.latest) gets it kept: the new rows are their keys' latest,
        the rows they replace are demoted when the transaction (the caller's, or one of its own) commits."""
        arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
        if arrow.num_rows == 0:
            return 0
        marked = table in MARKED
        if marked and "latest" in arrow.column_names:  # the marker is the store's, set here
            arrow = arrow.drop_columns(["latest"])
        with self.registered("_batch", arrow):
            with self.transaction() if marked and not self._in_transaction else nullcontext():
                if marked:
                    self._pending.add(table)
                verb = "INSERT OR IGNORE" if table in WRITTEN_ONCE else "INSERT"
                self.con.execute(
                    insert_sql(table, "_batch") if marked else f"{verb} INTO {table} BY NAME SELECT * FROM _batch"
                )
        return arrow.num_rows

    @contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """``table`` readable as the relation ``name`` by the block's queries, unregistered after it."""
        self.con.register(name, table)
        try:
            yield
        except BaseException:
            # in an aborted transaction unregistering fails too: it must not hide the block's own error
            with contextlib.suppress(duckdb.Error):
                self.con.unregister(name)
            raise
        self.con.unregister(name)

    @contextmanager
    def temporary(self, name: str, sql: str, params: Sequence[Any] = ()) -> Iterator[str]:
        """The result of ``sql`` as the temporary table ``name`` for the block's queries, dropped after it: a
        relation the block reads more than once is computed once (in DuckDB's buffer pool, under its cap)."""
        self.con.execute(f"CREATE TEMP TABLE {name} AS {sql}", list(params))  # a clash of names raises
        try:
            yield name
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # as in `registered`: an aborted transaction fails this too
                self.con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
            raise
        self.con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")

    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """All writes inside commit together or not at all (a batch is never half-written)."""
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield self
            for table in sorted(self._pending):  # the latest markers of the rows inserted (cxrvqa.store.latest)
                settle(self.con, table)
        except BaseException:
            self._in_transaction = False
            self._pending.clear()
            deferred, self._after_rollback = self._after_rollback, []
            try:
                self.con.execute("ROLLBACK")
            finally:
                for setting, value in deferred:  # in the order they were set back: the outermost one last
                    self.con.execute(f"SET {setting} = ?", [value])
            raise
        self._in_transaction = False
        self._pending.clear()
        self.con.execute("COMMIT")

    def close(self) -> None:
        if _writers.get(self.path.resolve()) is self:
            del _writers[self.path.resolve()]
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
