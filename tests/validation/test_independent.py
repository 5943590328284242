"""The independent content checks (cxrvqa.validation.independent): one failing and one passing case per
check, with exact reason codes. Report sentences are invented; items are written by hand (not by the
answer programs), so that the checks are tested on their own."""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cxrvqa.errors import ResourceError

from cxrvqa.qa.programs import PROGRAMS
from cxrvqa.qa.templates import builtin_templates
from cxrvqa.validation import independent
from cxrvqa.validation.validators import VALIDATORS, ImageFacts, ValidationContext
from tests.qa import settings, view_from_spec

CHECKS = ("second_reading", "location_support", "negative_support", "question_sense", "grammar_agreement")


def context(sentences: list[str], indication: str | None = None) -> ValidationContext:
    view = view_from_spec({"sentences": sentences, "observations": [], "indication": indication})
    every = settings(*builtin_templates())
    images = {i.image_id: ImageFacts(i.png_cols, i.png_rows, i.view_plane) for i in view.images}
    return ValidationContext(images, {t.id: (t, v) for t, v in every.templates}, every, view)


def item(
    template_id: str,
    question: str,
    answer: str,
    *,
    polarity: bool | None = None,
    evidence: list[int] | None = None,
    findings: list[str] | None = None,
    regions: list[str] | None = None,
    options: list[str] | None = None,
    answer_format: str = "yes_no",
    question_type: str = "yes_no",
    **arguments: str,
) -> dict[str, Any]:
    return {
        "item_id": "qa-test",
        "study_id": "s1",
        "patient_id": "p1",
        "image_id": "img1",
        "view_plane": "frontal",
        "template_id": template_id,
        "question_type": question_type,
        "strategy": "finding",
        "skill": "presence",
        "answer_format": answer_format,
        "question": question,
        "answer": answer,
        "options": options,
        "correct_option": "A" if options else None,
        "findings": findings or list(arguments.values())[:1],
        "regions": regions or [],
        "boxes": [],
        "evidence_ids": evidence if evidence is not None else [0],
        "arguments": json.dumps(arguments),
        "polarity": polarity,
        "split": "train",
    }


def verdict(name: str, it: dict[str, Any], ctx: ValidationContext) -> str | None:
    """The check's reason code, None when it passes."""
    found = VALIDATORS[name].check(it, ctx)
    assert found.ok == (found.reason is None), found
    return found.reason


def test_the_checks_are_registered_at_their_strictness() -> None:
    assert {name: (VALIDATORS[name].strictness, VALIDATORS[name].kind) for name in CHECKS} == {
        "second_reading": ("reject", "content"),
        "location_support": ("reject", "content"),
        "negative_support": ("reject", "content"),
        "question_sense": ("reject", "content"),
        "grammar_agreement": ("warn", "content"),
    }


def test_claims_name_registered_answer_programs() -> None:
    assert set(independent.rules().data["claims"]) <= set(PROGRAMS)


def test_the_checks_share_no_code_with_the_extractor_or_the_programs() -> None:
    tree = ast.parse(open(independent.__file__, encoding="utf-8").read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    # the vocabulary (core) is all they share with the extractor and the programs
    assert {m for m in imported if m.startswith(("cxrvqa.extraction", "cxrvqa.qa"))} == set()
    assert "cxrvqa.core.vocab" in imported
    assert "extraction_rules" not in independent.RULES_FILE


# -- 1. second reading --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "template_id", "question", "answer", "polarity", "finding", "expected"),
    [
        (
            "Patchy left basilar opacity, possibly pneumonia.",
            "finding_presence",
            "Is there pneumonia?",
            "yes",
            True,
            "pneumonia",
            "second_reading_hedged",
        ),
        (
            "Right basilar atelectasis versus scarring.",
            "finding_presence",
            "Is there atelectasis?",
            "yes",
            True,
            "atelectasis",
            "second_reading_differential",
        ),
        # "Question X": X is questioned (round BF)
        (
            "Question small right pleural effusion.",
            "finding_presence",
            "Is there a pleural effusion?",
            "yes",
            True,
            "pleural_effusion",
            "second_reading_hedged",
        ),
        (
            "Borderline cardiomegaly.",
            "finding_presence",
            "Is there cardiomegaly?",
            "yes",
            True,
            "cardiomegaly",
            "second_reading_borderline",
        ),
        (
            "There is no pleural effusion.",
            "finding_presence",
            "Is there a pleural effusion?",
            "yes",
            True,
            "pleural_effusion",
            "second_reading_negated",
        ),
        (
            "Small right pleural effusion.",
            "finding_ruled_out",
            "Has a pleural effusion been ruled out?",
            "yes",
            True,
            "pleural_effusion",
            "second_reading_affirmed",
        ),
        (
            "The trachea is midline.",
            "finding_presence",
            "Is there a nodule?",
            "yes",
            True,
            "nodule",
            "second_reading_not_found",
        ),
        (
            "Stable emphysematous XXXX.",
            "finding_presence",
            "Is there emphysema?",
            "yes",
            True,
            "emphysema",
            "second_reading_deidentified",
        ),
        # a finding whose last word wants no head noun is there (LLM replay rounds 1-4: read correct)
        (
            "Stable sternotomy XXXX.",
            "finding_presence",
            "Are there sternotomy wires?",
            "yes",
            True,
            "sternotomy_wires",
            None,
        ),
        (
            "Small right pleural effusion.",
            "finding_hedged",
            "Is the report uncertain about a pleural effusion?",
            "yes",
            True,
            "pleural_effusion",
            "second_reading_certain",
        ),
        (
            "Small left pleural effusion.",
            "finding_presence",
            "Is there a pleural effusion?",
            "yes",
            True,
            "pleural_effusion",
            None,
        ),
        (
            "No pneumothorax, effusion or consolidation.",
            "finding_presence",
            "Is there a pneumothorax?",
            "no",
            False,
            "pneumothorax",
            None,
        ),
        # the finding after "over" is the one a preference puts second (round AN); a place after it is no finding
        (
            "Streaky bibasilar opacities, XXXX subsegmental atelectasis over infiltrate.",
            "finding_presence",
            "Is there an infiltrate?",
            "yes",
            True,
            "infiltrate",
            "second_reading_hedged",
        ),
        # a reading conditional on the clinical picture is hedged (round AW)
        (
            "In the appropriate clinical setting this appearance is compatible with pneumonia.",
            "finding_presence",
            "Does this chest X-ray show pneumonia?",
            "yes",
            True,
            "pneumonia",
            "second_reading_hedged",
        ),
        (
            "Streaky infiltrate over the right lung base.",
            "finding_presence",
            "Is there an infiltrate?",
            "yes",
            True,
            "infiltrate",
            None,
        ),
        # a disease named as the patient's past is no current finding; its mark on the film is (LLM replay round 19)
        (
            "Right apical cavitary lesion consistent with history of tuberculosis without active infection.",
            "finding_presence",
            "Is tuberculosis present?",
            "yes",
            True,
            "tuberculosis",
            "second_reading_historical",
        ),
        (
            "Scarring from prior pneumonia.",
            "finding_ruled_out",
            "Has pneumonia been ruled out?",
            "yes",
            True,
            "pneumonia",
            None,
        ),
        (
            "Right apical cavitary lesion consistent with history of tuberculosis.",
            "finding_presence",
            "Is there cavitation?",
            "yes",
            True,
            "cavitation",
            None,
        ),
        # prominent vessels are congestion to readers (LLM replay round 18, read_also_as)
        (
            "Stable cardiomegaly with vascular prominence without overt edema.",
            "finding_presence",
            "Is there pulmonary vascular congestion?",
            "yes",
            True,
            "pulmonary_congestion",
            None,
        ),
    ],
)
def test_second_reading(
    sentence: str, template_id: str, question: str, answer: str, polarity: bool, finding: str, expected: str | None
) -> None:
    it = item(template_id, question, answer, polarity=polarity, finding=finding)
    assert verdict("second_reading", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "finding", "status"),
    [
        # the shadow whose cause the differential weighs is stated (round AT)
        ("Left basilar airspace opacity atelectasis versus pneumonitis.", "airspace_disease", "affirmed"),
        ("Left basilar airspace opacity atelectasis versus pneumonitis.", "atelectasis", "differential"),
        (
            "Bibasilar atelectasis/airspace disease with moderate bilateral pleural effusions.",
            "pleural_effusion",
            "affirmed",
        ),
        # a list of candidates all are
        ("Atelectasis, pneumonia or aspiration.", "atelectasis", "differential"),
        # a hedge weighs its candidates up to the comma that closes their "or" list (round BD)
        (
            "Densities in the lingula may be compatible with scarring or atelectasis, scattered interstitial markings.",
            "prominent_lung_markings",
            "affirmed",
        ),
        ("Densities may be compatible with scarring or atelectasis, scattered markings.", "atelectasis", "hedged"),
        ("May represent atelectasis or infiltrate, or less likely aspiration.", "aspiration", "hedged"),
        ("Opacities may be compatible with atelectasis versus consolidation, aspiration.", "aspiration", "hedged"),
    ],
)
def test_a_differential_weighs_only_its_candidates(sentence: str, finding: str, status: str) -> None:
    assert {m.finding: m.status for m in independent.read_sentence(sentence)}[finding] == status


@pytest.mark.parametrize(
    ("sentence", "finding", "status"),
    [
        # a change of a known finding denied is no negation of the finding (round AX)
        ("No interval enlargement of the known left upper lobe nodule.", "nodule", "affirmed"),
        ("No enlargement of the cardiac silhouette.", "cardiomegaly", "negated"),
        # a list whose change is denied is no differential (round AY)
        ("No significant change in right pneumothorax or pleural fluid.", "pleural_effusion", "affirmed"),
        ("Right pneumothorax or pleural fluid.", "pleural_effusion", "differential"),
    ],
)
def test_what_a_denied_change_leaves_stated(sentence: str, finding: str, status: str) -> None:
    assert {m.finding: m.status for m in independent.read_sentence(sentence)}[finding] == status


@pytest.mark.parametrize(
    ("sentence", "finding", "status", "sides"),
    [
        # LLM replay rounds 1-2: readings the independent reader missed
        ("The heart is not enlarged.", "cardiomegaly", "negated", set()),
        ("The heart is not grossly enlarged.", "cardiomegaly", "narrowed", set()),
        ("Clearing of left base airspace disease.", "airspace_disease", "negated", {"left"}),
        ("Aortic vascular calcifications.", "aortic_calcification", "affirmed", set()),
        ("Calcified lymph XXXX in both XXXX.", "lymph_node_calcification", "affirmed", {"bilateral"}),
        (
            "Calcified hilar lymph XXXX XXXX sequela of prior granulomatous disease.",
            "hilar_calcification",
            "affirmed",
            set(),
        ),
        ("Grossly similar midthoracic vertebral XXXX fracture.", "vertebral_fracture", "affirmed", set()),
        ("These most XXXX represent calcified small granulomas.", "calcified_granuloma", "hedged", set()),
        (
            "Lungs are hyperexpanded with flattening of the diaphragms.",
            "diaphragm_flattening",
            "affirmed",
            {"bilateral"},
        ),
        ("Calcified left coronary arteries noted.", "vascular_calcification", "affirmed", {"left"}),
        # wordings of the LLM replay rounds this reader read as naming nothing
        ("Prominent left hilum.", "hilar_enlargement", "affirmed", {"left"}),
        ("The left hilar contour is prominent.", "hilar_enlargement", "affirmed", {"left"}),
        ("Flattening of the bilateral hemidiaphragms.", "diaphragm_flattening", "affirmed", {"bilateral"}),
        ("Subtle airspace density within the medial right lung base.", "airspace_disease", "affirmed", {"right"}),
        ("Mild spine curvature noted.", "scoliosis", "affirmed", set()),
        (
            "Remaining obliteration of the bilateral pleural sinus.",
            "costophrenic_angle_blunting",
            "affirmed",
            {"bilateral"},
        ),
        ("There is a left chest wall cardiac XXXX generator.", "pacemaker", "affirmed", {"left"}),
        ("Prominent interstitium is stable.", "interstitial_opacity", "affirmed", set()),
        ("There is mild XXXX-distention of this stomach.", "gastric_distention", "affirmed", set()),
        # LLM replay round 17
        ("The fullness to the right hilum is again noted.", "hilar_enlargement", "affirmed", {"right"}),
        ("There is mild calcification of the aortic XXXX.", "aortic_calcification", "affirmed", set()),
        ("Dilated tortuous calcified aortic XXXX.", "aortic_calcification", "affirmed", set()),
        ("Mediastinum is shifted to the left.", "mediastinal_shift", "affirmed", {"left"}),
        ("Partial fusion of 2 vertebral bodies near the thoracolumbar junction.", "spinal_fusion", "affirmed", set()),
        ("Prosthetic right shoulder.", "orthopedic_hardware", "affirmed", {"right"}),
        ("The right lower lobe is totally opaque.", "lung_opacity", "affirmed", {"right"}),
        ("Stable calcified hilar XXXX and granulomas.", "calcified_granuloma", "affirmed", set()),
        ("The lung volumes are slightly on the low side.", "hypoinflation", "borderline", set()),
        ("Multiple cavitary bilateral pulmonary masses and nodules.", "nodule", "affirmed", {"bilateral"}),
        ("Bilateral granulomas and degenerative change.", "degenerative_changes", "affirmed", set()),
        # LLM replay round 18
        ("Stable remote posttraumatic changes of multiple right ribs.", "deformity", "affirmed", {"right"}),
        ("XXXX displacement of a fusion XXXX on the lateral view.", "spinal_fusion", "affirmed", set()),
        ("There is an extensive fusion of the posterior cervical spine.", "spinal_fusion", "affirmed", set()),
        ("The pulmonary vascularity is prominent.", "prominent_vasculature", "affirmed", set()),
        ("Mild cardiomegaly with XXXX of early failure.", "heart_failure", "affirmed", set()),
        # this film does not show it (synthetic rounds K, P, Q); "not well seen" only in its own clause
        ("The right upper lobe nodule is not radiographically evident.", "nodule", "negated", {"right"}),
        ("The nodule is not clearly visualized on radiography.", "nodule", "historical", set()),
        ("Retrocardiac opacity with the left hemidiaphragm not clearly visualized.", "lung_opacity", "affirmed", set()),
        (
            "Left basilar atelectasis with the left costophrenic angle not well seen.",
            "atelectasis",
            "affirmed",
            {"left"},
        ),
        ("Known left upper lobe nodule is not radiographically visible.", "nodule", "negated", {"left"}),
        # a hemithorax that is fluid (`fluid_hemithorax`; synthetic rounds J-T, review of session 31)
        (
            "The right hemithorax is now nearly completely opacified with fluid.",
            "pleural_effusion",
            "hedged",
            {"right"},
        ),
        ("Patchy opacity in the right hemithorax without pleural effusion.", "lung_opacity", "affirmed", {"right"}),
        (
            "New airspace opacity in the right upper lobe, no change in the left hemithorax after pneumonectomy.",
            "airspace_disease",
            "affirmed",
            {"right"},
        ),
        ("Lack of resolution of the left lower lobe consolidation.", "consolidation", "affirmed", {"left"}),
        # the field of radiation treatment is no port (`not_targets`: synthetic round T)
        ("Opacity in the right upper lobe conforming to the radiation port.", "lung_opacity", "affirmed", {"right"}),
        ("Right chest port with the catheter tip in the SVC.", "port", "affirmed", {"right"}),
        ("The 8 mm nodule in the right midlung is not well seen on today's exam.", "nodule", "historical", {"right"}),
        (
            "Small left pleural effusion, the left costophrenic angle is not well seen.",
            "pleural_effusion",
            "affirmed",
            {"left"},
        ),
        ("Calcified right hilar XXXX are present", "hilar_calcification", "affirmed", {"right"}),
        # LLM replay round 19
        ("There is a left humerus prosthesis partly demonstrated.", "orthopedic_hardware", "affirmed", {"left"}),
        ("Prominent hilar contours.", "hilar_enlargement", "affirmed", set()),
        ("Pulmonary XXXX are engorged.", "pulmonary_congestion", "affirmed", set()),
        ("Mild prominence of the right paratracheal soft tissues.", "paratracheal_widening", "affirmed", {"right"}),
        ("There are endplate changes within the spine.", "degenerative_spine_changes", "affirmed", set()),
        # a shadow the candidates after it explain stays stated (LLM replay round 21)
        (
            "There are minimal XXXX left basilar opacities, XXXX subsegmental atelectasis or scarring.",
            "lung_opacity",
            "affirmed",
            {"left"},
        ),
        ("There are minimal left basilar opacities, atelectasis or scarring.", "atelectasis", "differential", {"left"}),
        (
            "There is a single cardiac XXXX projecting over the right ventricle.",
            "cardiac_device",
            "affirmed",
            {"right"},
        ),
        (
            "There are degenerative changes of the acromioclavicular joints.",
            "degenerative_changes",
            "affirmed",
            {"bilateral"},
        ),
        # LLM replay round 9: a word sharing the head noun of the finding after it names a finding of its own
        ("Heavily calcified and mildly tortuous aorta.", "aortic_calcification", "affirmed", set()),
        ("Stable dilated slightly tortuous aorta.", "aortic_enlargement", "affirmed", set()),
        ("Chronic interstitial and bullous disease.", "interstitial_lung_disease", "affirmed", set()),
        ("Mildly dilated and tortuous aorta, unchanged.", "aortic_enlargement", "affirmed", set()),
        # LLM replay round 6
        ("Redemonstration without significant interval change of mild atelectasis.", "atelectasis", "affirmed", set()),
        (
            "There are calcified subcarinal and right hilar lymph XXXX.",
            "lymph_node_calcification",
            "affirmed",
            {"right"},
        ),
        # LLM replay round 5
        ("Widened upper mediastinal silhouette.", "mediastinal_widening", "affirmed", set()),
        ("A large masslike opacity in the right lung base.", "mass", "affirmed", {"right"}),
        # LLM replay round 4
        ("Stable mild rightward curvature of the thoracic spine.", "scoliosis", "affirmed", {"right"}),
        ("Mild prominence pulmonary outflow tract.", "pulmonary_artery_enlargement", "affirmed", set()),
        # a terminator ends a backward negation's reach (medspaCy's overlap test missed a scope inside its own)
        (
            "Mild cardiomegaly otherwise pulmonary vascularity appears within normal limits.",
            "cardiomegaly",
            "affirmed",
            set(),
        ),
        # readers of LLM replay rounds 1-3 took it for no rib fracture, those of rounds 20 and 21 for none said (6 of 7)
        ("No displaced rib fractures.", "rib_fracture", "narrowed", set()),
        # a narrowing word inside the finding's own words ("no noncalcified nodule" leaves a calcified one open)
        ("No airspace disease, effusion or noncalcified nodule.", "nodule", "narrowed", set()),
    ],
)
def test_readings_of_replayed_llm_reports(sentence: str, finding: str, status: str, sides: set[str]) -> None:
    (mention,) = [m for m in independent.read_sentence(sentence) if m.finding == finding]
    assert (mention.status, set(mention.sides)) == (status, sides)


def test_the_radiation_port_is_no_port() -> None:
    """`not_targets` (synthetic round T: "Which does this image show: a central venous catheter or a pleural
    effusion?" answered from "conforming to the radiation port")."""
    read = [m.finding for m in independent.read_sentence("Opacity conforming to the radiation port.")]
    assert "port" not in read and "lung_opacity" in read


def test_a_stacked_adjective_names_no_second_finding() -> None:
    """ "Aortic atherosclerotic calcifications" is one finding: no word between, no coordination."""
    read = [m.finding for m in independent.read_sentence("Aortic atherosclerotic calcifications.")]
    assert "aortic_calcification" not in read


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("There is a rounded nodular opacity in the left upper lung measuring approximately 7 mm.", "present"),
        ("Nodular densities consistent with chronic granulomatous disease.", "present"),
        ("Diffuse nodular interstitial opacities.", "not_mentioned"),  # not a shadow a nodule may be
        ("Patchy opacity in the left upper lung.", "not_mentioned"),
    ],
)
def test_a_nodular_shadow_reads_as_a_nodule(sentence: str, expected: str) -> None:
    """LLM replay rounds 3-11: nodule answers of "nodular opacity" demoted as the nodule not found."""
    assert independent.reading("nodule", [sentence])[0] == expected


@pytest.mark.parametrize(
    ("finding", "sentence", "expected"),
    [
        ("pacemaker", "Left anterior chest wall pacemaker/defibrillator.", "present"),
        ("icd", "Left anterior chest wall pacemaker/defibrillator.", "present"),
        ("pacemaker", "Cardiac device overlies the left chest.", "not_mentioned"),  # which device is not said
    ],
)
def test_a_device_named_in_a_combined_name_is_read(finding: str, sentence: str, expected: str) -> None:
    """LLM replay round 15: "pacemaker/defibrillator" read only as a cardiac device, its pacemaker not found."""
    assert independent.reading(finding, [sentence])[0] == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # the "or" joins two words of the pneumonia, not two findings (LLM replay round 12)
        ("Improved right lower lobe consolidation with mild residual or recurrent pneumonia.", set()),
        ("Left basilar atelectasis or possibly pneumonia.", {"atelectasis", "pneumonia"}),
        ("Opacity may represent atelectasis or early infiltrate.", {"atelectasis", "infiltrate"}),
    ],
)
def test_an_or_between_two_words_of_one_finding_is_no_differential(sentence: str, expected: set[str]) -> None:
    assert {m.finding for m in independent.read_sentence(sentence) if "differential" in m.kinds} == expected


@pytest.mark.parametrize(
    ("sentence", "finding", "regions"),
    [
        ("The mediastinal silhouette is widened with overlying sternotomy XXXX.", "mediastinal_widening", None),
        ("The cardiomediastinal silhouette is enlarged.", "enlarged_cardiomediastinum", None),
        ("Again visualized is a wedge-shaped XXXX fracture of T12.", "fracture", {"thoracic_spine"}),
        ("Mild nonspecific prominence of mediastinum.", "mediastinal_widening", None),
        ("Calcific aorta.", "aortic_calcification", None),
        # a candidate of a differential takes the place the others are given
        (
            "Calcified XXXX opacity in the left lung base suggestive of old empyema, or prior TB.",
            "tuberculosis",
            {"left_base"},
        ),
    ],
)
def test_readings_of_replay_round_12(sentence: str, finding: str, regions: set[str] | None) -> None:
    """LLM replay round 12: a widened mediastinal silhouette read as the cardiomediastinal one's, a fracture at a
    vertebral level placed nowhere, wordings read as nothing, a TB placed anywhere (14 correct items demoted)."""
    (mention,) = [m for m in independent.read_sentence(sentence) if m.finding == finding]
    assert regions is None or mention.regions == regions


@pytest.mark.parametrize(
    ("sentence", "statuses"),
    [
        # a borderline size is its own clause's; "ectasia/tortuosity" names one thing (LLM replay round 13)
        (
            "Heart size near top normal limits, aortic calcifications and mild ectasia/tortuosity.",
            {"aortic_calcification": "affirmed", "aortic_enlargement": "affirmed", "tortuous_aorta": "affirmed"},
        ),
        ("Atelectasis/pneumonia at the left base.", {"atelectasis": "differential", "pneumonia": "differential"}),
        ("Heart size is borderline enlarged.", {"cardiomegaly": "borderline"}),
        # a modifier sharing words with the finding's ("borderline enlarged" of "enlarged cardiac silhouette": round AA)
        ("Borderline enlarged cardiac silhouette.", {"cardiomegaly": "borderline"}),
        # what another examination would show better (synthetic round AB)
        ("Dedicated rib films are more sensitive for nondisplaced fractures.", {"fracture": "hedged"}),
        # round 14: the head noun left out, and the upper mediastinum's widening
        ("Degenerative seen throughout cervical spine.", {"degenerative_changes": "affirmed"}),
        ("No degenerative disc disease.", {"degenerative_spine_changes": "negated"}),
        ("Stable widening of the upper mediastinum.", {"mediastinal_widening": "affirmed"}),
        (
            "Calcified right paratracheal and right hilar lymph XXXX unchanged.",
            {"lymph_node_calcification": "affirmed"},
        ),
        ("The cardiomediastinal silhouette is significantly enlarged.", {"enlarged_cardiomediastinum": "affirmed"}),
        ("There is prominence of the right and left hilum.", {"hilar_enlargement": "affirmed"}),
        ("Calcified AP XXXX lymph XXXX are seen.", {"lymph_node_calcification": "affirmed"}),
        # round 15: "there is no change" is longer than the negation "there is no"
        ("There is no change in the strandy scarring in the right apex.", {"scarring": "affirmed"}),
        ("There is no pleural effusion.", {"pleural_effusion": "negated"}),
    ],
)
def test_readings_of_replay_rounds_13_14(sentence: str, statuses: dict[str, str]) -> None:
    assert {m.finding: m.status for m in independent.read_sentence(sentence)} == statuses


def test_a_finding_before_a_longer_overlapping_one_is_kept() -> None:
    """A fresh rules round: "atherosclerotic calcifications" lost to "calcifications of the aorta" took the
    atherosclerosis with it (medspaCy's pairwise pruning; 5 correct "atherosclerosis" items demoted)."""
    read = [m.finding for m in independent.read_sentence("Atherosclerotic calcifications of the aorta.")]
    assert read == ["atherosclerosis", "aortic_calcification"]


@pytest.mark.parametrize(
    ("sentence", "finding"),
    [
        # the favoured reading of a shadow (round AH)
        ("Opacities in the peripheral right lung most compatible with scarring.", "scarring"),
        # a finding read on the clinical picture (synthetic rounds A, C, E)
        ("Left lower lobe consolidation, compatible with pneumonia in the appropriate clinical setting.", "pneumonia"),
    ],
)
@pytest.mark.parametrize(
    ("template_id", "answer", "polarity", "expected"),
    [
        ("finding_hedged", "no", False, "second_reading_hedged"),
        ("finding_hedged", "yes", True, None),
        ("finding_presence", "yes", True, None),
    ],
)
def test_a_favoured_reading_is_present_and_uncertain(
    sentence: str, finding: str, template_id: str, answer: str, polarity: bool, expected: str | None
) -> None:
    it = item(template_id, "Is the report uncertain about it?", answer, polarity=polarity, finding=finding)
    assert verdict("second_reading", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "finding", "answer", "expected"),
    [
        # a clinical diagnosis the image is only "consistent with" is suspected (LLM replay rounds 1, 9)
        ("Hyperinflation consistent with COPD.", "copd", "no", "second_reading_hedged"),
        ("Hyperinflation consistent with COPD.", "copd", "yes", None),
        # a finding of the image it is consistent with is that finding
        ("Opacity consistent with atelectasis.", "atelectasis", "no", None),
    ],
)
def test_a_diagnosis_consistent_with_the_image_is_suspected(
    sentence: str, finding: str, answer: str, expected: str | None
) -> None:
    it = item("finding_hedged", "Is it only suspected?", answer, polarity=answer == "yes", finding=finding)
    assert verdict("second_reading", it, context([sentence])) == expected


def test_a_nodular_density_a_sentence_doubts_is_a_doubted_nodule() -> None:
    """Synthetic round D: a "nodular density" (a nodule too to readers) that "may represent a nipple shadow" is no
    sure abnormality (3 "abnormal" answers read wrong)."""
    sentences = ["A 6 mm nodular density in the left lower lung, not seen on prior, may represent a nipple shadow."]
    it = item("finding_presence", "Is there a nodule?", "yes", polarity=True, finding="nodule", evidence=[0])
    assert verdict("second_reading", it, context(sentences)) == "second_reading_doubted_elsewhere"
    plain = ["A 6 mm nodular density in the left lower lung."]
    assert verdict("second_reading", it, context(plain)) is None


@pytest.mark.parametrize(
    ("sentences", "findings", "expected"),
    [
        # only hedged in the evidence and nowhere stated: no abnormality a reader states
        (
            ["Possible subtle increased opacity in right apex versus technique.", "Heart size is normal."],
            [],
            "second_reading_only_hedged",
        ),
        (["Borderline cardiomegaly.", "Lungs are clear."], ["cardiomegaly"], "second_reading_only_hedged"),
        # hedged in the evidence, stated elsewhere in the report
        (["Borderline cardiomegaly.", "The heart is enlarged."], ["cardiomegaly"], None),
        # a stated finding beside a hedged one
        (["Possible right apical opacity. Small left pleural effusion."], [], None),
        (["Small left pleural effusion."], ["pleural_effusion"], None),
        # a report that also calls the whole study normal leaves its abnormality in doubt (round AW); one that
        # rules out only acute disease does not
        (
            ["There is ectasia of the thoracic aorta.", "Normal chest film."],
            ["aortic_enlargement"],
            "abnormal_claim_declared_normal",
        ),
        (["Degenerative changes in the thoracic spine.", "Negative chest."], [], "abnormal_claim_declared_normal"),
        (["Degenerative changes in the thoracic spine.", "No acute cardiopulmonary abnormality."], [], None),
    ],
)
def test_an_abnormality_needs_a_stated_finding(sentences: list[str], findings: list[str], expected: str | None) -> None:
    it = item(
        "study_is_abnormal", "Is this chest X-ray abnormal?", "yes", polarity=True, findings=findings, evidence=[0]
    )
    it["findings"] = findings
    assert verdict("second_reading", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("cited", "expected"),
    [
        # the splitter's cut sentence, read whole, negates what it names
        (
            ["Large hiatal hernia.", "No cavitary lesion to suggest. active tuberculosis."],
            "second_reading_cited_negated",
        ),
        (["Large hiatal hernia.", "No pneumothorax."], "second_reading_cited_negated"),
        (["Large hiatal hernia."], None),
        # new since the prior study is no negation of it now
        (["Left midlung opacity noted, not visualized on prior."], None),
        # a sentence of several clauses is not judged (ConText's negation reaches across commas)
        (["No focal consolidation, no definite pleural effusion seen, left hilar calcifications."], None),
    ],
)
def test_the_evidence_for_an_abnormality_cites_no_negated_sentence(cited: list[str], expected: str | None) -> None:
    sentences = [s for c in cited for s in c.replace(". a", ".|a").split("|")]
    it = item(
        "study_is_abnormal",
        "Is this chest X-ray abnormal?",
        "yes",
        polarity=True,
        evidence=list(range(len(sentences))),
    )
    it["findings"] = []
    assert verdict("second_reading", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "No. The heart size is at the upper limits of normal. Mild degenerative changes of the spine.",
            "second_reading_quoted_borderline",
        ),
        ("No. Mild degenerative changes of the spine.", None),
    ],
)
def test_an_abnormal_answer_quotes_no_borderline_sentence_as_a_reason(answer: str, expected: str | None) -> None:
    sentences = ["The heart size is at the upper limits of normal.", "Mild degenerative changes of the spine."]
    it = item(
        "study_is_normal",
        "Is this chest radiograph normal?",
        answer,
        polarity=False,
        findings=["degenerative_changes"],
        answer_format="full_sentence",
        evidence=[0, 1],
    )
    it["findings"] = ["degenerative_changes"]
    assert verdict("second_reading", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "expected", "finding"),
    [
        # the next sentence says the stated opacity may be something that casts a shadow
        (
            [
                "There is a 7 mm nodular opacity in the right upper lobe.",
                "This may be artifact from overlapping vessels.",
            ],
            "second_reading_doubted_elsewhere",
            "lung_opacity",
        ),
        # another sentence names it (or a finding of its line) with the mimic, in the same place
        (
            ["There is an oval opacity behind the heart on the left.", "Left retrocardiac nodule versus summation."],
            "second_reading_doubted_elsewhere",
            "lung_opacity",
        ),
        # findings offered right after it as also possible
        (
            ["Right lower lobe opacity most consistent with pneumonia.", "Aspiration or edema are also possible."],
            "second_reading_doubted_elsewhere",
            "pneumonia",
        ),
        # ... which doubt the interpretation, not the shadow it interprets (synthetic round J)
        (
            [
                "Right lower lobe airspace opacity most consistent with pneumonia.",
                "Aspiration is also a consideration.",
            ],
            "second_reading_doubted_elsewhere",
            "pneumonia",
        ),
        (
            [
                "Right lower lobe airspace opacity most consistent with pneumonia.",
                "Aspiration is also a consideration.",
            ],
            None,
            "airspace_disease",
        ),
        # a sentence that begins with a hedge and has no subject of its own points back
        (
            ["Interstitial prominence.", "Maybe due to technical factors."],
            "second_reading_doubted_elsewhere",
            "lung_opacity",
        ),
        # a sentence that names no finding and does not point back is about something else
        (
            [
                "There is a 7 mm nodular opacity in the right upper lobe.",
                "Interface at the apex may represent artifact.",
            ],
            None,
            "lung_opacity",
        ),
        # the mimic sentence follows another finding, not this one
        (
            [
                "There is a 7 mm nodular opacity in the right upper lobe.",
                "Healed rib fracture.",
                "This may be artifact.",
            ],
            None,
            "lung_opacity",
        ),
        # the mimic explains another finding of its sentence
        (
            [
                "There is a 7 mm nodular opacity in the right upper lobe.",
                "The heart is enlarged, possibly exaggerated by technique.",
            ],
            None,
            "lung_opacity",
        ),
        # a finding superimposed on another is no mimic; the cause of a stated opacity hedged is no doubt of it
        (
            ["There is a 7 mm nodular opacity in the right upper lobe.", "Possibly superimposed pneumonia."],
            None,
            "lung_opacity",
        ),
        # a doubt on the other side is about something else
        (
            ["There is a 7 mm nodular opacity in the right upper lobe.", "Left apical nodule may be a nipple shadow."],
            None,
            "lung_opacity",
        ),
    ],
)
def test_a_stated_finding_doubted_elsewhere_is_no_definite_finding(
    sentences: list[str], expected: str | None, finding: str
) -> None:
    it = item("finding_presence", "Is this finding present?", "yes", polarity=True, finding=finding)
    assert verdict("second_reading", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        # a finding named with it has resolved: the resolving one is not seen
        (
            [
                "Resolving pulmonary interstitial edema and pulmonary venous hypertension.",
                "In the interval, pulmonary venous engorgement has resolved.",
            ],
            "second_reading_resolved_elsewhere",
        ),
        (["Resolving interstitial edema.", "Interstitial edema has cleared."], "second_reading_resolved_elsewhere"),
        # resolving, and nothing said to have resolved; or stated without "resolving"
        (["Resolving interstitial edema.", "Heart size is normal."], None),
        (["Interstitial edema.", "Pleural effusion has resolved."], None),
        # what has resolved is not named with it
        (["Resolving interstitial edema.", "Pleural effusion has resolved."], None),
    ],
)
def test_a_resolving_finding_said_elsewhere_to_have_resolved_is_not_seen(
    sentences: list[str], expected: str | None
) -> None:
    it = item("finding_presence", "Is pulmonary edema present?", "yes", polarity=True, finding="edema")
    assert verdict("second_reading", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        ([0], "second_reading_doubted_elsewhere"),
        # another instance the report does not doubt still makes the finding present
        ([0, 2], None),
        # the doubt points back at the right-sided opacity, not the left one (whose side ConText does read)
        ([2], None),
    ],
)
def test_a_finding_is_doubted_only_where_each_stated_instance_is(evidence: list[int], expected: str | None) -> None:
    sentences = [
        "14 mm ring-shaped opacity with central lucency, seen on PA view only, projects over right midlung.",
        "Uncertain if this represents something within the lung or external to the patient.",
        "There is also a 5 mm nodular opacity projecting over the left upper lung.",
    ]
    it = item("finding_presence", "Is there lung opacity?", "yes", polarity=True, finding="lung_opacity")
    it["evidence_ids"] = evidence
    assert verdict("second_reading", it, context(sentences)) == expected


def test_second_reading_reads_distractors_in_the_whole_report() -> None:
    ctx = context(["Heart size is normal.", "No pleural effusion.", "Possible small nodule in the right apex."])
    it = item(
        "finding_absent_choice",
        "Which of the following findings is NOT present?",
        "pleural effusion",
        options=["pleural effusion", "nodule", "cardiomegaly", "scoliosis"],
        answer_format="multiple_choice",
        evidence=[1],
        finding="pleural_effusion",
    )
    assert verdict("second_reading", it, ctx) == "second_reading_hedged"


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # "apparent" is "seeming": an old apparent fracture "or congenital fusion" is no sure fracture (round AC)
        ("The skeletal structures are notable for an old apparent fracture at T12-L1.", "second_reading_hedged"),
        ("Old fracture at T12-L1.", None),
        # after a negation it changes nothing
        ("No apparent fracture.", "second_reading_negated"),
    ],
)
def test_an_apparent_finding_is_read_as_hedged(sentence: str, expected: str | None) -> None:
    it = item("finding_presence", "Is there a fracture?", "yes", polarity=True, finding="fracture")
    assert verdict("second_reading", it, context([sentence])) == expected


def test_a_structured_heading_answered_none_negates_what_it_names() -> None:
    """Synthetic round M: "Lines/tubes: None." read as a tube present (the ":" ends every other scope)."""
    it = item("finding_presence", "Is there a tube?", "yes", polarity=True, finding="tube")
    assert verdict("second_reading", it, context(["Lines/tubes: None."])) == "second_reading_negated"
    assert verdict("second_reading", it, context(["Lines/tubes: Right chest tube in place."])) is None
    # only the heading's own words (review of session 30)
    effusion = item("finding_presence", "Is there an effusion?", "yes", polarity=True, finding="pleural_effusion")
    structured = context(["Pleura: small right pleural effusion, pneumothorax: none."])
    assert verdict("second_reading", effusion, structured) is None


def test_a_sentence_cut_mid_clause_is_read_with_the_one_before() -> None:
    it = item("finding_presence", "Is there tuberculosis?", "yes", polarity=True, finding="tuberculosis", evidence=[1])
    cut = context(["No cavitary lesion to suggest.", "active tuberculosis."])
    assert verdict("second_reading", it, cut) == "second_reading_negated"
    # a sentence of its own that happens to begin in lower case stays apart
    apart = context(["No pleural effusions or pneumothoraces.", "active tuberculosis."])
    assert verdict("second_reading", it, apart) is None


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Nodular opacity over the upper lungs may represent overlying telemetry leads.", "second_reading_hedged"),
        ("Ovoid opacity in the left retrocardiac area, could be projectional or solid mass.", "second_reading_hedged"),
        ("Nodular opacity in the right base likely nipple shadow.", "second_reading_hedged"),
        ("Nodular opacity in the right upper lobe.", None),
    ],
)
def test_a_density_that_may_be_outside_the_patient_is_no_sure_finding(sentence: str, expected: str | None) -> None:
    it = item("finding_presence", "Is there lung opacity?", "yes", polarity=True, finding="lung_opacity")
    assert verdict("second_reading", it, context([sentence])) == expected


# -- 2. location -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template_id", "question", "answer", "expected"),
    [
        ("finding_location", "Where is the pleural effusion?", "left lung", "region_not_a_site"),
        ("finding_location", "Where is the pleural effusion?", "right pleura", "region_not_in_evidence"),
        ("finding_side", "On which side is the pleural effusion?", "right", "side_not_in_evidence"),
        ("finding_location", "Where is the pleural effusion?", "left pleura", None),
        ("finding_side", "On which side is the pleural effusion?", "left", None),
    ],
)
def test_location_support(template_id: str, question: str, answer: str, expected: str | None) -> None:
    it = item(template_id, question, answer, answer_format="short", finding="pleural_effusion")
    assert verdict("location_support", it, context(["Small left pleural effusion."])) == expected


def test_a_lobe_named_in_a_findings_words_is_no_zone_of_both_lungs() -> None:
    """LLM replay round 18: "calcified left upper lobe granuloma" read in the left upper lobe and the upper zones, so
    "left upper lobe" left a place out."""
    it = item(
        "finding_location",
        "Where is the calcified granuloma?",
        "left upper lobe",
        answer_format="short",
        finding="calcified_granuloma",
    )
    assert verdict("location_support", it, context(["There is a calcified left upper lobe granuloma."])) is None


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ("Degenerative changes in the spine.", "side_incomplete"),  # midline: "which side?" is ill-posed
        ("Degenerative changes in the left shoulder.", "side_incomplete"),
        ("No acute bony abnormality.", None),
    ],
)
def test_a_side_answer_leaves_out_no_midline_instance(first: str, expected: str | None) -> None:
    """A fresh rules round: "On which side are the degenerative changes? right" with changes in the spine too."""
    it = item(
        "finding_side",
        "On which side are the degenerative changes?",
        "right",
        answer_format="short",
        finding="degenerative_changes",
        evidence=[1],
    )
    ctx = context([first, "Degenerative changes in the right shoulder."])
    assert verdict("location_support", it, ctx) == expected


@pytest.mark.parametrize(("answer", "expected"), [("left", None), ("right", "side_not_in_evidence")])
def test_a_region_gives_its_side_by_its_laterality(answer: str, expected: str | None) -> None:
    """A fresh rules round: "Stable lingular nodule" answered on the left (2 correct items read as no side)."""
    it = item("finding_side", "Which side shows the nodule?", answer, answer_format="short", finding="nodule")
    assert verdict("location_support", it, context(["Stable lingular nodule, presumably granuloma."])) == expected
    assert (independent._side_of_region("lingula"), independent._side_of_region("right_atrium")) == ("left", None)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Small pleural effusions, slightly greater at the left.", "side_not_in_evidence"),
        ("Small pleural effusions, left greater than right.", "side_not_in_evidence"),
        ("Small left pleural effusion, greater than on the prior study.", None),
    ],
)
def test_one_side_more_than_the_other_is_both_sides(sentence: str, expected: str | None) -> None:
    """Round BC: "Minimal apical capping slightly greater at the left" answered "left"."""
    it = item(
        "finding_side",
        "On which side is the pleural effusion?",
        "left",
        answer_format="short",
        finding="pleural_effusion",
    )
    assert verdict("location_support", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The chest X-ray shows atelectasis in the lung bases and rib fractures on the left.", None),
        ("The chest X-ray shows atelectasis and rib fractures on the right.", "side_not_in_evidence"),
    ],
)
def test_a_list_answer_places_each_finding_by_its_own_part(answer: str, expected: str | None) -> None:
    """LLM replay round 9: "in the lung bases" (both sides) is the atelectasis' place, not the fractures'."""
    ctx = context(["Patchy subsegmental atelectasis is seen bibasilar region.", "Old fractures of the left 9th rib."])
    it = item(
        "study_describe_all",
        "Describe the findings of this chest X-ray.",
        answer,
        answer_format="full_sentence",
        findings=["atelectasis", "rib_fracture"],
        evidence=[0, 1],
    )
    assert verdict("location_support", it, ctx) == expected


@pytest.mark.parametrize(
    ("sentence", "question_type", "expected"),
    [
        # coordinated region names ("ascending and descending aorta") name both regions: "where" wants both
        ("Slightly unfolded ascending and descending aorta.", "where", "region_incomplete"),
        ("Slightly unfolded descending aorta.", "where", None),
        # a question about a region's findings does not ask where each finding is
        ("Slightly unfolded ascending and descending aorta.", "what", None),
    ],
)
def test_a_where_answer_gives_every_place_a_mention_names(sentence: str, question_type: str, expected: str) -> None:
    it = item(
        "finding_location",
        "Where is the aortic tortuosity?",
        "descending aorta",
        answer_format="short",
        question_type=question_type,
        finding="tortuous_aorta",
    )
    assert verdict("location_support", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # named as what a placed shadow before it may be, an unplaced finding is where the shadow is (LLM round)
        ("Low lung volumes, bibasilar opacities likely due in part to atelectasis.", None),
        # not after a shadow without a place
        ("Low lung volumes. Opacities likely due in part to atelectasis.", "region_not_in_evidence"),
    ],
)
def test_a_finding_a_shadow_may_be_is_where_the_shadow_is(sentence: str, expected: str | None) -> None:
    it = item(
        "finding_location", "Where is the atelectasis?", "lung bases", answer_format="short", finding="atelectasis"
    )
    assert verdict("location_support", it, context([sentence])) == expected


def test_a_where_answer_may_leave_out_a_structure_and_need_not_join_two_mentions() -> None:
    it = item(
        "finding_location",
        "Where is the airspace disease?",
        "perihilar regions",
        answer_format="short",
        question_type="where",
        finding="airspace_disease",
    )
    both = context(["Alveolar opacities greatest in the central lungs and bases."])
    assert verdict("location_support", it, both) == "region_incomplete"
    apart = context(["Alveolar opacities in the central lungs.", "Airspace disease in the perihilar regions."])
    assert verdict("location_support", it, apart) is None


def test_a_side_holds_for_the_places_coordinated_with_its_own() -> None:
    (opacity,) = independent.read_sentence("Left midlung, and basilar streaky opacity.")
    assert opacity.regions == {"left_mid_zone", "bases"} and opacity.sides == {"left"}
    it = item(
        "finding_location",
        "Where is the lung opacity?",
        "left base",
        answer_format="short",
        question_type="where",
        finding="lung_opacity",
    )
    assert verdict("location_support", it, context(["Left midlung, and basilar streaky opacity."])) == (
        "region_incomplete"
    )
    assert verdict("location_support", it, context(["Left basilar streaky opacity."])) is None


@pytest.mark.parametrize(
    ("sentence", "statuses"),
    [
        (
            "There is no pneumothorax the lungs are hyperinflated.",
            {"pneumothorax": "negated", "hyperinflation": "affirmed"},
        ),
        ("No pleural effusion the heart is enlarged.", {"pleural_effusion": "negated", "cardiomegaly": "affirmed"}),
        # a clause its verb closes (a fresh rules round: 12 correct items read as negated)
        (
            "No definite pleural effusion seen, left hilar calcifications and dense nodule in the left lung.",
            {"pleural_effusion": "narrowed", "hilar_calcification": "affirmed", "nodule": "affirmed"},
        ),
        # not right after a finding's words: one clause
        ("There is no evidence that the lungs are hyperinflated.", {"hyperinflation": "negated"}),
    ],
)
def test_a_clause_run_on_without_a_stop_ends_the_negation(sentence: str, statuses: dict[str, str]) -> None:
    """Rules rounds: "no hyperinflation" answered from "There is no pneumothorax the lungs are hyperinflated"."""
    assert {m.finding: m.status for m in independent.read_sentence(sentence)} == statuses


@pytest.mark.parametrize(
    ("sentence", "finding"),
    [
        ("Slight elevation of right hemidiaphragm with some mild right basilar hypoventilation.", "volume_loss"),
        ("Bibasilar hypoventilation.", "hypoinflation"),
        ("Right and left basilar hypoventilation.", "hypoinflation"),
        # a side ConText attaches from another finding's words does not make it regional
        ("Continued hypoinflation with right middle lobe focal atelectasis.", "hypoinflation"),
    ],
)
def test_a_finding_of_both_lungs_named_on_one_side_is_regional(sentence: str, finding: str) -> None:
    """Rules rounds: "mild right basilar hypoventilation" answered as low lung volumes (3 of 3 read faulty)."""
    read = {m.finding for m in independent.read_sentence(sentence)} & {"volume_loss", "hypoinflation"}
    assert read == {finding}


@pytest.mark.parametrize(
    ("template_id", "question", "region", "expected"),
    [
        ("finding_presence", "Are there low lung volumes in this image?", None, "second_reading_not_found"),
        ("region_abnormal", "Is there an abnormality in the lungs?", "lungs", None),  # an abnormality all the same
    ],
)
def test_regional_hypoventilation_is_no_low_lung_volumes(
    template_id: str, question: str, region: str | None, expected: str | None
) -> None:
    ctx = context(["Mild right basilar hypoventilation.", "Overall clear lungs."])
    it = item(template_id, question, "yes", polarity=True, finding="hypoinflation", evidence=[0], region=region)
    assert verdict("second_reading", it, ctx) == expected


def test_coordinated_region_names_are_read_as_both() -> None:
    (aorta,) = independent.read_sentence("Slightly unfolded ascending and descending aorta.")
    assert aorta.regions == {"ascending_aorta", "descending_aorta"}
    (nodes,) = independent.read_sentence("Right and left hilar adenopathy.")
    assert nodes.sides == {"bilateral"} and {"left_hilum", "right_hilum"} <= nodes.regions
    # two lobes of one side, or of both, with a plural head (LLM replay round 3: read as both lower lobes)
    (opacity,) = independent.read_sentence("Opacity within the right middle and lower lobes.")
    assert (opacity.regions, opacity.sides) == ({"right_middle_lobe", "right_lower_lobe"}, {"right"})
    (collapse,) = independent.read_sentence("Atelectasis in the right and left lower lobes.")
    assert (collapse.regions, collapse.sides) == ({"right_lower_lobe", "left_lower_lobe"}, {"bilateral"})
    assert independent._location_phrases()["distal left and right clavicles"][1] == "bilateral"


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Moderate right-sided pleural effusion, small left sided.", "side_incomplete"),
        ("Moderate right-sided pleural effusion, small.", None),
        ("Moderate right-sided pleural effusion, left-sided rib fracture.", None),
    ],
)
def test_a_clause_may_give_the_only_finding_another_side(sentence: str, expected: str | None) -> None:
    it = item(
        "finding_side",
        "On which side is the pleural effusion?",
        "right",
        answer_format="short",
        question_type="which",
        finding="pleural_effusion",
    )
    assert verdict("location_support", it, context([sentence])) == expected


def test_a_region_answer_needs_a_finding_there() -> None:
    ctx = context(["Moderate thoracic scoliosis."])
    it = item(
        "region_abnormal",
        "Is there an abnormality in the lungs?",
        "yes",
        polarity=True,
        findings=["scoliosis"],
        region="lungs",
    )
    assert verdict("location_support", it, ctx) == "region_not_a_site"
    ctx = context(["Calcified granuloma in the right upper lobe."])
    it = item(
        "region_abnormal",
        "Is there an abnormality in the right lung?",
        "yes",
        polarity=True,
        findings=["calcified_granuloma"],
        region="right_lung",
    )
    assert verdict("location_support", it, ctx) is None


@pytest.mark.parametrize(
    ("answer", "report", "expected"),
    [
        # the answer places it on a side whose lung another sentence declares normal
        (
            "Yes. Left lower lobe airspace disease.",
            ["Left lung clear.", "Right lower lobe consolidation."],
            "side_declared_normal",
        ),
        # a partial normal statement, an answer without the side, a side not declared normal
        ("Yes. Left lower lobe airspace disease.", ["The left lung is otherwise clear."], None),
        ("Yes, there is airspace disease.", ["Left lung clear.", "Right lower lobe consolidation."], None),
        ("Yes. Left lower lobe airspace disease.", ["Right lung clear."], None),
    ],
)
def test_a_side_the_report_declares_normal(answer: str, report: list[str], expected: str | None) -> None:
    ctx = context(["Left lower lobe airspace disease.", *report])
    it = item(
        "finding_presence_sentence",
        "Is there any sign of airspace disease?",
        answer,
        polarity=True,
        answer_format="full_sentence",
        evidence=[0],
        finding="airspace_disease",
    )
    assert verdict("location_support", it, ctx) == expected


@pytest.mark.parametrize(("region", "expected"), [("left_lung", "side_declared_normal"), ("lungs", None)])
def test_a_side_the_question_asks_of_that_the_report_declares_normal(region: str, expected: str | None) -> None:
    """LLM replay round 19: "List all findings in the left lung." answered from "Left lower lobe airspace disease"
    beside "Left lung clear." and a right lower lobe consolidation."""
    ctx = context(["Left lower lobe airspace disease.", "Left lung clear.", "Right lower lobe consolidation."])
    it = item(
        "region_findings",
        "List all findings in the region.",
        "airspace disease",
        answer_format="short",
        evidence=[0],
        findings=["airspace_disease"],
        region=region,
    )
    assert verdict("location_support", it, ctx) == expected


_DEGENERATIVE = "Mild bilateral acromioclavicular joint and thoracic spine degenerative changes."
_DEGENERATIVE_ANSWER = "degenerative changes of the thoracic spine"


@pytest.mark.parametrize(
    ("sentence", "region", "answer", "finding", "expected"),
    [
        # a bone lesion is in its own bone
        (_DEGENERATIVE, "shoulders", _DEGENERATIVE_ANSWER, "thoracic_spine_degenerative_changes", "region_not_a_site"),
        (_DEGENERATIVE, "bony_thorax", _DEGENERATIVE_ANSWER, "thoracic_spine_degenerative_changes", None),
        # a reader keeps the lumbar spine apart from the bony thorax (rounds AT, AX)
        (
            "There is incompletely evaluated lumbar levoscoliosis.",
            "bony_thorax",
            "scoliosis",
            "scoliosis",
            "region_not_in_evidence",
        ),
        ("Mild thoracic levoscoliosis.", "bony_thorax", "scoliosis", "scoliosis", None),
    ],
)
def test_the_findings_of_a_bony_region_are_in_it(
    sentence: str, region: str, answer: str, finding: str, expected: str | None
) -> None:
    it = item(
        "region_findings",
        f"List all findings in the {region.replace('_', ' ')}.",
        answer,
        answer_format="short",
        findings=[finding],
        region=region,
        evidence=[0],
    )
    assert verdict("location_support", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "sides"),
    [
        # numbered ribs on both sides (round AY)
        ("Healed right 10th and left 9th posterolateral rib fracture.", {"left", "right"}),
        ("Right 4th and 5th rib fractures.", {"right"}),
        ("Left 5th rib fracture and right pleural effusion.", {"left"}),
    ],
)
def test_the_sides_of_numbered_ribs(sentence: str, sides: set[str]) -> None:
    (fracture,) = [m for m in independent.read_sentence(sentence) if m.finding == "rib_fracture"]
    assert set(fracture.sides) == sides


@pytest.mark.parametrize(
    ("sentence", "finding", "regions", "sides"),
    [
        # two places joined by a slash are both the finding's (the LLM round: "right perihilar region, right mid zone")
        ("XXXX right perihilar/midlung density.", "density", {"right_perihilar", "mid_zones"}, {"right"}),
        # a slash between two findings joins no places: they are alternatives in the place before them
        ("Left basilar atelectasis/airspace disease.", "airspace_disease", {"left_base"}, {"left"}),
    ],
)
def test_places_joined_by_a_slash(sentence: str, finding: str, regions: set[str], sides: set[str]) -> None:
    (mention,) = [m for m in independent.read_sentence(sentence) if m.finding == finding]
    assert (set(mention.regions), set(mention.sides)) == (regions, sides)


@pytest.mark.parametrize(
    ("sentence", "differential"),
    [
        # two names readers take for one another (finding_sites `overlapping`) are one thing, not a choice
        ("Left basilar opacity represents chronic fibrosis/scar.", {"fibrosis": False, "scarring": False}),
        ("Right basilar airspace disease or consolidation.", {"airspace_disease": False, "consolidation": False}),
        ("Left basilar atelectasis/airspace disease.", {"atelectasis": True, "airspace_disease": True}),
        ("Bibasilar atelectasis or scarring.", {"atelectasis": True, "scarring": True}),
    ],
)
def test_a_differential_between_names_of_one_thing_is_none(sentence: str, differential: dict[str, bool]) -> None:
    read = {m.finding: "differential" in m.kinds for m in independent.read_sentence(sentence)}
    assert {f: read[f] for f in differential} == differential


def test_a_finding_of_several_organs_placed_nowhere_is_not_in_a_region_declared_normal() -> None:
    it = item(
        "category_abnormal",
        "Are there any lung abnormalities?",
        "yes",
        polarity=True,
        findings=["granulomatous_disease"],
        category="lung",
        evidence=[0],
    )
    assert verdict("location_support", it, context(["Old granulomatous disease.", "The lungs are clear."])) == (
        "region_declared_normal"
    )
    assert verdict("location_support", it, context(["Old granulomatous disease.", "Lungs otherwise clear."])) is None
    placed = context(["Old granulomatous disease in the right upper lobe.", "The lungs are clear."])
    assert verdict("location_support", it, placed) is None


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (["Calcified granuloma in the mid right lung.", "Left base streaky opacity."], "evidence_other_side"),
        (["Calcified granuloma in the mid right lung.", "Bibasilar atelectasis."], None),
        (["Calcified granuloma in the mid right lung."], None),
        # a finding without a side goes with the sided one of its sentence (round AM)
        (
            [
                "Calcified granuloma in the mid right lung.",
                "Ring-shaped opacity with central lucency, seen on PA view only, projects over left midlung.",
            ],
            "evidence_other_side",
        ),
    ],
)
def test_evidence_for_one_side_cites_no_sentence_of_the_other(evidence: list[str], expected: str | None) -> None:
    it = item(
        "region_abnormal",
        "Is there an abnormality in the right lung?",
        "yes",
        polarity=True,
        findings=["calcified_granuloma"],
        region="right_lung",
        evidence=list(range(len(evidence))),
    )
    assert verdict("location_support", it, context(evidence)) == expected


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (["Small left pleural effusion.", "Moderate right pleural effusion."], "side_incomplete"),
        (["Small left pleural effusion.", "Bilateral pleural effusions."], "side_incomplete"),
        (["Small left pleural effusion.", "Possible right pleural effusion."], None),  # hedged: not stated
        (["Small left pleural effusion.", "No right pleural effusion."], None),
    ],
)
def test_a_side_answer_names_every_side_the_report_states(report: list[str], expected: str | None) -> None:
    it = item(
        "finding_side",
        "On which side is the pleural effusion?",
        "left",
        answer_format="short",
        finding="pleural_effusion",
        evidence=[0],
    )
    assert verdict("location_support", it, context(report)) == expected


@pytest.mark.parametrize(
    ("sentence", "regions", "sides"),
    [
        # a placing verb places the sentence's first finding however far from it
        (
            "13 mm ring-shaped opacity with central lucency, seen on PA view only, projects over right midlung.",
            {"right_mid_zone"},
            {"right"},
        ),
        (
            "Nodular opacity which projects over the left lower lobe and right base.",
            {"left_lower_lobe", "right_base"},
            {"left", "right"},
        ),
        # the words around it placed it: the verb's place is another's
        ("Left basilar opacity, and a nodule that projects over the right hilum.", {"left_base"}, {"left"}),
        # "besides" ends a normal statement's reach: the lungs are its, "scattered" gives no side (round AN)
        ("Clear lungs besides scattered calcified granulomas.", set(), set()),
    ],
)
def test_the_place_of_the_first_finding(sentence: str, regions: set[str], sides: set[str]) -> None:
    first = independent.read_sentence(sentence)[0]
    assert (set(first.regions), set(first.sides)) == (regions, sides)


# -- 3. negative answers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # LLM replay round 9: the de-identified device of "right chest XXXX tip" is read as the device claimed
        ("Right chest XXXX tip in the high SVC.", None),
        ("Heart size mildly enlarged.", "second_reading_not_found"),
    ],
)
def test_a_device_claimed_present_on_an_unnamed_tip(sentence: str, expected: str | None) -> None:
    it = item(
        "finding_presence",
        "Is there a central venous catheter?",
        "yes",
        polarity=True,
        evidence=[0],
        finding="central_venous_catheter",
    )
    assert verdict("second_reading", it, context([sentence])) == expected
    assert independent.speaks_of("central_venous_catheter", (sentence,)) is (expected is None)


@pytest.mark.parametrize(
    ("sentences", "present", "expected_alone"),
    [
        # LLM replay rounds 1-9: "cardiomegaly" beside "No large pleural effusion" (10 items read correct)
        (["Mild cardiomegaly.", "No large pleural effusion."], "cardiomegaly", "negative_narrowed"),
        # synthetic rounds J and M: beside "No left pleural effusion" and an opacified other hemithorax (3 items)
        (
            ["Rightward mediastinal shift with opacified right hemithorax.", "No left pleural effusion."],
            "mediastinal_shift",
            "negative_one_side",
        ),
    ],
)
def test_a_narrowed_or_one_sided_negation_rules_out_the_other_finding_of_two(
    sentences: list[str], present: str, expected_alone: str
) -> None:
    """The other finding of two needs only not to be the present one; the effusion asked about alone stays open."""
    ctx = context(sentences)
    name = present.replace("_", " ")
    two = item(
        "which_of_two_findings",
        f"Which is present: {name} or a pleural effusion?",
        name,
        answer_format="short",
        evidence=[0, 1],
        findings=[present, "pleural_effusion"],
        finding_a=present,
        finding_b="pleural_effusion",
    )
    assert verdict("negative_support", two, ctx) is None
    alone = item("finding_presence", "Is there a pleural effusion?", "no", polarity=False, finding="pleural_effusion")
    assert verdict("negative_support", alone, ctx) == expected_alone


@pytest.mark.parametrize(
    ("sentences", "finding", "expected"),
    [
        # a device whose name was removed or garbled may be the one asked about (round AS)
        (["Right chest XXXX tip in the low SVC.", "The lungs are clear."], "catheter", "negative_unnamed_device"),
        (["Right chest XXXX tip in the low SVC.", "The lungs are clear."], "picc", "negative_unnamed_device"),
        # one the report rules out by name stays ruled out
        (["The distal tip courses into the stomach.", "The left PICC line has been removed."], "picc", None),
        (["Right IJ catheter tip in the low SVC.", "No pneumothorax."], "picc", "negative_unbacked"),
        (["Vague density related to the scapular tip.", "No PICC line."], "picc", None),
    ],
)
def test_an_unnamed_device_may_be_any(sentences: list[str], finding: str, expected: str | None) -> None:
    it = item("finding_presence", "Is there the device?", "no", polarity=False, finding=finding)
    assert verdict("negative_support", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "finding", "expected"),
    [
        (["No large pleural effusion."], "pleural_effusion", "negative_narrowed"),
        (["No destructive bony lesions are seen."], "bone_lesion", "negative_narrowed"),  # a benign one? (round BB)
        # a follow-up's purpose rules nothing out (round BB)
        (
            ["Recommend followup radiographically until cleared to ensure that there is no underlying mass."],
            "mass",
            "negative_unbacked",
        ),
        (["No acute cardiopulmonary process."], "granuloma", "negative_acute_only"),
        (["Heart size is normal."], "nodule", "negative_unbacked"),
        (["Small left pleural effusion.", "No pneumothorax."], "pleural_effusion", "negative_contradicted"),
        (["There is no pleural effusion."], "pleural_effusion", None),
        (["No acute cardiopulmonary process."], "pneumothorax", None),
        (["The lungs are clear."], "consolidation", None),
        # "no focal airspace opacity" rules out a lung opacity, where none of its kind is stated (round BC)
        (["No focal air space opacities."], "lung_opacity", None),
        (["No focal air space opacities.", "Right upper lobe nodule."], "lung_opacity", "negative_contradicted"),
        # statements that rule findings out without calling a region normal: the lung volumes
        (["Normal lung volumes."], "hyperinflation", None),
        (["Both lungs are clear and expanded."], "hypoinflation", None),
        (["The lungs are well expanded."], "hyperinflation", "negative_unbacked"),
        (["Low normal lung volumes."], "hypoinflation", "negative_unbacked"),
        # LLM replay round 17
        (["Stable, nonenlarged cardiomediastinal silhouette."], "cardiomegaly", None),
        (
            ["Heart size and mediastinal contour are similar to comparison exam and within normal limits."],
            "cardiomegaly",
            None,
        ),
        (["Heart size and mediastinal contour are similar to comparison exam."], "cardiomegaly", "negative_unbacked"),
        (["Normal pulmonary vasculature."], "pulmonary_congestion", None),
        (["Views of the chest show normal size and configuration of the cardiac silhouette."], "cardiomegaly", None),
        # "no airspace disease" covers the airspace's opacities, not a nodule below the lung opacity (round 20)
        (["No airspace disease, effusion or noncalcified nodule."], "nodule", "negative_narrowed"),
        (["No airspace disease."], "subsegmental_atelectasis", None),
        (["No airspace disease."], "lung_opacity", None),
        # a negation on one side leaves the other side open where the report reads something of the organ there
        (
            ["Airspace opacity in the right lower lobe.", "The left lung is clear without focal consolidation."],
            "consolidation",
            "negative_one_side",
        ),
        (["Small right pleural effusion.", "No left pleural effusion."], "pleural_effusion", "negative_contradicted"),
        (["Possible right pleural effusion.", "No left pleural effusion."], "pleural_effusion", "negative_one_side"),
        (["Right pleural thickening.", "No left pleural effusion."], "pleural_effusion", None),  # another kind
        (["Possible right pleural effusion.", "No left or right pleural effusion."], "pleural_effusion", None),
        (["The left lung is clear without focal consolidation."], "consolidation", None),
        (["Right upper lobe granuloma.", "No bilateral pleural effusions."], "pleural_effusion", None),
        # an opacity on the other side may be fluid (`one_side_open`: synthetic rounds J, L, M, N), a nodule there not
        (["Hazy opacity at the right base.", "No left pleural effusion."], "pleural_effusion", "negative_one_side"),
        (["Right upper lobe nodule.", "No left pleural effusion."], "pleural_effusion", None),
        (["Right basilar atelectasis.", "No left pleural effusion."], "pleural_effusion", None),
        (["No left pleural effusion.", "Heart size is normal."], "pleural_effusion", None),
        # an opacified hemithorax is fluid there (`fluid_hemithorax`)
        (
            ["Status post right pneumonectomy with opacified right hemithorax.", "No left pleural effusion."],
            "pleural_effusion",
            "negative_one_side",
        ),
        # "lack of" negates only what follows it (synthetic round T; review of session 31)
        (["Lack of mediastinal shift."], "mediastinal_shift", None),
        (["Lack of interval change in the small left pleural effusion."], "pleural_effusion", "negative_contradicted"),
        # a negation in one of the organs a finding may be in leaves the others open
        (["Mild degenerative changes of the thoracic spine without fracture."], "fracture", "negative_unbacked"),
        (["No fracture or focal bony destruction."], "fracture", None),
        # within one organ a negation in part of it is the report's word on the whole, to readers
        (["No infiltrates are present in the left lower lobe or in the right lung."], "infiltrate", None),
        # an acute bone finding ruled out is none of the chest's (synthetic round M)
        (["No acute bony abnormality."], "pneumothorax", "negative_unbacked"),
        (["No acute abnormality."], "pneumothorax", None),
    ],
)
def test_negative_support_of_an_absent_finding(sentences: list[str], finding: str, expected: str | None) -> None:
    it = item("finding_presence", "Is there the finding?", "no", polarity=False, finding=finding)
    assert verdict("negative_support", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        (["Left lower lobe consolidation.", "Heart size is normal."], "normal_claim_contradicted"),
        (["Possible left basilar atelectasis."], "normal_claim_uncertain"),
        (["No acute cardiopulmonary abnormality."], "negative_acute_only"),
        (["Heart size is normal.", "No pneumothorax."], "negative_unbacked"),
        (["The lungs are clear.", "Normal heart size."], None),
        # surgical material placed in it marks an operation on it (round AJ); elsewhere it does not
        (["The lungs appear clear.", "There is suture material at the left apex."], "normal_claim_surgical"),
        (["The lungs appear clear.", "Surgical clips overlying the right breast."], None),
        # clips projected over it are no lung finding to readers (a flagged round read blind)
        (["The lungs appear clear.", "Surgical clips project over the left apex."], None),
        # an operation the report states by its marks (rounds AS, X8): on the lung, on its side, or on the other
        (["Postoperative changes of left upper lobectomy.", "The lungs are clear."], "normal_claim_operated"),
        (["Postoperative changes of right upper lobectomy.", "The lungs are clear."], None),
        (["Distal clavicle shortening, possibly postsurgical.", "The lungs are clear."], None),
        # a sentence kept on a comparison's because its period went with a de-identified word (LLM replay round 17)
        (["No comparison chest x-XXXX Clear lungs.", "No effusions."], None),
        (["No comparison chest x-XXXX XXXX.", "No effusions."], "negative_unbacked"),
        # a finding that cannot be in the lung is placed by a neighbouring word (synthetic round A); a lung one is not
        (["The lungs are clear.", "Large hiatal hernia projects behind the heart."], None),
        (["The lungs are clear.", "Atelectasis projects behind the heart."], "normal_claim_contradicted"),
        # a shadow the sentence surely explains as a hernia is no lung finding (synthetic round A)
        (
            [
                "The lungs are clear.",
                "There is a retrocardiac density, consistent with a moderate-sized hiatal hernia.",
            ],
            None,
        ),
        (["The lungs are clear.", "There is a retrocardiac density."], "normal_claim_contradicted"),
    ],
)
def test_negative_support_of_a_normal_region(sentences: list[str], expected: str | None) -> None:
    it = item(
        "region_abnormal",
        "Is there an abnormality in the left lung?",
        "no",
        polarity=False,
        findings=[],
        evidence=[],
        region="left_lung",
    )
    assert verdict("negative_support", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentence", "region", "expected"),
    [
        ("Heart size is normal with postoperative changes consistent with CABG.", "heart", "normal_claim_operated"),
        ("Heart size is normal with postoperative changes consistent with CABG.", "left_lung", None),
        ("Stable postsurgical changes of the distal right clavicle.", "bony_thorax", "normal_claim_operated"),
        ("Stable postsurgical changes of the distal right clavicle.", "heart", None),
        # an operation placed nowhere is only the whole study's; a sternotomy is the sternum's
        ("Stable postop changes with normal lung vascularity.", "lungs", None),
        ("Status post midline sternotomy.", "bony_thorax", "normal_claim_operated"),
    ],
)
def test_an_operation_is_on_the_region_its_sentence_names(sentence: str, region: str, expected: str | None) -> None:
    it = item("region_abnormal", "Is there an abnormality?", "no", polarity=False, findings=[], region=region)
    sentences = [sentence, "The lungs are clear.", "Normal heart size.", "No acute bony abnormality."]
    assert verdict("negative_support", it, context(sentences)) == expected


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        # a normal statement that leaves out a shadow it does not explain rules out none of what it may be
        (
            [
                "Vague opacity within the left lower lobe.",
                "This may represent pneumonia.",
                "Lungs are otherwise clear.",
            ],
            "negative_partial_normal",
        ),
        (
            ["Airspace disease within the left lower lung.", "The remainder of the lungs are clear."],
            "negative_partial_normal",
        ),
        # the shadow is said to be something else; a lesion; a statement without exception; an explicit negation
        (["Left basilar opacity consistent with scarring.", "Lungs are otherwise clear."], None),
        (["A 7 mm nodular density at the left lung base.", "Lungs are otherwise clear."], None),
        (["Vague opacity within the left lower lobe.", "Lungs are clear."], None),
        (["Vague opacity within the left lower lobe.", "Lungs are otherwise clear.", "No consolidation."], None),
        # a shadow that may be only what it names is open for those alone (synthetic round B)
        (
            [
                "Residual linear opacity at the left base likely represents scarring or atelectasis.",
                "Lungs otherwise clear.",
            ],
            None,
        ),
        (
            ["Residual opacity at the left base may represent atelectasis or consolidation.", "Lungs otherwise clear."],
            "negative_partial_normal",
        ),
    ],
)
def test_a_partial_normal_statement_leaves_an_open_shadow_open(sentences: list[str], expected: str | None) -> None:
    it = item("finding_presence", "Is there consolidation?", "no", polarity=False, finding="consolidation", evidence=[])
    assert verdict("negative_support", it, context(sentences)) == expected


@pytest.mark.parametrize(("evidence", "expected"), [([0], "normal_evidence_unbacked"), ([1], None), ([], None)])
def test_a_category_claimed_normal_cites_what_says_so(evidence: list[int], expected: str | None) -> None:
    """The right answer citing a sentence that says nothing of the lungs (LLM replay round 2: read faulty)."""
    it = item(
        "category_abnormal",
        "Are there any lung abnormalities?",
        "no",
        polarity=False,
        findings=[],
        category="lung",
        evidence=evidence,
    )
    ctx = context(["No evidence of tuberculosis.", "The lungs are clear.", "Normal heart size."])
    assert verdict("negative_support", it, ctx) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"), [("The trachea is midline.", None), ("The heart size is normal.", "negative_unbacked")]
)
def test_a_midline_trachea_rules_out_its_deviation(sentence: str, expected: str | None) -> None:
    """LLM replay round 14: "Is tracheal deviation excluded? yes" from "The trachea is midline"."""
    it = item("finding_presence", "Is there tracheal deviation?", "no", polarity=False, finding="tracheal_deviation")
    assert verdict("negative_support", it, context([sentence])) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"), [("Mediastinum is midline.", None), ("The heart size is normal.", "negative_unbacked")]
)
def test_a_midline_mediastinum_rules_out_its_shift(sentence: str, expected: str | None) -> None:
    """Synthetic round J: "Which is present: lung opacity or mediastinal shift?" beside "Mediastinum is midline"."""
    it = item("finding_presence", "Is there mediastinal shift?", "no", polarity=False, finding="mediastinal_shift")
    assert verdict("negative_support", it, context([sentence])) == expected


def test_a_context_phrase_of_two_rules_is_refused() -> None:
    rules = [{"kind": "hedged", "phrases": ["not excluded"]}, {"kind": "hedged", "phrases": ["Not excluded", "may"]}]
    with pytest.raises(ResourceError, match="'Not excluded' is in rules 0 and 1"):
        independent._check_context_phrases(rules)
    independent._check_context_phrases(rules[:1])


def test_a_normal_study_needs_the_lungs_and_the_heart_declared_normal() -> None:
    it = item("study_is_normal", "Is this chest X-ray normal?", "yes", polarity=True, findings=[], evidence=[])
    assert verdict("negative_support", it, context(["No active disease."])) == "negative_acute_only"
    ctx = context(
        ["The heart and mediastinum are normal.", "The lungs are clear.", "No active disease."], indication="Cough."
    )
    assert verdict("negative_support", it, ctx) is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("Gallbladder XXXX clips.", "normal_claim_surgical"),  # surgical material anywhere: an operated study
        ("Surgical clips project over the left apex.", "normal_claim_surgical"),
        ("Right IJ central venous catheter tip in the SVC.", None),  # a device, not an abnormality (3 of 3)
    ],
)
def test_a_normal_study_has_no_surgical_material(extra: str, expected: str | None) -> None:
    """LLM replay rounds 6, 8: "Is this a normal chest X-ray? yes" for a report noting cholecystectomy clips."""
    it = item("study_is_normal", "Is this chest X-ray normal?", "yes", polarity=True, findings=[], evidence=[])
    ctx = context(["The heart and mediastinum are normal.", "The lungs are clear.", extra], indication="Cough.")
    assert verdict("negative_support", it, ctx) == expected


# -- 4. question sense and grammar ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template_id", "question", "answer", "polarity", "finding", "expected"),
    [
        (
            "finding_describe",
            "Describe the pleural effusion.",
            "There is no pleural effusion.",
            False,
            "pleural_effusion",
            "presupposes_absent_finding",
        ),
        ("finding_location", "Where is the cardiomegaly?", "heart", None, "cardiomegaly", "circular_location"),
        ("finding_severity", "How severe is the nodule?", "mild", None, "nodule", "severity_of_sized_finding"),
        (
            "finding_change",
            "How has the scarring changed since the prior study?",
            "chronic",
            None,
            "scarring",
            "not_an_interval_change",
        ),
        (
            "finding_describe",
            "Describe the pleural effusion.",
            "There is a small pleural effusion in the left pleura.",
            True,
            "pleural_effusion",
            None,
        ),
        (
            "finding_change",
            "How has the pleural effusion changed since the prior study?",
            "improved",
            None,
            "pleural_effusion",
            None,
        ),
    ],
)
def test_question_sense(
    template_id: str, question: str, answer: str, polarity: bool | None, finding: str, expected: str | None
) -> None:
    it = item(template_id, question, answer, polarity=polarity, answer_format="short", finding=finding)
    assert verdict("question_sense", it, context(["Small left pleural effusion."])) == expected


@pytest.mark.parametrize(
    ("question", "answer", "finding", "expected"),
    [
        ("Is degenerative changes excluded on this radiograph?", "no", "degenerative_changes", "number_agreement"),
        ("Has nodule been ruled out?", "no", "nodule", "missing_article"),
        ("Is there a pulmonary edema?", "no", "edema", "number_agreement"),
        ("Are degenerative changes excluded on this radiograph?", "no", "degenerative_changes", None),
        ("Has a nodule been ruled out?", "no", "nodule", None),
    ],
)
def test_grammar_agreement(question: str, answer: str, finding: str, expected: str | None) -> None:
    it = item("finding_ruled_out", question, answer, polarity=False, finding=finding)
    assert verdict("grammar_agreement", it, context(["Degenerative changes of the spine."])) == expected


def test_a_quoted_report_sentence_is_not_graded_for_grammar() -> None:
    it = item(
        "finding_presence_sentence",
        "Is there any sign of a pneumothorax?",
        "No. No pleural effusion or pneumothorax.",
        polarity=False,
        answer_format="full_sentence",
        finding="pneumothorax",
    )
    assert verdict("grammar_agreement", it, context(["No pleural effusion or pneumothorax."])) is None


# -- the ConText reading itself ------------------------------------------------------------------------------
def test_context_reading_of_invented_sentences() -> None:
    read = {
        m.finding: (m.status, sorted(m.regions), sorted(m.sides))
        for m in independent.read_sentence("No pneumothorax, but small right pleural effusion.")
    }
    assert read == {
        "pneumothorax": ("negated", [], []),
        "pleural_effusion": ("affirmed", ["pleura", "right_pleura"], ["right"]),
    }
    read = {
        m.finding: m.sides
        for m in independent.read_sentence("Bilateral calcified granulomas and degenerative change in the spine.")
    }
    assert read == {"calcified_granuloma": frozenset({"bilateral"}), "degenerative_changes": frozenset()}
    # a de-identified word after a finding's modifier may be its head noun, unless a determiner follows it (a verb:
    # LLM replay); after a noun ("opacity XXXX", "sternotomy XXXX") it is not (LLM replay rounds 1-4)
    (leads,) = independent.read_sentence("External atelectatic XXXX the thorax.")
    (atelectatic,) = independent.read_sentence("There are atelectatic XXXX at the right base.")
    assert ("deidentified" in leads.kinds, "deidentified" in atelectatic.kinds) == (False, True)
    (opacity,) = independent.read_sentence("There is a right basilar opacity XXXX.")
    (wires,) = independent.read_sentence("There are intact midline sternotomy XXXX.")
    assert ("deidentified" in opacity.kinds, "deidentified" in wires.kinds) == (False, False)
    # ... or a linking verb (the removed word was an adverb: "likely represents"; LLM replay round)
    blunting = independent.read_sentence("Bilateral costophrenic blunting XXXX represents pleural thickening.")[0]
    assert (blunting.finding, "deidentified" in blunting.kinds) == ("costophrenic_angle_blunting", False)
    # a predicate "dilated" is the aorta's enlargement (round BB)
    read = {m.finding: m.status for m in independent.read_sentence("The thoracic aorta is mildly dilated.")}
    assert read == {"aortic_enlargement": "affirmed"}


def test_hilar_nodes_are_read_as_lymph_nodes_too() -> None:
    sentences = ["Calcified left hilar node."]
    assert independent.reading("lymph_node_calcification", sentences)[0] == "present"
    assert independent.reading("hilar_calcification", sentences)[0] == "present"
    assert independent.reading("lymph_node_calcification", ["Calcified right paratracheal lymph node."])[0] == "present"
    assert (
        independent.reading("hilar_calcification", ["Calcified right paratracheal lymph node."])[0] == "not_mentioned"
    )


@pytest.mark.parametrize(
    ("sentence", "finding", "regions"),
    [
        # a place or size between "calcified" and its finding (rounds BB, BC); the longest place phrase in a
        # finding's words holds no shorter one ("lower lobe" of both lungs in "right lower lobe": round 18)
        ("Calcified right lower lobe granuloma.", "calcified_granuloma", {"right_lower_lobe"}),
        ("Calcified 5 mm granuloma.", "calcified_granuloma", set()),
        ("Calcified bilateral lung and perihilar granulomas.", "calcified_granuloma", {"lungs", "perihilar"}),
        ("Calcified right basilar nodule.", "calcified_nodule", {"right_base"}),
        # predicates and a dropped "of" (round BB, BC)
        ("The lung volumes are low.", "hypoinflation", {"lungs"}),
        (
            "There is persistent mild elevation right hemidiaphragm.",
            "diaphragm_elevation",
            {"right_hemidiaphragm"},
        ),
        ("Elevated right diaphragm.", "diaphragm_elevation", {"right_hemidiaphragm"}),
        ("The aorta is calcified.", "aortic_calcification", {"aorta"}),
        # the LLM replay round's false demotions; a hilum's nodes are the hilar finding (round BF)
        ("Calcified left hilar node.", "hilar_calcification", {"left_hilum"}),
        ("Calcified right hilar lymph nodes.", "hilar_calcification", {"right_hilum"}),
        ("Calcified right paratracheal lymph node.", "lymph_node_calcification", {"upper_mediastinum"}),
        ("Decreasing lung volumes.", "hypoinflation", {"lungs"}),
    ],
)
def test_findings_named_with_words_between_or_as_a_predicate(sentence: str, finding: str, regions: set[str]) -> None:
    (mention,) = independent.read_sentence(sentence)
    assert (mention.finding, mention.status, set(mention.regions)) == (finding, "affirmed", regions)


def test_targets_are_found_as_medspacys_target_matcher_finds_them() -> None:
    """`_Targets` finds what medspaCy's TargetMatcher with the same rules finds; where no token pattern's required
    words are in a sentence the phrases alone find it, and where one can match ("The heart is mildly enlarged.")
    the patterns are matched too."""
    from medspacy.target_matcher import TargetMatcher, TargetRule

    nlp, cue, targets = independent._pipeline(), independent._target_cue(), independent._targets()
    assert cue is not None
    medspacy = TargetMatcher(nlp)
    medspacy.add(
        [
            TargetRule(rule, finding) if isinstance(rule, str) else TargetRule("pattern", finding, pattern=rule)
            for finding, rule in independent._target_rules()
        ]
    )

    def spans(doc: Any) -> list[tuple[int, int, str]]:
        return [(e.start, e.end, e.label_) for e in doc.ents]

    texts = (
        "No pneumothorax, but small right pleural effusion.",
        "Calcified granuloma in the left upper lobe.",
        "The heart is mildly enlarged and there is a small left pleural effusion.",
        "The trachea is midline.",
    )
    for text in texts:
        expected = spans(medspacy(nlp.make_doc(text)))
        words = {t.lower_ for t in nlp.make_doc(text)}
        assert spans(targets.find(nlp.make_doc(text), cue.may_match_pattern(words))) == expected
        if not cue.may_match_pattern(words):
            assert spans(targets.find(nlp.make_doc(text), True)) == expected
    assert [m.finding for m in independent.read_sentence("The heart is mildly enlarged.")] == ["cardiomegaly"]


def test_modifiers_are_applied_as_medspacys_context_applies_them() -> None:
    """`_Modifiers` gives the modifiers and edges medspaCy's ConText component (with the pipeline's settings) gives
    over the same rules and targets."""
    from medspacy.context import ConText

    nlp, targets = independent._pipeline(), independent._targets()
    context = ConText(nlp, rules=None, span_attrs=None, prune_on_modifier_overlap=True)
    context.add(independent._context_rules())

    def read(graph: Any) -> tuple[list[Any], list[Any]]:
        return (
            [(m.modifier_span, m.category, m.scope_span) for m in graph.modifiers],
            [((t.start, t.end), m.modifier_span, m.category) for t, m in graph.edges],
        )

    for text in (
        "No pneumothorax, but small right pleural effusion.",
        "Possible left basilar atelectasis.",
        "Right basilar atelectasis versus scarring.",
        "There is no evidence of pneumonia.",
        "Bilateral calcified granulomas and degenerative change in the spine.",
    ):
        doc = targets.find(nlp.get_pipe("sentencizer")(nlp.make_doc(text)), True)
        expected = read(context(doc)._.context_graph)
        assert expected[1] and read(independent._modifiers().graph(doc)) == expected


# -- what is computed once for many items --------------------------------------------------------------------
def test_claims_are_shared_only_by_items_of_the_same_content() -> None:
    ctx = context(["Small left pleural effusion."])
    yes = item("finding_presence", "Is there a pleural effusion?", "yes", polarity=True, finding="pleural_effusion")
    assert independent.claims_of(dict(yes, item_id="qa-other"), ctx) is independent.claims_of(yes, ctx)
    assert [(c.kind, c.findings) for c in independent.claims_of(yes, ctx)] == [("present", ("pleural_effusion",))]
    no = dict(yes, answer="no", polarity=False)
    assert [(c.kind, c.findings) for c in independent.claims_of(no, ctx)] == [("absent", ("pleural_effusion",))]
    other = dict(yes, arguments=json.dumps({"finding": "pneumothorax"}))
    assert [c.findings for c in independent.claims_of(other, ctx)] == [("pneumothorax",)]
    # 1 == True as a key, not as an answer: an item with a field that is not text is read on its own
    assert independent._claims_key(dict(yes, answer=1), ctx) is None
    assert independent._claims_key(dict(yes, polarity=1), ctx) == independent._claims_key(dict(yes, polarity=None), ctx)


def test_shared_caches_keep_digests_and_one_copy_of_each_claims_value() -> None:
    independent.clear_caches()
    ctx = context(["Small left pleural effusion."])
    yes = item("finding_presence", "Is there a pleural effusion?", "yes", polarity=True, finding="pleural_effusion")
    tagged = dict(yes, findings=["pleural_effusion", "atelectasis"])  # another key: the claims read the argument
    assert independent._claims_key(tagged, ctx) != independent._claims_key(yes, ctx)
    assert independent.claims_of(tagged, ctx) is independent.claims_of(yes, ctx)
    assert verdict("grammar_agreement", yes, ctx) is None
    keys = [*independent._CLAIMS, *independent._GRAMMAR]
    assert len(keys) == 3 and all(type(key) is bytes and len(key) == 16 for key in keys)  # no item text kept
    assert len(independent._CLAIM_VALUES) == 1


def test_grammar_verdicts_are_shared_only_by_items_of_the_same_text() -> None:
    ctx = context(["A nodule."])
    right = item("finding_ruled_out", "Has a nodule been ruled out?", "no", polarity=False, finding="nodule")
    wrong = dict(right, question="Has nodule been ruled out?")
    assert [verdict("grammar_agreement", it, ctx) for it in (right, wrong, right)] == [None, "missing_article", None]
    assert verdict("grammar_agreement", dict(wrong, answer=1), ctx) == "missing_article"


def test_negative_verdicts_are_remembered_per_reading_of_a_report() -> None:
    it = item("finding_presence", "Is there a pleural effusion?", "no", polarity=False, finding="pleural_effusion")
    clear, effusion = context(["There is no pleural effusion."]), context(["Small left pleural effusion."])
    assert [verdict("negative_support", it, c) for c in (clear, effusion, clear, clear)] == [
        None,
        "negative_contradicted",
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("finding", "sentence", "expected"),
    [
        ("fracture", "Visualized osseous structures appear intact.", True),  # a normal statement covering it
        ("cardiomegaly", "Heart and mediastinum are stable with normal sized heart.", True),
        ("lung_opacity", "No suspicious pulmonary opacity.", True),  # a mention
        ("fracture", "Mild cardiomegaly.", False),
        ("spondylosis", "Thoracic spondylosis.", True),  # read as thoracic degenerative changes, also as spondylosis
        ("mediastinal_widening", "Normal heart size and mediastinal contours.", True),
        ("lung_opacity", "Clear chest", True),
        ("hilar_enlargement", "Normal mediastinal and hilar contours.", True),
        ("cardiomegaly", "Accounting for technical factors heart size XXXX within normal limits.", True),
    ],
)
def test_what_the_sentences_speak_of(finding: str, sentence: str, expected: bool) -> None:
    assert independent.speaks_of(finding, (sentence,)) is expected


@pytest.mark.parametrize(
    ("finding", "sentence", "expected"),
    [
        # a finding placed where only one finding below it can be is that one (LLM replay round 5)
        ("rib_fracture", "There is a healing fracture involving the left posterolateral 7th rib.", "present"),
        ("vertebral_fracture", "Fracture of the thoracic spine.", "present"),
        ("rib_fracture", "There is a healing fracture.", "not_mentioned"),
        # ... not one whose sites are its own (an elevated hemidiaphragm is no eventration)
        ("diaphragmatic_eventration", "Elevated left hemidiaphragm.", "not_mentioned"),
    ],
)
def test_a_placed_finding_reads_as_the_one_of_that_place(finding: str, sentence: str, expected: str) -> None:
    assert independent.reading(finding, [sentence])[0] == expected


@pytest.mark.parametrize(
    ("sentence", "statuses"),
    [
        # synthetic round A: "resolved" before its finding; the tip of a device unseen; a device's removal after it
        ("Resolved right pneumothorax.", {"pneumothorax": "negated"}),
        ("Resolved pneumonia with residual scarring.", {"pneumonia": "negated", "scarring": "affirmed"}),
        ("Nasogastric tube courses below the diaphragm, tip not visualized.", {"enteric_tube": "affirmed"}),
        (
            "Tiny right apical pneumothorax following chest tube removal.",
            {"pneumothorax": "affirmed", "chest_tube": "negated"},
        ),
        ("The mediastinum is mildly widened, as expected postoperatively.", {"mediastinal_widening": "affirmed"}),
        # resolving is not resolved (LLM replay round 22)
        (
            "COPD with almost completely resolved right apical pleural air collection.",
            {"copd": "affirmed", "pneumothorax": "affirmed"},
        ),
        # a sure explanation drops the shadow; a hedged one is the attribution check's
        (
            "Retrocardiac soft tissue density with an air-fluid level, consistent with a large hiatal hernia.",
            {"hiatal_hernia": "affirmed"},
        ),
        (
            "There is a small retrocardiac density which may be secondary to hiatal hernia.",
            {"density": "affirmed", "hiatal_hernia": "hedged"},
        ),
        # synthetic round G: a consideration named as such, or an alternative, is no stated finding
        ("Neoplasm is the main consideration.", {"malignancy": "hedged"}),
        (
            "In this clinical setting, Pneumocystis jirovecii pneumonia is the primary consideration.",
            {"pneumonia": "hedged"},
        ),
        ("ARDS is a differential consideration.", {"ards": "hedged"}),
        ("Viral pneumonia is an alternative.", {"pneumonia": "hedged"}),
        ("Differential considerations include edema and pneumonia.", {"edema": "hedged", "pneumonia": "hedged"}),
        # a consideration of another finding leaves a stated one stated
        ("Right lower lobe pneumonia. Consider follow-up to resolution.", {"pneumonia": "affirmed"}),
        # synthetic round J
        ("Right hilum appears fuller than previously.", {"hilar_enlargement": "affirmed"}),
        ("Fuller right hilum, possibly adenopathy.", {"hilar_enlargement": "affirmed", "lymphadenopathy": "hedged"}),
        ("The 6 mm nodular density is not definitely seen on today's study.", {"density": "negated"}),
        # ... but new here when it was not seen on the prior; "considered" hedges nothing that follows (review)
        ("Tiny left apical pneumothorax, not definitely seen on prior.", {"pneumothorax": "affirmed"}),
        ("Findings considered stable with small bilateral pleural effusions.", {"pleural_effusion": "affirmed"}),
        # one rule per phrase: "not excluded" is read backward only
        ("Small left pleural effusion not excluded.", {"pleural_effusion": "hedged"}),
    ],
)
def test_readings_of_synthetic_rounds(sentence: str, statuses: dict[str, str]) -> None:
    assert {m.finding: m.status for m in independent.read_sentence(sentence)} == statuses


@pytest.mark.parametrize(
    ("sentence", "statuses"),
    [
        # synthetic round C: a candidate named with the leading one; the known cancer three words too far back
        (
            "In the setting of known lung cancer, lymphangitic carcinomatosis is a concern; interstitial edema and "
            "drug-related pneumonitis are also in the differential.",
            {"malignancy": "affirmed", "edema": "affirmed", "pneumonia": "hedged"},
        ),
        (
            "Bibasilar opacities concerning for multifocal pneumonia; atelectasis could also contribute.",
            {"lung_opacity": "affirmed", "pneumonia": "hedged", "atelectasis": "hedged"},
        ),
        # the conditional after its finding stays stated: readers split on it
        ("Airspace disease, consistent with pneumonia in the appropriate clinical setting.", None),
        ("Mediastinum shifted to the right, unchanged.", {"mediastinal_shift": "affirmed"}),
        ("There is enlargement of the right hilum.", {"hilar_enlargement": "affirmed"}),
        ("Mediastinum is not widened.", {"mediastinal_widening": "negated"}),
        ("Left chest tube removed.", {"chest_tube": "negated"}),
    ],
)
def test_readings_of_synthetic_round_c(sentence: str, statuses: dict[str, str] | None) -> None:
    read = {m.finding: m.status for m in independent.read_sentence(sentence)}
    assert read == (statuses or {"airspace_disease": "affirmed", "pneumonia": "affirmed"})


@pytest.mark.parametrize(
    ("sentence", "side", "expected"),
    [
        # a finding named without a side is on its sentence's one side (synthetic round C)
        ("Bilateral moderate pleural effusions with associated compressive atelectasis.", "bilateral", None),
        (
            "Bilateral moderate pleural effusions with associated compressive atelectasis.",
            "left",
            "side_not_in_evidence",
        ),
        # two sides in the sentence: none is the finding's
        ("Right pleural effusion and left pneumothorax with atelectasis.", "left", "side_not_in_evidence"),
    ],
)
def test_a_finding_without_a_side_has_its_sentence_side(sentence: str, side: str, expected: str | None) -> None:
    it = item(
        "finding_side",
        "On which side is the atelectasis?",
        side,
        answer_format="short",
        finding="atelectasis",
        evidence=[0],
    )
    assert verdict("location_support", it, context([sentence])) == expected


def test_a_tortuous_and_calcified_aorta_is_read_as_both() -> None:
    """One mention ("Aorta is tortuous and calcified"), read as the tortuosity and as the calcification (synthetic
    round A: 4 correct calcification answers demoted as not named)."""
    sentences = ("Aorta is tortuous and calcified.",)
    read = {
        f: independent.reading(f, sentences)[0] for f in ("tortuous_aorta", "aortic_calcification", "calcification")
    }
    assert read == {"tortuous_aorta": "present", "aortic_calcification": "present", "calcification": "present"}
    assert independent.reading("aortic_calcification", ("The aorta is tortuous.",))[0] == "not_mentioned"


@pytest.mark.parametrize(
    ("sentence", "finding", "sides"),
    [
        # a side word right after a placed finding is its side (synthetic round C) ...
        ("Apical pleural thickening bilaterally.", "pleural_thickening", {"bilateral"}),
        ("Multiple calcified pleural plaques bilaterally, along the diaphragm.", "pleural_plaque", {"bilateral"}),
        # ... and an unplaced one's is found with the places after it (LLM replay round 17)
        ("Degenerative left glenohumeral osteoarthritis.", "degenerative_changes", {"left"}),
    ],
)
def test_a_side_word_right_after_a_finding(sentence: str, finding: str, sides: set[str]) -> None:
    (mention,) = [m for m in independent.read_sentence(sentence) if m.finding == finding]
    assert mention.sides == sides
    if finding == "degenerative_changes":
        assert mention.regions == {"shoulders"}


@pytest.mark.parametrize(
    ("finding", "sentence", "read"),
    [
        # synthetic round E: the reader's name for it is another finding's, which readers take for this one too
        ("lymphadenopathy", "Right paratracheal and bilateral hilar lymphadenopathy.", "present"),
        ("lymphadenopathy", "Bilateral hilar enlargement.", "not_mentioned"),
        ("interstitial_opacity", "There are increased interstitial markings bilaterally.", "present"),
        ("mediastinal_widening", "Mild widening of the postoperative mediastinal silhouette, expected.", "present"),
    ],
)
def test_readings_of_synthetic_round_e(finding: str, sentence: str, read: str) -> None:
    assert independent.reading(finding, (sentence,))[0] == read


def _unguarded_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    """`_statements_in` searching every pattern of every normal statement, as without its literal prefilter."""
    plain = dataclasses.replace(
        independent.rules(),
        statements=tuple(dataclasses.replace(s, literals=None) for s in independent.rules().statements),
    )
    monkeypatch.setattr(independent, "rules", lambda: plain)
    monkeypatch.setattr(independent, "_declaring_words", lambda: None)


def _declared(sentences: list[str]) -> list[tuple]:
    return [independent._statements_in.__wrapped__(s) for s in sentences]


def _guarded_patterns() -> list[Any]:
    """The other patterns of a report's reading searched through their literal prefilter."""
    return [independent._partial_normal(), independent._device_tip(), *(g for g, _ in independent._operation_rules())]


def _guarded_matches(sentences: list[str]) -> tuple[list, list]:
    """Each sentence's matches of `_guarded_patterns`, searched guarded and plain."""
    guards = _guarded_patterns()
    lows = [s.lower() for s in sentences]
    return (
        [[m and m.span() for g in guards if (m := g.search(low))] for low in lows],
        [[m and m.span() for g in guards if (m := g.pattern.search(low))] for low in lows],
    )


STATEMENT_SENTENCES = [
    "The lungs are clear.",
    "Left lung is clear.",
    "Heart size and pulmonary vascularity are normal.",
    "The cardiomediastinal silhouette, pulmonary vasculature and osseous structures are within normal limits.",
    "No acute cardiopulmonary abnormality.",
    "Negative for acute disease.",
    "Clear chest",
    "Normal lung volumes.",
    "Low lung volumes.",
    "Trachea is midline.",
    "Lungs are otherwise clear.",
    "Right chest XXXX tip in the low SVC.",
    "Postoperative changes of the right clavicle.",
    "Status post left upper lobectomy and median sternotomy.",
    "Left basilar plate-like atelectasis is noted.",
    "Small right pleural effusion.",
    "",
]


def test_the_normal_statements_prefilter_skips_only_sentences_that_declare_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert independent._declaring_words() and all(s.literals for s in independent.rules().statements)
    guarded = _declared(STATEMENT_SENTENCES)
    assert guarded[0] == (frozenset({"lungs"}), False, ("lungs_clear",), frozenset())
    assert all(found is independent._DECLARES_NOTHING for found in guarded[-2:])  # skipped, not searched
    _unguarded_statements(monkeypatch)
    assert _declared(STATEMENT_SENTENCES) == guarded


def test_the_other_guarded_patterns_answer_as_their_patterns() -> None:
    assert all(guard.literals for guard in _guarded_patterns())
    guarded, plain = _guarded_matches(STATEMENT_SENTENCES)
    assert guarded == plain
    assert [len(found) for found in guarded[-7:-2]] == [1, 1, 1, 2, 0]  # otherwise; a tip; operations; none


def test_the_reports_prefilters_on_real_reports(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    with open(data_dir / "reports" / "iu_dev_reports.csv", newline="", encoding="utf-8") as handle:
        texts = [f"{row['findings']} {row['impression']}" for row in csv.DictReader(handle)]
    sentences = sorted({s for text in texts for s in re.split(r"(?<=\.)\s+", text) if s})
    guarded = _declared(sentences)
    assert sum(1 for found in guarded if found[2]) > 100  # the sample holds normal statements
    matches, plain = _guarded_matches(sentences)
    assert matches == plain and sum(1 for found in matches if found) > 100
    _unguarded_statements(monkeypatch)
    assert _declared(sentences) == guarded
