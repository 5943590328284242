"""Adding question templates, through the CLI as a user runs it (issue 17): worked examples, keys a program
does not use, plugin answer programs, user template folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.build  # noqa: F401  (Prefect configured first: a CLI build in this process starts no server of its own)
from cxrvqa.cli import app
from cxrvqa.qa.programs import PROGRAMS
from cxrvqa.store import Store

runner = CliRunner(env={"COLUMNS": "400"})  # rich wraps at the terminal width
DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


RULED_OUT = """id: {id}
version: 1
question_type: yes_no
strategy: finding
answer_format: yes_no
program: finding_ruled_out
arguments: finding
variants: [{variant}]
examples:
- report: "No pneumothorax."
  question: "{question}"
  answer: "{answer}"
"""


# -- worked examples --------------------------------------------------------------------------------------------
def test_a_wording_that_contradicts_its_program_fails_lint_and_the_build(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    # 'not' passes the wording check; the worked example shows the contradiction
    path = _write(
        mine,
        "contradicts",
        RULED_OUT.format(
            id="contradicts",
            variant='"Is there {a_finding}, or not?"',
            question="Is there a pneumothorax, or not?",
            answer="no",
        ),
    )
    result = runner.invoke(app, ["templates", "lint", str(mine)])
    assert result.exit_code == 1, result.output
    assert (
        f"FAIL {path} - examples/0: expected answer 'no', found 'yes' (question 'Is there a pneumothorax, or "
        "not?', program 'finding_ruled_out')"
    ) in _flat(result.output)
    build = runner.invoke(app, ["build", "--demo", "--out", str(tmp_path / "out"), "--templates", str(mine)])
    assert build.exit_code == 2
    assert "expected answer 'no', found 'yes'" in _flat(build.output)
    assert "the build generates nothing with a template whose worked examples fail" in _flat(build.output)
    assert not (tmp_path / "out" / "cxrvqa.duckdb").exists()


def test_the_build_flow_called_directly_checks_the_worked_examples_too(tmp_path: Path) -> None:
    """The same check in the `build_dataset` flow (a deployment or a script calls it without the CLI): it stops
    before any stage runs and before a run is recorded."""
    from cxrvqa.cli import _demo_inputs
    from cxrvqa.config import load_config
    from cxrvqa.errors import TemplateError
    from flows.build import build_dataset

    mine = tmp_path / "mine"
    path = _write(
        mine,
        "contradicts",
        RULED_OUT.format(
            id="contradicts",
            variant='"Is there {a_finding}, or not?"',
            question="Is there a pneumothorax, or not?",
            answer="no",
        ),
    )
    config = load_config(None, {**_demo_inputs(), "out_dir": tmp_path / "out", "qa": {"template_dirs": [mine]}})
    with pytest.raises(TemplateError) as raised:
        build_dataset(config)
    assert raised.value.source == str(path)
    assert raised.value.problems[0] == (
        "examples/0: expected answer 'no', found 'yes' (question 'Is there a "
        "pneumothorax, or not?', program 'finding_ruled_out')"
    )
    assert not (tmp_path / "out" / "cxrvqa.duckdb").exists()


def test_the_yes_meaning_of_a_program_must_be_in_the_question(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "no_negation",
        RULED_OUT.format(
            id="no_negation",
            variant='"Is there {a_finding} in this image?"',
            question="Is there a pneumothorax in this image?",
            answer="no",
        ),
    )
    result = runner.invoke(app, ["templates", "lint", str(path)])
    assert result.exit_code == 1
    assert (
        "variants/0: program 'finding_ruled_out' answers 'yes' when the finding is absent, but the question "
        "'Is there {a_finding} in this image?' does not say so"
    ) in _flat(result.output)


def test_a_template_without_a_worked_example_fails_lint_and_a_right_one_passes(tmp_path: Path) -> None:
    right = _write(
        tmp_path,
        "right",
        RULED_OUT.format(
            id="right",
            variant='"{Has} {a_finding} been ruled out?"',
            question="Has a pneumothorax been ruled out?",
            answer="yes",
        ),
    )
    bare = _write(tmp_path, "bare", right.read_text().replace("id: right", "id: bare").split("examples:")[0])
    result = runner.invoke(app, ["templates", "lint", str(tmp_path)])
    assert result.exit_code == 1
    output = _flat(result.output)
    assert f"FAIL {bare} - examples: a template needs at least one worked example" in output
    assert f"ok {right}" in output and "2 file(s), 1 with problems" in output


def test_templates_programs_lists_every_program_with_its_meaning() -> None:
    result = runner.invoke(app, ["templates", "programs", "--json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(PROGRAMS) <= set(listed)
    assert all(p["answers"] and p["arguments"] and p["formats"] for p in listed.values())
    ruled_out = listed["finding_ruled_out"]
    assert (ruled_out["yes_when"], ruled_out["arguments"], ruled_out["source"]) == ("absent", ["finding"], "builtin")
    assert "draw.regions" in listed["finding_region_choice"]["uses"]
    table = runner.invoke(app, ["templates", "programs"])
    assert table.exit_code == 0 and "yes = the finding is ruled out (absent)" in table.output


# -- keys a program does not use ----------------------------------------------------------------------------------
def test_a_key_the_program_does_not_use_is_rejected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "presence_in_lobes",
        """id: presence_in_lobes
version: 1
question_type: is_there
strategy: finding
answer_format: yes_no
program: has_finding
arguments: finding
draw: {regions: [right_lower_lobe, left_lower_lobe]}
variants: ["Is there {a_finding}?"]
examples: [{report: "Right lower lobe consolidation.", arguments: {finding: consolidation}, answer: "yes"}]
""",
    )
    result = runner.invoke(app, ["templates", "lint", str(path)])
    assert result.exit_code == 1
    assert (
        "draw/regions: program 'has_finding' does not use draw/regions (it uses draw/findings, draw/categories, "
        "draw/exclude_categories, negatives)"
    ) in _flat(result.output)


def test_a_which_lobe_question_answers_only_with_a_lobe(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "which_lobe",
        """id: which_lobe
version: 1
question_type: where
strategy: finding
answer_format: multiple_choice
program: finding_region_choice
arguments: finding
draw:
  regions: [right_upper_lobe, right_middle_lobe, right_lower_lobe, left_upper_lobe, left_lower_lobe]
variants: ["Which lobe {is} the {finding} in?"]
examples:
- {report: "Right lower lobe consolidation.", question: "Which lobe is the consolidation in?",
   answer: "right lower lobe"}
- {name: a zone is not a lobe, report: "Right mid zone opacity.", arguments: {finding: lung_opacity}, answer: null}
""",
    )
    assert runner.invoke(app, ["templates", "lint", str(path)]).exit_code == 0
    wrong = _write(tmp_path / "wrong", "which_lobe", path.read_text().replace("answer: null", "answer: right mid zone"))
    result = runner.invoke(app, ["templates", "lint", str(wrong)])
    assert result.exit_code == 1
    assert "examples/1 (a zone is not a lobe): expected answer 'right mid zone', found no answer" in _flat(
        result.output
    )


# -- user template folders -------------------------------------------------------------------------------------
def test_a_wording_added_to_a_builtin_template_and_a_broken_file_beside_it(
    tmp_path: Path, demo_build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine"
    _write(mine, "finding_presence", 'extends: finding_presence\nvariants: ["Can you see {a_finding}?"]\n')
    _write(mine, "broken", "id: broken\nvariants: [unclosed\n")
    listed = runner.invoke(app, ["templates", "list", "--templates", str(mine)])
    assert listed.exit_code == 0, listed.output
    assert "37 question templates" in listed.output and "skipped question template" in _flat(listed.output)
    row = next(line for line in listed.output.splitlines() if "│ finding_presence " in line)
    assert f"builtin:prompts/questions/finding_presence.yaml+{mine / 'finding_presence.yaml'}" in row
    preview = runner.invoke(
        app, ["templates", "preview", "finding_presence", "--out", str(demo_build), "--json", "--templates", str(mine)]
    )
    assert preview.exit_code == 0, preview.output
    questions = {i["question"] for i in json.loads(preview.stdout)}
    assert questions and "broken.yaml" in _flat(preview.stderr)
    asked = runner.invoke(app, ["templates", "preview", "broken", "--out", str(demo_build), "--templates", str(mine)])
    assert asked.exit_code == 2 and "invalid YAML" in _flat(asked.output)


@pytest.fixture
def plugins_unloaded() -> object:
    """The plugin's programs leave the registry with the test (other tests list the built-in ones)."""
    from cxrvqa.qa.plugins import unload_all

    yield
    unload_all()


@pytest.mark.flow
@pytest.mark.usefixtures("plugins_unloaded")
def test_a_plugin_program_through_build_status_audit_validate_and_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example plugin (a two-option left-or-right question) from relative paths; status, audit and
    validate-file from another folder without naming it; a rebuild that forgets --templates and --programs
    keeps them; an edited plugin regenerates its items."""
    work = tmp_path / "work"
    shutil.copytree(DOCS / "templates", work / "templates")
    shutil.copytree(DOCS / "plugins", work / "plugins")
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["build", "--demo", "--out", str(out), "--templates", "templates", "--programs", "plugins/side_choice.py"]
    )
    assert result.exit_code == 0, result.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        config = json.loads(store.query("SELECT config FROM runs ORDER BY started_at DESC LIMIT 1")[0][0])
        assert config["qa"]["template_dirs"] == [str(work / "templates")]
        assert config["qa"]["program_modules"] == [str(work / "plugins" / "side_choice.py")]
        items = store.query(
            "SELECT answer, options, correct_option, template_version FROM current_qa_items "
            "WHERE template_id = 'finding_side_choice' ORDER BY item_id"
        )
        definition = json.loads(
            store.query("SELECT definition FROM qa_templates WHERE template_id = 'finding_side_choice'")[0][0]
        )
    assert items and all(
        len(options) == 2 and answer in ("left", "right") and set(options) == {"left", "right"}
        for answer, options, _, _ in items
    )
    assert definition["program_source"] == str(work / "plugins" / "side_choice.py") and definition["options"] == 2
    first_version = items[0][3]

    monkeypatch.chdir(tmp_path)  # elsewhere, naming neither the templates nor the plugin
    status = runner.invoke(app, ["status", "--out", str(out), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["stale"] == []
    audit = runner.invoke(app, ["audit", "--out", str(out), "--template", "finding_side_choice", "--json"])
    assert audit.exit_code == 0, audit.output
    exported = tmp_path / "items.jsonl"
    assert (
        runner.invoke(app, ["export", "--out", str(out), "--format", "jsonl", "--dest", str(exported)]).exit_code == 0
    )
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        "".join(
            line + "\n"
            for line in exported.read_text().splitlines()
            if json.loads(line)["template_id"] == "finding_side_choice"
        )
    )
    checked = runner.invoke(app, ["validate-file", str(mine), "--out", str(out), "--dest", str(tmp_path / "v.jsonl")])
    assert checked.exit_code == 0, checked.output
    assert f"{len(items)} line(s): {len(items)} ok, 0 rejected" in _flat(checked.output)

    rebuild = runner.invoke(app, ["build", "--demo", "--out", str(out)])
    assert rebuild.exit_code == 0, rebuild.output
    assert "keeping --templates" in _flat(rebuild.output) and "keeping --programs" in _flat(rebuild.output)
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM current_qa_items WHERE template_id = 'finding_side_choice'")[0][
            0
        ] == len(items)

    plugin = work / "plugins" / "side_choice.py"
    plugin.write_text(
        plugin.read_text().replace(
            'other = "right" if side == "left" else "left"', 'other = "right" if side == "left" else "left"  # edited'
        )
    )
    edited = runner.invoke(app, ["build", "--demo", "--out", str(out)])
    assert edited.exit_code == 0, edited.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        versions = store.query(
            "SELECT DISTINCT template_version FROM current_qa_items WHERE template_id = 'finding_side_choice'"
        )
    assert versions and first_version not in {v for (v,) in versions}
    forgot = runner.invoke(app, ["build", "--demo", "--out", str(out), "--forget-templates"])
    assert forgot.exit_code == 0, forgot.output
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM current_qa_items WHERE template_id = 'finding_side_choice'")[0][0] == 0

    # naming other folders than the last run's says which recorded ones leave, with their items
    other = work / "other"
    other.mkdir()
    assert (
        runner.invoke(
            app,
            [
                "build",
                "--demo",
                "--out",
                str(out),
                "--templates",
                str(work / "templates"),
                "--programs",
                str(work / "plugins" / "side_choice.py"),
            ],
        ).exit_code
        == 0
    )
    swapped = runner.invoke(app, ["build", "--demo", "--out", str(out), "--templates", "work/../work/other"])
    assert swapped.exit_code == 0, swapped.output
    assert (
        f"note: leaving out --templates {work / 'templates'} of the last run: the items of their templates "
        "leave the dataset" in _flat(swapped.output)
    )
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        config = json.loads(store.query("SELECT config FROM runs ORDER BY started_at DESC LIMIT 1")[0][0])
        assert config["qa"]["template_dirs"] == [str(other)]  # absolute and normalised: no '..'
        assert store.query("SELECT count(*) FROM current_qa_items WHERE template_id = 'finding_side_choice'")[0][0] == 0


def test_config_file_paths_are_relative_to_the_file_and_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrvqa.config import load_config

    config_file = tmp_path / "conf" / "build.yaml"
    config_file.parent.mkdir()
    config_file.write_text("qa:\n  template_dirs: [templates]\n  program_modules: [plugins/mine.py]\n")
    monkeypatch.chdir(tmp_path)
    qa = load_config(config_file).qa
    assert qa.template_dirs == [tmp_path / "conf" / "templates"]
    assert qa.program_modules == [tmp_path / "conf" / "plugins" / "mine.py"]
    assert load_config(None, {"qa": {"template_dirs": [Path("x")]}}).qa.template_dirs == [tmp_path / "x"]


@pytest.mark.usefixtures("plugins_unloaded")
def test_a_worker_process_loads_the_plugins_its_settings_name() -> None:
    """Generation settings unpickled in a worker (process pool, Dask) import the plugin files they name."""
    import pickle

    from cxrvqa.qa.generate import GenerationSettings
    from cxrvqa.qa.plugins import load_programs, unload_all

    modules = load_programs([DOCS / "plugins" / "side_choice.py"])
    settings = GenerationSettings(seed=0, splits=(("train", 1.0),), templates=(), program_modules=modules)
    data = pickle.dumps(settings)
    unload_all()
    assert "finding_side_choice" not in PROGRAMS
    assert pickle.loads(data).program_modules == modules and "finding_side_choice" in PROGRAMS
