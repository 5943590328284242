"""Synthetic reports: deterministic for a seed, read back by the real loader and parser exactly as the
generator laid them out, and their gold graphs valid scene graphs whose mentions are where they say."""

from __future__ import annotations

from collections import Counter

import jsonschema
import orjson
import pytest

from cxrvqa.core.resources import load_json_schema
from cxrvqa.core.scene_graph import SceneGraph
from cxrvqa.core.text import split_sentences
from cxrvqa.reports.loaders import RawReport, load_reports
from cxrvqa.synth.reports import CHUNK, make_chunk


@pytest.fixture(scope="module")
def chunk():
    return make_chunk(11, 0, 600, plans_below=600)


def _lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


def test_same_seed_same_corpus_and_other_seed_another() -> None:
    first, again, other = make_chunk(5, 0, 50), make_chunk(5, 0, 50), make_chunk(6, 0, 50)
    assert (first.reports, first.gold) == (again.reports, again.gold)
    assert first.reports != other.reports


def test_a_smaller_corpus_is_the_start_of_a_larger_one() -> None:
    small = make_chunk(5, 0, 30)
    large = make_chunk(5, 0, CHUNK + 30)
    assert large.reports.startswith(small.reports) and large.gold.startswith(small.gold)
    assert (small.count, large.count) == (30, CHUNK)
    second = make_chunk(5, 1, CHUNK + 30)
    assert (second.first, second.count) == (CHUNK, 30)
    assert _lines(second.reports)[0]["study_id"] == f"synth-s{CHUNK:07d}"


def test_reports_load_through_the_real_loader(chunk, tmp_path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_bytes(chunk.reports)
    records = list(load_reports(path, "jsonl"))
    assert len(records) == 600 and all(isinstance(r, RawReport) for r in records)
    written = _lines(chunk.reports)
    assert [(r.study_id, r.patient_id, r.text) for r in records] == [
        (w["study_id"], w["patient_id"], w["text"]) for w in written
    ]
    # patients with several studies: ids shared, studies in order
    per_patient = Counter(r.patient_id for r in records)
    assert max(per_patient.values()) >= 2


def test_gold_graphs_are_valid_scene_graphs_of_the_text(chunk) -> None:
    schema = load_json_schema("scene_graph.schema.json")
    for report, gold in zip(_lines(chunk.reports), _lines(chunk.gold), strict=True):
        graph = SceneGraph.model_validate(gold)
        if report["study_id"].endswith(("0", "5")):
            jsonschema.validate(gold, schema)
        assert graph.backend == "synthetic" and graph.study_id == report["study_id"]
        text = report["text"]
        # the real parser splits the text into exactly the gold sentences, sections included
        assert [(s.section, s.start, s.end) for s in split_sentences(text)] == [
            (s.section, s.start, s.end) for s in graph.sentences
        ]
        for sentence in graph.sentences:
            assert text[sentence.start : sentence.end] == sentence.text
        for observation in graph.observations:
            evidence = observation.evidence[0]
            sentence = graph.sentences[evidence.sentence_id]
            assert sentence.start <= evidence.start < evidence.end <= sentence.end
            if not observation.derived_from:  # a named mention is the observation's name, as written
                assert text[evidence.start : evidence.end] == observation.name
            else:
                assert observation.presence == "absent" and observation.derived_from[0].startswith("statement:")


def test_the_corpus_has_the_variety_it_promises(chunk) -> None:
    golds = _lines(chunk.gold)
    texts = [r["text"] for r in _lines(chunk.reports)]
    observations = [o for g in golds for o in g["observations"]]
    named = [o for o in observations if not o.get("derived_from")]  # fields at the model's default are left out
    assert {o["presence"] for o in named} == {"present", "absent", "uncertain"}
    assert {o.get("laterality") for o in named} == {"left", "right", "bilateral", None}
    assert {"new", "worsened", "improved", "unchanged", "resolved", "chronic"} <= {o.get("change") for o in named}
    assert {"minimal", "mild", "moderate", "severe"} <= {o.get("severity") for o in named}
    assert {o["category"] for o in named} >= {"lung", "pleura", "cardiovascular", "device", "bone"}
    assert any(o.get("regions") for o in named)
    normal = sum(not any(o["presence"] != "absent" for o in g["observations"]) for g in golds)
    assert 0.2 < normal / len(golds) < 0.5
    sections = Counter(s["section"] for g in golds for s in g["sentences"])
    assert set(sections) == {"indication", "comparison", "technique", "findings", "impression"}
    assert sum("\n" in t.split("FINDINGS: ", 1)[-1].split("\n\n")[0] for t in texts) > 50  # wrapped lines
    assert sum("XXXX" in t for t in texts) > 50  # de-id tokens
    assert sum("2. " in t for t in texts) > 50  # numbered impressions
    assert sum("FINDINGS:" not in t for t in texts) > 5  # impression only
    # multi-finding sentences: two or more named findings in one sentence
    per_sentence = Counter(
        (g["study_id"], o["evidence"][0]["sentence_id"])
        for g in golds
        for o in g["observations"]
        if not o.get("derived_from")
    )
    assert sum(n >= 2 for n in per_sentence.values()) > 100


def test_image_plans_follow_the_technique(chunk) -> None:
    plans = chunk.plans
    assert len(plans) == 600 and [p.index for p in plans] == list(range(600))
    assert {p.views for p in plans} == {("PA", "LATERAL"), ("PA",), ("AP",)}
    assert all(p.views == ("AP",) for p in plans if p.portable)
    by_id = {g["study_id"]: g for g in _lines(chunk.gold)}
    for plan in plans:
        technique = [s["text"] for s in by_id[plan.study_id]["sentences"] if s["section"] == "technique"]
        if technique and plan.portable:
            assert "AP" in technique[0] and "ortable" in technique[0]
        elif technique and plan.views == ("PA", "LATERAL"):
            assert "lateral" in technique[0] or "Two views" in technique[0]
