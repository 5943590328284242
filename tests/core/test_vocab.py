"""The vocabularies: required label sets, trees, and the checks that guard them."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from cxrvqa.core.resources import load_json_schema
from cxrvqa.core.vocab import FindingId, RegionId, _check_tree, _unique_synonyms, vocabulary
from cxrvqa.errors import ResourceError

CHEXPERT = {
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
}
CHESTXRAY14 = {
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
}


def test_label_sets_are_complete_and_unambiguous() -> None:
    findings = vocabulary().findings.values()
    for scheme, labels in (("chexpert", CHEXPERT), ("chestxray14", CHESTXRAY14)):
        codes = Counter(f["codes"][scheme] for f in findings if scheme in f.get("codes", {}))
        assert set(codes) == labels and max(codes.values()) == 1, scheme


def test_region_tree_has_sides() -> None:
    regions = vocabulary().regions
    assert regions["left_lung"]["laterality"] == "left" and regions["right_lung"]["laterality"] == "right"
    assert regions["left_lower_lobe"]["parent"] == "left_lung" and regions["lingula"]["laterality"] == "left"
    for region in (
        "apices",
        "bases",
        "hila",
        "costophrenic_angles",
        "heart",
        "mediastinum",
        "aorta",
        "trachea",
        "spine",
        "ribs",
        "clavicles",
        "diaphragm",
        "pleura",
    ):
        assert region in regions
    assert "pleural_effusion" in FindingId.__members__ and "left_lung" in RegionId.__members__


def test_broken_trees_and_shared_synonyms_are_refused() -> None:
    with pytest.raises(ResourceError, match="parent 'nowhere', which is not defined"):
        _check_tree({"a": {"parent": "nowhere"}}, "findings.yaml")
    with pytest.raises(ResourceError, match="parent cycle"):
        _check_tree({"a": {"parent": "b"}, "b": {"parent": "a"}}, "findings.yaml")
    with pytest.raises(ResourceError, match="synonym 'fluid' belongs to both"):
        _unique_synonyms([{"id": "a", "synonyms": ["fluid"]}, {"id": "b", "synonyms": ["fluid"]}], "findings.yaml")


@pytest.mark.parametrize(("number", "valid"), [("plural", True), ("singular", False), ("mass", False)])
def test_a_name_for_one_is_only_for_a_plural_named_finding(number: str, valid: bool) -> None:
    """findings.yaml `one` ("Calcified hilar lymph node" of "Calcified hilar lymph nodes") names one of a plural."""
    validator = jsonschema.Draft202012Validator(load_json_schema("findings_vocab.schema.json"))
    finding = {"id": "x", "name": "Xs", "number": number, "category": "lung", "synonyms": ["xs"], "one": "X"}
    document = {"version": 1, "categories": ["lung"], "category_adjectives": {"lung": "lung"}, "findings": [finding]}
    assert validator.is_valid(document) is valid


def test_iu_mesh_headings_are_covered(data_dir: Path) -> None:
    """Every MeSH heading used >= 5 times in the IU dev reports maps to a finding (gold for evaluation)."""
    with open(data_dir / "reports" / "iu_dev_reports.csv", newline="") as handle:
        headings = Counter(
            term.split("/")[0].strip()
            for row in csv.DictReader(handle)
            for term in row["MeSH"].split(";")
            if term.strip()
        )
    mapped = {f["codes"]["mesh"] for f in vocabulary().findings.values() if "mesh" in f.get("codes", {})}
    noted = " ".join(f.get("notes", "") for f in vocabulary().findings.values())
    frequent = {h for h, n in headings.items() if n >= 5} - {"No Indexing", "Heart"}
    missing = sorted(h for h in frequent if h not in mapped and h not in noted)
    assert missing == []
