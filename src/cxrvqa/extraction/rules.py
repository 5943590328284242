"""The offline extractor (backend `rules`): sentences -> observations with presence, laterality,
regions, severity and change.

Findings, regions and modifiers come from the vocabularies; negation/uncertainty triggers,
scope terminators and normal statements from `schemas/vocab/extraction_rules.yaml`. The
method is ConText-like: a trigger governs the findings of its clause (until a terminator or
; : ( ) .), the nearest trigger wins, and phrases overlapping a longer phrase are dropped.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cxrvqa.errors import ResourceError
from cxrvqa.core.prefilter import Guarded, guarded
from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.core.scene_graph import (
    ATTRIBUTED_TO_ARTIFACT,
    CHANGE_ADJECTIVE,
    DEID_ADJACENT,
    FINDING_SECTIONS,
    HISTORICAL,
    HYPOTHETICAL,
    OTHER_EXAM,
    PLACE_FROM_CLAUSE,
    QUALIFIED_NEGATION,
    READ_AS_OTHER,
    SLASH_PAIR,
    TOP_NORMAL,
    Evidence,
    NormalStatement,
    Observation,
    SceneGraph,
    Sentence,
    deid_pattern,
)
from cxrvqa.core.text import ANAPHORS
from cxrvqa.core.vocab import ancestors, finding_sites, vocabulary

if TYPE_CHECKING:  # spaCy is imported where the pipeline is built: a process that builds none never loads it
    from spacy.language import Language
    from spacy.matcher import PhraseMatcher
    from spacy.tokens import Doc, Span

_CLAUSE_PUNCT = {";", ":", "(", ")", ".", "?", "!"}
_LIST_CLOSERS = {"or", "nor"}
_LIST_JOINERS = _LIST_CLOSERS | {"and"}
#: A rib's number ("right 10th and left 9th ... rib fracture"): a list of places, not of findings.
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)?")
_COORDINATORS = {",", "and", "or", "and/or", "nor", "versus", "vs", "vs.", "/", "&"}
_PHRASE_OPENERS = {"with", "without"}  # no place before them is a later finding's own
_ATTRIBUTING = {"compatible", "consistent", "associated"}  # "right apical irregularities compatible with scarring"
_DIRECTIONS = {"worsened", "improved"}  # changes an adverb of degree ("mildly increased") grades
_TRIGGERS = (
    "negation_before",
    "uncertainty_before",
    "probable_before",
    "negation_after",
    "uncertainty_after",
    "uncertainty_either",
    "probable_after",
    "scope_terminators",
    "pseudo_triggers",
    "background_before",
    "historical_before",
    "limitation_before",
    "limitation_after",
    "disfavoured_after",
    "hypothetical_before",
)
_ARTICLES = {"a", "an", "the"}
#: A region word that says both sides itself ("bibasilar", "both lungs", "the bases", "hila"), unlike an
#: adjective that may be said of one ("costophrenic" blunting).
_BOTH = re.compile(r"(?:bi|both\b|bilateral\b)|.*(?:s|\bhila)$")
#: Links of a list that name alternatives: findings joined by them are a differential, and they name one whatever
#: stands on their other side ("crowding versus atelectasis").
_ALTERNATIVES = frozenset({"or", "versus", "vs", "vs.", "and/or"})  # not "/": a slash pair is marked as such
_ALTERNATIVE_WORD = re.compile(r"\b(?:or|versus|vs)\b|/", re.IGNORECASE)  # a cheap test before the list rule
#: What a trigger kind makes of the findings it governs: (presence, certainty).
_TRIGGER_READING = {
    "negation": ("absent", None),
    "uncertainty": ("uncertain", "possible"),
    "probable": ("uncertain", "probable"),
    "change": ("absent", None),
}
#: Words that may stand between a de-identification token and a finding it qualifies ("XXXX secondary to a
#: goiter", "This XXXX represents a calcified granuloma"): the hidden word is then a hedge or a head.
_DEID_LINKS = {
    "secondary",
    "to",
    "due",
    "related",
    "represent",
    "represents",
    "representing",
    "reflect",
    "reflects",
    "reflecting",
    "of",
    "from",
    "a",
    "an",
    "the",
    "be",
    "with",
    "consistent",
    "compatible",
    "is",
    "are",
}
#: Words after a de-identification token that make it the verb or hedge of a reading ("opacity XXXX represents
#: overlay and atelectasis", ", XXXX a combination of atelectasis and consolidation"): what follows is hidden.
_DEID_READINGS = {
    "represents",
    "represent",
    "representing",
    "reflects",
    "reflect",
    "reflecting",
    "secondary",
    "due",
    "related",
    "consistent",
    "compatible",
    "suggesting",
    "suggestive",
    "a",
    "an",
    "combination",
}
#: Words before a finding that end the reach of a severity or change word before them ("near top normal in
#: size with unfolding of the aorta": not a borderline aorta).
_MODIFIER_STOPS = _COORDINATORS | {"with", "without"}


@dataclass(frozen=True)
class _Rules:
    nlp: Language
    findings: PhraseMatcher
    context: PhraseMatcher  # triggers, terminators and modifiers: one pool, longest wins
    regions: PhraseMatcher
    finding_patterns: list[tuple[str, Guarded]]
    normal_statements: list[tuple[str, Guarded, list[str], list[str]]]
    other_exam: Guarded  # a sentence about another examination ("left knee")
    other_exam_heading: frozenset[str]  # the other words of a heading ("Right elbow and forearm.")
    heading_only: re.Pattern[str]  # body parts that head another examination only alone ("ABDOMEN.")
    chest_heading: re.Pattern[str]  # a heading that returns to the chest ("Chest.")
    artifact_attributions: re.Pattern[str]  # "related to superimposed soft tissues", "represents an artifact"
    artifact_hedges: frozenset[str]  # "may be artifact": possible, not settled
    list_adjectives: frozenset[str]  # may stand between the candidates of a differential
    change_lists: re.Pattern[str]  # "no change in" before an "or" list: its findings are no candidates
    stating_words: frozenset[str]  # "heart is large": the finding stated, not graded
    top_normal_words: frozenset[str]  # "upper limits of normal": borderline, but a normal size
    run_on_openers: frozenset[str]  # capitalised inside a sentence, they open another one
    run_on_subjects: tuple[frozenset[str], frozenset[str], frozenset[str]]  # "the" + subject + verb, lowercase
    change_adjectives: frozenset[str]  # "increased markings": a look, not a change, without a prior study
    change_hedges: tuple[tuple[str, ...], ...]  # the words of each phrase that hedges a change right after it
    no_comparison: re.Pattern[str]  # a comparison section that names no prior study ("None.")
    prior_reference: re.Pattern[str]  # a finding sentence that refers to a prior study
    excepted_side: re.Pattern[str]  # "right lung clear apart from" before a finding: its side (group `side`)
    read_as_other: tuple[frozenset[str], re.Pattern[str]]  # (opacity findings, link to the finding they are)
    read_as_fluid: dict[str, frozenset[str]]  # `read_as_fluid`: each list as a set (none without the section)
    further_candidates: tuple[re.Pattern[str], re.Pattern[str]]  # ("are also possible", the reading they join)
    refined_by: dict[str, tuple[frozenset[str], str]]  # finding -> (words before it, the finding it then is)
    qualifiers: frozenset[str]  # narrow any negation ("no large effusion")
    leading_qualifiers: frozenset[str]  # narrow a negation before the finding only ("no other rib fractures")
    chronic_qualifiers: frozenset[str]  # narrow the negation of a chronic finding ("no acute fracture")
    content_hash: str


RULES_FILE = "schemas/vocab/extraction_rules.yaml"


def rules_content_hash() -> str:
    """What `rules().content_hash` is, without building the matchers (~0.2 s of spaCy): a run with nothing to
    extract needs the extractor's version only."""
    return _rules_data()[1] + vocabulary().content_hash + finding_sites().content_hash


@lru_cache(maxsize=1)
def _rules_data() -> tuple[dict[str, Any], str]:
    return load_checked_yaml(RULES_FILE, "extraction_rules.schema.json")


def _phrase_pattern(phrases: Iterable[str], flags: int = 0) -> re.Pattern[str]:
    """Any of the phrases as whole words (none: a pattern that never matches)."""
    alternatives = "|".join(re.escape(p) for p in phrases)
    return re.compile(r"\b(?:" + alternatives + r")\b" if alternatives else r"(?!)", flags)


def _pipeline() -> tuple[Language, Callable[[dict[str, list[str]]], PhraseMatcher]]:
    """A blank English tokenizer and a maker of its phrase matchers (label -> phrases, matched lower-cased); spaCy
    is imported here, not with the module."""
    import spacy
    from spacy.matcher import PhraseMatcher

    nlp = spacy.blank("en")

    def matcher(groups: dict[str, list[str]]) -> PhraseMatcher:
        phrase_matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for label, phrases in groups.items():
            phrase_matcher.add(label, [nlp.make_doc(p) for p in phrases])
        return phrase_matcher

    return nlp, matcher


@lru_cache(maxsize=1)
def rules() -> _Rules:
    data, _ = _rules_data()
    vocab = vocabulary()
    nlp, matcher = _pipeline()

    context = {name: data.get(name, []) for name in _TRIGGERS}
    _check_one_kind(context)
    context.update({f"severity:{s['id']}": s["synonyms"] for s in vocab.severity})
    context.update({f"change:{c['id']}": c["synonyms"] for c in vocab.change})
    context.update({f"laterality:{lat['id']}": lat["synonyms"] for lat in vocab.laterality})
    patterns = _finding_patterns(data)
    refinements = _refinements(data)
    _check_top_normal_words(data)
    statements = _normal_statements(data["normal_statements"])
    findings = {f"finding:{fid}": f["synonyms"] for fid, f in vocab.findings.items()}
    findings.update({f"not_finding:{i}": [phrase] for i, phrase in enumerate(data["not_findings"])})
    return _Rules(
        nlp=nlp,
        findings=matcher(findings),
        context=matcher(context),
        regions=matcher({f"region:{rid}": r["synonyms"] for rid, r in vocab.regions.items() if r["synonyms"]}),
        finding_patterns=patterns,
        normal_statements=statements,
        other_exam=guarded(_phrase_pattern(data["other_exam_words"], re.I)),
        other_exam_heading=frozenset(data["other_exam_heading_words"]),
        heading_only=_phrase_pattern(data["other_exam_heading_only"]),
        chest_heading=re.compile(data["chest_heading"]),
        artifact_attributions=re.compile("|".join(f"(?:{p})" for p in data["artifact_attributions"])),
        artifact_hedges=frozenset(data["artifact_hedges"]),
        list_adjectives=frozenset(data["list_adjectives"]),
        change_lists=_phrase_pattern(data.get("change_lists", ())),
        stating_words=frozenset(data.get("stating_words", ())),
        top_normal_words=frozenset(data.get("top_normal_words", ())),
        run_on_openers=frozenset(data.get("run_on_openers", ())),
        run_on_subjects=tuple(
            frozenset(data.get("run_on_subjects", {}).get(k, ())) for k in ("subjects", "verbs", "not_after")
        ),
        change_adjectives=frozenset(data["change_adjectives"]),
        change_hedges=tuple(tuple(phrase.lower().split()) for phrase in data.get("change_hedges", ())),
        no_comparison=re.compile(data["no_comparison"]),
        prior_reference=re.compile(data["prior_reference"]),
        excepted_side=re.compile(data.get("excepted_side", r"(?!)")),
        **_read_as(data),
        further_candidates=(
            re.compile(data["further_candidates"]["sentence"]),
            re.compile(data["further_candidates"]["reading"]),
        )
        if "further_candidates" in data
        else (re.compile(r"(?!)"), re.compile(r"(?!)")),
        refined_by=refinements,
        **_qualifier_sets(data),
        content_hash=rules_content_hash(),
    )


def _read_as(data: dict) -> dict[str, Any]:
    """The opacities read as another finding by a link (`read_as_other`, with its pattern) or as a hemithorax's fluid
    (`read_as_fluid`) (`_Rules` fields; none when the rules file has no such section)."""
    other = data.get("read_as_other")
    return {
        "read_as_other": (frozenset(other["findings"]), re.compile(other["link"]))
        if other
        else (frozenset(), re.compile(r"(?!)")),
        "read_as_fluid": {key: frozenset(values) for key, values in data.get("read_as_fluid", {}).items()},
    }


def _qualifier_sets(data: dict) -> dict[str, frozenset[str]]:
    """The words that narrow a negation, by where they may stand (`_Rules` fields)."""
    return {
        "qualifiers": frozenset(w for phrase in data["qualified_negation"] for w in phrase.split()),
        "leading_qualifiers": frozenset(data.get("qualified_negation_leading", ())),
        "chronic_qualifiers": frozenset(w for phrase in data["qualified_negation_chronic"] for w in phrase.split()),
    }


def _check_one_kind(triggers: dict[str, list[str]]) -> None:
    """A phrase listed under two trigger kinds gets one of them, by the matcher's order of its labels ("Suspected
    pneumonia" read as a stated pneumonia while "suspected" was also an after-hedge: review of session 30)."""
    kinds: dict[str, str] = {}
    for kind, phrases in triggers.items():
        for phrase in phrases:
            other = kinds.setdefault(phrase.lower(), kind)
            if other != kind:
                raise ResourceError(RULES_FILE, f"{phrase!r} is listed under both {other} and {kind}")


def _finding_patterns(data: dict) -> list[tuple[str, Guarded]]:
    """(label, compiled pattern) of each finding pattern, then of each not-finding pattern; a pattern of a
    finding the vocabulary does not have is an error."""
    vocab, patterns = vocabulary(), []
    for entry in data["finding_patterns"]:
        if entry["finding"] not in vocab.findings:
            raise ResourceError(
                "schemas/vocab/extraction_rules.yaml", f"finding pattern names unknown finding {entry['finding']!r}"
            )
        patterns.append(
            (f"finding:{entry['finding']}", guarded(re.compile("|".join(f"(?:{p})" for p in entry["patterns"]))))
        )
    patterns += [
        (f"not_finding:pattern{i}", guarded(re.compile(p))) for i, p in enumerate(data.get("not_finding_patterns", ()))
    ]
    return patterns


def _refinements(data: dict) -> dict[str, tuple[frozenset[str], str]]:
    """finding -> (words before it, the finding below it that it then is) of `refined_by`."""
    vocab, refinements = vocabulary(), {}
    for finding, entry in data.get("refined_by", {}).items():
        if finding not in vocab.findings or finding not in ancestors("findings", entry["finding"]):
            raise ResourceError(
                "schemas/vocab/extraction_rules.yaml",
                f"refined_by.{finding}: expected a finding with {entry['finding']!r} below it",
            )
        refinements[finding] = (frozenset(entry["words"]), entry["finding"])
    return refinements


def _check_top_normal_words(data: dict) -> None:
    """Top-normal words are read as the severity 'borderline': each must be one of its synonyms."""
    borderline = {phrase for s in vocabulary().severity if s["id"] == "borderline" for phrase in s["synonyms"]}
    if not set(data.get("top_normal_words", ())) <= borderline:
        raise ResourceError(
            "schemas/vocab/extraction_rules.yaml",
            "top_normal_words that are no synonyms of the "
            f"severity 'borderline': {sorted(set(data['top_normal_words']) - borderline)}",
        )


def _normal_statements(entries: list[dict]) -> list[tuple[str, Guarded, list[str], list[str]]]:
    """(id, compiled patterns, findings made absent, regions declared normal) of each normal statement."""
    vocab, statements = vocabulary(), []
    for statement in entries:
        unknown = [f for f in statement["absent"] if f not in vocab.findings] + [
            r for r in statement["regions"] if r not in vocab.regions
        ]
        if unknown:
            raise ResourceError(
                "schemas/vocab/extraction_rules.yaml",
                f"normal statement {statement['id']!r} names unknown findings or regions {unknown}",
            )
        pattern = guarded(re.compile("|".join(f"(?:{p})" for p in statement["patterns"])))
        statements.append((statement["id"], pattern, statement["absent"], statement["regions"]))
    return statements


def _spans(doc: Doc, matcher: PhraseMatcher, patterns: list[tuple[str, Guarded]] = ()) -> list[Span]:
    """Matches, the longest of overlapping ones kept. A finding inside a not-finding phrase is not that finding
    even when a longer finding overlaps the phrase ("central venous catheter fracture": the catheter, no bone).
    Matches are (start, end, label) triples until they are kept: only the kept ones become spaCy spans."""
    from spacy.tokens import Span

    found = [(start, end, match_id) for match_id, start, end in matcher(doc)]
    if patterns:
        lowered = doc.text.lower()
        for label, pattern in patterns:
            # a not-finding pattern's own words; a finding pattern's own word when the subject is another's ("the
            # aorta is tortuous and calcified": "calcified", not the words of the tortuosity)
            group = next((name for name in ("not", "own") if name in pattern.pattern.groupindex), 0)
            for match in pattern.finditer(lowered):
                start, end = match.span(group) if match.start(group) >= 0 else match.span()  # group in one alternative
                span = doc.char_span(start, end, label=label, alignment_mode="expand")
                if span is not None:
                    found.append((span.start, span.end, span.label))
    strings = doc.vocab.strings
    blocked = [(start, end) for start, end, label in found if strings[label].startswith("not_finding:")]
    if blocked:
        found = [
            m
            for m in found
            if strings[m[2]].startswith("not_finding:")
            or not any(start <= m[0] and m[1] <= end for start, end in blocked)
        ]
    return [Span(doc, start, end, label=label) for start, end, label in _longest(found)]


def _longest(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """spaCy's `filter_spans` over (start, end, label) triples: the longest first (the earliest of equally
    long ones, then the first found), each kept unless its first or last token is taken; in text order."""
    kept, taken = [], set()
    for match in sorted(found, key=lambda m: (m[1] - m[0], -m[0]), reverse=True):
        if match[0] not in taken and match[1] - 1 not in taken:
            kept.append(match)
            taken.update(range(match[0], match[1]))
    return sorted(kept, key=lambda m: m[0])


def _kind(span: Span) -> str:
    return span.label_.split(":", 1)[0]


def _value(span: Span) -> str:
    return span.label_.split(":", 1)[1]


class _Sorted:
    """Non-overlapping spans in text order, searchable by position (bisect keeps the extractor linear
    in the length of a run-on sentence)."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self.starts = [s.start for s in spans]
        self.ends = [s.end for s in spans]

    def last_before(self, position: int, floor: int) -> Span | None:
        """The last span ending at or before position and starting at or after floor."""
        i = bisect_right(self.ends, position) - 1
        return self.spans[i] if i >= 0 and self.spans[i].start >= floor else None

    def first_after(self, position: int, ceiling: int) -> Span | None:
        """The first span starting at or after position and ending at or before ceiling."""
        i = bisect_left(self.starts, position)
        return self.spans[i] if i < len(self.spans) and self.spans[i].end <= ceiling else None

    def within(self, start: int, end: int) -> list[Span]:
        i, j = bisect_left(self.starts, start), bisect_right(self.ends, end)
        return [s for s in self.spans[i:j] if s.start >= start and s.end <= end]

    def straddling(self, start: int, end: int) -> Span | None:
        """The span that begins before [start, end) and ends inside it ("borderline enlarged" of "borderline
        enlarged cardiac silhouette", the mention being "enlarged cardiac silhouette")."""
        i = bisect_left(self.starts, start) - 1
        return self.spans[i] if i >= 0 and start < self.spans[i].end <= end else None

    def nearest(self, start: int, end: int, floor: int, ceiling: int, window: int | None = None) -> Span | None:
        """The span nearest to [start, end) inside [floor, ceiling); the earlier one on a tie."""
        before, after = self.last_before(start, floor), self.first_after(end, ceiling)
        best = None
        for span, distance in (
            (before, start - before.end if before else 0),
            (after, after.start - end if after else 0),
        ):
            if span is not None and (window is None or distance <= window):
                if best is None or distance < best[1]:
                    best = (span, distance)
        return best[0] if best else None


def _by_kind(labelled: list[tuple[str, Span]], kinds: set[str]) -> _Sorted:
    """The spans of some kinds, in text order, from (kind, span) pairs (each label read once per sentence)."""
    spans = [s for kind, s in labelled if kind in kinds]
    return _Sorted(spans) if spans else _NO_SPANS  # most kinds are not in a sentence


_NO_SPANS = _Sorted([])  # never changed: a _Sorted is only read


def _sentence_observations(sentence: Sentence, next_id: list[int]) -> list[Observation]:
    """The sentence's observations: copies of its checked readings with their own id and evidence offsets."""
    observations = []
    for reading, start, end in _checked_readings(sentence.text):
        next_id[0] += 1
        # the reading is copied, not validated again (a third of the extractor's time went to validating copies);
        # its evidence is validated: three integers validate faster than `model_construct` builds them
        evidence = Evidence(sentence_id=sentence.id, start=sentence.start + start, end=sentence.start + end)
        observations.append(reading.model_copy(update={"id": f"o{next_id[0]}", "evidence": [evidence]}))
    return observations


#: The evidence of a validated reading until its copies get their own (one object shared by all of them:
#: objects the memoised readings keep alive make the garbage collector's full passes longer and more frequent).
_PLACEHOLDER_EVIDENCE = Evidence(sentence_id=0, start=0, end=0)


@lru_cache(maxsize=4096)
def _checked_readings(text: str) -> tuple[tuple[Observation, int, int], ...]:
    """Each reading of a sentence as a validated Observation, and its character span; a repeated sentence's
    observations are copies (half the cost)."""
    return tuple(
        (_checked_reading(text[values[-2] : values[-1]], values[:-2]), values[-2], values[-1])
        for values in _memoised_readings(text)
    )


@lru_cache(maxsize=4096)
def _checked_reading(name: str, values: tuple[object, ...]) -> Observation:
    """A reading (`_READING_KEYS`) of a mention validated once as an Observation (pydantic) with a placeholder
    id and evidence: many sentences read the same words the same way ("no pneumothorax")."""
    reading = dict(zip(_READING_KEYS, values))
    return Observation(
        id="o0",
        name=name,
        category=vocabulary().findings[reading["finding"]]["category"],
        evidence=[_PLACEHOLDER_EVIDENCE],
        **reading,
    )


@lru_cache(maxsize=None)
def _derived_absence(statement_id: str, finding: str) -> Observation:
    """The absence a normal statement implies, validated once (placeholder id and evidence)."""
    entry = vocabulary().findings[finding]
    return Observation(
        id="o0",
        name=entry["name"],
        finding=finding,
        category=entry["category"],
        presence="absent",
        evidence=[_PLACEHOLDER_EVIDENCE],
        derived_from=[f"statement:{statement_id}"],
    )


#: The values of a memoised reading, in order, before the start and end of its mention.
_READING_KEYS = ("finding", "presence", "certainty", "modifiers", "laterality", "regions", "severity", "change")


#: Sentences memoised: enough for the repeated sentences of a corpus (IU: ~25k sentences, most of them
#: repeats of a few thousand), small enough not to weigh on the garbage collector.
_MEMO_SIZE = 16384


@lru_cache(maxsize=_MEMO_SIZE)
def _memoised_readings(text: str) -> tuple[tuple[object, ...], ...]:
    """Memoised by the sentence's text: radiologists repeat the same sentences from report to report.
    Stored as one flat tuple of immutable values per reading (`_READING_KEYS`, then the mention's start and
    end): few objects, which the garbage collector stops tracking (pairs of key and value were ten times as
    many, and the full collections they triggered cost ~5% of the extraction)."""
    s = _parsed(text)
    if s is None:
        return ()
    extracted: list[dict] = []
    for k in range(len(s.findings)):
        extracted.append(_reading(s, k, extracted))
    if _ALTERNATIVE_WORD.search(text):
        modifier_tokens = {
            i
            for span in [*s.context, *s.regions]
            if _kind(span) in ("severity", "change", "laterality", "region")
            for i in range(span.start, span.end)
        }
        modifier_tokens |= {i for i, w in enumerate(s.lower) if w in s.r.list_adjectives}
        if len(s.findings) > 1:
            _differentials(s, extracted, modifier_tokens)
        _versus_candidates(s.doc, s.findings, extracted, modifier_tokens)
    _read_as_other(extracted, _one_line(text.lower()))
    _read_as_fluid(extracted, text)
    return _finished(text, extracted)


def _clause_boundaries(words: list[str], labelled: list[tuple[str, Span]], r: _Rules) -> list[tuple[int, int]]:
    """Clause boundaries, as sorted (start, end) token ranges: punctuation and scope terminators, and a
    capitalised opener inside the sentence or a lowercase "the lungs are" after a word that joins nothing: two
    sentences run together ("Left axillary surgical clips unchanged Visualized XXXX of the chest XXXX are within
    normal limits", "There is no pneumothorax the lungs are hyperinflated"). Not a stray stop before a
    lowercase word ("No cavitary lesion to suggest. active tuberculosis.")."""
    subjects, verbs, not_after = r.run_on_subjects
    return sorted(
        [
            (i, i + 1)
            for i, w in enumerate(words)
            if w in _CLAUSE_PUNCT and not (w == "." and i + 1 < len(words) and words[i + 1][:1].islower())
        ]
        + [(s.start, s.end) for kind, s in labelled if kind == "scope_terminators"]
        + [
            (i, i)
            for i in range(1, len(words))
            if words[i][:1].isupper()
            and not words[i].isupper()
            and words[i].lower() in r.run_on_openers
            and words[i - 1] not in _CLAUSE_PUNCT
        ]
        + [
            (i, i)
            for i in range(1, len(words) - 2)
            if words[i] == "the"
            and words[i + 1].lower() in subjects
            and words[i + 2].lower() in verbs
            and words[i - 1].lower() not in not_after
            and words[i - 1] not in _CLAUSE_PUNCT
        ]
    )


class _Parsed:
    """What the rules see of a sentence that names a finding, before they read each finding: its tokens, its
    spans by kind, its clauses, running counts of list words, and the places each finding owns."""

    __slots__ = (
        "r",
        "doc",
        "matched",
        "findings",
        "context",
        "regions",
        "words",
        "lower",
        "boundary_starts",
        "boundary_ends",
        "commas",
        "closers",
        "conjunctions",
        "leading_triggers",
        "negations",
        "trailing_triggers",
        "changes",
        "backgrounds",
        "histories",
        "conditions",
        "limitations",
        "limitations_after",
        "severities",
        "places",
        "clauses",
        "place_tokens",
        "own",
        "claimed",
        "deid_at",
        "deid_readings",
    )

    def __init__(self, r: _Rules, text: str, doc: Doc, matched: list[Span], findings: list[Span]) -> None:
        self.r, self.doc, self.matched, self.findings = r, doc, matched, findings
        self.context = _spans(doc, r.context)
        labelled = [(_kind(s), s) for s in self.context]
        in_finding = [False] * len(doc)
        for f in matched:  # a not-finding phrase holds no region either ("bronchovascular crowding")
            in_finding[f.start : f.end] = [True] * (f.end - f.start)
        # "pleural" of "pleural effusion" is part of the finding, not a region of it
        self.regions = _elliptical_regions(
            doc, [s for s in _spans(doc, r.regions) if not any(in_finding[s.start : s.end])]
        )
        # the tokens' words once, as lists: slicing them costs no spaCy Token objects
        self.words = words = [t.text for t in doc]
        self.lower = lower = [w.lower() for w in words]  # a token's `lower_` is its text's lower(), without a Token
        boundaries = _clause_boundaries(words, labelled, r)
        self.boundary_starts = sorted(b[0] for b in boundaries)
        self.boundary_ends = sorted(b[1] for b in boundaries)
        # how many commas, closers and conjunctions come before each token
        self.commas = list(accumulate((word == "," for word in words), initial=0))
        self.closers = list(accumulate((low in _LIST_CLOSERS for low in lower), initial=0))
        self.conjunctions = list(accumulate((low in _LIST_JOINERS for low in lower), initial=0))
        self.leading_triggers = _by_kind(
            labelled, {"negation_before", "uncertainty_before", "probable_before", "uncertainty_either"}
        )
        self.negations = _by_kind(labelled, {"negation_before"})
        # "consolidation and atelectasis have cleared": a resolution word after its findings negates them
        self.trailing_triggers = _Sorted(
            [
                s
                for kind, s in labelled
                if kind in ("negation_after", "uncertainty_after", "uncertainty_either", "probable_after")
                or s.label_ == "change:resolved"
            ]
        )
        self.changes = _by_kind(labelled, {"change"})
        self.backgrounds = _by_kind(labelled, {"background_before"})
        self.histories = _by_kind(labelled, {"historical_before"})
        self.conditions = _by_kind(labelled, {"hypothetical_before"})
        self.limitations = _by_kind(labelled, {"limitation_before"})
        self.limitations_after = _by_kind(labelled, {"limitation_after", "disfavoured_after"})
        self.severities = _by_kind(labelled, {"severity"})
        self.places = _Sorted(
            sorted([s for kind, s in labelled if kind == "laterality"] + self.regions, key=lambda s: s.start)
        )
        self.clauses = [self.clause(m.start, m.end) for m in findings]
        self.place_tokens = {i for s in self.places.spans for i in range(s.start, s.end)}
        self.own = [self.places.within(self.own_start(k), m.end) for k, m in enumerate(findings)]
        self.claimed = {(s.start, s.end) for spans in self.own for s in spans}
        deid = deid_pattern()
        self.deid_at = (
            frozenset(i for i, w in enumerate(words) if deid.fullmatch(w))
            if deid.search(text) is not None
            else frozenset()
        )
        self.deid_readings = [i for i in self.deid_at if i + 1 < len(doc) and lower[i + 1] in _DEID_READINGS]

    def clause(self, start: int, end: int) -> tuple[int, int]:
        starts, ends = self.boundary_starts, self.boundary_ends
        i, j = bisect_right(ends, start) - 1, bisect_left(starts, end)
        return (ends[i] if i >= 0 else 0), (starts[j] if j < len(starts) else len(self.doc))

    def own_start(self, k: int) -> int:
        """Side and place, first pass: words before mention k since the previous finding or comma ("small left
        effusion") or in the mention itself ("elevated right hemidiaphragm") are its own. Since the last comma,
        or the last "and"/"or" after words that are no place or number ("left perihilar calcified lymph XXXX and left
        basilar granuloma": not the perihilar; "right and left lower lobe", "right 10th and left 9th posterolateral
        rib fracture": both sides, round AY), or the last "with" /
        "without", which opens a phrase of its own ("dextroscoliosis of the thoracic spine with chronic deformity of
        the bilateral ribs": not the spine's deformity, round AU), unless it says what the words before are
        ("right apical irregularities compatible with scarring": the apex's scarring)."""
        findings, words, lower = self.findings, self.words, self.lower
        previous_end = max(self.clauses[k][0], findings[k - 1].end) if k else self.clauses[k][0]
        return next(
            (
                i + 1
                for i in range(findings[k].start - 1, previous_end - 1, -1)
                if words[i] == ","
                or (lower[i] in _PHRASE_OPENERS and lower[i - 1] not in _ATTRIBUTING)
                or (
                    lower[i] in _LIST_JOINERS
                    and i > previous_end
                    and i - 1 not in self.place_tokens
                    and not _ORDINAL.fullmatch(lower[i - 1])
                )
            ),
            previous_end,
        )

    def negated_hedge(self, hedge: Span, left: int, right: int) -> bool:
        """A hedge inside a negation's scope is negated too ("no opacity to suggest pneumonia", "no
        suspicious nodule"). A comma between them ends the negation ("no effusion, possible
        atelectasis") unless the clause is one list closed by "or" / "nor" ("no consolidation,
        suspicious opacity, or effusion"; "no pneumothorax, effusion or suspicious opacity")."""
        negation = self.negations.last_before(hedge.start, left)
        if negation is None:
            return False
        before = next(
            (w for w in reversed(self.lower[negation.end : hedge.start]) if w in _LIST_CLOSERS or w == ","), None
        )
        return (
            self.commas[hedge.start] == self.commas[negation.end]
            or self.closers[right] > self.closers[hedge.end]
            or before in _LIST_CLOSERS
        )

    def qualified(self, mention: Span, trigger: Span | None, previous_end: int) -> bool:
        """A negation narrowed by a qualifier: in the negation ("no definite"), or in the mention's own words
        since the negation or the previous finding ("no large effusion", "no consolidation, suspicious
        opacity"); "acute" narrows chronic findings only."""
        start, said = previous_end, []
        leading = trigger is not None and _kind(trigger) == "negation_before"
        if leading:
            start, said = max(start, trigger.end), self.lower[trigger.start : trigger.end]
        said = said + self.lower[start : mention.end]
        r = self.r
        if any(w in r.qualifiers or (leading and w in r.leading_qualifiers) for w in said):
            return True
        return bool(vocabulary().findings[_value(mention)].get("chronic")) and any(
            w in r.chronic_qualifiers for w in said
        )

    def own_modifier(self, spans: _Sorted, k: int, left: int, right: int, inside: bool = True) -> Span | None:
        """A severity or change word of finding k: in its mention ("heart is mildly enlarged"), a borderline
        one sharing its first words ("borderline enlarged cardiac silhouette"), else just
        before it since the previous finding ("small effusion"), else just after it up to where the next
        finding's own words start, i.e. its last comma or coordinator ("effusion has increased and
        atelectasis"; not the "small" of "eventration versus small hernia" or "atelectasis, small effusion")."""
        if not spans.spans:
            return None  # no severity (change) word in the sentence: none to look for
        findings, words, lower = self.findings, self.words, self.lower
        mention = findings[k]
        within = (
            [
                s
                for s in spans.within(mention.start, mention.end)  # not the "large" of "heart is large"
                if s.text.lower() not in self.r.stating_words
            ]
            if inside
            else []
        )  # nor of "large lung volumes"
        if within:
            return within[0]
        straddling = spans.straddling(mention.start, mention.end) if spans is self.severities else None
        if straddling is not None and _value(straddling) == "borderline":
            return straddling  # "Borderline enlarged cardiac silhouette"; not the "very small" of "very small lung
            # volumes", whose "small" states the finding
        floor = max(left, findings[k - 1].end) if k else left
        floor = next(
            (i + 1 for i in range(mention.start - 1, floor - 1, -1) if words[i] == "," or lower[i] in _MODIFIER_STOPS),
            floor,
        )
        before = spans.last_before(mention.start, floor)
        if (
            before is not None
            and spans is self.severities
            and before.text.lower().endswith("ly")
            and any(
                c.start == before.end and c.end <= mention.start and _value(c) in _DIRECTIONS
                for c in self.changes.spans
            )
        ):
            before = None  # "Mildly increased atherosclerotic calcifications": the change's degree (round AV); not
            # "Mild stable cardiomegaly", "mild increased opacity"
        if (
            before is not None
            and spans is self.severities
            and any(
                c.start == before.end and c.end < mention.start and lower[c.end] in ("in", "of")
                for c in self.changes.spans
            )
        ):
            before = None  # "Slight improvement in vascular congestion": the change's degree (synthetic round T)
        if before is not None and mention.start - before.end <= 4:
            return before
        return self.modifier_after(spans, k, right)

    def modifier_after(self, spans: _Sorted, k: int, right: int) -> Span | None:
        """`own_modifier` after mention k: up to where the next finding's own words start."""
        findings, words, lower = self.findings, self.words, self.lower
        mention = findings[k]
        ceiling = right
        following = next((s.start for s in self.matched if s.start >= mention.end), right)  # a not-finding too
        if following < right:  # ("flattened diaphragm and increased retrosternal airspace": not increased)
            ceiling = next(
                (i for i in range(following - 1, mention.end - 1, -1) if words[i] == "," or lower[i] in _COORDINATORS),
                mention.end,
            )
        after = spans.first_after(mention.end, ceiling)
        if after is None or after.start - mention.end > 4:
            return None
        if (
            k + 1 < len(findings)
            and after.end < len(lower)
            and lower[after.end] == ","
            and any(w in _PHRASE_OPENERS for w in lower[mention.end : after.start])
        ):
            return None  # "chest tube in place with decreased, now small, left apical pneumothorax" (round O); not
            # "effusion with interval decrease in size and adjacent atelectasis" (review of session 30)
        next_word = lower[after.end] if after.end < right else ""
        if (
            self.commas[after.start] > self.commas[mention.end]
            and next_word
            and next_word not in _CLAUSE_PUNCT
            and next_word not in (",", "from", "since", "compared", "to")
        ):
            return None  # "enlarged for technique, stable mediastinal contours": the contours' word
        if after.end in self.place_tokens:
            return None  # "monitor leads show an unchanged cardiomediastinal silhouette": the silhouette's (round BE)
        return after


def _parsed(text: str) -> _Parsed | None:
    """The sentence as the rules see it; None when it names no finding."""
    r = rules()
    doc = r.nlp.make_doc(_one_line(text))  # a sentence wrapped over lines reads as one (same offsets)
    matched = _spans(doc, r.findings, r.finding_patterns)
    findings = [s for s in matched if _kind(s) == "finding"]
    if not findings:
        return None
    return _Parsed(r, text, doc, matched, findings)


def _reading(s: _Parsed, k: int, extracted: list[dict]) -> dict:
    """What the sentence says of its finding k (after the findings before it, `extracted`)."""
    mention = s.findings[k]
    left, right = s.clauses[k]
    presence, certainty, trigger, change = _presence(s, k)
    modifiers = []
    if presence == "absent" and s.qualified(mention, trigger, s.findings[k - 1].end if k else left):
        modifiers.append(QUALIFIED_NEGATION)
    elif s.limitations.last_before(mention.start, left) is not None or _limited_after(s, k):
        presence, certainty = "absent", None
        modifiers.append(QUALIFIED_NEGATION)
    if change is not None and change.end <= mention.start and change.text.lower() in s.r.change_adjectives:
        modifiers.append(CHANGE_ADJECTIVE)  # "increased lung markings": a change only against a prior study
    history = s.histories.last_before(mention.start, left)
    if history is not None and s.commas[history.end] == s.commas[mention.start]:
        modifiers.append(HISTORICAL)  # "given the history of malignancy"; not "near complete resolution of the
        # pneumothorax, right chest tube remains in place" (review of session 30)
    condition = s.conditions.last_before(mention.start, 0)
    if condition is not None and s.commas[condition.end] == s.commas[mention.start]:
        modifiers.append(HYPOTHETICAL)  # "If there is continued concern for occult fracture, consider ..."
    if _deid_next_to(s, k, extracted):
        modifiers.append(DEID_ADJACENT)  # "XXXX focal atelectasis and scarring": what XXXX says of both
    found = _places(s, k, extracted, modifiers)
    laterality, where = _side_and_regions(found)
    if laterality is None and presence != "absent":
        laterality, where = _excepted_place(s, k, found) or (laterality, where)
    severity = s.own_modifier(s.severities, k, left, right)
    if presence == "present" and severity is not None and _value(severity) == "borderline":
        presence, certainty = "uncertain", "borderline"  # "borderline cardiomegaly" is not cardiomegaly
        if severity.text.lower() in s.r.top_normal_words:
            modifiers.append(TOP_NORMAL)
    finding = _value(mention)
    refined = s.r.refined_by.get(finding)
    previous_end = max(left, s.findings[k - 1].end) if k else left
    if refined and any(w in refined[0] for w in s.lower[previous_end : mention.start]):
        finding = refined[1]  # "calcified right upper lobe nodule"
    return dict(
        finding=finding,
        mention=mention,
        places=found,
        presence=presence,
        certainty=certainty,
        modifiers=modifiers,
        laterality=laterality,
        regions=where,
        severity=_value(severity) if severity is not None else None,
        change=_value(change) if change is not None else None,
    )


def _limited_after(s: _Parsed, k: int) -> bool:
    """Whether finding k is what a limitation right after it says this film cannot show ("Previously noted right upper
    lobe mass is not well seen on this portable study"): no comma and no other finding between them."""
    mention = s.findings[k]
    after = s.limitations_after.first_after(mention.end, s.clauses[k][1])
    return (
        after is not None
        and s.commas[after.start] == s.commas[mention.end]
        and (k + 1 == len(s.findings) or s.findings[k + 1].start >= after.start)
    )


def _presence(s: _Parsed, k: int) -> tuple[str, str | None, Span | None, Span | None]:
    """(presence, certainty, the trigger that governs finding k, its change word) from the nearest trigger of
    its clause: after it when one follows in its own part of the list, else before it."""
    mention = s.findings[k]
    left, right = s.clauses[k]
    presence, certainty = "present", None
    trailing = s.trailing_triggers.first_after(mention.end, right)
    if (
        trailing is not None
        and s.commas[trailing.start] > s.commas[mention.end]
        and s.conjunctions[trailing.start] == s.conjunctions[mention.end]
    ):
        # "right basilar opacity, pneumonia not excluded": only pneumonia is hedged; "Enteric tube courses below the
        # diaphragm, tip not visualized": the tip. Not even where nothing else stands between: "consolidation,
        # suspected pneumonia", "moderate effusion, a loculated component cannot be excluded" (review of session 30;
        # "heart size appears enlarged, possibly magnified by technique" stays a stated cardiomegaly)
        trailing = None
    if trailing is not None and (
        s.backgrounds.last_before(mention.start, left) is not None or _said_apart(s, k, trailing)
    ):
        trailing = None  # "pneumonia superimposed on emphysema would be a consideration": not the emphysema
    leading = s.leading_triggers.last_before(mention.start, left)
    change = _change_of(s, k, left, right)
    trigger = trailing if trailing is not None else leading
    if trigger is not None:
        presence, certainty = _TRIGGER_READING[_kind(trigger).rsplit("_", 1)[0]]
        if trigger is leading and presence == "uncertain" and s.negated_hedge(leading, left, right):
            presence, certainty = "absent", None  # "no opacity to suggest pneumonia", "no suspicious nodule"
        elif (
            trigger is leading
            and presence == "uncertain"
            and _closing_comma(s.lower[trigger.end : mention.start]) is not None
        ):
            presence, certainty, trigger = "present", None, None
    if change is not None and _value(change) == "resolved" and presence == "present":
        presence = "absent"
    return presence, certainty, trigger, change


#: Verbs that close what a sentence says of a finding before the next one's clause.
_PREDICATES = frozenset({"is", "are", "was", "were", "has", "have", "had", "remains", "remain", "appears", "appear"})
#: Words that open a relative clause: its verb says nothing of the sentence's own ("effusion that was present").
_RELATIVES = frozenset({"that", "which", "who"})


def _said_apart(s: _Parsed, k: int, trailing: Span) -> bool:
    """Whether finding k has its own verb before the last finding that stands before the trigger after it
    ("Cardiomegaly and vascular congestion are unchanged and pleural effusions have resolved": the resolution is the
    effusions'; "Consolidation and atelectasis have cleared", "Right effusion that was present previously and left
    basilar atelectasis have resolved": both; reviews of session 32)."""
    last = max((j for j in range(k + 1, len(s.findings)) if s.findings[j].start < trailing.start), default=None)
    if last is None:
        return False
    relative = False
    for word in s.lower[s.findings[k].start : s.findings[last].start]:
        if word in _RELATIVES:
            relative = True
        elif word in (",", "and"):
            relative = False
        elif word in _PREDICATES and not relative:
            return True
    return False


def _change_of(s: _Parsed, k: int, left: int, right: int) -> Span | None:
    """The change word of finding k (`_Parsed.own_modifier`), none where the finding is given two ("increase in right
    and decrease in left basilar atelectasis") or the change is hedged (`_hedged_change`); a resolution before the
    finding before it, with only a coordinator and place words between, is its too ("Resolved left pleural effusion
    and basilar opacity": synthetic round U)."""
    mention = s.findings[k]
    change = s.own_modifier(s.changes, k, left, right, inside=False)  # "lung volumes are diminished": no change
    if change is not None and any(
        _value(c) != _value(change)
        for c in s.changes.within(max(left, s.findings[k - 1].end) if k else left, mention.start)
    ):
        return None
    if change is None and k and s.findings[k - 1].start >= left:
        previous = s.own_modifier(s.changes, k - 1, left, right, inside=False)
        between = range(s.findings[k - 1].end, mention.start)
        if (
            previous is not None
            and _value(previous) == "resolved"
            and previous.end <= s.findings[k - 1].start
            and any(s.lower[i] in ("and", ",") for i in between)
            and all(s.lower[i] in _COORDINATORS or i in s.place_tokens for i in between)
        ):
            change = previous
    return None if change is not None and _hedged_change(s, change) else change


def _hedged_change(s: _Parsed, change: Span) -> bool:
    """Whether a `change_hedges` phrase stands right before the change word, or before a degree word ("-ly", itself no
    hedge) right before it ("possibly mildly progressed"), or the change is one end of a range: "stable to slightly
    increased", "improved or worsened" (not "new or increased", "improved or resolved": review of session 31)."""
    if change.end < len(s.lower) and s.lower[change.end] in ("to", "or"):
        ends = {_value(change)} | {_value(c) for c in s.changes.spans if c.start in (change.end + 1, change.end + 2)}
        if len(ends) > 1 and ("unchanged" in ends or {"improved", "worsened"} <= ends):
            return True
    before = s.lower[: change.start]
    hedge_words = {h[0] for h in s.r.change_hedges if len(h) == 1}
    if before and before[-1].endswith("ly") and before[-1] not in hedge_words:
        before = before[:-1]
    return any(len(before) >= len(h) and tuple(before[-len(h) :]) == h for h in s.r.change_hedges)


def _closing_comma(between: list[str]) -> int | None:
    """Where in the words between a hedge (or a list of alternatives) and a finding a comma closes the
    alternatives: an "or" list ended by a comma with no alternative after it ("may be compatible with scarring or
    subsegmental atelectasis, scattered chronic appearing irregular interstitial markings": the markings are
    stated, and not in the lingula of the densities before, round BD), where words of the finding's own phrase
    follow it: not "atelectasis versus consolidation, aspiration" (a third candidate), nor "atelectasis or
    infiltrate, or less likely aspiration"; nor where the words after the comma name members of the list
    ("Differential includes atypical or viral infection, including Pneumocystis pneumonia": synthetic round O). None
    where none does."""
    for i, word in enumerate(between):
        if word in _ALTERNATIVES and "," in between[i + 1 :]:
            comma = between.index(",", i + 1)
            after = between[comma + 1 :]
            return comma if after and _ALTERNATIVES.isdisjoint(after) and after[0] not in _LIST_MEMBERS else None
    return None


#: Words after a comma that go on with the list before it rather than close it.
_LIST_MEMBERS = frozenset({"including", "especially", "particularly", "such"})


def _deid_next_to(s: _Parsed, k: int, extracted: list[dict]) -> bool:
    """Whether a de-identification token may hide a word of finding k: next to it, a hedge or verb before it
    in its clause, or one said of the finding it is listed after."""
    if not s.deid_at:
        return False
    mention, left = s.findings[k], s.clauses[k][0]
    return (
        _deid_adjacent(s.doc, mention, s.deid_at, s.place_tokens)
        or any(left <= i < mention.start for i in s.deid_readings)
        or bool(
            k
            and DEID_ADJACENT in extracted[-1]["modifiers"]
            and s.findings[k - 1].end >= left
            and all(w in _COORDINATORS for w in s.lower[s.findings[k - 1].end : mention.start])
        )
    )


def _places(s: _Parsed, k: int, extracted: list[dict], modifiers: list[str]) -> list[Span]:
    """Side and place, second pass: its own words; else those of the finding it is coordinated with ("right
    basilar infiltrate or atelectasis"); else words after it up to the next finding or coordinator ("opacity
    in the left base"); else words of the clause that no later finding owns ("effusions, right greater than
    left"; "left basilar opacity representing atelectasis"; not the "left" of "no effusion, left
    atelectasis"). Adds the modifiers that the places call for to `modifiers`."""
    findings, lower, places, claimed = s.findings, s.lower, s.places, s.claimed
    mention = findings[k]
    left, right = s.clauses[k]
    found = s.own[k]
    previous_end = max(left, findings[k - 1].end) if k else left
    if (
        not found
        and k
        and findings[k - 1].end >= left
        and all(w in _COORDINATORS for w in lower[previous_end : mention.start])
        and finding_sites().regions.get(_value(mention)) == finding_sites().regions.get(extracted[-1]["finding"])
    ):
        found = extracted[-1]["places"]  # only from a finding of the same sites (not lung to spine)
    if not found:
        next_start = min(right, findings[k + 1].start) if k + 1 < len(findings) else right
        # up to a coordinator; past one that joins places ("greatest in the central lungs and bases"), the
        # places no later finding owns
        # or to a "with" ("interstitial lung disease with patchy left apical airspace disease": not the apex)
        first_end = next(
            (i for i in range(mention.end, next_start) if lower[i] in _COORDINATORS or lower[i] == "with"), next_start
        )
        after_end = next(
            (i for i in range(mention.end, next_start) if lower[i] in _COORDINATORS and i + 1 not in s.place_tokens),
            next_start,
        )
        # past a coordinator, only where the finding can be ("calcification of the aorta and aortic valve": not the
        # heart's; review of session 32)
        found = places.within(mention.end, first_end) + [
            p
            for p in places.within(first_end, after_end)
            if (p.start, p.end) not in claimed
            and (_kind(p) != "region" or finding_sites().allows(_value(mention), _value(p)))
        ]
    if not found:  # a later finding's own words are after this one, and not this one's
        comma = _closing_comma(lower[left : mention.start])
        found = places.within(left if comma is None else left + comma + 1, mention.start) + [
            p for p in places.within(mention.end, right) if (p.start, p.end) not in claimed
        ]
        if found:
            modifiers.append(PLACE_FROM_CLAUSE)
    if DEID_ADJACENT not in modifiers and any(p.end in s.deid_at for p in found):  # "costophrenic XXXX": which?
        modifiers.append(DEID_ADJACENT)
    return found


def _excepted_place(s: _Parsed, k: int, found: list[Span]) -> tuple[str, list[str]] | None:
    """The side and sided regions of finding k, which states no side, where the sentence declares a lung clear but
    for it ("Right lung clear apart from mild basilar atelectasis": the right base; `excepted_side`); only a finding
    of that lung or its pleura (not "Left lung is clear except for cardiomegaly")."""
    before = s.doc.text[: s.findings[k].start_char].lower()
    excepted = s.r.excepted_side.search(before) if "lung" in before else None
    if excepted is None:
        return None
    side, phrases = excepted.group("side"), _region_phrases()
    if not any(finding_sites().allows(_value(s.findings[k]), f"{side}_{part}") for part in ("lung", "pleura")):
        return None
    where = [_region_of(phrases, side, [t.lower_ for t in p]) or _value(p) for p in found if _kind(p) == "region"]
    return side, list(dict.fromkeys(where))


def _side_and_regions(found: list[Span]) -> tuple[str | None, list[str]]:
    """The laterality and the regions (in order, once each) of a finding's places."""
    sides = {_value(s) for s in found if _kind(s) == "laterality"}
    where = [s for s in found if _kind(s) == "region"]
    laterality = None
    if {"left", "right"} <= sides or "bilateral" in sides:
        laterality = "bilateral"
    elif sides:
        laterality = next(iter(sides))
    elif where:
        nearest_side = vocabulary().regions[_value(where[0])]["laterality"]
        if nearest_side in ("left", "right") or (nearest_side == "bilateral" and _BOTH.match(where[0].text.lower())):
            laterality = nearest_side  # "bibasilar" is both sides; "the costophrenic angles" may be one
    return laterality, list(dict.fromkeys(_value(s) for s in where))


def _finished(text: str, extracted: list[dict]) -> tuple[tuple[object, ...], ...]:
    """The readings as memoised, after what the whole sentence says of each: another examination, a
    question, an artifact the finding is put down to."""
    r = rules()
    other_exam = r.other_exam.search(text) is not None
    asked = text.rstrip().endswith("?")  # "Does this patient have known risk factors for malignancy?"
    lowered = _one_line(text.lower())
    attributions = list(r.artifact_attributions.finditer(lowered))
    for item in extracted:
        mention = item["mention"]
        if other_exam:
            item["modifiers"].append(OTHER_EXAM)
        if asked and item["presence"] == "present":
            item["presence"], item["certainty"] = "uncertain", "possible"
        attribution = next((m for m in attributions if m.start() >= mention.end_char), None)
        if attribution is not None:
            _attribute_to_artifact(item, _hedged_attribution(text, attribution))
        elif any(
            _ALTERNATIVE_TO.search(lowered, m.end(), mention.start_char)
            for m in attributions
            if m.end() <= mention.start_char
        ):  # "may represent vessels on end or alternatively, calcified
            _attribute_to_artifact(item, True)  # granulomas": one reading of what may be an artifact
    return tuple(
        (
            *(tuple(v) if isinstance(v := item[key], list) else v for key in _READING_KEYS),
            item["mention"].start_char,
            item["mention"].end_char,
        )
        for item in extracted
    )


#: Between an artifact attribution and a finding after it: the finding is the other reading ("or alternatively").
_ALTERNATIVE_TO = re.compile(r"\b(?:or|versus|vs)\b")
_LINE_BREAKS = str.maketrans("\n\t\f\v", "    ")


@lru_cache(maxsize=1)
def _region_phrases() -> dict[str, str]:
    """Each region synonym, lowercased, to its region."""
    return {synonym.lower(): rid for rid, region in vocabulary().regions.items() for synonym in region["synonyms"]}


def _elliptical_regions(doc: Doc, regions: list[Span]) -> list[Span]:
    """Places that share their head noun with a coordinated word before them ("left upper and lower lobes",
    "ascending and descending aorta", "right mid to lower lung zone"): the word before is a place of its own
    (left upper lobe, ascending aorta), and a side word before both makes each its sided place."""
    from spacy.tokens import Span

    phrases, out = _region_phrases(), []
    taken = {i for s in regions for i in range(s.start, s.end)}
    for span in regions:
        a = span.start
        if a < 2 or span.end - a < 2 or doc[a - 1].lower_ not in _ELLIPSIS_JOINERS or a - 2 in taken:
            out.append(span)
            continue
        side = doc[a - 3].lower_ if a >= 3 and doc[a - 3].lower_ in ("left", "right") else None
        head = [t.lower_ for t in doc[a + 1 : span.end]]
        own = _region_of(phrases, side, [doc[a].lower_, *head])
        other = _region_of(phrases, side, [doc[a - 2].lower_, *head])
        if other is None:
            out.append(span)
            continue
        out.append(Span(doc, a - 2, a - 1, label=f"region:{other}"))
        out.append(Span(doc, span.start, span.end, label=f"region:{own}") if own else span)
    return out


def _region_of(phrases: dict[str, str], side: str | None, words: list[str]) -> str | None:
    """The region the words name, with the side first ("left" + "upper lobes": left upper lobe), then without."""
    singular = [*words[:-1], words[-1][:-1]] if words[-1].endswith("s") else words
    for candidate in ([side, *words], [side, *singular], words, singular):
        if candidate[0] is not None and " ".join(candidate) in phrases:
            return phrases[" ".join(candidate)]
    return None


#: Between two words that share the head noun after them ("upper and lower lobes").
_ELLIPSIS_JOINERS = {"and", "or", "to"}


def _one_line(text: str) -> str:
    """Line breaks and tabs as spaces: one character for one, so that offsets stay those of the text."""
    return text.translate(_LINE_BREAKS)


def _deid_adjacent(doc: Doc, mention: Span, deid_at: frozenset[int], place_tokens: set[int]) -> bool:
    """A de-identification token (at the positions ``deid_at``) in the mention, right after it or after "of the"
    ("degenerative changes of the XXXX"), or before it across at most four linking or place words ("XXXX right
    apical nodule": the hidden word may be "likely")."""
    comma = False
    for token in doc[mention.end : mention.end + 3]:
        if token.i in deid_at:  # after a comma, only a hidden word that names what it is ("nodular opacity, XXXX
            return not comma or token.i + 1 >= len(doc) or doc[token.i + 1].lower_ not in _DEID_READINGS
        comma = comma or token.text == ","  # nipple XXXX"), not one that hedges its cause ("XXXX secondary to")
        if token.lower_ not in ("of", "the", "in", "at", ","):
            break
    if any(i in deid_at for i in range(mention.start, mention.end)):
        return True
    free = 2  # words of its own before it ("XXXX posterior recess pleural effusions")
    for token in reversed(doc[max(mention.start - 5, 0) : mention.start]):
        if token.i in deid_at:
            return True
        if token.lower_ in _DEID_LINKS or token.i in place_tokens:
            continue
        free -= 1
        if free < 0 or not token.is_alpha or token.lower_ in _COORDINATORS:  # not across "and" (another finding's)
            return False
    return False


def _read_as_other(extracted: list[dict], lowered: str) -> None:
    """An opacity the report reads, by the link words alone between them, as the next finding named when that one
    is of another category ("retrocardiac opacity suggestive of a small hiatal hernia", "density which XXXX
    corresponds to patient's known hiatal hernia"): marked `read_as_other`."""
    opacities, link = rules().read_as_other
    findings = vocabulary().findings
    for item, following in zip(extracted, extracted[1:]):
        if (
            item["finding"] in opacities
            and findings[following["finding"]]["category"] != findings[item["finding"]]["category"]
            and link.fullmatch(lowered, item["mention"].end_char, following["mention"].start_char)
        ):
            item["modifiers"].append(READ_AS_OTHER)


@dataclass(frozen=True)
class SentenceReading:
    """What `read_as_fluid` needs of one reading of a sentence (either backend's): the finding, its presence and
    side, its regions and the character span of its words in the sentence."""

    finding: str | None
    presence: str
    laterality: str | None
    regions: frozenset[str]
    span: tuple[int, int]


def _read_as_fluid(extracted: list[dict], text: str) -> None:
    """The shadows of a hemithorax that is fluid (`read_as_fluid`): marked `read_as_other`."""
    readings = [
        SentenceReading(
            item["finding"],
            item["presence"],
            item["laterality"],
            frozenset(item["regions"]),
            (item["mention"].start_char, item["mention"].end_char),
        )
        for item in extracted
    ]
    for item, reading in zip(extracted, readings):
        if READ_AS_OTHER not in item["modifiers"] and read_as_fluid(text, reading, readings):
            item["modifiers"].append(READ_AS_OTHER)


def read_as_fluid(text: str, shadow: SentenceReading, readings: Iterable[SentenceReading]) -> bool:
    """Whether a shadow is the fluid of its hemithorax, not a lung finding (`read_as_fluid`): a shadow of the
    hemithorax itself (placed there, or its words "opacified" ...), not ruled out, beside an effusion the sentence
    states on its side or a fluid word in the shadow's own clause; the LLM backend asks it of the model's readings."""
    data = rules().read_as_fluid
    if not data or shadow.finding not in data["findings"] or shadow.presence == "absent":
        return False
    lowered = text.lower()
    extents = data.get("shadow_extents", frozenset())
    words = [w for w in lowered[shadow.span[0] : shadow.span[1]].split() if w not in extents]
    if not (shadow.regions & data["regions"] or (words and words[0] in data["shadow_words"])):
        return False
    sides = {None, shadow.laterality} if shadow.laterality else {None, "left", "right", "bilateral"}
    if any(r.finding in data["fluid_findings"] and r.presence != "absent" and r.laterality in sides for r in readings):
        return True
    start = max(lowered.rfind(",", 0, shadow.span[0]), lowered.rfind(";", 0, shadow.span[0])) + 1
    ends = [i for i in (lowered.find(",", shadow.span[1]), lowered.find(";", shadow.span[1])) if i >= 0]
    return any(w.strip(".") in data["fluid_words"] for w in lowered[start : min(ends, default=len(lowered))].split())


def _hedged_attribution(text: str, attribution: re.Match[str]) -> bool:
    words = text[: attribution.end()].lower().split()[-(len(attribution.group().split()) + 3) :]
    hedges = rules().artifact_hedges
    return any(w.strip(",") in hedges or " ".join(words[i : i + 2]) in hedges for i, w in enumerate(words))


def _attribute_to_artifact(item: dict, hedged: bool) -> None:
    """A finding the report puts down to an artifact: absent, or possible when the attribution is hedged."""
    if item["presence"] == "absent":
        return
    item["presence"], item["certainty"] = ("uncertain", "possible") if hedged else ("absent", None)
    item["modifiers"] = [*item["modifiers"], ATTRIBUTED_TO_ARTIFACT]


def _differentials(s: _Parsed, extracted: list[dict], modifier_tokens: set[int]) -> None:
    """Findings named as alternatives ("atelectasis or scarring", "effusion versus thickening",
    "opacity, atelectasis or infiltrate") are each one candidate of a differential: none is present. A
    listed finding that another candidate refines ("opacity" of "opacity, atelectasis or infiltrate") is
    what the radiologist sees and stays present; a list whose change is denied ("No significant change in right
    pneumothorax or pleural fluid": `change_lists`) names no alternatives."""
    doc, findings, clauses = s.doc, s.findings, s.clauses
    chains: list[list[int]] = [[0]]
    alternatives = [False]
    for k in range(1, len(findings)):
        between = doc[findings[k - 1].end : findings[k].start]
        listed = doc[findings[chains[-1][0]].start : findings[k].start]  # the chain so far
        closed = alternatives[-1] and _closing_comma([t.lower_ for t in listed]) is not None
        if (
            not closed
            and clauses[k] == clauses[k - 1]
            and all(t.lower_ in _COORDINATORS or t.i in modifier_tokens or t.lower_ in _ARTICLES for t in between)
        ):
            if [t.text for t in between] == ["/"]:  # "ectasia/tortuosity": alternatives or one thing twice?
                for item in (extracted[k - 1], extracted[k]):
                    item["modifiers"] = [*item["modifiers"], SLASH_PAIR]
            chains[-1].append(k)
            alternatives[-1] = alternatives[-1] or any(t.lower_ in _ALTERNATIVES for t in between)
        else:
            chains.append([k])
            alternatives.append(False)
    for chain, named_alternatives in zip(chains, alternatives):
        if not named_alternatives or s.r.change_lists.search(
            doc[clauses[chain[0]][0] : findings[chain[0]].start].text.lower()
        ):
            continue
        names = {extracted[k]["finding"] for k in chain}
        for k in chain:
            item = extracted[k]
            refined = any(item["finding"] in ancestors("findings", other) for other in names)
            if item["presence"] == "present" and not refined:
                item["presence"], item["certainty"] = "uncertain", "differential"


def _versus_candidates(doc: Doc, findings: list[Span], extracted: list[dict], modifier_tokens: set[int]) -> None:
    """A finding joined by "or" / "versus" to words that name no finding of the vocabulary is one candidate of
    a differential ("bronchovascular crowding versus atelectasis", "atelectasis or fluid"); findings on both
    sides are the list rule's (`_differentials`)."""
    starts, ends = {m.start for m in findings}, {m.end - 1 for m in findings}

    def skip(i: int, step: int) -> int:
        while 0 <= i < len(doc) and (i in modifier_tokens or doc[i].lower_ in _ARTICLES):
            i += step
        return i

    def alternative_at(i: int, step: int) -> bool:
        if not 0 <= i < len(doc) or doc[i].lower_ not in _ALTERNATIVES:
            return False
        other = skip(i + step, step)
        return 0 <= other < len(doc) and doc[other].is_alpha and other not in (starts if step > 0 else ends)

    for mention, item in zip(findings, extracted):
        if item["presence"] == "present" and (
            alternative_at(skip(mention.start - 1, -1), -1) or alternative_at(skip(mention.end, 1), 1)
        ):
            item["presence"], item["certainty"] = "uncertain", "differential"


@lru_cache(maxsize=1)
def _not_finding_phrases() -> frozenset[str]:
    return frozenset(_rules_data()[0]["not_findings"])


def names_no_finding(quote: str) -> bool:
    """Whether a quoted mention is one of the phrases that contain a finding's synonym but report no finding
    (`not_findings`: "treated tuberculosis", "side port"): the LLM backend drops what the model read in it, as the
    rules backend never reads it (synthetic round M: "compatible with treated tuberculosis" was a tuberculosis)."""
    return " ".join(quote.lower().split()) in _not_finding_phrases()


def narrowed(text: str, start: int, finding: str | None, end: int | None = None) -> bool:
    """For a mention the LLM backend read as negated: a qualifier of the rules' lists in the two words
    before it narrows the negation ("no displaced rib fracture"), as the rules backend reads it; so does one in
    the quoted mention (text[start:end]) before its last word (the model quoted "acute fracture" of "Bones: No acute
    fracture.", "large effusion" of "No large effusion.": synthetic round M)."""
    quoted = text[start:end].lower().split()[:-1] if end is not None else []
    if any(w in _LIST_JOINERS or "," in w for w in quoted):
        quoted = []  # "No pneumothorax or large pleural effusion" quoted for the pneumothorax (review of session 30)
    words = text[:start].lower().split()[-2:] + quoted
    r = rules()
    chronic = finding is not None and vocabulary().findings[finding].get("chronic")
    return any(
        w in r.qualifiers
        or (chronic and w in r.chronic_qualifiers)
        or (w in r.leading_qualifiers and i and words[i - 1] in ("no", "without"))  # "no other rib fractures"
        for i, w in enumerate(words)
    )


def change_hedged(text: str) -> bool:
    """For a change the LLM backend read: the sentence words a change only hedged ("likely increased from prior",
    "stable to slightly increased"), as the rules backend reads it: each of its change words is (`_hedged_change`)."""
    s = _parsed(text)
    return s is not None and bool(s.changes.spans) and all(_hedged_change(s, c) for c in s.changes.spans)


def clear_sentence_memo() -> None:
    """Forget the memoised sentence readings (benchmarks time a first reading)."""
    _memoised_readings.cache_clear()
    _checked_readings.cache_clear()
    _checked_reading.cache_clear()
    _statements_in.cache_clear()
    _heading.cache_clear()
    _anaphoric_attribution.cache_clear()
    _anaphoric_reading.cache_clear()
    _names_prior.cache_clear()


def normal_statements(sentences: list[Sentence]) -> list[NormalStatement]:
    """The normal statements of a report's finding sentences (shared by both backends: the LLM states
    absences as observations, but which regions a sentence declares normal is this data's)."""
    return [
        NormalStatement(id=statement_id, sentence_id=sentence.id, regions=regions)
        for sentence in sentences
        if sentence.section in FINDING_SECTIONS
        for statement_id, _, regions, _ in _statements_in(sentence.text)
    ]


@lru_cache(maxsize=_MEMO_SIZE)
def _statements_in(text: str) -> tuple[tuple[str, list[str], list[str], tuple[int, int]], ...]:
    """The normal statements a sentence makes, with their character span (memoised: radiologists repeat
    the same normal sentences from report to report)."""
    lowered = _one_line(text.lower())
    found = []
    for statement_id, pattern, absent, regions in rules().normal_statements:
        match = pattern.search(lowered)
        if match:
            found.append((statement_id, absent, regions, match.span()))
    # a statement inside a wider one is the wider one's words ("bony structures reveal no acute abnormalities":
    # the bones', not the study's "no acute abnormalities")
    return tuple(f for f in found if not any(o[3][0] <= f[3][0] and f[3][1] <= o[3][1] and o[3] != f[3] for o in found))


def _other_exam_after(text: str, other_exam: bool, chest_headed: bool) -> bool:
    """Whether a sentence belongs to another examination's part of the report: a heading made only of
    another body part ("Right elbow and forearm.") opens that part, a chest heading ("Chest.") closes it. After a
    chest heading, one whose body part was de-identified ("Left and right XXXX.": the shoulders, round AY) opens
    another part too."""
    heading = _heading(text)
    if heading == "deidentified":
        return chest_headed or other_exam
    return other_exam if heading is None else heading == "other"


@lru_cache(maxsize=_MEMO_SIZE)
def _heading(text: str) -> str | None:
    """ "chest" or "other" for a sentence that heads a part of the report, "deidentified" for one made of sides and
    a de-identified word ("Left and right XXXX."), None for any other sentence (memoised: report sentences
    repeat)."""
    r = rules()
    lowered = text.strip().lower()
    if r.chest_heading.match(lowered):
        return "chest"
    words = re.findall(r"[a-z][a-z-]*", lowered)
    if "xxxx" in words and len(words) <= 4 and all(word in r.other_exam_heading for word in words):
        return "deidentified"
    heading = lowered.split(":", 1)[0] if ":" in lowered[:40] else lowered  # "KUB XXXX: single view ..."
    if len(heading.split()) <= 8 and (r.other_exam.search(heading) or r.heading_only.search(heading)):
        rest = re.findall(r"[a-z][a-z-]*", r.heading_only.sub(" ", r.other_exam.pattern.sub(" ", heading)))
        if all(word in r.other_exam_heading for word in rest):
            return "other"
    return None


def _anaphoric_opening(text: str) -> tuple[str, str] | None:
    """(the sentence on one line in lower case, its first word) when that word speaks of the sentence before
    ("This may be artifact."); None otherwise."""
    lowered = _one_line(text.lower()).lstrip()
    first = lowered.split(" ", 1)[0]
    return (lowered, first) if first in ANAPHORS else None


@lru_cache(maxsize=_MEMO_SIZE)
def _anaphoric_attribution(text: str) -> bool | None:
    """For a sentence that puts the findings of the sentence before down to an artifact ("This may be
    artifact."): whether that is hedged; None for any other sentence."""
    opening = _anaphoric_opening(text)
    if opening is None:
        return None
    attribution = rules().artifact_attributions.search(opening[0])
    return None if attribution is None else _hedged_attribution(opening[0], attribution)


@lru_cache(maxsize=_MEMO_SIZE)
def _anaphoric_reading(text: str) -> bool:
    """Whether a sentence opens with an anaphor and a reading link ("This may represent ...")."""
    opening = _anaphoric_opening(text)
    if opening is None:
        return False
    lowered, first = opening
    return rules().read_as_other[1].match(lowered, len(first)) is not None


def _read_as_other_before(
    text: str, found: list[Observation], observations: list[Observation], previous: range
) -> None:
    """An opacity of the sentence before that this one, opening with an anaphor and a link, reads as findings of
    another category ("Calcific density ... projecting over right upper lung. This may represent residua of a
    healed rib fracture, possibly an osteocartilaginous lesion, or conceivably a granuloma.": no lung finding for
    certain; round AL): marked `read_as_other`, as within a sentence (`_read_as_other`)."""
    if not found or found[0].finding is None or not _anaphoric_reading(text):
        return
    opacities = rules().read_as_other[0]
    findings = vocabulary().findings
    other = findings[found[0].finding]["category"]
    for k in previous:
        o = observations[k]
        if (
            o.finding in opacities
            and o.presence != "absent"
            and findings[o.finding]["category"] != other
            and READ_AS_OTHER not in o.modifiers
        ):
            observations[k] = o.model_copy(update={"modifiers": [*o.modifiers, READ_AS_OTHER]})


def _revise_previous(
    sentence: Sentence,
    found: list[Observation],
    observations: list[Observation],
    previous: range,
    previous_sentence: Sentence | None,
) -> bool:
    """Revise the observations of the sentence before where this one speaks of them; whether it was such a
    sentence (it then does not become the sentence before)."""
    hedged = _anaphoric_attribution(sentence.text)
    if hedged is not None:  # "This may be artifact.", "These may represent vessels on end or granulomas."
        for k in previous:
            reading = {
                "presence": observations[k].presence,
                "certainty": observations[k].certainty,
                "modifiers": observations[k].modifiers,
            }
            _attribute_to_artifact(reading, hedged)
            observations[k] = observations[k].model_copy(update=reading)
        return True
    _read_as_other_before(sentence.text, found, observations, previous)
    further, reading = rules().further_candidates
    if (
        previous_sentence is None
        or not any(o.presence == "uncertain" for o in found)
        or not further.search(sentence.text.lower())
    ):
        return False
    before = previous_sentence.text.lower()
    for k in previous:  # "most consistent with pneumonia. Aspiration or edema are also possible."
        o = observations[k]
        said_before = _one_line(before[: o.evidence[0].start - previous_sentence.start])
        if o.presence == "present" and reading.search(said_before):
            observations[k] = o.model_copy(update={"presence": "uncertain", "certainty": "differential"})
    return False


def _refers_to_prior(sentences: list[Sentence]) -> bool:
    """Whether a report refers to a prior study: its comparison section names one, or a finding sentence does."""
    return any(_names_prior(sentence.section, sentence.text) for sentence in sentences)


@lru_cache(maxsize=_MEMO_SIZE)
def _names_prior(section: str, text: str) -> bool:
    """Whether one sentence names a prior study (memoised: report sentences repeat)."""
    r, lowered = rules(), text.lower()
    if section == "comparison":
        return not r.no_comparison.match(" ".join(re.findall(r"[a-z/]+", lowered)))
    return section in FINDING_SECTIONS and r.prior_reference.search(lowered) is not None


def extract_scene_graph(study_id: str, sentences: list[Sentence], indication: str | None = None) -> SceneGraph:
    """The scene graph of one report from its sentences (pure; no I/O)."""
    next_id = [0]
    observations: list[Observation] = []
    statements = []
    prior = _refers_to_prior(sentences)
    section, other_exam, previous, previous_sentence = None, False, range(0), None
    chest_headed = False
    for sentence in sentences:
        if sentence.section not in FINDING_SECTIONS:
            continue
        if sentence.section != section:
            section, other_exam, previous = sentence.section, False, range(0)
        chest_headed = chest_headed or _heading(sentence.text) == "chest"
        other_exam = _other_exam_after(sentence.text, other_exam, chest_headed)
        found = _sentence_observations(sentence, next_id)
        if other_exam:
            found = [
                o if OTHER_EXAM in o.modifiers else o.model_copy(update={"modifiers": [*o.modifiers, OTHER_EXAM]})
                for o in found
            ]
        if not prior:
            found = [o.model_copy(update={"change": None}) if CHANGE_ADJECTIVE in o.modifiers else o for o in found]
        if not _revise_previous(sentence, found, observations, previous, previous_sentence) and found:
            previous, previous_sentence = range(len(observations), len(observations) + len(found)), sentence
        observations.extend(found)
        statements.extend(
            (statement_id, absent, regions, sentence, span)
            for statement_id, absent, regions, span in _statements_in(sentence.text)
        )
    mentioned = {o.finding for o in observations}
    derived: set[str] = set()
    for statement_id, absent, _, sentence, (start, end) in statements:
        for finding in absent:
            if finding in mentioned or finding in derived:
                continue
            derived.add(finding)
            next_id[0] += 1
            evidence = Evidence(sentence_id=sentence.id, start=sentence.start + start, end=sentence.start + end)
            observations.append(
                _derived_absence(statement_id, finding).model_copy(
                    update={"id": f"o{next_id[0]}", "evidence": [evidence]}
                )
            )
    return SceneGraph(
        study_id=study_id,
        backend="rules",
        indication=indication or None,
        sentences=sentences,
        observations=observations,
        statements=[
            NormalStatement(id=statement_id, sentence_id=sentence.id, regions=regions)
            for statement_id, _, regions, sentence, _ in statements
        ],
    )
