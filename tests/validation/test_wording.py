"""The checks of the words next to a finding (cxrvqa.validation.wording): failing and passing cases per check,
with exact reason codes. Report sentences are invented; items are written by hand (not by the answer
programs), so that the checks are tested on their own."""

from __future__ import annotations

import ast

import pytest

from cxrvqa.validation import independent, wording
from cxrvqa.validation.validators import VALIDATORS
from tests.validation.test_independent import context, item, verdict

CHECKS = ("deid_hedge", "severity_attachment", "attribution", "quotation", "indication_reason")


def test_the_checks_are_registered_and_share_no_code_with_the_extractor_or_the_programs() -> None:
    assert {name: (VALIDATORS[name].strictness, VALIDATORS[name].kind) for name in CHECKS} == {
        name: ("reject", "content") for name in CHECKS
    }
    tree = ast.parse(open(wording.__file__, encoding="utf-8").read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imported if m.startswith(("cxrvqa.extraction", "cxrvqa.qa"))} == set()
    assert "cxrvqa.core.vocab" in imported


# -- 1. a hedge that may have been de-identified -----------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "answer", "polarity", "expected"),
    [
        ("Coarse interstitial markings XXXX related to underlying emphysema.", "no", False, "certainty_deidentified"),
        ("Hyperexpanded lungs XXXX representing emphysema.", "no", False, "certainty_deidentified"),
        ("Coarse interstitial markings likely related to underlying emphysema.", "no", False, None),  # second_reading's
        ("Hyperexpanded lungs consistent with emphysema.", "no", False, None),
        ("Emphysema, XXXX stable.", "no", False, None),  # a removed word after it says nothing of it
        ("Coarse markings XXXX related to underlying emphysema.", "yes", True, None),  # "uncertain" is not put in doubt
        # the removed word between "there is" and the finding (LLM replay round 2, round BI)
        ("There is XXXX biapical emphysema.", "no", False, "certainty_deidentified"),
        ("There is biapical emphysema.", "no", False, None),
        # ... or at most two words before it (LLM replay round 7)
        ("XXXX of bilateral emphysema.", "no", False, "certainty_deidentified"),
        ("Stable XXXX. Bilateral emphysema.", "no", False, None),
    ],
)
def test_deid_hedge(sentence: str, answer: str, polarity: bool, expected: str | None) -> None:
    it = item(
        "finding_hedged", "Is the report uncertain about emphysema?", answer, polarity=polarity, finding="emphysema"
    )
    assert verdict("deid_hedge", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # a removed word right before a linking phrase puts a present answer in doubt (LLM replay round 22) ...
        ("Stable calcification in the left upper lobe, XXXX representing a granuloma.", "certainty_deidentified"),
        ("Costophrenic angles are blunted, XXXX corresponding to small granulomas.", "certainty_deidentified"),
        # ... not one two words before the finding, nor a plain link
        ("XXXX bilateral granulomas.", None),
        ("Stable calcification in the left upper lobe representing a granuloma.", None),
    ],
)
def test_deid_link_of_a_present_answer(sentence: str, expected: str | None) -> None:
    it = item("finding_presence", "Is there a granuloma?", "yes", polarity=True, finding="granuloma")
    assert verdict("deid_hedge", it, context([sentence])) == expected


# -- 2. the severity words of a mention ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "finding", "answer", "expected"),
    [
        (
            "The lungs are hypoinflated with mild bronchovascular crowding.",
            "hypoinflation",
            "mild",
            "severity_not_attached",
        ),
        (
            "Moderate thoracic levoscoliosis and mild lumbar dextroscoliosis.",
            "scoliosis",
            "moderate",
            "severity_ambiguous",
        ),
        ("Moderate thoracic levoscoliosis.", "scoliosis", "moderate", None),
        ("Small area of platelike atelectasis in the left midlung.", "atelectasis", "mild", None),
        ("The cardiac silhouette is mildly enlarged.", "cardiomegaly", "mild", None),
        ("Cardiomegaly is severe.", "cardiomegaly", "severe", None),
        ("There are mild bilateral prominent interstitial opacities.", "interstitial_opacity", "mild", None),
    ],
)
def test_severity_attachment(sentence: str, finding: str, answer: str, expected: str | None) -> None:
    it = item("finding_severity", "How severe is it?", answer, answer_format="short", finding=finding)
    assert verdict("severity_attachment", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        # one side graded, the other not (round BB): "the airspace disease" has no one severity
        (
            [
                "There is focal airspace disease in the right lung base concerning for pneumonia.",
                "There is minimal airspace disease in the left lung base.",
            ],
            "severity_ambiguous",
        ),
        (["There is minimal airspace disease in the left lung base.", "Left basilar airspace disease."], None),
        (["There is minimal airspace disease in the left lung base.", "The right lung is clear."], None),
    ],
)
def test_severity_attachment_of_a_finding_graded_on_one_side_only(sentences: list[str], expected: str | None) -> None:
    it = item(
        "finding_severity",
        "How severe is it?",
        "minimal",
        evidence=[0, 1],
        answer_format="short",
        finding="airspace_disease",
    )
    assert verdict("severity_attachment", it, context(sentences)) == expected


def test_severity_attachment_leaves_other_templates_alone() -> None:
    it = item("finding_presence", "Is there hypoinflation?", "yes", polarity=True, finding="hypoinflation")
    assert verdict("severity_attachment", it, context(["The lungs are hypoinflated with mild crowding."])) is None


# -- 3. what the report says a density is --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        (
            ["There is a retrocardiac density which corresponds to the known hiatal hernia."],
            "attributed_outside_region",
        ),
        (
            [
                "Nodular density projecting over the left upper lung.",
                "This may represent a healed rib fracture or a granuloma.",
            ],
            "attributed_outside_region",
        ),
        (["Nodular density projecting over the left upper lung.", "This may represent a granuloma."], None),
        (["There is a left basilar density which likely represents atelectasis."], None),
        (["There is a left basilar density.", "The heart is normal in size."], None),
        # or only to places outside the region (round AS)
        (
            ["Approximately 4.8 cm density in the left lower hemithorax.", "This is favored to be pleural based."],
            "attributed_outside_region",
        ),
        (["There is a left basilar density.", "This is seen in the left lower lobe on the lateral view."], None),
    ],
)
def test_attribution(sentences: list[str], expected: str | None) -> None:
    it = item(
        "region_abnormal",
        "Is there an abnormality in the left lung?",
        "yes",
        polarity=True,
        findings=["density"],
        region="left_lung",
    )
    assert verdict("attribution", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "finding", "region", "expected"),
    [
        # a finding that can only be in the region stays there whatever explains it (round AT)
        (
            ["Hyperinflated lungs with flattening of the diaphragms consistent with emphysematous change."],
            "diaphragm_flattening",
            "diaphragm",
            None,
        ),
        # a finding that may be anywhere is where the report says it is
        (
            ["Calcific density over the right upper lung.", "This may represent a healed rib fracture."],
            "calcification",
            "lungs",
            "attributed_outside_region",
        ),
    ],
)
def test_an_attribution_moves_only_a_finding_that_may_be_elsewhere(
    sentences: list[str], finding: str, region: str, expected: str | None
) -> None:
    it = item(
        "region_findings",
        f"List all findings in the {region}.",
        finding.replace("_", " "),
        answer_format="short",
        findings=[finding],
        region=region,
    )
    assert verdict("attribution", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentence", "finding", "expected"),
    [
        # a shadow the report says is a finding that cannot be where its finding is, is not that finding
        (
            "There is a small retrocardiac density which may be secondary to small hiatal hernia.",
            "lung_opacity",
            "attributed_to_other_finding",
        ),
        ("Retrocardiac density compatible hiatal hernia.", "lung_opacity", "attributed_to_other_finding"),
        # one of the findings offered can be in the lungs; or no attribution at all
        ("Retrocardiac density which may represent atelectasis or hiatal hernia.", "lung_opacity", None),
        ("Retrocardiac density.", "lung_opacity", None),
        # to readers a shadow of the lungs is still one when a pleural finding makes it
        ("Lower lobe opacities most likely due to enlarging bilateral pleural effusions.", "lung_opacity", None),
        # a finding that is more than a shadow keeps its name whatever disease explains it
        ("Flattening of the diaphragms consistent with emphysema.", "flattened_diaphragm", None),
    ],
)
def test_a_shadow_attributed_to_another_finding(sentence: str, finding: str, expected: str | None) -> None:
    it = item(
        "which_of_two_findings",
        f"Which is present: {finding.replace('_', ' ')} or a pleural effusion?",
        finding.replace("_", " "),
        answer_format="short",
        question_type="which",
        finding_a=finding,
        finding_b="pleural_effusion",
    )
    it["findings"] = [finding, "pleural_effusion"]
    assert verdict("attribution", it, context([sentence])) == expected


def test_a_certainty_question_about_a_negated_finding_presupposes_it() -> None:
    it = item(
        "finding_hedged",
        "Is airspace disease only suspected rather than certain?",
        "no",
        polarity=False,
        finding="airspace_disease",
    )
    assert (
        verdict("question_sense", it, context(["The lungs are clear of airspace disease."]))
        == "presupposes_absent_finding"
    )
    assert verdict("question_sense", it, context(["Possible right basilar airspace disease."])) is None


def test_the_target_cue_never_skips_a_sentence_that_names_a_finding() -> None:
    """`_target_cue` lets a sentence skip spaCy only when no target can match: the reading is the same."""
    sentences = [
        "The heart is mildly enlarged.",
        "Lungs are clear.",
        "Heart size normal.",
        "No acute disease.",
        "Low lung volumes.",
        "The left hemidiaphragm is elevated.",
        "PA and lateral views of the chest.",
        "Tortuous thoracic aorta.",
        "The cardiomediastinal silhouette is enlarged.",
        "Stable sternotomy XXXX.",
    ]
    cue = independent._target_cue()
    assert cue is not None
    full = []
    for sentence in sentences:
        independent.read_sentence.cache_clear()
        full.append(independent.read_sentence(sentence))
    skipped = [s for s in sentences if not cue.may_match({t.lower_ for t in independent._pipeline().make_doc(s)})]
    assert skipped == [
        "Lungs are clear.",
        "Heart size normal.",
        "No acute disease.",
        "PA and lateral views of the chest.",
    ]
    assert all(not reading for s, reading in zip(sentences, full, strict=True) if s in skipped)


def test_an_unsided_paired_part_lies_in_each_lung() -> None:
    """negative_support: "apical scarring" with no side is in the left lung too; a sided one is not."""
    it = item(
        "region_abnormal",
        "Is there an abnormality in the left lung?",
        "no",
        polarity=False,
        findings=[],
        evidence=[],
        region="left_lung",
    )
    assert (
        verdict("negative_support", it, context(["Lungs are clear.", "Apical oligemia suggestive of emphysema."]))
        == "normal_claim_uncertain"
    )
    assert verdict("negative_support", it, context(["Lungs are clear.", "Right apical scarring."])) is None


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        (["Heart size and pulmonary vascularity appear within normal limits."], None),
        (["Pulmonary vascularity is within normal limits."], None),
        (["The heart size is normal."], "negative_unbacked"),
    ],
)
def test_a_normal_vasculature_rules_out_congestion(sentences: list[str], expected: str | None) -> None:
    """negative_support: `statement_sites` gives vascular congestion the region a normal statement covers."""
    it = item(
        "finding_presence",
        "Is there pulmonary vascular congestion?",
        "no",
        polarity=False,
        finding="pulmonary_congestion",
    )
    assert verdict("negative_support", it, context(sentences)) == expected


def test_an_abnormality_read_as_the_finding_above_the_tagged_one_is_present() -> None:
    """second_reading: "calcified ... granuloma" read as a granuloma still shows an abnormality."""
    it = item(
        "region_abnormal",
        "Is there an abnormality in the left lung?",
        "yes",
        polarity=True,
        findings=["calcified_granuloma"],
        region="left_lung",
    )
    ctx = context(["Calcified left lower lobe granuloma."])
    assert verdict("second_reading", it, ctx) is None
    assert verdict("second_reading", it, context(["No focal consolidation."])) == "second_reading_not_found"


# -- 4. what a quoted sentence points at ---------------------------------------------------------------------
LUCENCY = [
    "Patchy airspace opacity within the right lung apex.",
    "At the right lung apex, there is a focal ovoid lucency.",
    "This could indicate cavitation.",
]


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        ([0, 2], "quote_without_antecedent"),  # the cavitation now reads as the opacity's
        ([0, 1, 2], None),
        ([1, 2], None),
        ([0], None),  # the pointing sentence is not quoted
    ],
)
def test_a_quoted_sentence_that_points_back_needs_the_one_before(evidence: list[int], expected: str | None) -> None:
    answer = " ".join(LUCENCY[i] for i in evidence)
    it = item("study_describe_all", "Summarise the findings.", answer, evidence=evidence, answer_format="long")
    assert verdict("quotation", it, context(LUCENCY)) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "This is an apical lordotic view of the chest.",  # about the examination, not the sentence before
        "It was compared with the prior study.",
    ],
)
def test_a_sentence_about_the_examination_points_at_nothing(sentence: str) -> None:
    sentences = ["Heart size is normal.", "Lungs are clear.", sentence]
    it = item("study_describe_all", "Summarise the findings.", f"Heart size is normal. {sentence}", evidence=[0, 2])
    assert verdict("quotation", it, context(sentences)) is None


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ("Xray Chest PA and Lateral", "quote_not_a_finding"),  # a technique line quoted as a finding
        # a sentence that opens like one and goes on to state findings
        ("Frontal and lateral views of the chest show normal size and configuration of the heart.", None),
        # short, but it names a finding
        ("Exam quality limited by hypoinflation and rotation.", None),
    ],
)
def test_a_quoted_technique_line_is_no_finding(first: str, expected: str | None) -> None:
    sentences = [first, "Degenerative changes in the thoracic spine."]
    it = item("study_describe_all", "What does this chest X-ray show?", " ".join(sentences), evidence=[0, 1])
    assert verdict("quotation", it, context(sentences)) == expected


# -- 5. the reason for the examination -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('The indication given for this examination was "Unavailable".', "indication_no_reason"),
        ("Unknown", "indication_no_reason"),
        ("Chest pain. The patient's lower abdomen was shielded for this exam", "indication_technique"),
        ('The indication given for this examination was "Chest pain".', None),
        ("Shortness of breath, unknown cause", None),
    ],
)
def test_an_indication_answer_gives_a_reason(answer: str, expected: str | None) -> None:
    it = item("indication", "Why was this chest X-ray taken?", answer, answer_format="short")
    assert verdict("indication_reason", it, context(["Lungs are clear."])) == expected
