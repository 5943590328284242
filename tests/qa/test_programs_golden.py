"""Golden tests: for every built-in template, hand-made scene graphs in -> the exact QA items out.

The cases live in `tests/qa/golden/<template_id>.yaml` (one file per template; a template
without a golden file fails `test_every_template_has_a_golden_file`). A case gives the study
(sentences, observations, indication, images with boxes; default one frontal PA image) and
the expected items of that template alone, sorted by (image, question). Each expected answer
was checked by hand against the graph; a case marked `xfail` documents a library bug (the
expected items are the clinically right ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cxrvqa.qa.templates import builtin_templates
from tests.qa import generate, template, view_from_spec

GOLDEN = Path(__file__).parent / "golden"
FIELDS = (
    "image_id",
    "question",
    "answer",
    "options",
    "correct_option",
    "findings",
    "regions",
    "boxes",
    "evidence_ids",
    "polarity",
)


def expected_of(template_id: str, study: dict[str, Any]) -> list[dict[str, Any]]:
    """What the library makes of ``study`` with ``template_id`` alone, in the golden files' shape."""
    rows, parts, counts = generate(view_from_spec(study), template(template_id))
    assert counts == {template_id: len(rows)}
    found = []
    for row in rows:
        item = {name: row[name] for name in FIELDS}
        item_parts = [
            {"kind": kind, "text": text, "findings": findings, "regions": regions}
            for item_id, _, kind, text, findings, regions in parts
            if item_id == row["item_id"]
        ]
        if item_parts:
            item["parts"] = item_parts
        found.append(item)
    return sorted(found, key=lambda i: (i["image_id"] or "", i["question"]))


def _cases() -> list:
    params = []
    for path in sorted(GOLDEN.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["template"] == path.stem, f"{path.name}: template {data['template']!r} != file name"
        for case in data["cases"]:
            marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if case.get("xfail") else []
            params.append(pytest.param(data["template"], case, id=f"{path.stem}: {case['name']}", marks=marks))
    return params


def test_every_template_has_a_golden_file() -> None:
    assert {p.stem for p in GOLDEN.glob("*.yaml")} == {t.id for t in builtin_templates()}


def test_every_golden_file_makes_items() -> None:
    """No golden file only asserts that nothing comes out."""
    for path in sorted(GOLDEN.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert any(case["expected"] for case in data["cases"] if not case.get("xfail")), path.name


@pytest.mark.parametrize(("template_id", "case"), _cases())
def test_golden(template_id: str, case: dict[str, Any]) -> None:
    expected = [
        {"evidence_ids": [], "options": None, "correct_option": None, "boxes": [], **item} for item in case["expected"]
    ]
    assert expected_of(template_id, case["study"]) == expected
