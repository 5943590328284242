"""The checks of what an answer rests on (cxrvqa.validation.scope), on invented report sentences shaped like
the reviewed errors they target: evidence from another exam or explained as something else, a "no" a related
finding contradicts, a list that leaves out a stated finding, and each region of "both regions abnormal"."""

from __future__ import annotations

import ast

import pytest

from cxrvqa.errors import ResourceError
from cxrvqa.validation import scope
from cxrvqa.validation.validators import VALIDATORS
from tests.validation.test_independent import context, item, verdict


def test_the_checks_are_registered_as_content_checks_that_reject() -> None:
    assert {
        name: (VALIDATORS[name].strictness, VALIDATORS[name].kind)
        for name in ("evidence_scope", "related_absent", "list_completeness", "attribute_support")
    } == {
        "evidence_scope": ("reject", "content"),
        "related_absent": ("reject", "content"),
        "list_completeness": ("reject", "content"),
        "attribute_support": ("reject", "content"),
    }


def test_the_checks_share_no_code_with_the_extractor_or_the_programs() -> None:
    tree = ast.parse(open(scope.__file__, encoding="utf-8").read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    # the vocabulary (core) is all they share with the extractor and the programs
    assert {m for m in imported if m.startswith(("cxrvqa.extraction", "cxrvqa.qa"))} == set()
    assert "cxrvqa.core.vocab" in imported


# -- evidence scope -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "template_id", "question", "finding", "expected"),
    [
        (
            "On a previous outside CT scan, the right upper lobe was consolidated.",
            "finding_presence",
            "Is there consolidation?",
            "consolidation",
            "evidence_other_exam",
        ),
        # the finding of the prior study carried to this one (synthetic round B), or not
        (
            "The left lower lobe consolidation seen on the prior study has improved, with residual opacity.",
            "finding_presence",
            "Is there consolidation?",
            "consolidation",
            None,
        ),
        (
            "The left lower lobe consolidation was seen on the prior study.",
            "finding_presence",
            "Is there consolidation?",
            "consolidation",
            "evidence_other_exam",
        ),
        # not seen on the prior study: new on this one (synthetic round J)
        (
            "Tiny left apical pneumothorax, less than 5 mm, not definitely seen on prior.",
            "finding_presence",
            "Is there a pneumothorax?",
            "pneumothorax",
            None,
        ),
        (
            "Volume loss in the right upper lobe seen on CT is not as well demonstrated on radiography.",
            "finding_presence",
            "Is there volume loss?",
            "volume_loss",
            "evidence_other_exam",
        ),
        (
            "Right apical opacity which may be attributable to the sternoclavicular joint.",
            "finding_presence",
            "Is there lung opacity?",
            "lung_opacity",
            "evidence_not_the_finding",
        ),
        # LLM replay round 22
        (
            "Density in the left upper lung on PA XXXX XXXX represents superimposed bony and vascular structures.",
            "finding_presence",
            "Is there a density?",
            "density",
            "evidence_not_the_finding",
        ),
        (
            "Mildly prominent perihilar opacities, XXXX due to bronchovascular crowding.",
            "finding_presence",
            "Is there lung opacity?",
            "lung_opacity",
            None,
        ),
        (
            "Nodular density projecting over the right upper quadrant.",
            "finding_presence",
            "Is there a density?",
            "density",
            "evidence_outside_chest",
        ),
        (
            "Right upper lobe opacity is similar to the prior study.",
            "finding_presence",
            "Is there lung opacity?",
            "lung_opacity",
            None,
        ),
        (
            "New right lower lobe consolidation compared to the prior examination.",
            "finding_presence",
            "Is there consolidation?",
            "consolidation",
            None,
        ),
    ],
)
def test_evidence_scope_of_a_present_finding(
    sentence: str, template_id: str, question: str, finding: str, expected: str | None
) -> None:
    it = item(template_id, question, "yes", polarity=True, finding=finding)
    assert verdict("evidence_scope", it, context([sentence])) == expected


def test_an_abdominal_finding_may_rest_on_an_abdominal_sentence() -> None:
    it = item("finding_presence", "Are there surgical clips?", "yes", polarity=True, finding="surgical_clips")
    assert verdict("evidence_scope", it, context(["Right upper quadrant surgical clips."])) is None
    it = item(
        "region_findings",
        "List all findings in the lungs.",
        "surgical clips",
        answer_format="short",
        findings=["surgical_clips"],
        region="lungs",
    )
    assert verdict("evidence_scope", it, context(["Right upper quadrant surgical clips."])) == "evidence_outside_chest"
    # synthetic round O: the lower quadrants are outside the chest too
    chest = item(
        "region_findings",
        "What findings are in the chest?",
        "surgical clips",
        answer_format="short",
        findings=["surgical_clips"],
        region="chest",
    )
    sentence = "Surgical clips in the right lower quadrant are partially imaged."
    assert verdict("evidence_scope", chest, context([sentence])) == "evidence_outside_chest"


def test_one_sentence_about_this_exam_is_enough() -> None:
    ctx = context(["Right upper lobe consolidation.", "On the outside CT, the right upper lobe was consolidated."])
    it = item(
        "finding_presence", "Is there consolidation?", "yes", polarity=True, finding="consolidation", evidence=[0, 1]
    )
    assert verdict("evidence_scope", it, ctx) is None


# -- related findings of an absent one ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        (["The lungs are otherwise clear.", "Stable scarring of the left mid lung."], "related_present"),
        (["The lungs are clear.", "Calcified granuloma in the right upper lobe."], "related_present"),
        (["The lungs are clear.", "Multiple calcified splenic granulomas."], None),
        (["The lungs are clear.", "No calcified granuloma."], None),
        (["The lungs are clear.", "Degenerative changes of the spine."], None),
    ],
)
def test_an_absent_lung_opacity_and_a_stated_granuloma_or_scar(sentences: list[str], expected: str | None) -> None:
    it = item("finding_presence", "Is there lung opacity?", "no", polarity=False, finding="lung_opacity")
    assert verdict("related_absent", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        (["Mediastinal drain removed.", "Left pleural drain remains."], "related_present"),
        (["Mediastinal drain removed.", "No pneumothorax."], None),
    ],
)
def test_an_absent_surgical_drain_and_a_pleural_drain_that_remains(sentences: list[str], expected: str | None) -> None:
    """Synthetic rounds K, N, S: "Is a surgical drain excluded?" "yes" while a pleural drain remains, read wrong."""
    it = item("finding_ruled_out", "Is a surgical drain excluded?", "yes", polarity=True, finding="surgical_drain")
    assert verdict("related_absent", it, context(sentences)) == expected


def test_a_distractor_counts_as_claimed_absent() -> None:
    ctx = context(["Mild apical scarring.", "Thoracic spondylosis."])
    it = item(
        "finding_choice",
        "Which of the following findings is present?",
        "spondylosis",
        options=["atelectasis", "spondylosis", "pneumonia", "lung opacity"],
        answer_format="multiple_choice",
        evidence=[1],
        finding="spondylosis",
    )
    assert verdict("related_absent", it, ctx) == "related_present"


# -- list completeness -------------------------------------------------------------------------------------
def _description(answer: str, findings: list[str], evidence: list[int]) -> dict:
    """A "What does this chest X-ray show?" item with this answer, its tagged findings and evidence sentences."""
    return item(
        "study_describe_all",
        "What does this chest X-ray show?",
        answer,
        answer_format="full_sentence",
        findings=findings,
        evidence=evidence,
    )


def test_a_study_description_must_name_every_stated_finding() -> None:
    ctx = context(["Small left pleural effusion.", "Moderate cardiomegaly.", "No pneumothorax."])
    it = _description("The chest X-ray shows a pleural effusion.", ["pleural_effusion"], [0])
    assert verdict("list_completeness", it, ctx) == "list_incomplete"
    it = _description(
        "The chest X-ray shows a pleural effusion and cardiomegaly.", ["pleural_effusion", "cardiomegaly"], [0, 1]
    )
    assert verdict("list_completeness", it, ctx) is None


def test_a_description_quoting_the_report_must_quote_every_stated_finding() -> None:
    """A description without tagged findings names what its own sentences state (round X8: "no abnormality")."""
    ctx = context(["The lungs are clear.", "Heart size is normal.", "There is a stable lucency in the right clavicle."])
    it = _description("The lungs are clear. Heart size is normal.", [], [0, 1])
    assert verdict("list_completeness", it, ctx) == "list_incomplete"
    it["answer"] = "The lungs are clear. Heart size is normal. There is a stable lucency in the right clavicle."
    assert verdict("list_completeness", it, ctx) is None


def test_a_description_quoting_the_sentence_of_an_untagged_finding_names_it() -> None:
    """Synthetic round I: the quoted aortic calcification is named though the item was tagged atherosclerosis only."""
    ctx = context(["Atherosclerotic calcification of the aortic arch.", "Diffuse osteopenia.", "Mild cardiomegaly."])
    it = _description(
        "Atherosclerotic calcification of the aortic arch. Diffuse osteopenia. Mild cardiomegaly.",
        ["atherosclerosis", "osteopenia", "cardiomegaly"],
        [0, 1, 2],
    )
    assert verdict("list_completeness", it, ctx) is None
    it["answer"] = "The chest X-ray shows atherosclerosis, osteopenia and cardiomegaly."
    assert verdict("list_completeness", it, ctx) == "list_incomplete"


def test_a_finding_after_a_removed_hedge_need_not_be_listed() -> None:
    """LLM replay round 18: "XXXX interstitial edema" may have been "possible interstitial edema"."""
    ctx = context(["Bilateral interstitial opacities and central vascular congestion XXXX interstitial edema."])
    it = _description(
        "The chest X-ray shows interstitial opacities and pulmonary vascular congestion.",
        ["interstitial_opacity", "pulmonary_congestion"],
        [0],
    )
    assert verdict("list_completeness", it, ctx) is None
    ctx = context(["Bilateral interstitial opacities and central vascular congestion with interstitial edema."])
    assert verdict("list_completeness", it, ctx) == "list_incomplete"


def test_a_quoting_description_names_a_finding_where_the_report_places_it() -> None:
    """LLM replay round 17: "Degenerative left glenohumeral osteoarthritis." quoted, the spine's degenerative disease
    left out; a list in the template's words is read part by part (LLM replay round 21: "degenerative changes in the
    spine" listed, those of the acromioclavicular joints left out)."""
    ctx = context(
        ["Clear lungs.", "Degenerative left glenohumeral osteoarthritis.", "Degenerative disease within the spine."]
    )
    it = _description(
        "Clear lungs. Degenerative left glenohumeral osteoarthritis.",
        ["degenerative_changes", "shoulder_degenerative_changes"],
        [0, 1],
    )
    assert verdict("list_completeness", it, ctx) == "list_incomplete"
    it["answer"] = "Clear lungs. Degenerative left glenohumeral osteoarthritis. Degenerative disease within the spine."
    assert verdict("list_completeness", it, ctx) is None
    it["answer"] = "The chest X-ray shows degenerative changes in the left shoulder."
    assert verdict("list_completeness", it, ctx) == "list_incomplete"
    it["answer"] = "The chest X-ray shows degenerative changes in the left shoulder and in the spine."
    assert verdict("list_completeness", it, ctx) is None


@pytest.mark.parametrize(
    ("answer", "findings", "expected"),
    [
        (
            "The chest X-ray shows degenerative changes of the thoracic spine.",
            ["degenerative_changes"],
            "list_incomplete",
        ),
        (
            "The chest X-ray shows degenerative changes and sternotomy wires.",
            ["degenerative_changes", "sternotomy_wires"],
            None,
        ),
    ],
)
def test_an_abnormality_list_names_a_stated_operation(answer: str, findings: list[str], expected: str | None) -> None:
    """Round G2: "postoperative changes consistent with CABG" left out of the list of abnormal findings."""
    ctx = context(
        ["Heart size is normal with postoperative changes consistent with CABG.", "Degenerative changes in the spine."]
    )
    it = item(
        "study_abnormalities",
        "Which abnormal findings does this image show?",
        answer,
        polarity=True,
        answer_format="full_sentence",
        findings=findings,
        evidence=[1],
    )
    assert verdict("list_completeness", it, ctx) == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("There are postsurgical clips in the right upper quadrant.", "list_incomplete"),
        ("An indwelling catheter from the left has its tip at the cavoatrial junction.", None),  # a device
    ],
)
def test_an_abnormality_list_names_surgical_material(extra: str, expected: str | None) -> None:
    """Rules rounds: the study's abnormal findings listed without the clips the report notes (4 of 5 readers)."""
    ctx = context(["The lungs are clear.", "Moderate degenerative changes in the thoracic spine.", extra])
    it = item(
        "study_abnormalities",
        "Which abnormal findings does this image show?",
        "The chest X-ray shows degenerative changes of the thoracic spine.",
        polarity=True,
        answer_format="full_sentence",
        findings=["thoracic_spine_degenerative_changes"],
        evidence=[1],
    )
    assert verdict("list_completeness", it, ctx) == expected


def test_a_bony_thorax_list_names_a_sternotomy() -> None:
    """LLM replay rounds 1, 5, 8: "degenerative changes" for a bony thorax with "sternotomy changes" (3 of 3)."""
    ctx = context(["Sternotomy changes.", "Degenerative changes of the thoracic spine."])
    it = item(
        "region_findings",
        "What findings are in the bony thorax?",
        "degenerative changes",
        answer_format="short",
        findings=["degenerative_changes"],
        evidence=[1],
        region="bony_thorax",
    )
    assert verdict("list_completeness", it, ctx) == "list_incomplete"
    it.update(answer="degenerative changes and sternotomy wires", findings=["degenerative_changes", "sternotomy_wires"])
    assert verdict("list_completeness", it, ctx) is None


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        (["calcified_granuloma"], None),  # what the density is said to be
        (["calcification"], None),  # the calcific density, said to be the granuloma
        (["hyperinflation"], "list_incomplete"),
    ],
)
def test_a_list_names_a_finding_by_what_the_report_says_it_is(listed: list[str], expected: str | None) -> None:
    """LLM replay rounds: "A calcific density in the left midlung zone XXXX represents a calcified granuloma"."""
    ctx = context(["A calcific density in the left midlung XXXX represents a calcified granuloma."])
    answer = "The chest X-ray shows " + " and ".join(f.replace("_", " ") for f in listed) + "."
    it = item(
        "study_describe_all",
        "What does this chest X-ray show?",
        answer,
        answer_format="full_sentence",
        findings=listed,
        evidence=[0],
    )
    assert verdict("list_completeness", it, ctx) == expected


def test_a_list_names_calcified_hilar_nodes_as_calcified_lymph_nodes() -> None:
    """`read_also_as`: "Calcified left hilar node." is the hilar finding and also calcified lymph nodes (LLM replay)."""
    ctx = context(["Heart size is normal.", "Calcified left hilar node."])
    it = _description("The chest X-ray shows calcified lymph nodes.", ["lymph_node_calcification"], [1])
    assert verdict("list_completeness", it, ctx) is None


def test_a_region_list_counts_only_what_the_report_places_there() -> None:
    ctx = context(["Mild cardiomegaly.", "Cholecystectomy clips.", "Right lower lobe atelectasis."])
    it = item(
        "region_findings",
        "What findings are in the heart?",
        "cardiomegaly",
        answer_format="short",
        findings=["cardiomegaly"],
        evidence=[0],
        region="heart",
    )
    assert verdict("list_completeness", it, ctx) is None
    it = item(
        "region_findings",
        "What findings are in the lungs?",
        "cardiomegaly",
        answer_format="short",
        findings=["cardiomegaly"],
        evidence=[0],
        region="lungs",
    )
    assert verdict("list_completeness", it, ctx) == "list_incomplete"


# -- both regions --------------------------------------------------------------------------------------------
def test_both_regions_abnormal_needs_a_finding_in_each() -> None:
    """Hilar nodes enlarge a hilum (hilar_enlargement, in the lung tree): the mediastinum is no site of it."""
    ctx = context(["Stable 1.5 cm nodule in the left mid lung.", "Stable left hilar lymphadenopathy."])
    it = item(
        "regions_both_abnormal",
        "Do both the left lung and the mediastinum show abnormalities?",
        "yes",
        polarity=True,
        findings=["nodule", "hilar_enlargement"],
        evidence=[0, 1],
        region_a="left_lung",
        region_b="mediastinum",
    )
    assert verdict("location_support", it, ctx) == "region_not_a_site"


# -- the rules file ------------------------------------------------------------------------------------------
def test_an_unknown_finding_in_the_rules_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    data = scope.rules().data
    monkeypatch.setitem(data, "absent_conflicts", {"lung_opacity": {"findings": ["dragon"], "region": "lungs"}})
    scope.scope_rules.cache_clear()
    try:
        with pytest.raises(ResourceError, match=r"absent_conflicts.lung_opacity: not in the vocabulary: \['dragon'\]"):
            scope.scope_rules()
    finally:
        monkeypatch.undo()
        scope.scope_rules.cache_clear()


# -- change and severity -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "answer", "expected"),
    [
        ("Increased interstitial markings.", "worsened", "change_not_temporal"),
        ("Hyperexpansion of the lungs and decreased peripheral vascular markings.", "improved", "change_not_temporal"),
        ("Increased interstitial markings since the prior study.", "worsened", None),
        ("Stable left pleural effusion.", "improved", "change_not_stated"),
        ("Stable left pleural effusion.", "unchanged", None),
        ("Decreased left pleural effusion compared to the prior examination.", "improved", None),
        # a change over time by its tense; nearly gone is better (synthetic round C)
        ("Left pleural effusion has slightly decreased.", "improved", None),
        ("Decreasing small left pleural effusion.", "improved", None),
        ("Left pleural effusion has nearly resolved.", "improved", None),
        ("Left pleural effusion has nearly resolved.", "worsened", "change_not_stated"),
        # the change is another clause's subject's (round AC)
        (
            "Small left pleural effusion, mediastinal contours appear similar to prior.",
            "unchanged",
            "change_not_stated",
        ),
        ("Small left pleural effusion, similar to prior.", "unchanged", None),
        ("Stable small left pleural effusion, and the heart is enlarged.", "unchanged", None),
        # a change only hedged is no sure change (synthetic rounds K, P, S)
        ("Left pleural effusion, likely increased from prior.", "worsened", "change_hedged"),
        ("Left pleural effusion, possibly mildly increased since the prior study.", "worsened", "change_hedged"),
        ("Left pleural effusion is stable to slightly increased from prior.", "worsened", "change_hedged"),
        ("Left pleural effusion is stable to slightly increased from prior.", "unchanged", None),
        ("Left pleural effusion has increased, likely from fluid overload.", "worsened", None),
        # or the object's of a verb of showing (round BE)
        (
            "Views with a small left pleural effusion show an unchanged cardiac silhouette.",
            "unchanged",
            "change_not_stated",
        ),
    ],
)
def test_a_change_must_be_worded_as_a_change(sentence: str, answer: str, expected: str | None) -> None:
    finding = (
        "pleural_effusion"
        if "effusion" in sentence
        else "hyperinflation"
        if "hyperexpansion" in sentence.lower()
        else "prominent_lung_markings"
    )
    it = item(
        "finding_change", "How has it changed since the prior study?", answer, answer_format="short", finding=finding
    )
    assert verdict("attribute_support", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "The cardiac silhouette is enlarged, accentuated by AP technique, but likely increased from prior.",
            "change_hedged",
        ),
        ("The cardiac silhouette is enlarged and has increased from prior.", None),
    ],
)
def test_the_findings_own_words_are_no_change_word(sentence: str, expected: str | None) -> None:
    """Synthetic round S: "enlarged" names the cardiomegaly; the change is only "likely increased"."""
    it = item(
        "finding_change",
        "How has it changed since the prior study?",
        "worsened",
        answer_format="short",
        finding="cardiomegaly",
    )
    assert verdict("attribute_support", it, context([sentence, "Cardiomegaly."])) == expected


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ("Small left pleural effusion appears unchanged.", "change_ambiguous"),
        ("Small left pleural effusion appears smaller.", None),  # the same course on both sides
        ("Small bilateral pleural effusions, unchanged.", None),  # not the other side
    ],
)
def test_a_change_of_two_instances_with_different_courses_is_ambiguous(second: str, expected: str | None) -> None:
    """Rules rounds and LLM replay round 7: "the pleural effusion" improved where the left one is unchanged."""
    ctx = context(["Moderate sized right pleural effusion appears smaller than the prior study.", second])
    it = item(
        "finding_change",
        "What is the interval change of the pleural effusion?",
        "improved",
        answer_format="short",
        finding="pleural_effusion",
        evidence=[0, 1],
    )
    assert verdict("attribute_support", it, ctx) == expected


@pytest.mark.parametrize(
    ("sentence", "answer", "expected"),
    [
        ("Moderate severe hyperexpansion of the lungs.", "severe", "severity_range_cut"),
        ("Mild to moderate left pleural effusion.", "mild to moderate", None),
        ("Mild left pleural effusion.", "moderate", "severity_not_stated"),
        ("Large left pleural effusion.", "severe", None),
        ("Small left pleural effusion.", "mild", None),
    ],
)
def test_a_severity_must_be_worded_in_the_evidence(sentence: str, answer: str, expected: str | None) -> None:
    finding = "hyperinflation" if "hyperexpansion" in sentence else "pleural_effusion"
    it = item("finding_severity", "How severe is it?", answer, answer_format="short", finding=finding)
    assert verdict("attribute_support", it, context([sentence])) == expected


def test_a_place_attached_to_a_neighbour_does_not_put_a_finding_in_a_region_it_cannot_be() -> None:
    ctx = context(["Mild cardiomegaly and small left pleural effusion."])
    it = item(
        "region_findings",
        "What findings are in the pleura?",
        "pleural effusion",
        answer_format="short",
        findings=["pleural_effusion"],
        region="pleura",
    )
    assert verdict("list_completeness", it, ctx) is None
