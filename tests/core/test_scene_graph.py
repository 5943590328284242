"""The scene-graph model: its generated JSON Schema, and the invariants it enforces."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from cxrvqa.core.resources import load_json_schema, resource
from cxrvqa.core.scene_graph import Evidence, Observation, SceneGraph, Sentence, json_schema, schema_text


def graph(**observation: object) -> SceneGraph:
    fields = {
        "id": "o1",
        "name": "small left effusion",
        "finding": "pleural_effusion",
        "presence": "present",
        "laterality": "left",
        "regions": ["left_lung"],
        "severity": "mild",
        "evidence": [{"sentence_id": 0, "start": 10, "end": 29}],
    }
    return SceneGraph(
        study_id="s1",
        backend="rules",
        sentences=[Sentence(id=0, section="findings", text="Small left effusion.", start=10, end=30)],
        observations=[Observation(**{**fields, **observation})],
    )


def test_packaged_schema_is_the_generated_one() -> None:
    packaged = resource("schemas", "scene_graph.schema.json").read_text()
    assert packaged == schema_text(), (
        "schemas/scene_graph.schema.json drifted from the model: run "
        "`.venv/bin/python -m cxrvqa.extraction.schemas --write`"
    )


def test_a_valid_graph_passes_both_pydantic_and_the_json_schema() -> None:
    data = json.loads(graph().model_dump_json())
    jsonschema.Draft202012Validator(load_json_schema("scene_graph.schema.json")).validate(data)
    assert SceneGraph.model_validate(data) == graph()


def test_vocabulary_values_are_enforced() -> None:
    with pytest.raises(ValidationError, match="finding"):
        graph(finding="dragon_scales")
    with pytest.raises(ValidationError, match="regions"):
        graph(regions=["left_elbow_of_the_moon"])
    assert "pleural_effusion" in json.dumps(json_schema())


def test_unresolved_mentions_are_kept_not_dropped() -> None:
    unresolved = graph(finding=None, unresolved_text="vague haziness")
    assert unresolved.observations[0].unresolved_text == "vague haziness"
    with pytest.raises(ValidationError, match="expected a vocabulary finding or unresolved_text"):
        graph(finding=None)


def test_references_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown sentence"):
        graph(evidence=[Evidence(sentence_id=5, start=0, end=1)])
    with pytest.raises(ValidationError, match="parent o9 does not exist"):
        graph(parent_id="o9")
    with pytest.raises(ValidationError, match="without evidence"):
        graph(evidence=[])
    assert graph(evidence=[], from_report=False).observations[0].from_report is False
