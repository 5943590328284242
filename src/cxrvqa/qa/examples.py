"""Worked examples of a template: a short report (or a scene graph), the question, the expected answer.

Every template carries at least one (`examples:`). `cxrvqa templates lint` and every build run them: the
report is read with the real rules extractor (a graph is taken as written, in the golden tests' study
format), the template's own candidates and program answer, and the answer must be the expected one. A
wording that contradicts its program ("Is there {a_finding}?" asked with `finding_ruled_out`) fails its
example: "expected answer 'no', found 'yes'".

An example picks its question by `arguments` ({finding: pneumothorax}), by `question` (one rendered
variant), or, when neither is given, by being the only question the study answers. `answer: null` says
the study must give no item for that question (the finding is only hedged, ...).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cxrvqa.core.vocab import vocabulary
from cxrvqa.qa.study import Box, ImageView, StudyView, study_view
from cxrvqa.qa.templates import Template

if TYPE_CHECKING:
    from cxrvqa.qa.programs import Answer

#: The image an example is asked on unless it lists its own: one frontal PA image of 512 x 512 pixels.
FRONTAL = {"image_id": "img1", "view_position": "PA", "view_plane": "frontal", "png_cols": 512, "png_rows": 512}


def _observation(number: int, spec: dict[str, Any]) -> dict[str, Any]:
    presence = spec.get("presence", "present")
    certainty = spec.get("certainty") or ("possible" if presence == "uncertain" else None)
    finding = spec["finding"]
    return {
        "id": f"o{number}",
        "name": finding.replace("_", " "),
        "finding": finding,
        "unresolved_text": None,
        "category": vocabulary().findings[finding]["category"],
        "regions": list(spec.get("regions") or []),
        "laterality": spec.get("laterality"),
        "presence": presence,
        "certainty": certainty,
        "severity": spec.get("severity"),
        "change": spec.get("change"),
        "modifiers": list(spec.get("modifiers") or []),
        "evidence": [{"sentence_id": i, "start": 0, "end": 5} for i in spec.get("evidence") or []],
        "parent_id": None,
        "from_report": True,
        "derived_from": [],
    }


def _image(spec: dict[str, Any]) -> ImageView:
    def boxes(key: str) -> tuple[Box, ...]:
        return tuple(Box(b["label"], *b["box"]) for b in spec.get(key, ()))

    return ImageView(
        spec["image_id"],
        spec["view_position"],
        spec["view_plane"],
        spec["png_cols"],
        spec["png_rows"],
        boxes("finding_boxes"),
        boxes("region_boxes"),
    )


def _graph_of(spec: dict[str, Any]) -> dict[str, Any]:
    rows, offset = [], 0
    for i, text in enumerate(spec.get("sentences", ())):
        rows.append({"id": i, "section": "findings", "text": text, "start": offset, "end": offset + len(text)})
        offset += len(text) + 1
    observations = [_observation(i + 1, o) for i, o in enumerate(spec.get("observations", ()))]
    return {
        "study_id": "example",
        "backend": "rules",
        "indication": spec.get("indication"),
        "sentences": rows,
        "observations": observations,
        "statements": list(spec.get("statements") or []),
    }


def _report_graph(text: str) -> dict[str, Any]:
    """The rules extractor's graph of a short report, as a build would store it."""
    from cxrvqa.core.scene_graph import Sentence
    from cxrvqa.core.text import normalise, split_sentences
    from cxrvqa.extraction.rules import extract_scene_graph

    text = normalise(text)
    sentences = [
        Sentence(id=i, section=s.section, text=s.text, start=s.start, end=s.end)
        for i, s in enumerate(split_sentences(text))
    ]
    return extract_scene_graph("example", sentences).model_dump(mode="json")


def example_view(example: dict[str, Any]) -> StudyView:
    spec = example.get("graph") or {}
    graph = _report_graph(example["report"]) if "report" in example else _graph_of(spec)
    images = tuple(_image(i) for i in spec.get("images", [FRONTAL]))
    return study_view(graph, "example-patient", images)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().rstrip(".").strip()).lower()


def _label(index: int, example: dict[str, Any]) -> str:
    return f"examples/{index}" + (f" ({example['name']})" if example.get("name") else "")


def example_problems(template: Template) -> list[str]:
    """Each way the template's worked examples fail (empty: they all hold; a template without one fails)."""
    if not template.examples:
        return [
            "examples: a template needs at least one worked example (a short `report` or a `graph`, the "
            "`question` or `arguments`, the expected `answer`) so that lint and the build can check that the "
            "wording and the program agree"
        ]
    problems = []
    for index, example in enumerate(template.examples):
        try:
            problems += _check(template, index, example)
        except Exception as exc:  # a malformed graph (unknown finding, ...) is the example's problem
            problems.append(f"{_label(index, example)}: cannot be run: {type(exc).__name__}: {exc}")
    return problems


def _check(template: Template, index: int, example: dict[str, Any]) -> list[str]:
    from cxrvqa.qa.generate import _applies, _candidates
    from cxrvqa.qa.programs import PROGRAMS, Ask

    label = _label(index, example)
    program = PROGRAMS[template.program]
    template = replace(template, weight=1.0, max_per_image=None)
    view = example_view(example)
    image = next((i for i in view.images if _applies(template, i)), None)
    if view.images and image is None:
        return [
            f"{label}: the template asks on none of the example's images (views {list(template.views)}"
            + (f", needs {template.needs_boxes} boxes" if template.needs_boxes else "")
            + ")"
        ]
    candidates = [args for _, args in _candidates(view, image, template)]
    wanted = example.get("arguments")
    if wanted is not None:
        candidates = [args for args in candidates if args == wanted]
        if not candidates:
            return [
                f"{label}: the template does not ask about arguments {wanted} on the example (it draws "
                f"{_shown(template, view, image) or 'nothing'})"
            ]
    question = example.get("question")
    if question is not None:
        asked = {args_key(args): _questions(template, args) for args in candidates}
        matched = [args for args in candidates if _norm(question) in {_norm(q) for q in asked[args_key(args)]}]
        if not matched:
            rendered = sorted({q for qs in asked.values() for q in qs})[:6]
            return [
                f"{label}: the question {question!r} is not one the template asks of the example (it asks "
                f"{rendered or 'nothing'})"
            ]
        candidates = matched
    answers = [(args, program.fn(Ask(view, image, args, template))) for args in candidates]
    items = _items(view, template)
    if wanted is None and len(answers) > 1:  # no arguments, a question that names none (or several) of them
        answered = [(args, answer) for args, answer in answers if answer is not None]
        if len(answered) > 1:
            return [
                f"{label}: give `arguments`: the example makes {len(answered)} items"
                + (f" of the question {question!r}" if question else "")
                + f" ({[a for a, _ in answered][:4]})"
            ]
        answers = answered or answers[:1]
    return _answer_problems(template, label, example["answer"], answers, items)


def _answer_problems(
    template: Template,
    label: str,
    expected: Any,
    answers: list[tuple[dict[str, str], Answer | None]],
    items: dict[str, list[str]],
) -> list[str]:
    """How the program's answers differ from the expected one: an answer where none is expected, none where
    one is, another answer (neither the item's nor, on a yes/no question, its polarity), or a multiple choice
    item that could not be made."""
    from cxrvqa.qa.generate import _options

    problems = []
    for args, answer in answers:
        asked = _questions(template, args)[0]
        if expected is None:
            if answer is not None:
                problems.append(f"{label}: expected no item for {asked!r}, found answer {answer.text!r}")
            continue
        if answer is None:
            problems.append(
                f"{label}: expected answer {expected!r}, found no answer: the program "
                f"{template.program!r} does not answer {asked!r} on the example"
            )
            continue
        accepted = {_norm(answer.text), *(_norm(t) for t in items.get(args_key(args), ()))}
        if answer.polarity is not None and template.answer_format != "short":
            accepted.add("yes" if answer.polarity else "no")
        if _norm(str(expected)) not in accepted:
            problems.append(
                f"{label}: expected answer {expected!r}, found {answer.text!r} (question {asked!r}, "
                f"program {template.program!r})"
            )
        elif template.answer_format == "multiple_choice" and _options(answer, b"\0" * 16, template.options) is None:
            problems.append(
                f"{label}: the program finds fewer than {template.options - 1} wrong options for "
                f"{asked!r}: no item would be made"
            )
    return problems


def _items(view: StudyView, template: Template) -> dict[str, list[str]]:
    """The answers of the items a build would make of the example (full sentences, ...), by arguments."""
    import json

    from cxrvqa.qa.generate import GenerationSettings, generate_study
    from cxrvqa.store.records import ITEM_COLUMNS

    settings = GenerationSettings(seed=0, splits=(("train", 1.0),), templates=((template, "example"),))
    rows, _, _ = generate_study(view, settings)
    found: dict[str, list[str]] = {}
    for row in rows:
        item = dict(zip(ITEM_COLUMNS, row, strict=True))
        found.setdefault(args_key(json.loads(item["arguments"])), []).append(item["answer"])
    return found


def args_key(args: dict[str, str]) -> str:
    return "|".join(f"{k}={args[k]}" for k in sorted(args))


def _questions(template: Template, args: dict[str, str]) -> list[str]:
    from cxrvqa.qa.generate import names_of

    names = names_of(args)
    return [(q := v.format(**names))[:1].upper() + q[1:] for v in template.variants]


def _shown(template: Template, view: StudyView, image: ImageView | None) -> list[dict[str, str]]:
    from cxrvqa.qa.generate import _candidates

    return [args for _, args in _candidates(view, image, template)][:6]
