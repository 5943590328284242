"""The offline extractor (backend `rules`): sentences -> observations with presence, laterality,
regions, severity and change.

Findings, regions and modifiers come from the vocabularies; negation/uncertainty triggers,
scope terminators and normal statements from `schemas/vocab/extraction_rules.yaml`. The
method is ConText-like: a trigger governs the findings of its clause (until a terminator or
; : ( ) .), the nearest trigger wins, and phrases overlapping a longer phrase are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from cxrvqa.errors import ResourceError
from cxrvqa.extraction.model import Evidence, Observation, SceneGraph, Sentence
from cxrvqa.extraction.vocab import vocabulary
from cxrvqa.resources import load_checked_yaml

#: Sections whose sentences state findings (indication, comparison and technique do not).
FINDING_SECTIONS = {"findings", "impression", "other"}
_CLAUSE_PUNCT = {";", ":", "(", ")", ".", "?", "!"}
_TRIGGERS = ("negation_before", "uncertainty_before", "negation_after", "uncertainty_after", "scope_terminators")


@dataclass(frozen=True)
class _Rules:
    nlp: spacy.language.Language
    findings: PhraseMatcher
    context: PhraseMatcher       # triggers, terminators and modifiers: one pool, longest wins
    regions: PhraseMatcher
    normal_statements: list[tuple[str, re.Pattern[str], list[str]]]
    content_hash: str


@lru_cache(maxsize=1)
def rules() -> _Rules:
    data, digest = load_checked_yaml("schemas/vocab/extraction_rules.yaml", "extraction_rules.schema.json")
    vocab = vocabulary()
    nlp = spacy.blank("en")

    def matcher(groups: dict[str, list[str]]) -> PhraseMatcher:
        phrase_matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for label, phrases in groups.items():
            phrase_matcher.add(label, [nlp.make_doc(p) for p in phrases])
        return phrase_matcher

    context = {name: data[name] for name in _TRIGGERS}
    context.update({f"severity:{s['id']}": s["synonyms"] for s in vocab.severity})
    context.update({f"change:{c['id']}": c["synonyms"] for c in vocab.change})
    context.update({f"laterality:{lat['id']}": lat["synonyms"] for lat in vocab.laterality})
    statements = []
    for statement in data["normal_statements"]:
        unknown = [f for f in statement["absent"] if f not in vocab.findings]
        if unknown:
            raise ResourceError("schemas/vocab/extraction_rules.yaml",
                                f"normal statement {statement['id']!r} names unknown findings {unknown}")
        pattern = re.compile("|".join(f"(?:{p})" for p in statement["patterns"]))
        statements.append((statement["id"], pattern, statement["absent"]))
    return _Rules(
        nlp=nlp,
        findings=matcher({f"finding:{fid}": f["synonyms"] for fid, f in vocab.findings.items()}),
        context=matcher(context),
        regions=matcher({f"region:{rid}": r["synonyms"] for rid, r in vocab.regions.items() if r["synonyms"]}),
        normal_statements=statements,
        content_hash=digest + vocab.content_hash,
    )


def _spans(doc: Doc, matcher: PhraseMatcher) -> list[Span]:
    return filter_spans([Span(doc, start, end, label=match_id) for match_id, start, end in matcher(doc)])


def _kind(span: Span) -> str:
    return span.label_.split(":", 1)[0]


def _value(span: Span) -> str:
    return span.label_.split(":", 1)[1]


def _clause(doc: Doc, context: list[Span], start: int, end: int) -> tuple[int, int]:
    """Token range of the clause around [start, end): up to terminators and clause punctuation."""
    left, right = 0, len(doc)
    for token in doc:
        if token.text in _CLAUSE_PUNCT:
            if token.i < start:
                left = max(left, token.i + 1)
            elif token.i >= end:
                right = min(right, token.i)
    for span in context:
        if _kind(span) == "scope_terminators":
            if span.end <= start:
                left = max(left, span.end)
            elif span.start >= end:
                right = min(right, span.start)
    return left, right


def _nearest(spans: list[Span], position: int, kinds: set[str], window: int | None = None) -> Span | None:
    best, best_distance = None, None
    for span in spans:
        if _kind(span) not in kinds:
            continue
        distance = position - span.end if span.end <= position else span.start - position
        if window is not None and distance > window:
            continue
        if best_distance is None or distance < best_distance:
            best, best_distance = span, distance
    return best


def _sentence_observations(sentence: Sentence, next_id: list[int]) -> list[Observation]:
    r = rules()
    vocab = vocabulary()
    doc = r.nlp.make_doc(sentence.text)
    findings = _spans(doc, r.findings)
    if not findings:
        return []
    context = _spans(doc, r.context)
    regions = _spans(doc, r.regions)
    extracted = []
    for mention in findings:
        left, right = _clause(doc, context, mention.start, mention.end)
        in_clause = [s for s in context if s.start >= left and s.end <= right]
        before = [s for s in in_clause if s.end <= mention.start]
        after = [s for s in in_clause if s.start >= mention.end]
        presence = "present"
        trailing = _nearest(after, mention.end, {"negation_after", "uncertainty_after"})
        leading = _nearest(before, mention.start, {"negation_before", "uncertainty_before"})
        change = _nearest(in_clause, mention.start, {"change"})
        if trailing is not None:
            presence = "absent" if _kind(trailing) == "negation_after" else "uncertain"
        elif leading is not None:
            presence = "absent" if _kind(leading) == "negation_before" else "uncertain"
        if change is not None and _value(change) == "resolved" and presence == "present":
            presence = "absent"
        sides = {_value(s) for s in in_clause if _kind(s) == "laterality"}
        clause_regions = [s for s in regions if s.start >= left and s.end <= right
                          and not any(s.start < f.end and f.start < s.end for f in findings)]  # "pleural" of "pleural effusion"
        nearest_region = _nearest(clause_regions, mention.start, {"region"})
        laterality = None
        if {"left", "right"} <= sides or "bilateral" in sides:
            laterality = "bilateral"
        elif sides:
            laterality = next(iter(sides))
        elif nearest_region is not None and vocab.regions[_value(nearest_region)]["laterality"] != "none":
            laterality = vocab.regions[_value(nearest_region)]["laterality"]
        severity = _nearest(in_clause, mention.start, {"severity"}, window=4)
        finding = _value(mention)
        extracted.append(dict(
            finding=finding, mention=mention, presence=presence, laterality=laterality,
            regions=list(dict.fromkeys(_value(s) for s in clause_regions)),
            severity=_value(severity) if severity is not None else None,
            change=_value(change) if change is not None else None))
    observations = []
    for item in extracted:
        mention = item.pop("mention")
        next_id[0] += 1
        observations.append(Observation(
            id=f"o{next_id[0]}", name=mention.text, category=vocab.findings[item["finding"]]["category"],
            evidence=[Evidence(sentence_id=sentence.id, start=sentence.start + mention.start_char,
                               end=sentence.start + mention.end_char)],
            **item))
    return observations


def extract_scene_graph(study_id: str, sentences: list[Sentence], indication: str | None = None) -> SceneGraph:
    """The scene graph of one report from its sentences (pure; no I/O)."""
    next_id = [0]
    observations: list[Observation] = []
    statements = []
    for sentence in sentences:
        if sentence.section not in FINDING_SECTIONS:
            continue
        observations.extend(_sentence_observations(sentence, next_id))
        lowered = sentence.text.lower()
        for statement_id, pattern, absent in rules().normal_statements:
            match = pattern.search(lowered)
            if match:
                statements.append((statement_id, absent, sentence, match))
    mentioned = {o.finding for o in observations}
    derived: set[str] = set()
    vocab = vocabulary()
    for statement_id, absent, sentence, match in statements:
        for finding in absent:
            if finding in mentioned or finding in derived:
                continue
            derived.add(finding)
            next_id[0] += 1
            observations.append(Observation(
                id=f"o{next_id[0]}", name=vocab.findings[finding]["name"], finding=finding,
                category=vocab.findings[finding]["category"], presence="absent",
                evidence=[Evidence(sentence_id=sentence.id, start=sentence.start + match.start(),
                                   end=sentence.start + match.end())],
                derived_from=[f"statement:{statement_id}"]))
    return SceneGraph(study_id=study_id, backend="rules", indication=indication or None,
                      sentences=sentences, observations=observations)
