"""Every validator on clean items (all ok) and one crafted fault per reason code (exactly that code)."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pyarrow as pa
import pytest

from cxrvqa.qa.templates import builtin_templates
from cxrvqa.validation.stage import ITEM_FIELDS
from cxrvqa.validation.validators import (
    VALIDATORS,
    ImageFacts,
    ValidationContext,
    _has_word,
    check_schema,
    run_validators,
    schema_passes,
)
from tests.qa import FRONTAL, items, settings, template, view_from_spec

STUDY = {
    "sentences": [
        "Small left pleural effusion.",
        "No pneumothorax, consolidation, pulmonary edema or atelectasis.",
        "Mild cardiomegaly.",
    ],
    "observations": [
        {
            "finding": "pleural_effusion",
            "laterality": "left",
            "regions": ["left_pleura"],
            "severity": "mild",
            "evidence": [0],
        },
        {"finding": "pneumothorax", "presence": "absent", "evidence": [1]},
        {"finding": "cardiomegaly", "severity": "mild", "evidence": [2]},
        {"finding": "consolidation", "presence": "absent", "evidence": [1]},
        {"finding": "edema", "presence": "absent", "evidence": [1]},
        {"finding": "atelectasis", "presence": "absent", "evidence": [1]},
    ],
    "images": [{**FRONTAL, "finding_boxes": [{"label": "pleural_effusion", "box": [300, 350, 480, 500]}]}],
}
LATERAL = {"image_id": "img2", "view_position": "LL", "view_plane": "lateral", "png_cols": 512, "png_rows": 512}


def context(study: dict[str, Any] = STUDY) -> ValidationContext:
    view = view_from_spec(study)
    every = settings(*builtin_templates())
    images = {i.image_id: ImageFacts(i.png_cols, i.png_rows, i.view_plane) for i in view.images}
    return ValidationContext(images, {t.id: (t, v) for t, v in every.templates}, every, view)


def item_of(template_id: str, **where: Any) -> dict[str, Any]:
    found = [i for i in items(view_from_spec(STUDY), template(template_id)) if all(i[k] == v for k, v in where.items())]
    assert found, (template_id, where)
    return copy.deepcopy(found[0])


def failures(item: dict[str, Any], ctx: ValidationContext | None = None) -> set[tuple[str, str]]:
    return {(v.name, verdict.reason) for v, verdict, _ in run_validators(item, ctx or context(), {}) if not verdict.ok}


def test_report_support_leaves_to_the_independent_reader_what_only_it_reads() -> None:
    """The rules read no lung opacity in "no suspicious pulmonary opacity" (a qualified negation); the independent
    reader reads it negated: not unsupported by the report (LLM replay rounds: correct items demoted)."""
    study = {
        "sentences": ["No suspicious pulmonary opacity.", "Mild cardiomegaly."],
        "observations": [
            {"finding": "lung_opacity", "presence": "absent", "evidence": [0]},
            {"finding": "cardiomegaly", "severity": "mild", "evidence": [1]},
        ],
        "images": [FRONTAL],
    }
    (item,) = [
        i
        for i in items(view_from_spec(study), template("finding_presence"))
        if i["findings"] == ["lung_opacity"] and i["answer"] == "no"
    ]
    ctx = context(study)
    assert not {f for f in failures(item, ctx) if f[0] == "report_support"}
    item["evidence_ids"] = [1]  # neither reader reads a lung opacity there
    assert ("report_support", "unsupported_by_report") in failures(item, ctx)


def test_clean_items_of_every_template_pass_every_validator() -> None:
    ctx = context()
    produced = items(view_from_spec(STUDY), *builtin_templates())
    assert len({i["template_id"] for i in produced}) >= 25
    for item in produced:
        assert failures(item, ctx) == set(), (item["template_id"], item["question"], item["answer"])


#: A content fault is also caught by the independent second readings (issue 16), and by nothing else.
ALSO_CAUGHT = {
    ("multiple_choice", "mcq_answer_not_one_option"): {("negative_support", "negative_unbacked")},
    ("laterality_support", "laterality_mismatch"): {("location_support", "side_not_in_evidence")},
    ("report_support", "contradicts_report"): {
        ("negative_support", "negative_contradicted"),
        ("second_reading", "second_reading_affirmed"),
    },
}


@pytest.mark.parametrize(
    ("template_id", "where", "mutate", "expected"),
    [
        ("finding_presence", {}, lambda i: i.pop("question"), ("schema", "schema_violation")),
        ("finding_presence", {}, lambda i: i.update(evidence_ids="0"), ("schema", "schema_violation")),
        ("finding_presence", {}, lambda i: i.update(image_id="im-missing"), ("image", "missing_image")),
        ("finding_box", {}, lambda i: i["boxes"][0].update(x_max=900.0), ("boxes", "box_outside_image")),
        ("finding_box", {}, lambda i: i["boxes"][0].update(x_max=i["boxes"][0]["x_min"]), ("boxes", "degenerate_box")),
        ("finding_choice", {}, lambda i: i.update(options=[i["options"][1]]), ("multiple_choice", "mcq_option_count")),
        (
            "finding_choice",
            {},
            lambda i: i["options"].__setitem__("ABCD".index(i["correct_option"]), "rib fracture"),
            ("multiple_choice", "mcq_answer_not_one_option"),
        ),
        (
            "finding_choice",
            {},
            lambda i: i.update(options=[i["options"][0]] * len(i["options"])),
            ("multiple_choice", "mcq_duplicate_options"),
        ),
        ("finding_choice", {}, lambda i: i.update(correct_option="E"), ("multiple_choice", "mcq_correct_letter")),
        (
            "finding_choice",
            {},
            lambda i: i.update(correct_option="A" if i["correct_option"] != "A" else "B"),
            ("multiple_choice", "mcq_correct_mismatch"),
        ),
        (
            "finding_presence",
            {},
            lambda i: i.update(options=["a", "b", "c", "d"]),
            ("multiple_choice", "options_without_multiple_choice"),
        ),
        (
            "finding_presence",
            {},
            lambda i: i.update(template_id="no_such_template"),
            ("answer_format", "unknown_template"),
        ),
        ("finding_presence", {}, lambda i: i.update(answer="maybe"), ("answer_format", "invalid_yes_no")),
        ("finding_presence", {}, lambda i: i.update(findings=["dragon_scale"]), ("vocabulary", "unknown_vocabulary")),
        (
            "finding_presence",
            {},
            lambda i: i.update(question="Is there {finding} here?"),
            ("unrendered_variable", "unrendered_variable"),
        ),
        ("indication", {}, lambda i: i.update(answer="XXXX with cough"), ("deid_token", "deid_token")),
        (
            "finding_presence",
            {"answer": "yes"},
            lambda i: i.update(question="Is there a rib fracture in this image?"),
            ("answer_program", "answer_mismatch"),
        ),
        ("finding_side", {}, lambda i: i.update(answer="right"), ("laterality_support", "laterality_mismatch")),
        (
            "finding_presence",
            {},
            lambda i: i.update(item_id="qa-00000000000000000000"),
            ("answer_program", "not_reproducible"),
        ),
        (
            "finding_severity",
            {},
            lambda i: i.update(question="How severe is the mild pleural effusion?"),
            ("answer_leak", "answer_in_question"),
        ),
        (
            "finding_presence",
            {},
            lambda i: i.update(split="test" if i["split"] != "test" else "train"),
            ("split", "split_mismatch"),
        ),
        (
            "finding_presence",
            {"answer": "yes"},
            lambda i: i.update(answer="no"),
            ("report_support", "contradicts_report"),
        ),
        (
            "finding_ruled_out",
            {"answer": "yes"},
            lambda i: i.update(evidence_ids=[2]),
            ("report_support", "unsupported_by_report"),
        ),
    ],
)
def test_each_fault_gives_exactly_its_reason(
    template_id: str, where: dict, mutate: Any, expected: tuple[str, str]
) -> None:
    study = copy.deepcopy(STUDY)
    study["indication"] = "Cough."
    item = (
        item_of(template_id, **where)
        if template_id != "indication"
        else next(i for i in items(view_from_spec(study), template("indication")))
    )
    mutate(item)
    found = failures(item, context(study))
    assert expected in found and ALSO_CAUGHT.get(expected, set()) <= found
    # a fault of one kind is not also blamed on unrelated validators (schema faults aside)
    if expected[0] != "schema":
        assert found - {("answer_program", "answer_mismatch"), ("answer_program", "not_reproducible")} <= {
            expected,
            *ALSO_CAUGHT.get(expected, ()),
        }


def test_the_schema_check_of_a_whole_table_passes_no_item_the_item_check_rejects() -> None:
    """The stage checks the schema of a chunk's Arrow table at once (`schema_passes`) and skips `check_schema` for
    the items it passes: the clean ones, and none that `check_schema` rejects."""
    clean = [{k: i[k] for k in ITEM_FIELDS} for i in items(view_from_spec(STUDY), *builtin_templates())]
    assert any(i["boxes"] for i in clean) and any(i["options"] for i in clean)
    box = {"label": "pleural_effusion", "x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4}
    faults = [
        ("item_id", "qa-0123"),
        ("item_id", clean[0]["item_id"] + "\n"),  # Python's `$` matches before a last newline, the schema's not
        ("study_id", ""),
        ("template_id", "Finding"),
        ("view_plane", "oblique"),
        ("question_type", None),
        ("question", "ab"),
        ("answer", None),
        ("options", ["yes", ""]),
        ("findings", ["pleural_effusion", None]),
        ("boxes", [{**box, "label": None}]),
        ("boxes", [{**box, "x_max": None}]),
        ("evidence_ids", [0, -1]),
        ("arguments", None),
        ("split", ""),
    ]
    faulty = [{**clean[n % len(clean)], key: value} for n, (key, value) in enumerate(faults)]
    rows = pa.Table.from_pylist([*clean, *faulty]).to_pylist()
    assert schema_passes(pa.Table.from_pylist(rows)) == [True] * len(clean) + [False] * len(faulty)
    assert [check_schema(row, context()).ok for row in rows] == [True] * len(clean) + [False] * len(faulty)


def test_the_whole_word_finder_agrees_with_re() -> None:
    """`answer_leak` finds an answer as a whole word without a pattern per answer: as `\\b<word>\\b` does, with
    Unicode word characters (digits, letters with accents, numerals like ², Ⅻ, the underscore) and marks."""
    chars = "ab _-.é1²Ⅻ\u0301x "
    rng = random.Random(1)
    for _ in range(20_000):
        word = "".join(rng.choice(chars) for _ in range(rng.randint(1, 4)))
        text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 14)))
        assert _has_word(word, text) == bool(re.search(rf"\b{re.escape(word)}\b", text)), (word, text)


def test_report_only_items_and_missing_graphs_and_left_right_on_lateral_images() -> None:
    no_image = dict(STUDY, images=[])
    item = next(iter(items(view_from_spec(no_image), template("finding_presence"))))
    assert failures(item, context(no_image)) == {("image", "no_image")}
    ctx = context()
    ctx.view = None
    assert ("answer_program", "missing_scene_graph") in failures(item_of("finding_presence"), ctx)
    lateral = item_of("finding_side")
    lateral.update(image_id="img2", view_plane="lateral")
    ctx = context(dict(STUDY, images=[FRONTAL, LATERAL]))
    assert ("left_right_view", "left_right_not_frontal") in failures(lateral, ctx)


def test_strictness_ignore_skips_a_validator_and_errors_become_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    item = item_of("finding_presence")
    item["image_id"] = None
    results = run_validators(item, context(), {"image": "ignore"})
    assert "image" not in {v.name for v, _, _ in results}
    levels = {v.name: level for v, _, level in run_validators(item, context(), {"schema": "warn"})}
    assert levels["schema"] == "warn" and levels["image"] == "warn" and levels["boxes"] == "reject"

    def broken(item: dict, ctx: ValidationContext) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setitem(VALIDATORS, "boxes", VALIDATORS["boxes"].__class__("boxes", 1, "reject", "structural", broken))
    verdicts = {v.name: verdict for v, verdict, _ in run_validators(item_of("finding_presence"), context(), {})}
    assert verdicts["boxes"].reason == "validator_error" and "RuntimeError: boom" in verdicts["boxes"].detail


def test_answer_program_gives_the_same_verdicts_when_told_the_ids_to_validate() -> None:
    """The stage tells each study's context the ids of the items it validates (`item_ids`): answer_program then
    regenerates those only, every template at once, and must judge every item, faulty or not, as without."""
    from cxrvqa.validation.stage import item_ids_of

    produced = items(view_from_spec(STUDY), *builtin_templates())
    flipped = [
        dict(copy.deepcopy(i), answer="no" if i["answer"] == "yes" else "yes")
        for i in produced
        if i["answer_format"] == "yes_no"
    ][:5]
    renamed = [dict(copy.deepcopy(produced[0]), item_id="qa-00000000000000000000")]
    batch = produced[::2] + flipped + renamed
    full, told = context(), context()
    told.item_ids = item_ids_of(batch)
    check = VALIDATORS["answer_program"].check
    assert [check(i, told) for i in batch] == [check(i, full) for i in batch]
    assert all(not check(i, full).ok for i in flipped + renamed)
    stray = produced[1]  # an item the context was not told of is still regenerated (in full)
    assert check(stray, told) == check(stray, full) and check(stray, full).ok
