"""What a rebuild would redo, and why (cxrvqa.staleness, `cxrvqa status`), and the builds that redo it:
--templates with one new template, --from-stage, --only-failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.config import load_config
from cxrvqa.staleness import StaleWork, stale_work
from cxrvqa.store import Store
from cxrvqa.store.runs import last_config

pytestmark = pytest.mark.flow
runner = CliRunner(env={"COLUMNS": "400"})
NEW_TEMPLATE = (
    "id: pleural_question\nversion: 1\nquestion_type: is_there\nstrategy: finding\nanswer_format: yes_no\n"
    "program: has_finding\narguments: finding\ndraw: {findings: [pleural_effusion]}\n"
    "variants: ['Any fluid in the pleural space?']\n"
    "examples:\n- {report: 'Small left pleural effusion.', answer: 'yes'}\n"
)


@pytest.fixture
def copy(demo_build: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(demo_build, out)
    return out


def _stale(out: Path, **overrides: object) -> list[StaleWork]:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        config = last_config(store)
        assert config is not None
        for key, value in overrides.items():
            setattr(config, key, value)
        return stale_work(store, config)


def _last_run_stages(out: Path) -> dict[str, tuple[int, int, int, int]]:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return {
            stage: tuple(counts)
            for stage, *counts in store.query(
                "SELECT stage, n_input, n_skipped, n_done, n_rejected FROM run_stages WHERE run_id = "
                "(SELECT max(run_id) FROM runs)"
            )
        }


def _new_rows(out: Path, table: str) -> int:
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        return store.query(f"SELECT count(*) FROM {table} WHERE run_id = (SELECT max(run_id) FROM runs)")[0][0]


def test_a_fresh_build_has_nothing_stale_and_each_change_is_named(copy: Path, tmp_path: Path) -> None:
    assert _stale(copy) == []
    result = runner.invoke(app, ["status", "--out", str(copy)])
    assert result.exit_code == 0 and "nothing stale" in result.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pleural_question.yaml").write_text(NEW_TEMPLATE)
    with Store(copy / "cxrvqa.duckdb") as store:
        store.con.execute("UPDATE scene_graphs SET extractor_version = 'old-rules' WHERE study_id = 'demo-s2'")
    qa = load_config(None, {"qa": {"template_dirs": [mine]}}).qa
    work = _stale(copy, qa=qa, strictness={"answer_leak": "warn"})
    with Store(copy / "cxrvqa.duckdb", read_only=True) as store:
        n_items = store.query("SELECT count(*) FROM current_qa_items")[0][0]
        version = store.query("SELECT any_value(validators_version) FROM validation_done")[0][0]
    assert [(w.stage, w.subject, w.n) for w in work] == [
        ("extract", "rules", 1),
        ("qa", "pleural_question", 6),
        ("validate", "validators", n_items),
    ]
    assert work[0].why.startswith("rules extractor version changed (old-rules -> ")
    assert work[1].why == "new template"
    assert work[2].why.startswith(f"validators, their strictness or the grades changed ({version} -> ")


def test_one_new_template_adds_its_items_and_validations_and_recomputes_nothing_else(
    copy: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pleural_question.yaml").write_text(NEW_TEMPLATE)
    result = runner.invoke(app, ["build", "--demo", "--out", str(copy), "--templates", str(mine)])
    assert result.exit_code == 0, result.output
    with Store(copy / "cxrvqa.duckdb", read_only=True) as store:
        new = store.query("SELECT DISTINCT template_id FROM qa_items WHERE run_id = (SELECT max(run_id) FROM runs)")
        current = store.query("SELECT count(*) FROM current_qa_items WHERE template_id = 'pleural_question'")[0][0]
    assert new == [("pleural_question",)] and current > 0
    assert _new_rows(copy, "validation_done") == current
    for table in ("images", "image_rejects", "reports", "scene_graphs", "extraction_failures", "qa_grades"):
        assert _new_rows(copy, table) == (current if table == "qa_grades" else 0), table
    stages = _last_run_stages(copy)
    assert stages["extract"][2] == 0 and stages["images"][2] == 0
    # and the template once changed (a new variant) is regenerated and revalidated alone
    (mine / "pleural_question.yaml").write_text(NEW_TEMPLATE.replace("]\n", ", 'Is there pleural fluid?']\n"))
    qa = load_config(None, {"qa": {"template_dirs": [mine]}}).qa
    work = _stale(copy, qa=qa)
    assert [(w.stage, w.subject, w.n) for w in work] == [("qa", "pleural_question", 6)]
    assert work[0].why.startswith("template changed (version ")


def test_from_stage_runs_that_stage_and_the_later_ones_on_the_store(copy: Path) -> None:
    with Store(copy / "cxrvqa.duckdb") as store:
        store.con.execute(
            "DELETE FROM validation_done WHERE item_id IN (SELECT item_id FROM current_qa_items "
            "WHERE study_id = 'demo-s4')"
        )
        n_s4 = store.query("SELECT count(*) FROM current_qa_items WHERE study_id = 'demo-s4'")[0][0]
    result = runner.invoke(app, ["build", "--out", str(copy), "--from-stage", "qa"])
    assert result.exit_code == 0, result.output
    stages = _last_run_stages(copy)
    assert set(stages) == {"qa", "validate"}
    assert stages["validate"][2] + stages["validate"][3] == n_s4
    both = runner.invoke(app, ["build", "--out", str(copy), "--from-stage", "qa", "--stages", "qa"])
    assert both.exit_code == 2 and "--stages cannot be combined" in " ".join(both.output.split())
    unknown = runner.invoke(app, ["build", "--out", str(copy), "--from-stage", "export"])
    assert unknown.exit_code == 2 and "unknown stage 'export'" in unknown.output
    needs = runner.invoke(app, ["build", "--out", str(copy), "--from-stage", "images"])
    assert needs.exit_code == 2 and "the images stage needs --images DIR" in needs.output


def test_only_failed_retries_decode_failures_and_failed_extractions_only(copy: Path) -> None:
    with Store(copy / "cxrvqa.duckdb") as store:
        # demo-s3's image failed to decode and demo-s2's extraction failed, in an earlier build
        image, source = store.query("SELECT image_id, source_path FROM images WHERE study_id = 'demo-s3'")[0]
        store.con.execute("DELETE FROM images WHERE image_id = ?", [image])
        store.con.execute(
            "INSERT INTO image_rejects SELECT ?, 'decode_failed', 'codec raised', recipe_version, "
            "run_id, input_hash, code_version, created_at FROM image_rejects LIMIT 1",
            [source],
        )
        store.con.execute(
            "INSERT INTO extraction_failures SELECT study_id, backend, input_hash, extractor_version, "
            "'rules_error', 'boom', 1, NULL, NULL, run_id, code_version, created_at FROM scene_graphs "
            "WHERE study_id = 'demo-s2'"
        )
        for table in ("obs_regions", "obs_sentences", "observations", "scene_graphs"):
            store.con.execute(
                f"DELETE FROM {table} WHERE graph_id IN (SELECT graph_id FROM scene_graphs WHERE study_id = 'demo-s2')"
            )
        rejects_before = store.query("SELECT count(*) FROM current_image_rejects")[0][0]
    result = runner.invoke(app, ["build", "--demo", "--out", str(copy), "--only-failed"])
    assert result.exit_code == 0, result.output
    stages = _last_run_stages(copy)
    assert set(stages) == {"images", "extract", "boxes", "qa", "validate"}  # reports are never re-ingested
    n_files = stages["images"][0]
    assert stages["images"] == (n_files, n_files - 1, 1, 0)  # the one decode failure, converted now
    assert stages["extract"][2:] == (1, 0)  # demo-s2 only
    with Store(copy / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM current_image_rejects")[0][0] == rejects_before - 1
        assert store.query("SELECT study_id FROM scene_graphs WHERE run_id = (SELECT max(run_id) FROM runs)") == [
            ("demo-s2",)
        ]
