"""The llm backend's pure parts: prompt files, the response schema, vocabulary mapping, grounding."""

from __future__ import annotations

import json

import pytest

from cxrvqa.errors import ResourceError
from cxrvqa.extraction import llm
from cxrvqa.extraction.model import Sentence
from cxrvqa.resources import resource

SENTENCES = [Sentence(id=0, section="indication", text="Cough.", start=12, end=18),
             Sentence(id=1, section="findings", text="Small left pleural effusion.", start=29, end=57),
             Sentence(id=2, section="findings", text="No pneumothorax.", start=58, end=74)]


def item(**overrides: object) -> dict:
    return {"finding": "pleural effusion", "presence": "present", "laterality": "left", "regions": [],
            "severity": "mild", "change": None, "sentence_id": 1, "evidence": "pleural effusion", **overrides}


def test_response_schema_file_matches_the_model() -> None:
    text = resource("schemas", "llm_extraction_response.schema.json").read_text()
    assert text == llm.schema_text(), "run: python -m cxrvqa.extraction.model --write"
    schema = llm.response_schema()["$defs"]["LLMObservation"]
    # strict structured output: every property required, nothing extra
    assert set(schema["required"]) == set(schema["properties"]) and schema["additionalProperties"] is False


def test_prompt_renders_numbered_sentences_and_its_hash_covers_the_schema() -> None:
    prompt = llm.load_prompt("report_observations")
    assert (prompt.id, prompt.version) == ("report_observations", 1)
    system, user = prompt.messages(SENTENCES, schema_in_prompt=False)
    assert user == {"role": "user", "content": "Report sentences (id, section, text):\n[0] indication: Cough.\n"
                                               "[1] findings: Small left pleural effusion.\n[2] findings: No pneumothorax."}
    assert "Example answer" in system["content"] and "JSON Schema" not in system["content"]
    with_schema = prompt.messages(SENTENCES, schema_in_prompt=True)[0]["content"]
    assert '"LLMObservation"' in with_schema   # json_object mode: the schema travels in the prompt
    assert len(prompt.hash) == 16


def test_a_bad_prompt_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "broken.md").write_text("---\nid: broken\n---\n{% block system %}x{% endblock %}")
    real = llm.resource

    def patched(*parts: str):
        return tmp_path / parts[-1] if parts[-1] == "broken.md" else real(*parts)

    monkeypatch.setattr(llm, "resource", patched)
    with pytest.raises(ResourceError, match=r"prompts/extraction/broken.md.*version"):
        llm.load_prompt("broken")
    with pytest.raises(ResourceError, match="no such prompt"):
        llm.load_prompt("../etc/passwd")


def test_mapping_synonyms_then_fuzzy_then_unresolved() -> None:
    assert llm.map_term("Pleural Effusion", "finding") == "pleural_effusion"
    assert llm.map_term("pleural efusion", "finding") == "pleural_effusion"
    assert llm.map_term("right lower lobe", "region") == "right_lower_lobe"
    assert llm.map_term("pectus excavatum of the moon", "finding") is None


def test_errors_are_specific_enough_to_re_ask() -> None:
    with pytest.raises(llm.AnswerError, match="not JSON"):
        llm.parse_answer('{"observations": [')
    with pytest.raises(llm.AnswerError, match="observations/0/presence"):
        llm.parse_answer(json.dumps({"observations": [item(presence="maybe")]}))
    answer = llm.parse_answer(json.dumps({"observations": [item(evidence="large right pneumothorax")]}))
    with pytest.raises(llm.AnswerError, match="evidence 'large right pneumothorax' of sentence 1"):
        llm.answer_to_graph("s", SENTENCES, None, answer)


def test_grounded_answer_becomes_a_graph_with_offsets_and_unresolved_text_kept() -> None:
    answer = llm.parse_answer(json.dumps({"observations": [
        item(), item(finding="pneumothorax", presence="absent", laterality=None, severity=None, sentence_id=2,
                     evidence="PNEUMOTHORAX"),
        item(finding="mystery shadow", regions=["left lung", "somewhere odd"], severity=None)]}))
    graph, codes = llm.answer_to_graph("s", SENTENCES, "Cough.", answer)
    assert codes == ["unresolved_findings", "unresolved_regions"]
    first, second, third = graph.observations
    assert (first.finding, first.category, first.presence, first.laterality, first.severity) == (
        "pleural_effusion", "pleura", "present", "left", "mild")
    assert (first.evidence[0].start, first.evidence[0].end, first.name) == (40, 56, "pleural effusion")
    assert (second.finding, second.presence, second.name) == ("pneumothorax", "absent", "pneumothorax")
    assert (third.finding, third.unresolved_text, third.regions, third.modifiers) == (
        None, "mystery shadow", ["left_lung"], ["unresolved_region:somewhere odd"])
