"""The DuckDB store: migrations, single writer, bulk inserts, run bookkeeping."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cxrvqa.config import Config
from cxrvqa.core.resources import resource
from cxrvqa.errors import SchemaVersionError, StoreError, StoreLockedError
from cxrvqa.store import SCHEMA_VERSION, Store, finish_run, start_run


def test_new_database_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        assert store.query("SELECT max(version) FROM schema_migrations")[0][0] == SCHEMA_VERSION
        tables = {row[0] for row in store.query("SELECT table_name FROM information_schema.tables")}
    assert {"runs", "run_stages", "images", "image_rejects", "current_images"} <= tables


def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    Store(tmp_path / "db.duckdb").close()
    with Store(tmp_path / "db.duckdb") as store:
        assert store.query("SELECT count(*) FROM schema_migrations")[0][0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "db.duckdb").close()
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future.sql')")
    con.close()
    with pytest.raises(SchemaVersionError, match="schema version 999"):
        Store(tmp_path / "db.duckdb")


def test_read_only_needs_an_existing_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database at"):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_second_writer_process_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time, duckdb
            con = duckdb.connect({str(path)!r})
            print("locked", flush=True)
            time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError) as error:
            Store(path)
        assert f"PID {holder.pid}" in str(error.value) and "one writer at a time" in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    with Store(path) as store:  # the database is intact once the holder is gone
        assert store.query("SELECT max(version) FROM schema_migrations")[0][0] == SCHEMA_VERSION


def test_bulk_insert_matches_columns_by_name(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        rows = [
            {
                "reason": "not_dicom",
                "source_path": f"f{i}",
                "detail": "d",
                "recipe_version": "r",
                "run_id": "run",
                "input_hash": None,
                "code_version": "c",
                "created_at": None,
            }
            for i in range(1000)
        ]
        with pytest.raises(duckdb.ConstraintException):
            store.insert("image_rejects", rows)  # created_at is NOT NULL
        for row in rows:
            row["created_at"] = "2026-01-01 00:00:00+00"
        assert store.insert("image_rejects", rows) == 1000
        assert store.insert("image_rejects", []) == 0
        assert store.query("SELECT count(*) FROM image_rejects")[0][0] == 1000


def test_runs_record_config_without_secrets(tmp_path: Path) -> None:
    config = Config(out_dir=tmp_path, privacy={"pseudonym_key": "super-secret-value"})
    with Store(tmp_path / "db.duckdb") as store:
        run_id = start_run(store, config)
        stored = store.query("SELECT config::VARCHAR, status FROM runs WHERE run_id = ?", [run_id])[0]
        assert stored[1] == "running"
        assert "super-secret-value" not in stored[0] and "key_fingerprint" in stored[0]
        finish_run(store, run_id, "completed")
        assert store.query("SELECT status FROM runs")[0][0] == "completed"


def test_runs_left_running_by_a_crash_become_interrupted(tmp_path: Path) -> None:
    config = Config(out_dir=tmp_path)
    with Store(tmp_path / "db.duckdb") as store:
        crashed = start_run(store, config)
    time.sleep(0.01)
    with Store(tmp_path / "db.duckdb") as store:
        current = start_run(store, config)
        status = dict(store.query("SELECT run_id, status FROM runs"))
    assert status == {crashed: "interrupted", current: "running"}


def test_open_writer_finds_this_process_writer_until_closed(tmp_path: Path) -> None:
    from cxrvqa.store import open_writer

    path = tmp_path / "db.duckdb"
    with Store(path) as store:
        assert open_writer(path) is store
        assert open_writer(tmp_path / "." / "db.duckdb") is store
    with pytest.raises(StoreError, match="no open writer"):
        open_writer(path)


def test_reopened_store_can_insert_first(tmp_path: Path) -> None:
    """Opening an up-to-date database leaves no unfinished result behind: a bulk insert can come first."""
    Store(tmp_path / "db.duckdb").close()
    with Store(tmp_path / "db.duckdb") as store:
        assert (
            store.insert(
                "qa_inputs",
                [
                    {
                        "study_id": "s1",
                        "input_hash": "h",
                        "graph_id": "g",
                        "run_id": "r",
                        "created_at": datetime.now(timezone.utc),
                    }
                ],
            )
            == 1
        )


def test_memory_limit_is_applied_and_checked(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb", memory_limit="256MB") as store:
        assert store.query("SELECT current_setting('memory_limit')")[0][0] in ("256.0 MiB", "244.1 MiB")
    with pytest.raises(StoreError, match="memory limit 'lots': expected a size like '1GB'"):
        Store(tmp_path / "db.duckdb", memory_limit="lots")


def test_a_writer_checkpoints_past_64mb_of_log_not_16mb(tmp_path: Path) -> None:
    """Two commits of ~26MB of log each: past DuckDB's default 16MB the second would fold the log into the file.
    (100k rows each: below a row group's 122,880, which DuckDB would write to the file itself, not to the log.)"""
    path = tmp_path / "db.duckdb"
    with Store(path) as store:
        assert store.query("SELECT current_setting('checkpoint_threshold')")[0][0] in ("64.0 MiB", "61.0 MiB")
        store.con.execute("CREATE TABLE scratch (s VARCHAR)")
        for _ in range(2):
            with store.transaction():
                store.con.execute("INSERT INTO scratch SELECT repeat(md5(i::VARCHAR), 8) FROM range(100000) r(i)")
        assert path.with_name("db.duckdb.wal").stat().st_size > 50_000_000
    assert not path.with_name("db.duckdb.wal").exists()
    with Store(path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM scratch")[0][0] == 200_000


def test_a_writer_checkpoint_leaves_the_row_groups_of_commits_unmerged(tmp_path: Path) -> None:
    """Two commits of a row group and 1,000 rows more each: DuckDB writes each commit's full row group ahead and
    appends the rest as a group of its own. Merging at the checkpoint (DuckDB's default) would rewrite them as
    122,880 + 122,880 + 2,000 rows; a writer's checkpoint keeps them as written (`VACUUM_TASKS`). Groups whose rows
    are all deleted still go at the next checkpoint."""
    path = tmp_path / "db.duckdb"
    groups_sql = (
        "SELECT row_group_id, max(count) FROM pragma_storage_info('scratch') GROUP BY ALL ORDER BY row_group_id"
    )
    with Store(path) as store:
        assert store.query("SELECT current_setting('max_vacuum_tasks')")[0][0] == 0
        store.con.execute("CREATE TABLE scratch (k INTEGER, i BIGINT, s VARCHAR)")
        for k in range(2):
            with store.transaction():
                store.con.execute(f"INSERT INTO scratch SELECT {k}, i, md5(i::VARCHAR) FROM range(123880) r(i)")
        store.con.execute("CHECKPOINT")
        assert [rows for _, rows in store.query(groups_sql)] == [122_880, 1_000, 122_880, 1_000]
        store.con.execute("DELETE FROM scratch WHERE k = 0")
        store.con.execute("CHECKPOINT")
        assert [rows for _, rows in store.query(groups_sql)] == [122_880, 1_000]
        assert store.query("SELECT count(*), min(k) FROM scratch") == [(123_880, 1)]


def test_a_failed_insert_in_a_transaction_raises_its_own_error(tmp_path: Path) -> None:
    with Store(tmp_path / "x.duckdb") as store:
        with pytest.raises(duckdb.ConstraintException, match="duplicate key"):
            with store.transaction():
                store.insert("grade_levels", [{"grade": 1, "label": "X", "meaning": "m"}])
                store.insert("grade_levels", [{"grade": 1, "label": "Y", "meaning": "m"}])
        assert store.query("SELECT count(*) FROM grade_levels")[0][0] == 0


def test_a_registered_table_is_readable_in_its_block_only(tmp_path: Path) -> None:
    table = pa.table({"n": [1, 2, 3]})
    with Store(tmp_path / "x.duckdb") as store:
        with store.registered("_numbers", table):
            assert store.query("SELECT sum(n) FROM _numbers") == [(6,)]
        with pytest.raises(duckdb.CatalogException):
            store.query("SELECT * FROM _numbers")
        # an error in the block is the one raised, and the table is gone after it too
        with pytest.raises(ZeroDivisionError):
            with store.registered("_numbers", table):
                1 / 0  # noqa: B018
        with pytest.raises(duckdb.CatalogException):
            store.query("SELECT * FROM _numbers")


def test_a_temporary_table_holds_its_query_result_in_its_block_only(tmp_path: Path) -> None:
    with Store(tmp_path / "x.duckdb") as store:
        store.con.execute("CREATE TABLE numbers AS SELECT range AS n FROM range(5)")
        with store.transaction(), store.temporary("_big", "SELECT n FROM numbers WHERE n >= ?", [2]) as name:
            store.con.execute("INSERT INTO numbers VALUES (100)")  # computed once: not seen by the block's reads
            assert (name, store.query(f"SELECT sum(n) FROM {name}")) == ("_big", [(9,)])
            assert store.query("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = '_big'") == [(1,)]
        with pytest.raises(duckdb.CatalogException):
            store.query("SELECT * FROM _big")
        with store.temporary("_big", "SELECT 1 AS n"):  # a clash of names raises, and leaves the first one be
            with pytest.raises(duckdb.CatalogException, match="already exists"):
                with store.temporary("_big", "SELECT 2 AS n"):
                    pass
            assert store.query("SELECT n FROM _big") == [(1,)]
        with pytest.raises(ZeroDivisionError):
            with store.temporary("_big", "SELECT n FROM numbers"):
                1 / 0  # noqa: B018
        with pytest.raises(duckdb.CatalogException):
            store.query("SELECT * FROM _big")


def test_memory_limited_caps_duckdb_meanwhile_and_restores_its_cap(tmp_path: Path) -> None:
    with Store(tmp_path / "db.duckdb", memory_limit="512MB") as store:

        def limit() -> str:
            return store.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

        before = limit()
        for _ in range(3):  # its own cap back each time, not the rounded value DuckDB shows
            with store.memory_limited("64MB"):
                assert limit() == "61.0 MiB"
        assert limit() == before == "488.2 MiB"
        with pytest.raises(RuntimeError), store.memory_limited("64MB"):
            raise RuntimeError("a stage fails")
        assert limit() == before
    with Store(tmp_path / "db.duckdb") as store:
        default = store.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        with store.memory_limited("64MB"):
            pass
        assert store.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == default


def test_optimizers_off_meanwhile_and_as_before_after(tmp_path: Path) -> None:
    def disabled(store: Store) -> set[str]:
        return set(filter(None, store.query("SELECT current_setting('disabled_optimizers')")[0][0].split(",")))

    with Store(tmp_path / "cxrvqa.duckdb") as store:
        with store.optimizers_off("build_side_probe_side"):
            assert disabled(store) == {"build_side_probe_side"}
        assert disabled(store) == set()
        store.con.execute("SET disabled_optimizers = 'top_n'")
        with pytest.raises(RuntimeError), store.optimizers_off("build_side_probe_side"):
            assert disabled(store) == {"top_n", "build_side_probe_side"}
            raise RuntimeError("a failed step")
        assert disabled(store) == {"top_n"}
        # a failed statement aborts the transaction: its own error is raised, the setting set back at the rollback
        with pytest.raises(duckdb.InvalidInputException, match="a failed statement"), store.transaction():
            with store.optimizers_off("build_side_probe_side"):
                store.con.execute("SELECT error('a failed statement')")
        assert disabled(store) == {"top_n"}
        with pytest.raises(duckdb.InvalidInputException), store.transaction():  # nested: the outermost's value last
            with store.optimizers_off("build_side_probe_side"), store.optimizers_off("filter_pushdown"):
                store.con.execute("SELECT error('a failed statement')")
        assert disabled(store) == {"top_n"}
        store.insert("grade_levels", [{"grade": 1, "label": "A", "meaning": "m"}])  # the store is usable again


def test_the_current_graphs_are_those_one_window_over_every_graph_row_picks(tmp_path: Path) -> None:
    """Migration 0030 picks each study's and backend's newest graph of its current report by a window over the keys,
    then joins the rows back: the same rows as 0003's window over whole rows (read from its file, as a temporary
    view), on graphs of a report parsed twice, of both backends, extracted twice, of a retired study and of an old
    text."""
    text = (resource("store", "migrations") / "0003_scene_graphs.sql").read_text()
    start = text.index("CREATE VIEW current_scene_graphs")
    whole_rows = text[start : text.index(";", start)].replace("VIEW current_scene_graphs", "TEMP VIEW graphs_0003")
    at = [datetime(2026, 1, 1, hour, tzinfo=timezone.utc) for hour in range(8)]
    report = dict.fromkeys(("source", "source_format", "text", "indication", "comparison", "technique"), "")
    report |= dict.fromkeys(("findings", "impression", "other", "run_id", "input_hash", "code_version"), "")
    reports = [  # (study, report hash, parser, created): s1's text changed, s2 parsed again, s3 retired
        ("s1", "old", "p1", at[0]),
        ("s1", "new", "p1", at[3]),
        ("s2", "r2", "p1", at[0]),
        ("s2", "r2", "p2", at[2]),
        ("s3", "r3", "p1", at[0]),
    ]
    graphs = [  # (graph, study, backend, report hash, parser, created)
        ("g1", "s1", "rules", "old", "p1", at[1]),
        ("g2", "s1", "rules", "new", "p1", at[4]),
        ("g3", "s1", "rules", "new", "p1", at[6]),
        ("g4", "s1", "llm", "new", "p1", at[5]),
        ("g5", "s1", "llm", "old", "p1", at[7]),
        ("g6", "s2", "rules", "r2", "p1", at[1]),
        ("g7", "s2", "rules", "r2", "p2", at[3]),
        ("g8", "s3", "rules", "r3", "p1", at[1]),
    ]
    with Store(tmp_path / "db.duckdb") as store:
        store.insert(
            "reports",
            [
                {**report, "study_id": s, "patient_id": "p", "n_sentences": 1, "report_hash": h, "parser_version": p}
                | {"input_hash": f"{s}-{h}-{p}", "created_at": c}
                for s, h, p, c in reports
            ],
        )
        store.insert(
            "scene_graphs",
            [
                {"graph_id": g, "study_id": s, "backend": b, "report_hash": h, "parser_version": p, "input_hash": g}
                | {"extractor_version": "x", "quality": [], "n_observations": 0, "graph": "{}", "run_id": "r"}
                | {"code_version": "c", "created_at": c}
                for g, s, b, h, p, c in graphs
            ],
        )
        store.insert(
            "retirements",
            [
                {"kind": "study", "key": "s3", "action": "retired", "reason": "absent_from_input", "detail": ""}
                | {"input_hash": "s3", "run_id": "r", "code_version": "c", "created_at": at[2]}
            ],
        )
        store.con.execute(whole_rows)
        picked = store.query("SELECT * FROM current_scene_graphs ORDER BY ALL")
        assert picked == store.query("SELECT * FROM graphs_0003 ORDER BY ALL")
        assert [row[0] for row in picked] == ["g3", "g4", "g7"]


def test_rows_state_is_each_sources_row_count_and_newest_time(tmp_path: Path) -> None:
    """`Store.rows_state`: per source, a table or a table and its WHERE clause, its row count and newest
    `created_at` in epoch microseconds (NULL where it has no row)."""
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    with Store(tmp_path / "db.duckdb") as store:
        store.insert(
            "retirements",
            [
                {"kind": kind, "key": key, "action": "retired", "reason": "absent_from_input", "detail": ""}
                | {"input_hash": key, "run_id": "r", "code_version": "c", "created_at": at.replace(hour=hour)}
                for kind, key, hour in (("study", "s1", 1), ("study", "s2", 5), ("image", "i1", 9))
            ],
        )
        state = store.rows_state(("retirements", "retirements WHERE kind = 'study'", "reports"))
        assert state == [
            3,
            round(at.replace(hour=9).timestamp() * 1e6),
            2,
            round(at.replace(hour=5).timestamp() * 1e6),
            0,
            None,
        ]
