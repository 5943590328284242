"""The rules extractor on golden sentences (kept as data) and its guarantees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cxrvqa.core.scene_graph import (
    ATTRIBUTED_TO_ARTIFACT,
    DEID_ADJACENT,
    HISTORICAL,
    HYPOTHETICAL,
    OTHER_EXAM,
    PLACE_FROM_CLAUSE,
    QUALIFIED_NEGATION,
    READ_AS_OTHER,
    SLASH_PAIR,
    Sentence,
)
from cxrvqa.core.text import normalise, split_sentences
from cxrvqa.extraction.rules import extract_scene_graph

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden_sentences.yaml").read_text())


def scene_graph(text: str):
    text = normalise(text)
    sentences = [
        Sentence(id=i, section=s.section, text=s.text, start=s.start, end=s.end)
        for i, s in enumerate(split_sentences(text))
    ]
    return text, extract_scene_graph("s1", sentences)


def reading(o) -> list:
    """[finding, presence, laterality], then the certainty of an uncertain observation and the marks of a
    qualified negation, of another examination, of a de-identified neighbour, of an artifact, of the patient's
    history, of a condition and of an opacity read as another finding, as the golden file writes them."""
    return [
        o.finding,
        o.presence,
        o.laterality,
        *([o.certainty] if o.certainty else []),
        *[
            m
            for m in o.modifiers
            if m
            in (
                QUALIFIED_NEGATION,
                OTHER_EXAM,
                DEID_ADJACENT,
                ATTRIBUTED_TO_ARTIFACT,
                HISTORICAL,
                HYPOTHETICAL,
                READ_AS_OTHER,
                SLASH_PAIR,
            )
        ],
    ]


@pytest.mark.parametrize("case", GOLDEN, ids=[case["text"][:60] for case in GOLDEN])
def test_golden_sentences(case: dict) -> None:
    _, graph = scene_graph(case["text"])
    assert [reading(o) for o in graph.observations] == case["expected"]
    if "statements" in case:
        assert [[st.id, st.regions] for st in graph.statements] == case["statements"]
    if "regions" in case:
        assert [o.regions for o in graph.observations] == case["regions"]
    if "changes" in case:
        assert [o.change for o in graph.observations] == case["changes"]
    if "severities" in case:
        assert [o.severity for o in graph.observations] == case["severities"]


def test_evidence_points_at_the_mention_and_normal_statements_are_derived() -> None:
    text, graph = scene_graph("FINDINGS: Small left pleural effusion. The lungs are clear.")
    effusion, *derived = graph.observations
    assert text[effusion.evidence[0].start : effusion.evidence[0].end] == "pleural effusion"
    assert (effusion.severity, effusion.regions) == ("mild", [])
    assert all(o.derived_from == ["statement:lungs_clear"] and o.presence == "absent" for o in derived)
    assert text[derived[0].evidence[0].start : derived[0].evidence[0].end] == "lungs are clear"


def test_deid_and_hostile_text_give_an_empty_graph() -> None:
    for text in ("XXXX XXXX.", "<script>alert(1)</script>", "'; DROP TABLE reports; --", ""):
        assert scene_graph(text)[1].observations == []


def test_severity_and_change_words_belong_to_their_own_finding() -> None:
    """Issue 15, class 3: "small" of "versus small hernia" is the hernia's, "minimal" of "minimal atelectasis"
    is not the low lung volumes'; a change after a finding up to the next one's own words is its own."""
    cases = {
        "IMPRESSION: Eventration versus small hernia.": [
            ("diaphragmatic_eventration", None, None),
            ("hernia", "mild", None),
        ],
        "FINDINGS: Low lung volumes with minimal atelectasis.": [
            ("hypoinflation", None, None),
            ("atelectasis", "minimal", None),
        ],
        "FINDINGS: Left pleural effusion has increased and atelectasis.": [
            ("pleural_effusion", None, "worsened"),
            ("atelectasis", None, None),
        ],
        "FINDINGS: Small left pleural effusion, unchanged.": [("pleural_effusion", "mild", "unchanged")],
    }
    for text, expected in cases.items():
        assert [(o.finding, o.severity, o.change) for o in scene_graph(text)[1].observations] == expected, text


def test_a_sentence_repeated_in_another_report_gets_its_own_ids_and_offsets() -> None:
    """The readings of a sentence are memoised by its text: the observations must still point at their report."""
    first = scene_graph("FINDINGS: Heart size is normal. Small left pleural effusion.")
    second = scene_graph("FINDINGS: Small left pleural effusion.")
    for text, graph in (first, second):
        effusion = next(o for o in graph.observations if o.finding == "pleural_effusion")
        assert text[effusion.evidence[0].start : effusion.evidence[0].end] == "pleural effusion"
    assert [o.id for o in second[1].observations] == ["o1"]


def test_places_from_elsewhere_in_the_clause_are_marked() -> None:
    _, graph = scene_graph("IMPRESSION: Left basilar opacity representing atelectasis.")
    marks = {o.finding: PLACE_FROM_CLAUSE in o.modifiers for o in graph.observations}
    assert marks == {"lung_opacity": False, "atelectasis": True}


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("FINDINGS: Heart is large.", None),
        ("FINDINGS: Large lung volumes as before.", None),
        ("FINDINGS: The heart is very large.", "severe"),
        ("FINDINGS: Heart is markedly enlarged.", "severe"),
        ("FINDINGS: Large left pleural effusion.", "severe"),
    ],
)
def test_a_size_word_that_states_the_finding_does_not_grade_it(text: str, severity: str | None) -> None:
    """Round W: "Heart is large." answered "How severe is the cardiomegaly? severe" (extraction_rules
    `stating_words`); a grading word still grades."""
    assert [o.severity for o in scene_graph(text)[1].observations] == [severity]


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("FINDINGS: Mildly increased atherosclerotic change of the aorta.", None),  # the change's degree (round AV)
        ("FINDINGS: Mild increased opacity.", "mild"),  # "increased" is the finding's own word
        ("FINDINGS: Mild atherosclerotic change of the aorta.", "mild"),
        # after the finding too (synthetic round L: "slightly" answered as a minimal severity)
        ("FINDINGS: Diffuse interstitial opacities are slightly worse compared to prior.", None),
        ("FINDINGS: Mild edema, slightly improved.", "mild"),
        # before the finding, what it looks like (review: "Mildly increased interstitial markings" are mild)
        ("FINDINGS: Mildly increased interstitial markings.", "mild"),
    ],
)
def test_a_severity_word_before_a_change_word_grades_the_change(text: str, severity: str | None) -> None:
    assert [o.severity for o in scene_graph(text)[1].observations] == [severity]


def test_a_phrase_is_under_one_trigger_kind_only() -> None:
    """Review of session 30: "not seen" as a negation before and after read "Pneumothorax not seen." as a stated
    pneumothorax (the matcher gave the phrase one of its two labels)."""
    from cxrvqa.errors import ResourceError
    from cxrvqa.extraction.rules import _check_one_kind

    with pytest.raises(ResourceError, match="'Not seen' is listed under both negation_before and negation_after"):
        _check_one_kind({"negation_before": ["no", "not seen"], "negation_after": ["Not seen"]})
    _check_one_kind({"negation_before": ["no"], "negation_after": ["not seen"]})


def test_spacy_is_loaded_where_the_pipeline_is_built_not_on_import() -> None:
    """A build's flow process imports every stage but extracts nothing itself when the workers do (their
    forkserver preloads the extractor): importing spaCy there cost ~0.6 s of its start-up."""
    code = (
        "import sys, flows.build; print('spacy' in sys.modules); "
        "from cxrvqa.extraction.rules import rules; rules(); print('spacy' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
