"""Sections and sentences with offsets."""

from __future__ import annotations

import gc
import time

import pytest

from cxrvqa.core.text import compose, is_deid_only, normalise, split_sections, split_sentences


def sentences(text: str) -> list[tuple[str, str]]:
    text = normalise(text)
    found = split_sentences(text)
    assert all(text[s.start : s.end] == s.text for s in found)  # offsets point at the text
    return [(s.section, s.text) for s in found]


def test_headers_become_sections_and_prelude_is_other() -> None:
    text = (
        "FINAL REPORT\nEXAMINATION: Chest PA and lateral.\nClinical History: cough\nFINDINGS: Clear lungs.\n"
        "IMPRESSION:\nNormal chest."
    )
    assert sentences(text) == [
        ("other", "FINAL REPORT"),
        ("technique", "Chest PA and lateral."),
        ("indication", "cough"),
        ("findings", "Clear lungs."),
        ("impression", "Normal chest."),
    ]


def test_a_capitalised_header_after_a_sentence_opens_a_section_on_the_same_line() -> None:
    """One-line exports keep their sections; a header word in running text (not capitals, or not after a
    sentence's end) is text."""
    assert sentences("FINDINGS: Small right effusion. Heart normal. IMPRESSION: Right effusion.") == [
        ("findings", "Small right effusion."),
        ("findings", "Heart normal."),
        ("impression", "Right effusion."),
    ]
    assert sentences("Findings: the impression: a nodule. Impression: unchanged, FINDINGS: none.") == [
        ("findings", "the impression: a nodule."),
        ("findings", "Impression: unchanged, FINDINGS: none."),
    ]


def test_a_section_holding_an_empty_field_marker_is_absent() -> None:
    """IU exports an indication '#NAME?' (a spreadsheet error): it is no indication, not a sentence."""
    text = compose({"indication": "#NAME?", "comparison": " n/a ", "findings": "Clear lungs."})
    assert [s.section for s in split_sections(text)] == ["findings"]
    assert sentences(text) == [("findings", "Clear lungs.")]
    assert sentences("INDICATION: cough, n/a\nFINDINGS: Clear lungs.") == [
        ("indication", "cough, n/a"),
        ("findings", "Clear lungs."),
    ]  # a marker inside text is text


def test_lowercase_headers_and_text_without_headers() -> None:
    assert sentences("findings: heart is stable. no pneumothorax\nimpression: stable chest.") == [
        ("findings", "heart is stable."),
        ("findings", "no pneumothorax"),
        ("impression", "stable chest."),
    ]
    assert sentences("Heart size normal and lungs are clear. No edema or pneumonia. No effusion") == [
        ("other", "Heart size normal and lungs are clear."),
        ("other", "No edema or pneumonia."),
        ("other", "No effusion"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "IMPRESSION: 1. Stable nodules, 2.5 cm. 2. Small left effusion.",
            ["Stable nodules, 2.5 cm.", "Small left effusion."],
        ),
        ("IMPRESSION: 1) Pneumonia.\n2) Effusion", ["Pneumonia.", "Effusion"]),
        (
            "FINDINGS: Dr. Smith was notified. Heart normal vs. prior. Lungs clear.",
            ["Dr. Smith was notified.", "Heart normal vs. prior.", "Lungs clear."],
        ),
        ("FINDINGS: Is there an effusion? No! Lungs clear.", ["Is there an effusion?", "No!", "Lungs clear."]),
        ("FINDINGS: Heart normal\n\nLungs clear", ["Heart normal", "Lungs clear"]),
        ("FINDINGS: ...", []),
        # a stop after a word a sentence does not end on, before a lowercase word, is a stray stop (round AG); after
        # any other word it ends the sentence, which starts in lowercase (round AK: "No pleural effusions or
        # pneumothoraces. heart size ... with tortuosity of the aorta" denied the tortuosity)
        (
            "FINDINGS: No cavitary lesion to suggest. active tuberculosis.",
            ["No cavitary lesion to suggest. active tuberculosis."],
        ),
        (
            "FINDINGS: No pleural effusions or pneumothoraces. heart size is normal with tortuosity of the aorta.",
            ["No pleural effusions or pneumothoraces.", "heart size is normal with tortuosity of the aorta."],
        ),
    ],
)
def test_sentence_boundaries(text: str, expected: list[str]) -> None:
    assert [t for _, t in sentences(text)] == expected


def test_deid_tokens_are_kept_but_flagged() -> None:
    found = sentences("FINDINGS: XXXX XXXX. Normal chest x-XXXX. ___ was called.")
    assert [t for _, t in found] == ["XXXX XXXX.", "Normal chest x-XXXX.", "___ was called."]
    assert [is_deid_only(t) for _, t in found] == [True, False, False]


def test_compose_is_read_back_by_the_parser() -> None:
    text = compose({"indication": "Cough.", "findings": "Clear lungs.", "impression": "", "other": "Signed."})
    assert text == "INDICATION: Cough.\nFINDINGS: Clear lungs.\nSigned."
    assert [s.section for s in split_sections(text)] == ["indication", "findings"]


def test_control_characters_and_crlf_are_normalised() -> None:
    assert normalise("A\r\nB\x00C\x1bD\rE\tF") == "A\nB C D\nE\tF"


@pytest.mark.parametrize("chunk", ["No pneumothorax. ", ".", "a. ", "\n", "XXXX ", "1. ", "x"])
def test_time_is_linear_in_the_length(chunk: str) -> None:
    small, large = chunk * 2_000, chunk * 40_000  # 20x the text
    gc.collect()
    gc.disable()  # the cyclic collector's passes over a whole test session's objects are not the splitter's time
    try:
        started = time.perf_counter()
        split_sentences(normalise("FINDINGS: " + small))
        small_seconds = time.perf_counter() - started
        started = time.perf_counter()
        split_sentences(normalise("FINDINGS: " + large))
        large_seconds = time.perf_counter() - started
    finally:
        gc.enable()
    assert large_seconds < max(small_seconds, 0.002) * 80  # quadratic would be ~400x
