"""The phrasebook: the packaged file compiles, its words are the vocabulary's, and a bad entry is named."""

from __future__ import annotations

import copy
import re

import pytest

from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.errors import ResourceError
from cxrvqa.extraction.rules import rules
from cxrvqa.synth.phrases import FILE, OPEN, SCHEMA, SLOT, compile_phrasebook, phrasebook


@pytest.fixture(scope="module")
def data() -> dict:
    return load_checked_yaml(FILE, SCHEMA)[0]


def _findings_in(text: str) -> list[str]:
    """Vocabulary findings the rules extractor's phrase matcher sees in a text."""
    r = rules()
    doc = r.nlp.make_doc(text)
    return [r.nlp.vocab.strings[match_id] for match_id, _, _ in r.findings(doc)]


def test_packaged_phrasebook_compiles() -> None:
    book = phrasebook()
    assert book.findings["pleural_effusion"].sides == ("left", "right", "bilateral")
    assert book.findings["pleural_effusion"].severity["mild"] == ("small",)
    assert book.frames["reading"].facts == ("present", "present")
    # a bracketed term keeps the mention's span: "displaced [rib fractures]"
    term = next(t for t in book.findings["rib_fracture"].negative_terms if t.text == "displaced rib fractures")
    assert (term.text[term.start : term.end], term.plural) == ("rib fractures", False)
    # own frames parse into mention brackets, with the other finding's id
    pacemaker = book.findings["pacemaker"].own["present"][2]
    assert (OPEN, "cardiac_device_leads") in pacemaker and (SLOT, "side", 0, True) in pacemaker


def test_sentences_without_findings_name_none(data: dict) -> None:
    """Fillers, statements and the literal words of generic frames name no finding: the gold graph
    would otherwise miss what the words say."""
    for text in data["fillers"] + [t for s in data["statements"] for t in s["texts"]]:
        assert _findings_in(text) == [], text
    for frame in data["frames"]:
        for text in frame["texts"]:
            assert _findings_in(re.sub(r"\{[^}]*\}", " | ", text)) == [], (frame["id"], text)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("findings", 0, "terms"),
            ["opacity", "focal opacity"],
            "findings.lung_opacity: 'focal opacity' is not a synonym of it in the vocabulary",
        ),
        (("findings", 0, "finding"), "opacityy", "findings.opacityy: not a finding of the vocabulary"),
        (("sides", "left", "before"), ["leftish"], "sides.left: 'leftish' is not a synonym of 'left'"),
        (
            ("regions", "lingula", "after"),
            ["in the tongue"],
            "regions.lingula: 'in the tongue' (without its preposition) is not a synonym of 'lingula'",
        ),
        (
            ("severity_scales", "size", "mild"),
            ["huge"],
            "severity_scales.size.mild: ['huge'] are not synonyms of 'mild'",
        ),
        (("headers", "findings"), ["OPINION"], "headers.findings: 'OPINION' is not a findings header"),
    ],
)
def test_a_word_that_is_not_the_vocabulary_s_is_named(data: dict, path: tuple, value: object, message: str) -> None:
    bad = copy.deepcopy(data)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ResourceError) as raised:
        compile_phrasebook(bad, "test")
    assert message in str(raised.value)


def test_frame_errors_are_named(data: dict) -> None:
    bad = copy.deepcopy(data)
    unchanged = next(f for f in bad["frames"] if f["id"] == "unchanged_after")
    unchanged["texts"] = ["{NP} {is} the same."]
    with pytest.raises(
        ResourceError,
        match=r"frames.unchanged_after: '\{NP\} \{is\} the same.' says no synonym "
        r"of change 'unchanged'",
    ):
        compile_phrasebook(bad, "test")
    bad = copy.deepcopy(data)
    next(f for f in bad["frames"] if f["id"] == "present_plain")["texts"] = ["{NP} and {np2}."]
    with pytest.raises(ResourceError, match="names a fact the frame does not have"):
        compile_phrasebook(bad, "test")
    bad = copy.deepcopy(data)
    next(f for f in bad["frames"] if f["id"] == "present_plain")["texts"] = ["{NPP}."]
    with pytest.raises(ResourceError, match=r"unknown slot \{NPP\}"):
        compile_phrasebook(bad, "test")
