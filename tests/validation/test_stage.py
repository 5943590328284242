"""The validation stage on the demo build: reruns skip, a strictness change re-validates, tampering is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa.cli import _demo_inputs
from cxrvqa.config import load_config
from cxrvqa.core.batch import run_batch
from cxrvqa.errors import ConfigError
from cxrvqa.store import Store
from cxrvqa.validation import stage
from cxrvqa.validation.validators import VALIDATORS

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flows.build import build_dataset

    out = tmp_path_factory.mktemp("demo")
    build_dataset(load_config(None, {**_demo_inputs(), "out_dir": out, "imaging": {"workers": 1}}))
    return out


def _config(out: Path, **overrides: object):
    return load_config(None, {**_demo_inputs(), "out_dir": out, **overrides})


def test_rerun_skips_and_a_strictness_change_revalidates(demo: Path) -> None:
    grades = "SELECT item_id, grade, weakest FROM current_qa_grades JOIN qa_current USING (item_id) "
    grades += "WHERE study_id = 'demo-s1' ORDER BY item_id"
    with Store(demo / "cxrvqa.duckdb") as store:
        first_grades = store.query(grades)
        context = stage.prepare(_config(demo))
        total, n_pending, studies = stage.pending_studies(store, context)[:3]
        assert total > 0 and (n_pending, studies) == (0, [])
        stricter = stage.prepare(_config(demo, strictness={"answer_leak": "warn"}))
        assert stricter.validators_version != context.validators_version
        total, n_pending, studies = stage.pending_studies(store, stricter)[:3]
        assert n_pending == total and studies == [
            "900000000000000000000000000000000000001",
            "demo-s1",
            "demo-s2",
            "demo-s3",
            "demo-s4",
            "s50000005",
        ]
        ignored = stage.prepare(_config(demo, strictness={"answer_leak": "ignore"}))
        counts = run_batch(stage, store, "r-ignore", ["demo-s1"], ignored)
        rows = store.query("SELECT DISTINCT validator FROM validation_checks WHERE run_id = 'r-ignore'")
        assert {r[0] for r in rows} == set(VALIDATORS) - {"answer_leak"} and counts.n_rejected == 0
        # a row per failed check only; the current view gives each item every check it ran (migration 0021)
        assert store.query("SELECT count(*) FROM validation_results WHERE run_id = 'r-ignore' AND status = 'ok'") == [
            (0,)
        ]
        per_item = store.query(
            "SELECT count(*), count(DISTINCT validator), count(*) FILTER (status <> 'ok') "
            "FROM current_validation_results WHERE run_id = 'r-ignore' GROUP BY item_id"
        )
        assert per_item and {(n, k) for n, k, _ in per_item} == {(len(VALIDATORS) - 1, len(VALIDATORS) - 1)}
        failed = store.query("SELECT count(*) FROM validation_results WHERE run_id = 'r-ignore'")[0][0]
        assert sum(f for _, _, f in per_item) == failed
        # the strictness set back: the study's items are validated again (they were skipped, as validated by
        # these validators once, and kept the ignoring run's grades)
        assert stage.pending_studies(store, context)[2] == ["demo-s1"]
        run_batch(stage, store, "r-back", ["demo-s1"], context)
        assert store.query(grades) == first_grades
        assert stage.pending_studies(store, context)[1] == 0


def test_items_as_generated_are_not_regenerated(demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The QA stage records each item's answer digest; validation regenerates only an item whose fields differ
    from it (the next test tampers with one)."""
    import shutil

    from cxrvqa.store.records import ANSWER_FIELDS, answer_digest
    from cxrvqa.validation import validators

    out = tmp_path / "copy"
    shutil.copytree(demo, out)
    with Store(out / "cxrvqa.duckdb") as store:
        rows = store.query_dicts(f"SELECT {', '.join(ANSWER_FIELDS)}, answer_digest FROM current_qa_items")
        assert len(rows) > 100 and all(row["answer_digest"] == answer_digest(row) for row in rows)
        store.con.execute("DELETE FROM validation_done WHERE study_id = 'demo-s1'")
        context = stage.prepare(_config(out))
        _, n_pending, studies = stage.pending_studies(store, context)[:3]

        def regenerate(*_: object, **__: object) -> None:
            raise AssertionError("an item as generated was regenerated")

        monkeypatch.setattr(validators, "generate_study", regenerate)
        counts = run_batch(stage, store, "r-digest", studies, context)
        assert studies == ["demo-s1"] and counts.n_input == n_pending > 10
        assert store.query(
            "SELECT count(*) FROM validation_results WHERE run_id = 'r-digest' AND validator = 'answer_program'"
        ) == [(0,)]


def test_a_tampered_answer_is_rejected_with_its_reason(demo: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(demo, out)
    with Store(out / "cxrvqa.duckdb") as store:
        item_id = store.query(
            "SELECT item_id FROM current_qa_items WHERE template_id = 'finding_side' AND study_id = 'demo-s1'"
        )[0][0]
        store.con.execute("UPDATE qa_items SET answer = 'left' WHERE item_id = ?", [item_id])
        store.con.execute("DELETE FROM validation_done WHERE item_id = ?", [item_id])
        context = stage.prepare(_config(out))
        assert stage.pending_studies(store, context)[1:4] == (1, ["demo-s1"], [1])
        counts = run_batch(stage, store, "r-tamper", ["demo-s1"], context)
        assert (counts.n_input, counts.n_done, counts.n_rejected) == (1, 0, 1)
        assert store.query(
            "SELECT validator, status, reason, detail FROM current_validation_results "
            "WHERE item_id = ? AND status <> 'ok' ORDER BY validator",
            [item_id],
        ) == [
            # (laterality_support re-reads with the rules only the graph of another backend)
            ("answer_program", "reject", "answer_mismatch", "answer: the answer program gives 'right', found 'left'"),
            (
                "location_support",
                "reject",
                "side_not_in_evidence",
                "the answer gives pneumothorax the side left; the "
                "evidence 'There is a small right apical pneumothorax. Small right apical pneumothorax.' "
                "gives ['right']",
            ),
        ]


def test_unknown_validator_in_strictness_is_a_config_error(demo: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown validators \['no_such'\]"):
        stage.prepare(_config(demo, strictness={"no_such": "warn"}))


def test_validate_file_gives_one_verdict_per_line_in_order(demo: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from cxrvqa.cli import app

    with Store(demo / "cxrvqa.duckdb", read_only=True) as store:
        clean = store.query_dicts(
            f"SELECT {', '.join(stage.ITEM_FIELDS)} FROM current_qa_items "
            "WHERE template_id = 'finding_presence' AND answer = 'yes' "
            "ORDER BY item_id LIMIT 2"
        )
    edited = dict(clean[0], answer="no" if clean[0]["answer"] == "yes" else "yes")
    source = tmp_path / "items.jsonl"
    source.write_text(
        "\n".join([json.dumps(clean[0]), json.dumps(edited), "{broken", "[1, 2]", json.dumps(clean[1])]) + "\n"
    )
    with open(source, "ab") as handle:  # a Windows-1252 line (0x96: an en dash)
        handle.write(
            json.dumps(dict(clean[1], question="Effusion \u2013 present?")).replace("\\u2013", "\x96").encode("latin-1")
            + b"\n"
        )
    dest = tmp_path / "verdicts.jsonl"
    result = CliRunner().invoke(app, ["validate-file", str(source), "--out", str(demo), "--dest", str(dest)])
    assert result.exit_code == 1, result.output  # some lines are not ok
    lines = [json.loads(line) for line in dest.read_text().splitlines()]
    assert [(v["line"], v["ok"]) for v in lines] == [
        (1, True),
        (2, False),
        (3, False),
        (4, False),
        (5, True),
        (6, False),
    ]
    assert [v.get("item_id") for v in lines] == [
        clean[0]["item_id"],
        clean[0]["item_id"],
        None,
        None,
        clean[1]["item_id"],
        None,
    ]
    assert lines[1]["answer"] == edited["answer"] and lines[1]["question"] == clean[0]["question"]
    source.write_text("\n".join(json.dumps(item) for item in clean) + "\n")
    result = CliRunner().invoke(app, ["validate-file", str(source), "--out", str(demo), "--dest", str(dest)])
    assert result.exit_code == 0, result.output  # every line ok
    failed = {v["line"]: sorted((x["validator"], x["reason"]) for x in v["verdicts"] if not x["ok"]) for v in lines}
    assert failed[2] == [  # (report_support re-reads with the rules only the graph of another backend)
        ("answer_program", "answer_mismatch"),
        ("negative_support", "negative_contradicted"),
        ("second_reading", "second_reading_affirmed"),
    ]
    assert failed[3] == [("parse", "invalid_json")] and failed[4] == [("parse", "not_an_object")]
    assert failed[6] == [("parse", "invalid_encoding")] and "byte 0x96" in lines[5]["verdicts"][0]["detail"]
    assert lines[2]["grade"] == "D" and lines[0]["grade"] in ("A++", "A+")


def test_dataset_checks_flag_a_skewed_letter_distribution(demo: Path, tmp_path: Path) -> None:
    import shutil

    from cxrvqa.validation.dataset import dataset_checks

    with Store(demo / "cxrvqa.duckdb", read_only=True) as store:
        checks = store.query('SELECT "check", ok FROM dataset_checks WHERE "check" = \'mcq_letters\'')
        assert checks == [("mcq_letters", True)]
    out = tmp_path / "copy"
    shutil.copytree(demo, out)
    with Store(out / "cxrvqa.duckdb") as store:
        # the demo keeps two choice items (balanced per set of options): every candidate made current, so that
        # a skew is more than chance can explain
        store.con.execute(
            "INSERT INTO qa_current SELECT study_id, item_id, template_version, input_hash, NULL "
            "FROM current_qa_candidates ANTI JOIN qa_current USING (item_id) WHERE options IS NOT NULL"
        )
        store.con.execute("UPDATE qa_items SET correct_option = 'A' WHERE correct_option IS NOT NULL")
        n = store.query("SELECT count(*) FROM current_qa_items WHERE correct_option IS NOT NULL")[0][0]
        letters = [row for row in dataset_checks(store, "r-skewed") if row["check"] == "mcq_letters"]
    assert n > 20 and len(letters) == 1 and letters[0]["ok"] is False and letters[0]["value"] == 1.0
    assert (letters[0]["subject"], letters[0]["detail"]) == ("2 options", f"A {n}, B 0 of {n}")


def test_a_rebuild_that_changed_nothing_keeps_the_dataset_checks(demo: Path, tmp_path: Path) -> None:
    import shutil

    from flows.build import build_dataset

    out = tmp_path / "copy"
    shutil.copytree(demo, out)
    config = load_config(None, {**_demo_inputs(), "out_dir": out, "imaging": {"workers": 1}})
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        before = store.query('SELECT run_id, "check", subject, ok FROM dataset_checks ORDER BY ALL')
    assert before
    build_dataset(config)  # nothing changed: the checks still hold
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query('SELECT run_id, "check", subject, ok FROM dataset_checks ORDER BY ALL') == before
    user = tmp_path / "templates"  # a new template changes the dataset: checked again
    user.mkdir()
    source = (Path(__file__).parents[2] / "prompts" / "questions" / "finding_presence.yaml").read_text()
    (user / "my_presence.yaml").write_text(
        source.replace("id: finding_presence", "id: my_presence").replace("Is there", "Do you see")
    )
    result = build_dataset(config.model_copy(update={"qa": config.qa.model_copy(update={"template_dirs": [user]})}))
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        latest = store.query("SELECT DISTINCT run_id FROM dataset_checks WHERE run_id <> ?", [before[0][0]])
        subjects = {
            s for (s,) in store.query("SELECT subject FROM dataset_checks WHERE run_id = ?", [result["run_id"]])
        }
    assert latest == [(result["run_id"],)] and "my_presence" in subjects


def test_audit_reads_a_verdicts_file_in_the_terminal_and_as_a_page(demo: Path, tmp_path: Path) -> None:
    """Issue 17: `cxrvqa audit --verdicts FILE` summarises validate-file's output, rejects before warnings."""
    import json
    import re

    from typer.testing import CliRunner

    from cxrvqa.cli import app

    with Store(demo / "cxrvqa.duckdb", read_only=True) as store:
        clean = store.query_dicts(
            f"SELECT {', '.join(stage.ITEM_FIELDS)} FROM current_qa_items "
            "WHERE template_id = 'finding_presence' AND answer = 'yes' "
            "ORDER BY item_id LIMIT 2"
        )
    edited = dict(clean[0], answer="no" if clean[0]["answer"] == "yes" else "yes")
    source, dest = tmp_path / "items.jsonl", tmp_path / "verdicts.jsonl"
    source.write_text("\n".join([json.dumps(clean[0]), json.dumps(edited), "{broken", json.dumps(clean[1])]) + "\n")
    runner = CliRunner()
    assert runner.invoke(app, ["validate-file", str(source), "--out", str(demo), "--dest", str(dest)]).exit_code == 1
    result = runner.invoke(app, ["audit", "--verdicts", str(dest)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "4 line(s), 2 ok, 2 not ok (1 not an item)" in text
    rows = re.findall(r"│ (reject|warn) +│", result.output)
    assert rows and rows == sorted(rows, key=("reject", "warn").index)  # rejects first
    assert "│ reject │ answer_program │ answer_mismatch │ 1 │" in " ".join(result.output.split())
    assert f"line 2 [D] {edited['item_id']}" in text
    page = tmp_path / "verdicts.html"
    result = runner.invoke(app, ["audit", "--verdicts", str(dest), "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert 'data-lines="4" data-ok="2"' in html and "answer_mismatch" in html and "<script>alert" not in html
    missing = runner.invoke(app, ["audit", "--verdicts", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_validators_read_the_item_columns_the_item_schema_publishes_in_its_order() -> None:
    assert stage.ITEM_FIELDS == (
        "item_id",
        "study_id",
        "patient_id",
        "image_id",
        "view_plane",
        "template_id",
        "question_type",
        "strategy",
        "skill",
        "answer_format",
        "question",
        "answer",
        "options",
        "correct_option",
        "findings",
        "regions",
        "boxes",
        "evidence_ids",
        "arguments",
        "polarity",
        "split",
    )


def test_sentence_readings_kept_from_chunk_to_chunk_change_no_verdict(demo: Path) -> None:
    """The readings of single sentences stay cached after a chunk (`independent.forget_readings` drops only the
    readings of reports and evidence): every study validated after the others, caches warm, gives the tables it
    gives validated with every cache cleared."""
    from datetime import datetime, timezone

    from cxrvqa.validation import independent

    now = datetime.now(timezone.utc)
    with Store(demo / "cxrvqa.duckdb") as store:
        context = stage.prepare(_config(demo, strictness={"answer_leak": "warn"}))  # every item pending again
        studies = stage.pending_studies(store, context)[2]

        def tables(study: str) -> dict[str, list[dict]]:
            work, _ = stage.load_batch(store, [study], context)
            parts = stage.validate_chunk((work.payloads, work.items, {}), context, "r-warm", now)
            return {name: table.to_pylist() for name, table in parts.items() if name != "sentence_readings"}

        independent.clear_caches()
        for study in studies:  # warms the sentence readings of every study
            tables(study)
        assert independent.read_sentence.cache_info().currsize > 0 and independent._reading.cache_info().currsize == 0
        warm = {study: tables(study) for study in studies}
        for study in studies:
            independent.clear_caches()
            assert tables(study) == warm[study]


def test_batches_take_more_studies_where_they_hold_few_pending_items() -> None:
    studies = [f"s{i:02d}" for i in range(30)]
    full_build = stage.PendingStudies(600, 600, studies, [20] * 30, 30)
    assert [len(b) for b in stage.batches(full_build)(studies, 4)] == [4] * 7 + [2]
    # 2 of a current study's 20 items: on past 4 studies until 4 x 10 items, up to 5 x 4 studies
    template_rebuild = stage.PendingStudies(600, 60, studies, [2] * 30, 30)
    assert [len(b) for b in stage.batches(template_rebuild)(studies, 4)] == [20, 10]
    assert [b for batch in stage.batches(template_rebuild)(studies, 4) for b in batch] == studies
    fewer_per_study = stage.PendingStudies(180, 180, studies, [6] * 30, 30)  # a full build of 6 items a study
    assert [len(b) for b in stage.batches(fewer_per_study)(studies, 4)] == [4] * 7 + [2]
    half = stage.PendingStudies(600, 150, studies, [5] * 30, 30)  # 5 of 20 items a study: on until 4 x 10 items
    assert [len(b) for b in stage.batches(half)(studies, 4)] == [8, 8, 8, 6]


def _forget_everything() -> None:
    """Every reading, claim and verdict the checks keep, forgotten (the rules and vocabularies stay loaded)."""
    from cxrvqa.validation import independent, readings, scope, validators, wording

    independent.clear_caches()
    validators.clear_caches()
    readings.use({})
    for module in (independent, scope, validators, wording):
        for value in vars(module).values():
            info = getattr(value, "cache_info", None)
            if info is not None and info().maxsize != 1:
                value.cache_clear()


def test_a_check_that_reads_no_wording_gives_an_item_its_verdict_whatever_its_wording(demo: Path) -> None:
    """Issue 19: a check declared to read no wording (`Validator.reads_wording`; the stage then gives a reworded item
    the verdict of its earlier version) gives every current item of the demo build the verdict it gives the item
    asked in other words, with its template's variants and examples reworded too; every cache is cleared before each
    check of each item, so that none hides a reading of the wording."""
    from dataclasses import replace

    from cxrvqa.validation.validators import active_validators, check_item

    question = "Is there no pneumothorax on the left side compared with the prior study, or is it the right lung?"
    with Store(demo / "cxrvqa.duckdb") as store:
        context = stage.prepare(_config(demo, strictness={"answer_leak": "warn"}))  # every item pending again
        work, _ = stage.load_batch(store, stage.pending_studies(store, context)[2], context)
    blind = tuple((v, level) for v, level in active_validators(context.strictness) if not v.reads_wording)
    assert {v.name for v, _ in blind} == set(VALIDATORS) - {
        "schema", "answer_program", "unrendered_variable", "deid_token", "left_right_view", "answer_leak",
        "question_sense", "grammar_agreement",
    }  # fmt: skip
    templates = stage._templates(context)
    reworded = {
        t: (replace(template, variants=(question,), examples=({"question": question, "answer": "no"},)), version)
        for t, (template, version) in templates.items()
    }
    checked = 0
    for payload in stage.with_items(work.payloads, work.items):
        as_built = stage._context_of(payload, context, templates)
        as_reworded = stage._context_of(payload, context, reworded)
        for item in payload.items:
            for name in ("template_version", "input_hash", "judge_grade", "judge_weakest"):
                item.pop(name)
            for v in blind:
                _forget_everything()
                verdict = check_item(item, as_built, (v,))
                _forget_everything()
                assert check_item({**item, "question": question}, as_reworded, (v,)) == verdict, (item, v[0].name)
            checked += 1
    assert checked == work.items.num_rows > 150


def _written(store: Store, run_id: str) -> dict[str, list[tuple]]:
    """What a validation run wrote: its failure rows, its items' statuses and grades."""
    key = "item_id, template_version, input_hash"
    return {
        table: store.query(f"SELECT {columns} FROM {table} WHERE run_id = ? ORDER BY ALL", [run_id])
        for table, columns in (
            ("validation_results", f"{key}, validator, validator_version, strictness, status, reason, detail"),
            ("validation_done", f"study_id, {key}, status"),
            ("qa_grades", f"{key}, grade, label, weakest, rule_grade, rule_weakest"),
        )
    }


def test_a_reworded_template_keeps_the_verdicts_of_the_checks_that_read_no_wording(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: after a template's rewording (one more question variant) its items' checks that read no wording
    give the verdicts they gave the items' earlier version, not checked again, and the stage writes the rows and
    grades a validation from scratch writes; an item whose fields changed beyond its wording is checked in full, a
    template changed beyond its wording is not reworded, and no verdict of a run of other code or generation settings
    is taken."""
    import shutil
    from dataclasses import replace

    from flows.build import build_dataset
    from tests.qa.test_stage import _user_template

    out, user = tmp_path / "copy", tmp_path / "templates"
    shutil.copytree(demo, out)
    settings = {"qa": {**_demo_inputs()["qa"], "template_dirs": [user]}, "imaging": {"workers": 1}}
    keys = "SELECT item_id FROM current_qa_items WHERE template_id = 'my_presence' AND answer = 'yes' ORDER BY item_id"
    unsupported = "UPDATE qa_items SET answer = 'no', polarity = false WHERE item_id = ?"  # the report says yes
    _user_template(user, "my_presence", 1, reword=True)
    build_dataset(_config(out, **settings, stages=["qa"]))
    with Store(out / "cxrvqa.duckdb") as store:
        kept, changed = [item for (item,) in store.query(keys)][:2]
        store.con.execute(unsupported, [kept])  # fails the checks of its evidence in both versions
    build_dataset(_config(out, **settings, stages=["validate"]))
    _user_template(user, "my_presence", 2, reword=True)
    config = _config(out, **settings, stages=["qa"])
    with monkeypatch.context() as generating:  # made afresh, not from the earlier items (one of them edited here)
        generating.setattr(stage.qa_stage, "reworded", lambda store, templates: ())
        build_dataset(config)  # the QA stage alone: the reworded template's items wait for their validation
    checked: list[str] = []
    second_reading = VALIDATORS["second_reading"]

    def counted(item: dict, context: object) -> object:
        checked.append(item["item_id"])
        return second_reading.check(item, context)

    monkeypatch.setitem(VALIDATORS, "second_reading", replace(second_reading, check=counted))
    viewed: list[str] = []  # the studies whose scene-graph view was made: only where a check read it
    view_of = stage._view_of
    monkeypatch.setattr(stage, "_view_of", lambda payload: viewed.append(payload.study_id) or view_of(payload))
    with Store(out / "cxrvqa.duckdb") as store:
        context = stage.prepare(config, store)
        [(template, version, earlier)] = context.reworded
        pending = stage.pending_studies(store, context)
        items = [item for (item,) in store.query(keys.replace(" AND answer = 'yes'", ""))]
        assert template == "my_presence" and version != earlier and pending.n_pending == len(items) > 10
        failed = store.query("SELECT validator FROM validation_results WHERE item_id = ? ORDER BY ALL", [kept])
        # in the earlier version, by the checks that read no wording (two) and by the answer program, which reads it
        assert failed == [("answer_program",), ("negative_support",), ("second_reading",)]
        store.con.execute(unsupported + " AND template_version = ?", [kept, version])
        store.con.execute(unsupported + " AND template_version = ?", [changed, version])  # in this version only
        run_batch(stage, store, "r-reuse", pending.studies, context)
        assert checked == [changed]
        # the wording checks of a presence question read no view, but for the answer program of an item edited after
        # its generation (both), which makes the item again
        studies = "SELECT DISTINCT study_id FROM qa_items WHERE item_id IN (?, ?) ORDER BY 1"
        edited = [study for (study,) in store.query(studies, [kept, changed])]
        assert viewed == edited and len(pending.studies) > 2
        reused = _written(store, "r-reuse")
        assert {(kept, "negative_support"), (kept, "second_reading")} <= {
            row[:4:3] for row in reused["validation_results"]
        }
        store.con.execute("DELETE FROM validation_done WHERE run_id = 'r-reuse'")
        run_batch(stage, store, "r-scratch", pending.studies, replace(context, reworded=()))
        assert sorted(checked[1:]) == items
        assert len(viewed) == len(edited) + len(pending.studies)
        assert reused == _written(store, "r-scratch") and len(reused["validation_done"]) == len(items)
        store.con.execute("DELETE FROM validation_done WHERE run_id = 'r-scratch'")
        run_batch(stage, store, "r-other", pending.studies, replace(context, same_runs=("a-run-of-other-code",)))
        assert len(checked) == 1 + 2 * len(items)  # the earlier validation's run not one of its own: nothing taken
        assert context.same_runs and stage.prepare(_config(out, **settings, seed=1), store).same_runs == ()
        monkeypatch.setattr(stage.qa_stage, "code_version", lambda: "0.1.0+edited")  # the code changed since: no run is
        assert stage.prepare(config, store).same_runs == ()  # its own (the generator's, the study view's, a check's)
        path = user / "my_presence.yaml"
        path.write_text(path.read_text().replace("\ndescription: ", "\ndescription: Edited. "))
        assert stage.prepare(config, store).reworded == ()
