"""The question-only baseline on tiny hand-made items: exact figures."""

from __future__ import annotations

from collections import Counter

from cxrvqa.core.prior import (
    OptionModel,
    PriorItem,
    baseline,
    baseline_of,
    normalise,
    shown_arguments,
    strongest,
)


def item(
    template: str,
    question: str,
    args: str,
    answer: str,
    split: str,
    fmt: str = "yes_no",
    options: tuple[str, ...] | None = None,
) -> PriorItem:
    return PriorItem(template, fmt, question, args, answer, options, split)


PTX, EFF = '{"finding": "pneumothorax"}', '{"finding": "effusion"}'
ITEMS = [
    # train: pneumothorax is "no" twice, "yes" once; effusion once each (a tie)
    item("presence", "Is there a pneumothorax?", PTX, "no", "train"),
    item("presence", "Is there pneumothorax ?", PTX, "no", "train"),
    item("presence", "Any pneumothorax?", PTX, "yes", "train"),
    item("presence", "Is there an effusion?", EFF, "yes", "train"),
    item("presence", "Is there an effusion?", EFF, "no", "train"),
    # held out
    item("presence", "is there a PNEUMOTHORAX", PTX, "no", "test"),  # seen text, majority right: 1
    item("presence", "Any pneumothorax?", PTX, "no", "val"),  # text seen once ("yes"): 0 / args: 1
    item("presence", "Is there an effusion?", EFF, "yes", "test"),  # a tie: 1/2
    item("presence", "Is there a nodule?", '{"finding": "nodule"}', "yes", "test"),  # unseen: chance 1/2
    item("choice", "Which is present?", '{"finding": "x"}', "b", "train", "multiple_choice", ("a", "b", "c", "d")),
    item("choice", "Which is present?", '{"finding": "x"}', "b", "test", "multiple_choice", ("e", "b", "c", "d")),
    item("choice", "Which is present?", '{"finding": "x"}', "a", "test", "multiple_choice", ("a", "f", "g", "h")),
]


def figures(key: str) -> dict[tuple[str, str | None], tuple[int, float]]:
    return {
        (f.answer_format, f.template_id): (f.n_items, round(f.accuracy, 4)) for f in baseline(ITEMS) if f.key == key
    }


def test_normalised_question_text() -> None:
    assert normalise(" Is there a PNEUMOTHORAX?? ") == normalise("is there a pneumothorax") == "is there a pneumothorax"


def test_majority_answer_by_question_text_with_chance_for_unseen_questions_and_shared_ties() -> None:
    assert figures("question")[("yes_no", None)] == (4, round((1 + 0 + 0.5 + 0.5) / 4, 4))
    # without the options the majority answer "b" is right once of two
    assert figures("question")[("multiple_choice", None)] == (2, 0.5)


def test_majority_answer_by_template_and_arguments() -> None:
    assert figures("arguments")[("yes_no", "presence")] == (4, round((1 + 1 + 0.5 + 0.5) / 4, 4))


def test_the_order_of_the_train_items_changes_no_figure() -> None:
    """`measure` streams the train items unsorted: they give counts only (a tie shares the majority, whichever answer
    came first), while the held-out items, whose credits are summed as floats, come in a fixed order."""
    counted = list(Counter(ITEMS).items())
    train = [pair for pair in counted if pair[0].split == "train"]
    held_out = [pair for pair in counted if pair[0].split != "train"]
    in_order = baseline_of(lambda: train, lambda: held_out)
    assert in_order == baseline(ITEMS)
    assert baseline_of(lambda: train[::-1], lambda: held_out) == in_order
    assert baseline_of(lambda: train[1:] + train[:1], lambda: held_out) == in_order


def test_reading_the_options_covers_multiple_choice_only() -> None:
    # "b" was the answer the one time train showed it: the first item is right; in the second, "a" was shown once
    # and was wrong, the three others never shown (chance): one of those three is picked, so the answer "a" never
    assert figures("options") == {("multiple_choice", None): (2, 0.5), ("multiple_choice", "choice"): (2, 0.5)}


def test_the_option_reader_learns_how_often_each_value_is_the_answer() -> None:
    """A finding shown three times as a distractor and never as the answer is not picked, even against a finding
    train never showed: the reader gets the held-out 'nodule' item right, although the options that were ever
    correct in train (granuloma, cardiomegaly) are not among its options."""
    distractors = ("pneumothorax", "effusion", "edema")
    train = [
        item("present", "Which is present?", "{}", answer, "train", "multiple_choice", (answer, *distractors))
        for answer in ("granuloma", "granuloma", "cardiomegaly")
    ]
    nodule = item("present", "Which is present?", "{}", "nodule", "test", "multiple_choice", ("nodule", *distractors))
    reader = OptionModel(train)
    # never shown: chance (1/4); shown 3 times, never right: (0 + 1/4) / (3 + 1) per template, then per question
    assert reader.scores(nodule) == {"nodule": 0.25, "pneumothorax": 0.015625, "effusion": 0.015625, "edema": 0.015625}
    assert reader.credit(nodule) == 1.0
    ptx = item(
        "present",
        "Which is present?",
        "{}",
        "pneumothorax",
        "test",
        "multiple_choice",
        ("granuloma", "pneumothorax", "effusion", "edema"),
    )
    assert reader.credit(ptx) == 0.0
    by_key = {f.key: f.accuracy for f in baseline([*train, nodule, ptx]) if f.template_id is None}
    # the majority answer of the question ("granuloma") is wrong for both held-out items
    assert by_key == {"question": 0.0, "arguments": 0.0, "options": 0.5}


def test_the_worst_questions_and_the_strongest_templates() -> None:
    presence = next(f for f in baseline(ITEMS) if f.key == "arguments" and f.template_id == "presence")
    assert presence.worst[0] == (PTX, 2, 1.0)
    # both 0.25 above chance (presence by arguments, choice by question text): by template id
    assert [(f.template_id, f.key) for f in strongest(baseline(ITEMS))] == [
        ("choice", "question"),
        ("presence", "arguments"),
    ]


def test_hidden_arguments_are_not_part_of_the_question() -> None:
    assert shown_arguments('{"finding": "x", "region": "y"}', ("finding",)) == '{"region": "y"}'
    assert shown_arguments(PTX, ()) == PTX


def test_chance_follows_the_number_of_options() -> None:
    """Two-option items (the built-in choices) have chance 1/2, not the 1/4 of four options; a set of options
    balanced so that each option is the answer as often (qa.stage._choice_rows) leaves the option reader at
    chance: every value scores the same, the pick is a tie."""
    pair = ("cardiomegaly", "effusion")
    train = [
        item("choice2", "Which is present?", "{}", answer, "train", "multiple_choice", pair)
        for answer in ("cardiomegaly", "effusion", "cardiomegaly", "effusion")
    ]
    held_out = [
        item("choice2", "Which is present?", "{}", answer, "test", "multiple_choice", pair)
        for answer in ("cardiomegaly", "cardiomegaly", "effusion")
    ]
    four = item("choice4", "Which of these?", "{}", "a", "test", "multiple_choice", ("a", "b", "c", "d"))
    by_template = {
        (f.key, f.template_id): (f.n_items, f.accuracy, f.chance) for f in baseline([*train, *held_out, four])
    }
    assert by_template[("options", "choice2")] == (3, 0.5, 0.5)
    assert by_template[("options", "choice4")] == (1, 0.25, 0.25)  # never shown in train: chance
    assert by_template[("options", None)] == (4, (3 * 0.5 + 0.25) / 4, (3 * 0.5 + 0.25) / 4)
    # unbalanced, the value that was the answer more often wins: 2 of the 3 held-out items
    skewed = [*train[:3], *held_out]
    assert next(f.accuracy for f in baseline(skewed) if f.key == "options" and f.template_id == "choice2") == 2 / 3


def test_the_option_reader_names_its_worst_questions_by_their_options() -> None:
    """A choice template's arguments are its answer (hidden): the reader's worst questions are sets of options,
    which a dataset check can name; the other keys keep the arguments the question shows."""
    choice = {f.key: f for f in baseline(ITEMS) if f.template_id == "choice"}
    assert choice["options"].worst == (("[b, c, d, e]", 1, 1.0), ("[a, f, g, h]", 1, 0.0))
    assert choice["arguments"].worst == (('{"finding": "x"}', 2, 0.5),)
