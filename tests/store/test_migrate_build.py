"""A build into a store of an older schema migrates it (issue 17: older builds stay usable): through the CLI, a
store created at an older migration, empty or holding a build, then `cxrvqa build` into it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.store import SCHEMA_VERSION, Store
from cxrvqa.store.db import _migrations

runner = CliRunner(env={"COLUMNS": "200"})
ITEMS = "SELECT item_id, question, answer, split FROM current_qa_items ORDER BY item_id"


def _store_at(path: Path, version: int) -> None:
    """A store created by the code of schema ``version``: its migrations 1..version, as that code applied them."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ DEFAULT now())"
    )
    for number, name, sql in _migrations()[:version]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
    con.close()


def _build(out: Path) -> None:
    result = runner.invoke(app, ["build", "--demo", "--out", str(out)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """The demo's items from a build into a new store."""
    out = tmp_path_factory.mktemp("fresh")
    _build(out)
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return store.query(ITEMS)


@pytest.mark.parametrize("version", [1, 12, 15, SCHEMA_VERSION - 1])
def test_a_build_into_an_empty_store_of_an_older_schema_migrates_it(
    version: int, tmp_path: Path, fresh: list[tuple]
) -> None:
    _store_at(tmp_path / "cxrvqa.duckdb", version)
    with pytest.raises(Exception, match=f"schema version {version}, expected {SCHEMA_VERSION}"):
        Store(tmp_path / "cxrvqa.duckdb", read_only=True)  # read-only commands ask for a build first
    _build(tmp_path)
    with Store(tmp_path / "cxrvqa.duckdb", read_only=True) as store:
        applied = store.query("SELECT version FROM schema_migrations ORDER BY version")
        assert applied == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        assert store.query(ITEMS) == fresh
    status = runner.invoke(app, ["status", "--out", str(tmp_path)])
    assert status.exit_code == 0, status.output


def test_a_build_into_a_built_store_of_the_previous_schema_migrates_it_and_fills_what_it_added(
    tmp_path: Path, fresh: list[tuple]
) -> None:
    """A demo build as the code before migration 0017 left it (no evaluation-profile thresholds, no image file stats, no
    latest markers, a validation row per check run, no answer digests, no record of the reports input's reads nor of box
    imports, no selection per template, no kept sentence readings, no state of the QA inputs: 0017-0027 and 0031 undone;
    0028, a view, 0029, a macro and a view, and 0030, a view, re-apply as they are), then a build with nothing new: the
    store is migrated, the thresholds are computed and the markers set, the passing checks' rows dropped, nothing else
    changes (the items keep no digest: a later validation regenerates them)."""
    _build(tmp_path)
    results = (
        "SELECT item_id, validator, validator_version, strictness, status, reason, detail, run_id "
        "FROM current_validation_results ORDER BY ALL"
    )
    with Store(tmp_path / "cxrvqa.duckdb", read_only=True) as store:
        current = store.query(results)
    con = duckdb.connect(str(tmp_path / "cxrvqa.duckdb"))
    # 0021: a row per check run, the passing ones included
    con.execute(
        "INSERT INTO validation_results BY NAME SELECT * FROM (SELECT d.item_id, d.template_version, d.input_hash, "
        "k.validator, k.validator_version, k.strictness, 'ok' AS status, NULL AS reason, '' AS detail, "
        "d.validators_version, d.run_id, d.created_at, d.latest FROM validation_done d JOIN (SELECT DISTINCT "
        "validators_version, validator, validator_version, strictness FROM validation_checks) k "
        "USING (validators_version)) r ANTI JOIN validation_results v "
        "USING (item_id, template_version, input_hash, validator, created_at)"
    )
    con.execute("DROP TABLE qa_input_states")  # 0031
    con.execute("DROP TABLE sentence_readings")  # 0027
    con.execute("DROP TABLE qa_current_templates")  # 0026 (its macro and view re-apply as they are)
    con.execute("ALTER TABLE qa_current_source DROP COLUMN studies")
    con.execute("DROP TABLE box_imports")  # 0025 (0024 replaces a view: it re-applies as it is)
    con.execute("DROP TABLE report_inputs")  # 0023
    con.execute("ALTER TABLE qa_items DROP COLUMN answer_digest")  # 0022
    con.execute("DROP TABLE validation_checks")
    for table in ("validation_results", "validation_done", "qa_grades", "judge_results"):  # 0019
        con.execute(f"ALTER TABLE {table} DROP COLUMN latest")
    con.execute("DROP TABLE image_files")  # 0018
    for view in ("current_qa_eval_items", "current_qa_eval_keys", "current_qa_eval_balance"):  # 0017
        con.execute(f"DROP VIEW {view}")
    con.execute("DROP TABLE qa_eval_balance")
    con.execute("DELETE FROM schema_migrations WHERE version >= 17")  # 0020 re-applies as it is
    runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    con.close()
    export = [
        "export",
        "--out",
        str(tmp_path),
        "--format",
        "jsonl",
        "--dest",
        str(tmp_path / "eval.jsonl"),
        "--balance",
        "per-question",
    ]
    old = runner.invoke(app, export)
    assert old.exit_code != 0 and "open it for writing once (any `cxrvqa build`) to migrate it" in old.output
    _build(tmp_path)
    with Store(tmp_path / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT max(version) FROM schema_migrations")[0][0] == SCHEMA_VERSION
        assert store.query("SELECT count(*) FROM runs")[0][0] == runs + 1
        assert store.query(ITEMS) == fresh
        assert store.query("SELECT count(DISTINCT run_id) FROM qa_eval_balance")[0][0] == 1
        assert store.query(results) == current
        assert store.query("SELECT count(*) FROM validation_results WHERE status = 'ok'") == [(0,)]
        assert store.query("SELECT count(*) FROM qa_items WHERE answer_digest IS NOT NULL") == [(0,)]
    assert runner.invoke(app, export).exit_code == 0
    assert (tmp_path / "eval.jsonl").read_text(encoding="utf-8").count("\n") > 0
