"""A rebuild with nothing to do returns at once (cxrvqa.uptodate): what it compares, and the CLI around it on three
short synthetic reports written here (nobody's data)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cxrvqa import uptodate
from cxrvqa.cli import app
from cxrvqa.config import load_config
from flows.prefect_env import IDLE_VARIABLE

runner = CliRunner(env={"COLUMNS": "300"})

TEXTS = {
    "up-s1": "FINDINGS: Small left pleural effusion. No pneumothorax. IMPRESSION: Left effusion.",
    "up-s2": "FINDINGS: Right lower lobe consolidation. No pleural effusion. IMPRESSION: Pneumonia.",
    "up-s3": "FINDINGS: Mild cardiomegaly. The lungs are clear. IMPRESSION: Mild cardiomegaly.",
}


def _write(path: Path, leave_out: str | None = None) -> Path:
    path.write_text("".join(json.dumps({"study_id": s, "text": t}) + "\n" for s, t in TEXTS.items() if s != leave_out))
    return path


def _touch(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


# -- what is compared ------------------------------------------------------------------------------------------
def _recorded(tmp_path: Path, **settings) -> tuple:
    """Settings of a build into tmp_path/out with its database, recorded as up to date (no build run)."""
    config = load_config(None, {"out_dir": tmp_path / "out", "reports": _write(tmp_path / "r.jsonl"), **settings})
    config.out_dir.mkdir(exist_ok=True)
    config.db_path.write_bytes(b"x")
    key = uptodate.invocation_key(config, {})
    uptodate.record(config, key, "run-1", uptodate.inputs_before(config))
    return config, key


def test_a_record_is_up_to_date_until_an_input_or_the_database_changes(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "a.yaml").write_text("a")
    config, key = _recorded(tmp_path, qa={"template_dirs": [templates]})
    assert uptodate.up_to_date(config, key) == "run-1"
    assert uptodate.up_to_date(config, "another key") is None
    changes = (
        lambda: (templates / "b.yaml").write_text("b"),  # a file added to a folder
        lambda: _touch(templates / "a.yaml"),  # touched, same content
        lambda: config.reports.write_text("{}\n"),  # edited
        lambda: config.db_path.write_bytes(b"xy"),  # the database written by something else
        lambda: Path(f"{config.db_path}.wal").write_bytes(b""),  # or its write-ahead log left behind
    )
    for change in changes:
        uptodate.record(config, key, "run-1", uptodate.inputs_before(config))
        assert uptodate.up_to_date(config, key) == "run-1"
        change()
        assert uptodate.up_to_date(config, key) is None


def test_an_input_changed_while_the_build_ran_is_seen_by_the_next_build(tmp_path: Path) -> None:
    config, key = _recorded(tmp_path)
    before = uptodate.inputs_before(config)  # the build starts
    _touch(config.reports)  # ... and the input changes under it
    uptodate.record(config, key, "run-2", before)
    assert uptodate.up_to_date(config, key) is None


def test_the_same_relative_path_from_another_folder_is_another_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _write(tmp_path / name / "r.jsonl")
    settings = {"out_dir": tmp_path / "out", "reports": Path("r.jsonl")}
    monkeypatch.chdir(tmp_path / "a")
    config = load_config(None, settings)
    config.out_dir.mkdir()
    config.db_path.write_bytes(b"x")
    key = uptodate.invocation_key(config, {})
    uptodate.record(config, key, "run-1", uptodate.inputs_before(config))
    assert uptodate.up_to_date(load_config(None, settings), key) == "run-1"
    monkeypatch.chdir(tmp_path / "b")  # the settings as typed are the same, the file they name is not
    assert uptodate.invocation_key(load_config(None, settings), {}) == key
    assert uptodate.up_to_date(load_config(None, settings), key) is None


def test_the_paths_read_are_the_inputs_not_the_output(tmp_path: Path) -> None:
    config = load_config(
        None,
        {"out_dir": tmp_path / "out", "reports": tmp_path / "r.jsonl", "qa": {"template_dirs": [tmp_path / "t"]}},
    )
    paths = uptodate.read_paths(config)
    assert {str(tmp_path / "r.jsonl"), str(tmp_path / "t")} <= set(paths)
    assert str(tmp_path / "out") not in paths


def test_the_invocation_key_holds_settings_flags_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(None, {"out_dir": tmp_path, "reports": tmp_path / "r.jsonl"})
    key = uptodate.invocation_key(config, {"from_stage": None})
    assert uptodate.invocation_key(config, {"from_stage": None}) == key
    assert uptodate.invocation_key(config, {"from_stage": "qa"}) != key
    other = load_config(None, {"out_dir": tmp_path, "reports": tmp_path / "r.jsonl", "limit": 2})
    assert uptodate.invocation_key(other, {"from_stage": None}) != key
    monkeypatch.setenv(IDLE_VARIABLE, "17")  # how long the Prefect server is kept makes no other dataset
    assert uptodate.invocation_key(config, {"from_stage": None}) == key
    monkeypatch.setenv("CXRVQA_PSEUDONYM_KEY", "another key")
    assert uptodate.invocation_key(config, {"from_stage": None}) != key


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, True),
        ({"extraction": {"backend": "llm"}}, False),  # an LLM's failures are retried by a repeat
        ({"judge": {"enabled": True}}, False),
        ({"imaging": {"rehash": True}}, False),
        ({"report_limits": {"reread": True}}, False),
        ({"only_failed": True}, False),
    ],
)
def test_only_a_build_whose_repeat_does_nothing_is_recorded(tmp_path: Path, settings: dict, expected: bool) -> None:
    assert uptodate.repeatable(load_config(None, {"out_dir": tmp_path, **settings})) is expected


def test_a_missing_or_unreadable_record_is_not_up_to_date(tmp_path: Path) -> None:
    config = load_config(None, {"out_dir": tmp_path})
    assert uptodate.up_to_date(config, "key") is None
    for content in ("{not json", json.dumps({"invocation": "key", "paths": "nope"}), json.dumps(["a list"])):
        (tmp_path / uptodate.RECORD).write_text(content)
        assert uptodate.up_to_date(config, "key") is None
    (tmp_path / uptodate.RECORD).unlink()
    (tmp_path / uptodate.RECORD).mkdir()  # a record that cannot be written: the build goes on, unrecorded
    uptodate.record(config, "key", "run-1", uptodate.inputs_before(config))
    assert uptodate.up_to_date(config, "key") is None


@pytest.mark.parametrize(("failed_extractions", "recorded"), [(0, True), (1, False)])
def test_a_build_with_failed_extractions_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failed_extractions: int, recorded: bool
) -> None:
    """A repeat retries a failed extraction: such a build is never found up to date."""
    from cxrvqa import cli

    config = load_config(None, {"out_dir": tmp_path, "reports": _write(tmp_path / "r.jsonl")})
    config.db_path.write_bytes(b"x")
    result = {"run_id": "run-1", "stages": {"extract": {"n_rejected": failed_extractions}}}
    monkeypatch.setattr(cli, "_run_build", lambda config, log: result)
    assert cli._run_and_record(config, None, (config, "key")) == result
    assert (uptodate.up_to_date(config, "key") == "run-1") is recorded


# -- the CLI ----------------------------------------------------------------------------------------------------
@pytest.mark.flow
def test_a_rebuild_with_nothing_to_do_starts_no_run(tmp_path: Path) -> None:
    out, reports = tmp_path / "out", _write(tmp_path / "r.jsonl")

    def build(*flags: str, path: Path = reports) -> str:
        result = runner.invoke(app, ["build", "--reports", str(path), "--out", str(out), "--workers", "1", *flags])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    def runs() -> int:
        con = duckdb.connect(str(out / "cxrvqa.duckdb"), read_only=True)
        try:
            return con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
        finally:
            con.close()

    assert "completed" in build() and runs() == 1
    repeat = build()
    assert repeat.startswith("up to date: the inputs, settings, code and database are as run ") and runs() == 1
    assert "validate │ completed │" in repeat  # the last run's status
    _touch(reports)  # an input touched: the build runs (and skips every record)
    assert "completed" in build() and runs() == 2
    assert "up to date" in build() and runs() == 2
    assert "completed" in build("--limit", "2") and runs() == 3  # other settings
    assert "up to date" in build("--limit", "2") and runs() == 3
    con = duckdb.connect(str(out / "cxrvqa.duckdb"))  # the database written by something else
    con.execute("CREATE TABLE scratch AS SELECT 1 AS x")
    con.execute("DROP TABLE scratch")
    con.close()
    assert "completed" in build("--limit", "2") and runs() == 4
    assert "completed" in build("--rehash") and "completed" in build("--rehash") and runs() == 6  # never skipped
    # a build that warned is not recorded: its repeat warns again
    fewer = _write(tmp_path / "two.jsonl", leave_out="up-s3")
    assert "no report in" in build(path=fewer) and "no report in" in build(path=fewer) and runs() == 8
