"""The `latest` markers (cxrvqa.store.latest): kept at write time, set by migration 0019 on existing builds,
recomputed as of an earlier run; the `current_*` views select what the window over all history selected."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from cxrvqa.audit.summary import as_of
from cxrvqa.store import Store
from cxrvqa.store.db import _migrations

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
KEY = {"item_id": "i1", "template_version": "tv", "input_hash": "h"}


def result(validator: str, status: str, run: int, **key: str) -> dict:
    return {
        **KEY,
        **key,
        "validator": validator,
        "validator_version": 1,
        "strictness": "reject",
        "status": status,
        "reason": None if status == "ok" else f"{validator}_failed",
        "detail": "",
        "validators_version": f"v{run}",
        "run_id": f"r{run}",
        "created_at": T0 + timedelta(hours=run),
    }


def grade(code: int, run: int, **key: str) -> dict:
    return {
        **KEY,
        **key,
        "grade": code,
        "label": str(code),
        "weakest": "",
        "rule_grade": code,
        "rule_weakest": "",
        "grading_version": "g",
        "validators_version": f"v{run}",
        "run_id": f"r{run}",
        "created_at": T0 + timedelta(hours=run),
    }


def judge(status: str, code: int | None, run: int) -> dict:
    return {
        **KEY,
        "judge_version": "j",
        "status": status,
        "verdict": None,
        "rationale": None,
        "grade": code,
        "weakest": None,
        "reason": None if status == "ok" else "llm_timeout",
        "error": None,
        "terminal": False,
        "cache_key": f"k{run}",
        "run_id": f"r{run}",
        "created_at": T0 + timedelta(hours=run),
    }


def history(store: Store) -> None:
    """Three runs over one current item (i1) and one item that left the dataset (i2)."""
    store.con.execute("INSERT INTO qa_current VALUES ('s1', 'i1', 'tv', 'h', NULL)")
    for run in (1, 2, 3):
        store.con.execute(
            "INSERT INTO runs (run_id, status, started_at, config, code_version) VALUES (?, 'completed', ?, '{}', 'c')",
            [f"r{run}", T0 + timedelta(hours=run)],
        )
    store.insert(
        "validation_results",
        [result("schema", "ok", 1), result("boxes", "ok", 1), result("schema", "ok", 1, item_id="i2")],
    )
    store.insert("validation_results", [result("schema", "reject", 2)])  # boxes stays run 1's
    store.insert("qa_grades", [grade(5, 1), grade(5, 1, item_id="i2")])
    store.insert("qa_grades", [grade(2, 2)])
    store.insert("judge_results", [judge("ok", 4, 1)])
    store.insert("judge_results", [judge("ok", 3, 2)])
    store.insert("judge_results", [judge("failed", None, 3)])  # a failure: run 2's verdict stays


def current(store: Store) -> tuple[list, list, list]:
    return (
        store.query("SELECT item_id, validator, status, run_id FROM current_validation_results ORDER BY ALL"),
        store.query("SELECT item_id, grade, run_id FROM current_qa_grades ORDER BY ALL"),
        store.query("SELECT item_id, grade, run_id FROM current_judge_results ORDER BY ALL"),
    )


def test_insert_keeps_one_latest_row_per_key(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        history(store)
        assert current(store) == (
            [("i1", "boxes", "ok", "r1"), ("i1", "schema", "reject", "r2")],
            [("i1", 2, "r2")],
            [("i1", 3, "r2")],
        )
        assert store.query("SELECT run_id, latest FROM judge_results ORDER BY run_id") == [
            ("r1", False),
            ("r2", True),
            ("r3", False),
        ]
        # a marker given by the caller is ignored: the store sets it
        store.insert("qa_grades", [{**grade(1, 3), "latest": False}])
        assert store.query("SELECT grade FROM current_qa_grades") == [(1,)]
        assert store.query("SELECT count(*) FROM qa_grades WHERE latest") == [(2,)]  # i1's run 3, i2's run 1


class _Statements:
    """A connection that records the statements run through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.sql = con, []

    def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
        self.sql.append(sql)
        return self.con.execute(sql, *args)


def test_settle_demotes_only_where_a_pending_key_has_a_latest_row(tmp_path: Path) -> None:
    """A new version of an item (its id again, another template version: an edited template) demotes nothing,
    and no demotion runs over the table; the same key again demotes its latest row."""
    from cxrvqa.store.latest import settle

    with Store(tmp_path / "db.duckdb") as store:
        store.insert("qa_grades", [grade(5, 1)])
        for key, demotes in (({"template_version": "tv2"}, False), ({}, True)):
            store.con.execute("BEGIN TRANSACTION")
            store.con.execute(
                "INSERT INTO qa_grades BY NAME SELECT *, NULL AS latest FROM (SELECT UNNEST(?, recursive := true))",
                [grade(4, 2, **key)],
            )
            spy = _Statements(store.con)
            settle(spy, "qa_grades")  # type: ignore[arg-type]
            store.con.execute("COMMIT")
            assert any("SET latest = false" in sql for sql in spy.sql) == demotes
        assert store.query("SELECT template_version, grade FROM qa_grades WHERE latest ORDER BY ALL") == [
            ("tv", 4),
            ("tv2", 4),
        ]


def test_views_keep_their_columns(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        for view, table in (
            ("current_validation_results", "validation_results"),
            ("current_validation", "validation_done"),
            ("current_judge_results", "judge_results"),
        ):
            columns = [c for (c,) in store.query(f"SELECT column_name FROM (DESCRIBE {view})")]
            assert columns == [
                c for (c,) in store.query(f"SELECT column_name FROM (DESCRIBE {table})") if c != "latest"
            ]
        grades = [c for (c,) in store.query("SELECT column_name FROM (DESCRIBE current_qa_grades)")]
        assert "latest" not in grades and grades[-2:] == ["review_free_grade", "review_free_weakest"]


def test_as_of_an_earlier_run_recomputes_the_markers(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        history(store)
        marks = (
            "SELECT item_id, validator, run_id FROM validation_results WHERE latest ORDER BY ALL",
            "SELECT item_id, run_id FROM qa_grades WHERE latest ORDER BY ALL",
            "SELECT run_id FROM judge_results WHERE latest",
        )
        with as_of(store, "r1"):  # (the current items are then the rule's, of items this store has none of)
            assert [store.query(sql) for sql in marks] == [
                [("i1", "boxes", "r1"), ("i1", "schema", "r1"), ("i2", "schema", "r1")],
                [("i1", "r1"), ("i2", "r1")],
                [("r1",)],
            ]
        with as_of(store, "r3"):  # the latest run: the stored markers
            assert [store.query(sql) for sql in marks] == [
                [("i1", "boxes", "r1"), ("i1", "schema", "r2"), ("i2", "schema", "r1")],
                [("i1", "r2"), ("i2", "r1")],
                [("r2",)],
            ]
        with as_of(store, "r2"):
            assert store.query(marks[2]) == [("r2",)]


def test_migration_marks_what_the_windows_selected(tmp_path: Path) -> None:
    """A build made before migration 0019: the same rows, unmarked, then migrated."""
    path = tmp_path / "db.duckdb"
    with Store(tmp_path / "new.duckdb") as store:
        history(store)
        expected = current(store)
        store.con.execute(f"ATTACH '{path}' AS old")
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ DEFAULT now())"
    )
    for version, name, sql in _migrations()[:17]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.execute(f"ATTACH '{tmp_path / 'new.duckdb'}' AS new (READ_ONLY)")
    for table in ("validation_results", "qa_grades", "judge_results", "qa_current", "runs"):
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT * EXCLUDE (latest) FROM new.{table}"
            if table not in ("qa_current", "runs")
            else f"INSERT INTO {table} SELECT * FROM new.{table}"
        )
    con.close()
    with Store(path) as store:
        assert current(store) == expected
        assert store.query("SELECT count(*) FILTER (latest), count(*) FROM validation_results") == [(3, 4)]
