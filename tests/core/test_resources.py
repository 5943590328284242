"""Packaged data files are found through the package and checked against their schemas."""

from __future__ import annotations

import jsonschema
import pytest

from cxrvqa.core import resources
from cxrvqa.errors import ResourceError
from cxrvqa.imaging.header import acceptance_vocabulary


def test_acceptance_vocabulary_loads_and_validates() -> None:
    vocabulary = acceptance_vocabulary()
    assert {"CR", "DX"} <= vocabulary.radiograph_modalities
    assert vocabulary.view_lookup()["POSTERO-ANTERIOR"] == "PA"
    assert vocabulary.plane_of("LL") == "lateral" and len(vocabulary.content_hash) == 16


def test_a_bad_data_file_names_the_file_and_the_problem(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "schemas" / "vocab"
    bad.mkdir(parents=True)
    real_resource = resources.resource
    text = real_resource("schemas", "vocab", "dicom_acceptance.yaml").read_text()
    (bad / "dicom_acceptance.yaml").write_text(
        text.replace("radiograph_modalities: [CR, DX]", "radiograph_modalities: CR")
    )

    def patched(*parts: str):
        return (tmp_path.joinpath(*parts)) if parts[-1].endswith(".yaml") else real_resource(*parts)

    monkeypatch.setattr(resources, "resource", patched)
    with pytest.raises(ResourceError) as error:
        resources.load_checked_yaml("schemas/vocab/dicom_acceptance.yaml", "dicom_acceptance.schema.json")
    assert str(error.value) == (
        "packaged resource 'schemas/vocab/dicom_acceptance.yaml': does not match dicom_acceptance.schema.json "
        "at radiograph_modalities: 'CR' is not of type 'array'"
    )


def test_a_key_written_twice_in_a_data_file_is_an_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """YAML lets the second of two equal keys replace the first: the rules under the first would be dropped unseen."""
    (tmp_path / "rules.yaml").write_text("extra_targets:\n  nodule: [a]\n  mass: [b]\n  nodule: [c]\n")
    monkeypatch.setattr(resources, "resource", lambda *parts: tmp_path / parts[-1])
    with pytest.raises(ResourceError) as error:
        resources.load_checked_yaml("schemas/vocab/rules.yaml", "dicom_acceptance.schema.json")
    assert "found the key 'nodule' twice" in str(error.value) and "line 4" in str(error.value)


def test_missing_resource_is_a_resource_error() -> None:
    with pytest.raises(ResourceError, match="file not found in the installed package"):
        resources.load_json_schema("no_such.schema.json")


def test_every_packaged_schema_is_a_valid_json_schema() -> None:
    """`load_json_schema` leaves the meta-schema check to this test: every schema under schemas/ is valid Draft
    2020-12, and the check itself tells a broken one."""
    names = sorted(node.name for node in resources.resource("schemas").iterdir() if node.name.endswith(".json"))
    assert len(names) >= 20 and "qa_item.schema.json" in names
    for name in names:
        jsonschema.Draft202012Validator.check_schema(resources.load_json_schema(name))
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema({"type": "no-such-type"})
