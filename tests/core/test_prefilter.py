"""The literal prefilter of compiled patterns: a guarded search answers as the pattern does."""

from __future__ import annotations

import re

import pytest

from cxrvqa.core.prefilter import guarded, literals_of_any, required_literals

TEXTS = [
    "the lungs are clear.",
    "no acute cardiopulmonary disease",
    "left knee: degenerative changes",
    "LEFT KNEE",
    "heart size is normal. lungs clear",
    "",
    "xxxx",
    "kein erguss",
    "ſide ſcan",
    "Kelvin Knee",
]


@pytest.mark.parametrize(
    "pattern, expected",
    [
        (r"\blungs? (?:are |is )?clear\b", ("clear",)),  # the longest
        (r"(?:\bno acute\b)|(?:\bnegative for acute\b)", ("o acute", "egative for acute")),  # "n" taken out first
        (r"(?:\bno acute\b)|(?:\bclear\b)", ("no acute", "clear")),
        (r"\b(?:hip|hips|knee)\b", ("hip", "knee")),  # "hips" holds "hip"
        (r"(?<!left )\blung\b(?! of)", ("lung",)),
        (r"^\d+ images?\.?$", (" image",)),
        (r"(?:heart)+ sized", (" sized",)),
        (r"(?:foo)? bar", (" bar",)),
        (r"a|\w+", None),  # an alternative without a literal
        (r"[a-z]+", None),
    ],
)
def test_required_literals(pattern: str, expected: tuple[str, ...] | None) -> None:
    assert required_literals(re.compile(pattern)) == expected


@pytest.mark.parametrize(
    "pattern, flags",
    [
        (r"\blungs? (?:are )?clear\b", 0),
        (r"\b(?:knee|hip|ct scan)\b", re.I),
        (r"\bs\w+", re.I),
        (r"(?i:knee)|lung", 0),
        (r"\bkelvin\b", re.I),
        (r"(?P<not>no) acute", 0),
    ],
)
def test_guarded_search_answers_as_the_pattern(pattern: str, flags: int) -> None:
    compiled = re.compile(pattern, flags)
    guard = guarded(compiled)
    for text in TEXTS:
        plain, checked = compiled.search(text), guard.search(text)
        assert (plain and plain.span()) == (checked and checked.span()), text
        assert [m.span() for m in compiled.finditer(text)] == [m.span() for m in guard.finditer(text)], text


def test_ignored_case_tests_only_ascii_texts() -> None:
    guard = guarded(re.compile(r"\bknee\b", re.I))
    assert guard.literals == ("knee",) and guard.folded
    assert guard.may_match("LEFT KNEE") and not guard.may_match("left elbow")
    assert guard.may_match("left \u212anee")  # Kelvin sign: not ASCII, so searched
    assert guarded(re.compile("\u017fide", re.I)).literals is None  # long s matches "s"


def test_the_rules_patterns_answer_as_unguarded_on_the_golden_sentences() -> None:
    from pathlib import Path

    import yaml

    from cxrvqa.extraction.rules import _one_line, rules

    golden = yaml.safe_load((Path(__file__).parents[1] / "extraction" / "golden_sentences.yaml").read_text())
    r = rules()
    guards = [g for _, g in r.finding_patterns] + [g for _, g, _, _ in r.normal_statements] + [r.other_exam]
    assert any(g.literals for g in guards)  # the test exercises prefilters
    for case in golden:
        text = _one_line(case["text"])
        for g in guards:
            for candidate in (text, text.lower()):
                assert [m.span() for m in g.pattern.finditer(candidate)] == [m.span() for m in g.finditer(candidate)]


def test_literals_of_any_of_several_patterns() -> None:
    patterns = [re.compile(r"\blungs? (?:are )?clear\b"), re.compile(r"\bno acute\b"), re.compile(r"\bclearly\b")]
    assert literals_of_any(patterns) == ("clear", "no acute")  # "clearly" holds "clear"
    assert literals_of_any([*patterns, re.compile(r"[a-z]+ normal|\w+")]) is None  # one without literals
    assert literals_of_any([*patterns, re.compile(r"\bknee\b", re.I)]) is None  # one that ignores case
    assert literals_of_any([]) == ()
