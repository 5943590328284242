"""The study view the answer programs read: merged presence per finding, derived parents, leaves, regions."""

from __future__ import annotations

import pytest

from cxrvqa.core.scene_graph import ATTRIBUTED_TO_ARTIFACT, DEID_ADJACENT, OTHER_EXAM
from cxrvqa.qa.study import MIXED, region_ancestors, region_subtree, study_view
from tests.qa import graph, observation, view_from_spec


def view(*observations, sentences=("s0", "s1", "s2", "s3")):
    return study_view(graph("s1", list(sentences), list(observations)), "p1", ())


def test_present_wins_over_a_negated_mention_and_keeps_only_its_own_places() -> None:
    study = view(
        observation(1, "pleural_effusion", "absent", regions=["left_pleura"], evidence=[0]),
        observation(
            2,
            "pleural_effusion",
            "present",
            regions=["right_pleura"],
            laterality="right",
            severity="mild",
            evidence=[1],
        ),
        observation(
            3,
            "pleural_effusion",
            "present",
            regions=["right_costophrenic_angle"],
            laterality="right",
            severity="moderate",
            evidence=[2],
        ),
    )
    fact = study.facts["pleural_effusion"]
    assert (fact.presence, fact.derived, fact.regions, fact.lateralities, fact.severity, fact.evidence) == (
        "present",
        False,
        ["right_pleura", "right_costophrenic_angle"],
        ["right"],
        "moderate",
        [1, 2],
    )
    assert study.presence("pleural_effusion") == "present"


def test_uncertain_wins_over_absent() -> None:
    study = view(
        observation(1, "pneumonia", "absent", evidence=[0]),
        observation(2, "pneumonia", "uncertain", change="new", evidence=[1]),
    )
    fact = study.facts["pneumonia"]
    assert (fact.presence, fact.change, fact.evidence) == ("uncertain", "new", [1])
    assert "lung_opacity" not in study.facts  # only a present finding implies its parents


def test_a_present_finding_makes_its_parents_present() -> None:
    study = view(
        observation(1, "lung_opacity", "absent", evidence=[0]),
        observation(2, "pneumonia", "present", regions=["right_lower_lobe"], laterality="right", evidence=[1]),
    )
    opacity = study.facts["lung_opacity"]
    assert (opacity.presence, opacity.derived, opacity.evidence) == ("present", True, [1])
    assert study.facts["pneumonia"].derived is False
    assert [f.finding for f in study.leaf_present()] == ["pneumonia"]


def test_new_parent_copies_place_and_side() -> None:
    study = view(observation(1, "mass", regions=["left_upper_lobe"], laterality="left", evidence=[0]))
    assert sorted(study.facts) == ["lung_lesion", "lung_opacity", "mass"]
    for parent in ("lung_lesion", "lung_opacity"):
        fact = study.facts[parent]
        assert (fact.presence, fact.derived, fact.regions, fact.lateralities, fact.evidence) == (
            "present",
            True,
            ["left_upper_lobe"],
            ["left"],
            [0],
        )
    assert study.facts["mass"].category == "lung"


def test_a_stated_finding_refined_by_a_present_child_is_not_a_leaf() -> None:
    study = view(
        observation(1, "atelectasis", evidence=[0]),
        observation(2, "linear_atelectasis", regions=["left_base"], evidence=[1]),
    )
    assert study.facts["atelectasis"].derived is True
    assert [f.finding for f in study.leaf_present()] == ["linear_atelectasis"]


def test_devices_are_present_but_not_abnormal() -> None:
    study = view(
        observation(1, "endotracheal_tube", regions=["trachea"], evidence=[0]),
        observation(2, "cardiomegaly", regions=["heart"], evidence=[1]),
    )
    assert sorted(f.finding for f in study.present()) == [
        "cardiomegaly",
        "endotracheal_tube",
        "enlarged_cardiomediastinum",
        "support_devices",
        "tube",
    ]
    assert sorted(f.finding for f in study.present(abnormal_only=True)) == [
        "cardiomegaly",
        "enlarged_cardiomediastinum",
    ]
    assert [f.finding for f in study.leaf_present()] == ["cardiomegaly"]


def test_unresolved_observations_are_ignored() -> None:
    unresolved = {**observation(1, "nodule", evidence=[0]), "finding": None, "unresolved_text": "a blob"}
    assert view(unresolved).facts == {}


def test_closed_world_presence() -> None:
    """Closed-world, an unmentioned finding is absent only where the report rules out a kind it belongs to,
    and only when it cannot be chronic."""
    study = view(observation(1, "pneumothorax", "absent", evidence=[0]))
    assert (study.presence("edema"), study.presence("edema", closed_world=True)) == (None, None)
    assert study.presence("pneumothorax", closed_world=True) == "absent"
    clear = view(observation(1, "lung_opacity", "absent", evidence=[0]))
    assert clear.presence("aspiration", closed_world=True) == "absent"  # a kind of lung opacity, acute
    assert clear.presence("nodule", closed_world=True) is None  # may be chronic: not addressed


def test_evidence_text_skips_deidentified_sentences() -> None:
    study = view(sentences=("Small left effusion.", "No XXXX.", "No pneumothorax."))
    assert study.evidence_text([2, 0, 2]) == "No pneumothorax. Small left effusion."
    assert study.evidence_text([0, 1]) is None
    assert study.evidence_text([]) is None
    assert study.evidence_text([7]) is None


@pytest.mark.parametrize(
    "slip",
    [
        "Sequela of prior granulomatous disease Lung volumes are low.",
        "Lungs are clear no effusions or edema",
        "The otherwise lungs are clear.",
        "an retrocardiac opacity.",
        "There mild changes.",
        "mediastinum.There is none.",
        # round W
        "Heart size and mediastinal contours appear normal limits.",
        "Minimal atelectasis the left lung base.",
        "There is severe degenerative changes.",
        "No focal infiltrates or effusions Abnormal density in the right hilum.",
        # round AE
        "Calcified granuloma are present.",
        "There is normal cardiomediastinal contours.",
        # round AJ
        "Deformity of multiple left anterior ribs are present from previous fractures.",
        "Patchy subsegmental atelectasis is seen bibasilar region.",
        "Normal heart size mediastinal contours.",
        # rounds up to BD
        "Heart size is normal in the lungs are clear.",
        "Heart size is normal the lungs are clear.",
        "The cardiomediastinal silhouette is within normal limits are in the pulmonary vasculature is normal.",
        "Lungs are expanded and clear airspace disease.",
        "No focal lung opacity, pleural effusion of pneumothorax.",
        "There no focal airspace opacities to suggest pneumonia.",
        "In the left lung base, there is a 9 mm nodule that not definitively calcified.",
        "Small residual left apical pneumothorax has increased slightly in size the prior exam.",
        "Bibasilar airspace disease, left worse right.",
    ],
)
def test_evidence_text_does_not_quote_a_slip(slip: str) -> None:
    study = view(sentences=(slip, "Result notification documented through Primordial."))
    assert study.evidence_text([0]) is None
    assert study.evidence_text([1]) == "Result notification documented through Primordial."


def test_evidence_text_ends_each_quoted_sentence_with_a_stop() -> None:
    """Round AJ: an impression's numbered items have no full stop ("1. Vascular congestion 2. Stable
    cardiomegaly"); quoted together they ran on as one sentence."""
    study = view(
        sentences=("Vascular congestion and diffuse interstitial edema", "Stable cardiomegaly", "Low lung volumes.")
    )
    assert (
        study.evidence_text([0, 1, 2])
        == "Vascular congestion and diffuse interstitial edema. Stable cardiomegaly. Low lung volumes."
    )


def test_evidence_text_does_not_give_an_anaphor_the_wrong_sentence() -> None:
    """Round BC: quoting each text once dropped the impression's repeat of "Dilated pulmonary arteries.", so "This
    may reflect pulmonary hypertension" followed the hyperinflation."""
    study = view(
        sentences=(
            "Dilated pulmonary arteries.",
            "Moderate hyperinflation of the lungs.",
            "Dilated pulmonary arteries.",
            "This may reflect pulmonary hypertension.",
        )
    )
    assert study.evidence_text([0, 1, 2, 3]) is None
    assert study.evidence_text([0, 2, 1]) == "Dilated pulmonary arteries. Moderate hyperinflation of the lungs."


def test_facts_in_region_take_the_subtree_and_skip_derived_parents() -> None:
    study = view(
        observation(1, "pneumonia", regions=["left_lower_lobe"], evidence=[0]),
        observation(2, "pleural_effusion", regions=["left_costophrenic_angle"], evidence=[1]),
        observation(3, "pneumothorax", "absent", regions=["right_pleura"], evidence=[2]),
    )
    assert [f.finding for f in study.facts_in_region("left_lung")] == ["pneumonia"]
    assert [f.finding for f in study.facts_in_region("lungs")] == ["pneumonia"]
    assert [f.finding for f in study.facts_in_region("pleura")] == ["pleural_effusion", "pneumothorax"]
    assert study.facts_in_region("right_lung") == []


def test_a_finding_one_mention_puts_down_to_an_artifact_is_not_committed_to() -> None:
    """Round AL: "6 mm nodular opacity in the right upper lobe" in the findings, "This may be artifactual secondary
    to overlapping vascular structures" of it in the impression: no present lung opacity, no present parent."""
    study = view(
        observation(1, "nodule", regions=["right_upper_lobe"], laterality="right", evidence=[0]),
        observation(2, "nodule", "uncertain", modifiers=[ATTRIBUTED_TO_ARTIFACT], evidence=[1]),
    )
    assert (study.facts["nodule"].presence, study.facts["nodule"].certainty) == ("uncertain", MIXED)
    assert "lung_opacity" not in study.facts and study.facts_in_region("right_lung") == [study.facts["nodule"]]


def test_a_parent_implied_beside_a_borderline_child_is_not_committed_to() -> None:
    """Rounds AI, AL: "Borderline heart size, improved mediastinal widening." is no enlarged cardiomediastinal
    silhouette for certain; the widening itself is present."""
    study = view(
        observation(1, "cardiomegaly", "uncertain", certainty="borderline", evidence=[0]),
        observation(2, "mediastinal_widening", change="improved", evidence=[0]),
    )
    parent = study.facts["enlarged_cardiomediastinum"]
    assert (parent.presence, parent.certainty, parent.derived) == ("uncertain", MIXED, True)
    assert study.facts["mediastinal_widening"].presence == "present"


@pytest.mark.parametrize(
    ("effusion", "cardiomegaly"), [("uncertain", "uncertain"), ("present", "present"), ("absent", "present")]
)
def test_an_enlarged_heart_beside_a_pericardial_effusion_only_hedged_is_undecided(
    effusion: str, cardiomegaly: str
) -> None:
    """Synthetic rounds N, Q, W: "Markedly enlarged cardiac silhouette, suspicious for pericardial effusion" is no sure
    cardiomegaly (finding_sites.yaml `doubted_by`); an effusion stated or ruled out leaves it as said."""
    study = view(
        observation(1, "cardiomegaly", severity="severe", evidence=[0]),
        observation(2, "pericardial_effusion", effusion, evidence=[0]),
    )
    fact = study.facts["cardiomegaly"]
    assert (fact.presence, fact.certainty) == (cardiomegaly, MIXED if cardiomegaly == "uncertain" else None)
    assert study.facts["enlarged_cardiomediastinum"].presence == "present"


def test_region_tree() -> None:
    assert region_ancestors("left_lower_lobe") == ("left_lung", "lungs", "chest")
    assert region_subtree("left_pleura") == frozenset({"left_pleura", "left_costophrenic_angle"})
    assert "lungs" not in region_subtree("left_lung") and "lingula" in region_subtree("left_lung")


def test_a_finding_one_sentence_states_and_another_hedges_is_not_committed_to() -> None:
    """Issue 15: "mildly enlarged" in the findings and "borderline cardiomegaly" in the impression: no
    question may treat it as present, nor as merely hedged."""
    study = view(
        observation(1, "cardiomegaly", evidence=[0]),
        observation(2, "cardiomegaly", "uncertain", evidence=[1]),
        sentences=("The heart is mildly enlarged.", "Borderline cardiomegaly."),
    )
    assert (study.facts["cardiomegaly"].presence, study.facts["cardiomegaly"].certainty) == ("uncertain", MIXED)


def test_a_granuloma_scar_or_hidden_opacity_leaves_lung_opacity_neither_present_nor_absent() -> None:
    """finding_sites.yaml `blurred_by`: readers split on whether a granuloma, a calcified nodule or a scar is a
    lung opacity, and "atelectasis versus scar" is an opacity either way, so "the lungs are clear" does not make
    it absent, nor does a calcified nodule make it present (a nodule that is not calcified does)."""
    clear = observation(1, "lung_opacity", "absent", evidence=[0])
    assert view(clear).facts["lung_opacity"].presence == "absent"
    calcified = view(observation(2, "calcified_nodule", regions=["right_upper_lobe"], evidence=[1]))
    assert calcified.facts["nodule"].presence == "present" and "lung_opacity" not in calcified.facts
    assert "lung_opacity" not in view(clear, observation(2, "calcified_nodule", evidence=[1])).facts
    assert view(observation(2, "nodule", evidence=[1])).facts["lung_opacity"].presence == "present"
    assert (
        "lung_opacity"
        not in view(clear, observation(2, "calcified_granuloma", regions=["left_lower_zone"], evidence=[1])).facts
    )
    assert (
        "lung_opacity"
        not in view(clear, observation(2, "atelectasis", "uncertain", certainty="differential", evidence=[1])).facts
    )
    assert "lung_opacity" not in view(clear, observation(2, "scarring", modifiers=[DEID_ADJACENT], evidence=[1])).facts
    assert view(clear, observation(2, "degenerative_changes", evidence=[1])).facts["lung_opacity"].presence == "absent"


def test_a_surgical_drain_removed_while_a_pleural_drain_remains_is_not_absent() -> None:
    """finding_sites.yaml `blurred_by` (synthetic rounds K, N, S): "Mediastinal drain removed. Left pleural drain
    remains" answered "Is a surgical drain excluded?" "yes", read wrong three times."""
    removed = observation(1, "surgical_drain", "absent", evidence=[0])
    assert view(removed).facts["surgical_drain"].presence == "absent"
    stays = observation(2, "chest_tube", laterality="left", evidence=[1])
    assert "surgical_drain" not in view(removed, stays).facts


def test_a_density_counts_only_where_the_report_places_it_in_the_lungs() -> None:
    """finding_sites.yaml `placed_only`: "bony density over the clavicle", "paratracheal density", "density in a
    piriform sinus" are no lung findings; "left basilar density" is one."""
    assert (
        "density"
        not in view(observation(1, "density", regions=["right_clavicle"], laterality="right", evidence=[0])).facts
    )
    assert "density" not in view(observation(1, "density", evidence=[0])).facts
    placed = view(observation(1, "density", regions=["left_base"], laterality="left", evidence=[0]))
    assert (placed.facts["density"].presence, placed.facts["lung_opacity"].presence) == ("present", "present")
    assert view(observation(1, "density", "absent", evidence=[0])).facts["density"].presence == "absent"
    assert (
        "lucency"
        not in view(observation(1, "lucency", regions=["right_clavicle"], laterality="right", evidence=[0])).facts
    )  # a lucency in a bone


def test_a_finding_stated_present_nowhere_in_particular_and_denied_somewhere_is_mixed() -> None:
    """ "Resolving ... pulmonary venous hypertension" beside "bibasilar ... venous engorgement have resolved": the
    report says both; "no left effusion" beside a right one says nothing against it."""
    both = view(
        observation(1, "pulmonary_congestion", evidence=[0]),
        observation(2, "pulmonary_congestion", "absent", regions=["bases"], laterality="bilateral", evidence=[1]),
    )
    assert (both.facts["pulmonary_congestion"].presence, both.facts["pulmonary_congestion"].certainty) == (
        "uncertain",
        MIXED,
    )
    sides = view(
        observation(1, "pleural_effusion", regions=["right_pleura"], laterality="right", evidence=[0]),
        observation(2, "pleural_effusion", "absent", laterality="left", evidence=[1]),
    )
    assert sides.facts["pleural_effusion"].presence == "present"


def test_a_finding_beside_a_deidentified_word_keeps_its_regions_from_being_called_normal() -> None:
    """Round W: "scattered calcified granulomas throughout both lung XXXX. Lungs are clear bilaterally" answered
    "Are there lung findings? no": the granulomas are there, unread, so the lungs are not declared normal (the
    heart, where a granuloma cannot be, still is)."""
    statements = [
        {"id": "lungs_clear", "sentence_id": 1, "regions": ["lungs"]},
        {"id": "heart_normal", "sentence_id": 2, "regions": ["heart"]},
    ]
    hidden = observation(1, "calcified_granuloma", regions=["lungs"], modifiers=[DEID_ADJACENT], evidence=[0])
    seen = study_view(graph("s1", ["s0", "s1", "s2"], [hidden], statements=statements), "p1", ())
    assert (
        seen.is_normal_region("lungs"),
        seen.is_normal_region("left_lower_zone"),
        seen.is_normal_region("heart"),
    ) == (False, False, True)
    read = study_view(graph("s1", ["s0", "s1", "s2"], [{**hidden, "modifiers": []}], statements=statements), "p1", ())
    assert read.is_normal_region("lungs")


def test_a_study_description_quotes_no_technique_line_before_an_anaphor() -> None:
    """Round AT: "Xray Chest PA and Lateral" (the technique) before "This is an apical lordotic view the chest."
    was quoted as a finding; the sentence an anaphor speaks of is a finding section's."""
    from tests.qa import items, template

    built = graph(
        "s1",
        [
            "Xray Chest PA and Lateral",
            "This is an apical lordotic view the chest.",
            "Degenerative changes in the spine.",
        ],
        [
            observation(1, "technical_quality_limited", evidence=[1]),
            observation(2, "degenerative_changes", evidence=[2]),
        ],
    )
    built["sentences"][0]["section"] = "technique"
    view = study_view(built, "p1")
    assert view.finding_sentences == frozenset({1, 2})
    answers = {i["answer"] for i in items(view, template("study_describe_all"))}
    assert answers and not any("PA and Lateral" in a for a in answers)


@pytest.mark.parametrize(("presence", "read_all"), [("present", False), ("absent", True)])
def test_a_finding_read_as_another_examinations_leaves_the_study_not_understood(presence: str, read_all: bool) -> None:
    """Round AU: "Stable right paratracheal prominence, consistent with known calcified lymph node, seen on prior CT
    chest" was left out of a study description that then read as normal."""
    built = graph(
        "s1",
        ["Lungs are clear.", "Stable right paratracheal prominence, seen on prior CT chest."],
        [observation(1, "paratracheal_widening", presence, evidence=[1], modifiers=[OTHER_EXAM])],
        statements=[{"id": "lungs_clear", "sentence_id": 0, "regions": ["lungs"]}],
    )
    assert study_view(built, "p1").read_all is read_all


@pytest.mark.parametrize(("presence", "read_all"), [("present", False), ("uncertain", False), ("absent", True)])
def test_a_finding_the_vocabulary_does_not_name_leaves_the_study_not_understood(presence: str, read_all: bool) -> None:
    """Synthetic rounds W and X: the LLM backend kept "Bilateral cervical ribs are present" as an unnamed finding,
    and the study was answered "There is no abnormality"; one denied says nothing that is there."""
    built = graph(
        "s1",
        ["Lungs are clear.", "Bilateral cervical ribs are present."],
        [
            {
                **observation(1, "nodule", presence, evidence=[1]),
                "finding": None,
                "category": None,
                "name": "cervical ribs",
            }
        ],
        statements=[{"id": "lungs_clear", "sentence_id": 0, "regions": ["lungs"]}],
    )
    assert study_view(built, "p1").read_all is read_all
    assert study_view(graph("s1", ["Lungs are clear."], [], statements=built["statements"]), "p1").read_all


@pytest.mark.parametrize(
    ("sentence", "observations", "unnamed"),
    [
        # cited only by a finding ruled out: the change is stated and named by nothing
        (
            "Heart size is normal with postoperative changes consistent with CABG.",
            [{"finding": "cardiomegaly", "presence": "absent"}],
            True,
        ),
        ("There are stable postoperative changes of left upper lobectomy.", [], True),
        # a finding of the study names what the operation left
        ("The patient is status post median sternotomy.", [{"finding": "sternotomy_wires"}], False),
        ("Heart size is normal.", [{"finding": "cardiomegaly", "presence": "absent"}], False),
    ],
)
def test_an_operations_changes_no_finding_names_are_marked(sentence: str, observations: list, unnamed: bool) -> None:
    spec = {"sentences": [sentence], "observations": [{**o, "evidence": [0]} for o in observations]}
    assert view_from_spec(spec).unnamed_change is unnamed


@pytest.mark.parametrize(
    ("general", "places"),
    [
        # "Interstitial prominence ... Kerley B lines are seen at the right lung base": the prominence is not placed
        (observation(1, "interstitial_opacity", name="interstitial prominence", evidence=[0]), []),
        # the same clause placed it only through the sign's words ("Interstitial prominence with Kerley B lines at the
        # bases"): not placed by its own
        (
            observation(
                1,
                "interstitial_opacity",
                name="Interstitial prominence",
                regions=["bases"],
                laterality="bilateral",
                modifiers=["place_from_clause"],
                evidence=[1],
            ),
            [],
        ),
        # a side is no region ("bilateral interstitial opacities ... Kerley B lines at the bases": round AB)
        (observation(1, "interstitial_opacity", name="bilateral interstitial opacities", laterality="bilateral"), []),
        # the finding placed by its own words: the sign's place stays
        (
            observation(
                1,
                "interstitial_opacity",
                name="right basilar interstitial opacities",
                regions=["right_base"],
                laterality="right",
                evidence=[0],
            ),
            ["right_base"],
        ),
        (None, ["right_base"]),  # the sign alone places the finding
    ],
)
def test_a_signs_place_is_the_findings_only_where_the_report_names_the_finding_nowhere_else(
    general: dict | None, places: list[str]
) -> None:
    """finding_sites.yaml `signs` (synthetic rounds Z, AA and AB: "On which side are the interstitial opacities?"
    "right" from "Kerley B lines at the right lung base" beside an unplaced interstitial prominence, read wrong)."""
    sign = observation(
        2, "interstitial_opacity", name="Kerley B lines", regions=["right_base"], laterality="right", evidence=[1]
    )
    fact = view(*([general] if general else []), sign).facts["interstitial_opacity"]
    assert fact.regions == places


@pytest.mark.parametrize(
    ("mentions", "one"),
    [
        ([("Calcified right hilar lymph node", "right", 0)], True),
        # the same node in the findings and the impression
        ([("Stable calcified right hilar lymph node", "right", 0), ("Calcified right hilar node", "right", 1)], True),
        ([("Calcified right hilar lymph node", "right", 0), ("calcified hilar nodes", "right", 1)], False),
        ([("Right hilar calcifications", "right", 0)], False),  # no count given: the vocabulary's plural name
        # one on each side, two in one sentence: two nodes (review of session 34)
        ([("Calcified right hilar lymph node", "right", 0), ("Calcified left hilar lymph node", "left", 1)], False),
        ([("calcified right hilar lymph node", "right", 0), ("calcified right paratracheal node", "right", 0)], False),
    ],
)
def test_a_plural_named_finding_the_report_names_one_of_is_one(mentions: list[tuple], one: bool) -> None:
    """findings.yaml `one`: "calcified hilar lymph nodes" for a single node misstates the count (IU development
    rounds and synthetic round AB, 3 items read wrong)."""
    observations = [
        observation(i, "hilar_calcification", name=name, laterality=side, evidence=[sentence])
        for i, (name, side, sentence) in enumerate(mentions)
    ]
    assert view(*observations).facts["hilar_calcification"].one is one
