"""Template loading and lint: the built-in library, a malformed file's exact problems, user folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa.core.resources import resource
from cxrvqa.errors import TemplateError
from cxrvqa.qa.programs import PROGRAMS
from cxrvqa.qa.templates import builtin_templates, lint_paths, load_template_file, load_templates

BASE = """id: {id}
version: 1
question_type: is_there
strategy: finding
answer_format: {fmt}
program: {program}
arguments: {args}
variants: [{variants}]
examples:
- {{report: "Small left pleural effusion.", arguments: {{finding: pleural_effusion}}, answer: "yes"}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def template_text(
    id: str,
    fmt: str = "yes_no",
    program: str = "has_finding",
    args: str = "finding",
    variants: str = '"Is there {finding}?"',
) -> str:
    return BASE.format(id=id, fmt=fmt, program=program, args=args, variants=variants)


def problems_of(path: Path) -> tuple[str, ...]:
    with pytest.raises(TemplateError) as caught:
        load_template_file(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"question template {path}: ")
    return caught.value.problems


def test_the_37_builtin_templates_load() -> None:
    templates = builtin_templates()
    files = sorted(
        n.name.removesuffix(".yaml") for n in resource("prompts", "questions").iterdir() if n.name.endswith(".yaml")
    )
    assert len(templates) == 37
    assert [t.id for t in templates] == files
    assert all(t.source == f"builtin:prompts/questions/{t.id}.yaml" for t in templates)
    assert all(t.program in PROGRAMS and t.variants for t in templates)
    assert {t.answer_format for t in templates} == {
        "yes_no",
        "short",
        "full_sentence",
        "multi_part",
        "multiple_choice",
        "box",
    }
    assert {t.question_type for t in templates} == {"where", "what", "is_there", "how_many", "which", "yes_no"}
    assert len({t.content_hash for t in templates}) == 37


def test_bad_yaml(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "bad_yaml", "id: bad_yaml\nvariants: [unclosed\n"))
    assert problem.startswith("invalid YAML: while parsing a flow sequence")
    assert "expected ',' or ']', but got '<stream end>'" in problem


def test_unknown_program(tmp_path: Path) -> None:
    (problem,) = problems_of(
        write(tmp_path, "unknown_program", template_text("unknown_program", program="has_findings"))
    )
    assert problem == f"program: expected one of {sorted(PROGRAMS)}, found 'has_findings'"


def test_placeholder_not_filled(tmp_path: Path) -> None:
    path = write(tmp_path, "unfilled", template_text("unfilled", variants='"Is there {finding} in the {region}?"'))
    assert problems_of(path) == (
        "variants/0: placeholders ['region'] are not filled by arguments 'finding' (it fills ['Does', 'Has', 'Is', "
        "'a_finding', 'does', 'finding', 'has', 'is', 'was'])",
    )


def test_question_without_its_argument(tmp_path: Path) -> None:
    path = write(tmp_path, "unnamed", template_text("unnamed", variants='"Is there {finding}?", "Is it there?"'))
    assert problems_of(path) == ("variants/1: the question does not name ['finding']",)


def test_wrong_answer_format_for_the_program(tmp_path: Path) -> None:
    path = write(tmp_path, "wrong_format", template_text("wrong_format", fmt="short"))
    assert problems_of(path) == (
        "answer_format: program 'has_finding' answers in ['yes_no', 'full_sentence', 'multi_part'], found 'short'",
    )


def test_wrong_arguments_for_the_program(tmp_path: Path) -> None:
    path = write(tmp_path, "wrong_args", template_text("wrong_args", args="region", variants='"Is the {region} ok?"'))
    assert problems_of(path) == ("arguments: program 'has_finding' takes ['finding'], found 'region'",)


def test_id_is_not_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "other_name", template_text("not_the_file"))
    assert problems_of(path) == ("id: expected the file name 'other_name', found 'not_the_file'",)


def test_multiple_choice_question_naming_its_hidden_answer(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcq_names_answer",
        template_text(
            "mcq_names_answer",
            fmt="multiple_choice",
            program="present_finding_choice",
            variants='"Which of these is present?", "Is {finding} one of these?"',
        ),
    )
    assert problems_of(path) == (
        "variants/1: names ['finding'], which is the answer of program "
        "'present_finding_choice': the question would give it away",
    )


def test_schema_problems_are_all_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "schema", "id: schema\nversion: 0\nquestion_type: when\n")
    assert problems_of(path) == (
        "(top level): 'strategy' is a required property",
        "(top level): 'answer_format' is a required property",
        "(top level): 'program' is a required property",
        "(top level): 'arguments' is a required property",
        "(top level): 'variants' is a required property",
        "question_type: 'when' is not one of ['where', 'what', 'is_there', 'how_many', 'which', 'yes_no']",
        "version: 0 is less than the minimum of 1",
    )


def test_empty_file_and_unknown_vocabulary(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "empty", "")) == ("(top level): None is not of type 'object'",)
    text = template_text("vocab") + "draw:\n  findings: [pleural_effusion, pleural_efusion]\n  categories: [lungs]\n"
    assert problems_of(write(tmp_path, "vocab", text)) == (
        "draw/categories: unknown categories ['lungs']",
        "draw/findings: unknown findings ['pleural_efusion']",
    )


def test_a_box_template_must_name_its_boxes(tmp_path: Path) -> None:
    path = write(
        tmp_path, "box", template_text("box", fmt="box", program="finding_boxes", variants='"Where is the {finding}?"')
    )
    assert problems_of(path) == (
        "applies_to/needs_boxes: a box template must say which boxes it needs (finding | region)",
    )


def test_not_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "template.yml"
    path.write_text(template_text("template"), encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load_template_file(path)
    assert caught.value.problems == ("expected a .yaml file, found .yml",)


def test_lint_reports_every_file_without_raising(tmp_path: Path) -> None:
    good = write(tmp_path, "good", template_text("good"))
    bad = write(tmp_path, "bad", template_text("bad", fmt="short"))
    assert lint_paths([good, bad]) == {
        str(good): [],
        str(bad): [
            "answer_format: program 'has_finding' answers in ['yes_no', 'full_sentence', 'multi_part'], found 'short'"
        ],
    }


def test_user_folder_adds_a_template(tmp_path: Path) -> None:
    path = write(tmp_path, "my_presence", template_text("my_presence"))
    templates = load_templates((tmp_path,))
    assert len(templates) == 38
    assert [t.id for t in templates] == sorted(t.id for t in templates)
    mine = next(t for t in templates if t.id == "my_presence")
    assert (mine.source, mine.program, mine.variants, mine.negatives) == (
        str(path),
        "has_finding",
        ("Is there {finding}?",),
        "explicit",
    )


def test_user_folder_with_a_builtin_id_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "finding_presence", template_text("finding_presence"))
    with pytest.raises(TemplateError) as caught:
        load_templates((tmp_path,))
    assert caught.value.source == str(path)
    assert caught.value.problems == (
        "id 'finding_presence' is already defined by builtin:prompts/questions/finding_presence.yaml (to add "
        "wordings to a built-in template, write `extends: finding_presence`)",
    )


def test_missing_user_folder(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        load_templates((tmp_path / "nowhere",))
    assert caught.value.problems == ("expected a folder of template .yaml files, found no such folder",)


def test_a_bad_user_template_stops_loading(tmp_path: Path) -> None:
    write(tmp_path, "fine", template_text("fine"))
    bad = write(tmp_path, "broken", template_text("broken", program="nope"))
    with pytest.raises(TemplateError) as caught:
        load_templates((tmp_path,))
    assert caught.value.source == str(bad)
