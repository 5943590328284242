"""Independent content checks: validators that share no rule with the generator.

`answer_program` re-runs the generator and `report_support` re-reads the evidence with the rules
extractor, so a misreading of the report passes both. The checks here read the report again by
other means: medspaCy's ConText algorithm with a rule set of its own (schemas/vocab/independent_checks.yaml),
targets built from the vocabulary's finding synonyms, and plain regular expressions for normal
statements. They share the vocabulary (findings, regions, synonyms, the findings tree, `number`) and
finding_sites.yaml, and nothing else: no import of cxrvqa.extraction.rules or cxrvqa.qa.programs.

What an item claims is read from its answer, its polarity and the template's answer program *name*
(`claims` in the rules file): "yes" to "Is there an effusion?" claims the effusion present, "no" claims
it absent, "Where is the nodule? left lower lobe" claims a present nodule in the left lower lobe.

Validators (registered here with `@validator`; cxrvqa.validation.validators imports this module):
- `second_reading`: presence, certainty and negation of each claimed finding, re-read from the
  evidence sentences by ConText.
- `location_support`: the regions and sides an answer gives are places the finding can be, and are
  named by the evidence that mentions the finding.
- `negative_support`: a "no" (a finding absent, a region or the study normal) is backed by an explicit
  negation or a normal statement whose scope covers it, and the report states nothing against it.
- `question_sense`: the question does not presuppose a finding the answer denies, and a location
  answer is not circular.
- `grammar_agreement`: number agreement and articles around a finding's name in the question and answer.
The checks of what an answer rests on (`cxrvqa.validation.scope`) and of the words next to a finding
(`cxrvqa.validation.wording`: a hedge a de-identification may have removed, a severity word of another mention,
a density attributed to something elsewhere) are built on this reading.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import orjson

from cxrvqa.errors import ResourceError
from cxrvqa.core.prefilter import Guarded, guarded, holds_one, literals_of_any
from cxrvqa.core.scene_graph import deid_pattern
from cxrvqa.core.text import section_rules
from cxrvqa.core.vocab import ancestors, finding_sites, in_sentence, sided_region, vocabulary
from cxrvqa.core.resources import compile_any, load_checked_yaml
from cxrvqa.validation.validators import OK, ValidationContext, Verdict, fail, validator
from cxrvqa.validation import readings

RULES_FILE = "schemas/vocab/independent_checks.yaml"
SCHEMA = "independent_checks.schema.json"

LOCATION = "LOCATION"  # a region phrase (it may name a side too)
SIDE = "SIDE"  # a side word alone: a kind of its own, so that it does not cut a region's scope
#: How a finding reads in a set of sentences, strongest first.
CERTAINTIES = ("hedged", "differential", "borderline")


# -- rules ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormalStatement:
    id: str
    patterns: tuple[re.Pattern[str], ...]
    regions: tuple[str, ...]
    sided: dict[str, str]
    scope: str  # all | acute
    findings: tuple[str, ...]  # ruled out without a region called normal (normal lung volumes)
    literals: tuple[str, ...] | None  # one of them is in each match of its patterns (None: not known)


@dataclass(frozen=True)
class Rules:
    data: dict[str, Any]
    statements: tuple[NormalStatement, ...]
    acute: frozenset[str]  # the acute findings and their descendants
    skip: tuple[re.Pattern[str], ...]
    presupposing: tuple[str, ...]
    negative_answers: tuple[str, ...]
    hedged_answer: re.Pattern[str]
    deid: re.Pattern[str]  # the report parser's de-identification tokens ("XXXX", "___")
    content_hash: str


def rules_pattern(patterns: Iterable[str], where: str) -> re.Pattern[str]:
    """One regex for a group of the rules file's patterns; a bad one names its section."""
    return compile_any(patterns, RULES_FILE, where)


def _known(ids: Iterable[str], tree: dict[str, Any], where: str) -> None:
    unknown = sorted(set(ids) - set(tree))
    if unknown:
        raise ResourceError(RULES_FILE, f"{where}: not in the vocabulary: {unknown}")


def _check_known(data: dict[str, Any]) -> None:
    """Every finding and region the rules name is in the vocabulary; every operation pattern compiles."""
    vocab = vocabulary()
    _known(data["acute_findings"], vocab.findings, "acute_findings")
    for region, groups in data["normal_by_negations"].items():
        _known([region], vocab.regions, "normal_by_negations")
        _known([f for group in groups for f in group], vocab.findings, "normal_by_negations")
    _known([r for group in data["study_regions"] for r in group], vocab.regions, "study_regions")
    for category, regions in data["category_regions"].items():
        _known(regions, vocab.regions, f"category_regions.{category}")
    for category, findings in data["category_negations"].items():
        _known(findings, vocab.findings, f"category_negations.{category}")
    _known(data["extra_targets"], vocab.findings, "extra_targets")
    for region, apart in data["regions_apart"].items():
        _known([region, *apart], vocab.regions, "regions_apart")
    _known([r for rs in data["normal_lists"]["subjects"].values() for r in rs], vocab.regions, "normal_lists")
    for finding, region in data["statement_sites"].items():
        _known([finding], vocab.findings, "statement_sites")
        _known([region], vocab.regions, "statement_sites")
    _known(data["operation_findings"], vocab.findings, "operation_findings")
    _known([*data["surgical_material"], *data["study_surgical_material"]], vocab.findings, "surgical_material")
    _known(data["diagnoses"], vocab.findings, "diagnoses")
    _known(data["fluid_hemithorax"]["regions"], vocab.regions, "fluid_hemithorax")
    _known([f for pair in data["both_lungs_findings"].items() for f in pair], vocab.findings, "both_lungs_findings")
    for entry in data["operations"]:
        _known(entry["regions"], vocab.regions, "operations")
        rules_pattern([entry["pattern"]], "operations")
    for finding, entry in data["read_also_as_shaped"].items():
        _known([finding, *entry["findings"]], vocab.findings, "read_also_as_shaped")
    for finding, covered in [
        *data["negation_covers"].items(),
        *data["read_also_as"].items(),
        *data["one_side_open"].items(),
    ]:
        _known([finding, *covered], vocab.findings, "negation_covers / read_also_as / one_side_open")
    _check_context_phrases(data["context"])


def _check_context_phrases(context: list[dict[str, Any]]) -> None:
    """A ConText phrase belongs to one rule: of two rules of one phrase only one applies, and which one depends on the
    hash of its rule id, i.e. on the position of every rule before it ("not excluded" forward and backward: an edit
    elsewhere in the list turned "effusion not excluded" from hedged into stated)."""
    seen: dict[str, int] = {}
    for index, rule in enumerate(context):
        for phrase in rule["phrases"]:
            first = seen.setdefault(phrase.lower(), index)
            if first != index:
                raise ResourceError(
                    RULES_FILE, f"context: the phrase {phrase!r} is in rules {first} and {index}; one rule per phrase"
                )


@lru_cache(maxsize=1)
def rules() -> Rules:
    data, digest = load_checked_yaml(RULES_FILE, SCHEMA)
    vocab = vocabulary()
    _check_known(data)
    statements = []
    for st in data["normal_statements"]:
        _known([*st["regions"], *st.get("sided", {}).values()], vocab.regions, f"normal_statements.{st['id']}")
        _known(st.get("findings", ()), vocab.findings, f"normal_statements.{st['id']}")
        if not (st["regions"] or st.get("findings")):
            raise ResourceError(RULES_FILE, f"normal_statements.{st['id']}: neither regions nor findings")
        try:
            patterns = tuple(re.compile(p) for p in st["patterns"])
        except re.error as exc:
            raise ResourceError(RULES_FILE, f"normal_statements.{st['id']}: bad pattern: {exc}") from exc
        statements.append(
            NormalStatement(
                st["id"],
                patterns,
                tuple(st["regions"]),
                dict(st.get("sided", {})),
                st["scope"],
                tuple(st.get("findings", ())),
                literals_of_any(patterns),
            )
        )
    listed = set(data["acute_findings"])
    acute = frozenset(f for f in vocab.findings if f in listed or listed & set(ancestors("findings", f)))
    return Rules(
        data,
        tuple(statements),
        acute,
        tuple(re.compile(p) for p in data["skip_sentences"]),
        tuple(data["presupposing_questions"]),
        tuple(data["negative_answers"]),
        re.compile(data["hedged_answer"]),
        deid_pattern(),
        digest + section_rules().content_hash,
    )


#: Bumped when the checks' code changes. The registered version also hashes the rules file, the
#: vocabulary and finding_sites.yaml, so that an edit of any of them revalidates every item.
LOGIC_VERSION = 17


def _version() -> int:
    parts = f"{LOGIC_VERSION}:{rules().content_hash}:{vocabulary().content_hash}:{finding_sites().content_hash}"
    return int(hashlib.sha256(parts.encode()).hexdigest()[:7], 16)


VERSION = _version()
#: The digest of this module's source as this process loaded it (`readings.reader_version`): a file edited while a
#: build runs does not label the readings its running code makes with the edited code's version.
SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


# -- the ConText reading ----------------------------------------------------------------------------
#: The most sentences whose readings a process keeps (each reading cache: ConText's, the doubt reader's, the normal
#: statements', scope's, wording's). They stay from chunk to chunk (`forget_readings`), so this bounds a worker's
#: memory: ~2.4 KB a sentence over the five (157 MB at 65,536); a 10k synthetic build has 20,322 distinct sentences.
SENTENCES_KEPT = 16384


@dataclass(frozen=True)
class Mention:
    """One finding named in a sentence, with what ConText attached to it."""

    finding: str
    text: str
    kinds: frozenset[str]  # modifier kinds (negated, hedged, ...; deidentified: next to an XXXX token)
    regions: frozenset[str]  # region synonyms attached to it (or inside its own words)
    sides: frozenset[str]  # left | right | bilateral, from side words attached to it

    @cached_property
    def status(self) -> str:
        """affirmed | negated | narrowed | historical | hedged | differential | borderline (computed once: the checks
        ask it of the same cached mentions ~8 times an item)."""
        if "negated" in self.kinds:
            return "narrowed" if self.kinds & {"narrowing", "narrowing_acute"} else "negated"
        if "historical" in self.kinds:
            return "historical"
        for kind in CERTAINTIES:
            if kind in self.kinds:
                return kind
        return "affirmed"

    @property
    def acute_only(self) -> bool:
        return "negated" in self.kinds and "narrowing_acute" in self.kinds


@lru_cache(maxsize=1)
def _side_words() -> dict[str, str]:
    return {phrase: side for side, phrases in rules().data["location"]["sides"].items() for phrase in phrases}


@lru_cache(maxsize=1)
def _location_phrases() -> dict[str, tuple[frozenset[str], str | None]]:
    """Each location phrase -> (the regions it names, the side its words give)."""
    sides = _side_words()
    phrases: dict[str, tuple[set[str], str | None]] = {}
    for region, item in vocabulary().regions.items():
        for phrase in item["synonyms"]:
            side = sides.get(phrase) or next((sides[w] for w in re.split(r"[\s-]+", phrase) if w in sides), None)
            phrases.setdefault(phrase, (set(), side))[0].add(region)
    for phrase, side in sides.items():
        phrases.setdefault(phrase, (set(), side))
    _add_coordinated(phrases)
    return {phrase: (frozenset(regions), side) for phrase, (regions, side) in phrases.items()}


def _add_coordinated(phrases: dict[str, tuple[set[str], str | None]]) -> None:
    """Two region names that differ in one word, coordinated: the first word before a shared head ("ascending and
    descending aorta", "right and left lower lobes") or the middle one of three ("right middle and lower lobes":
    LLM replay round 3, read as both lower lobes). Both regions, and both sides (bilateral) where the two words are
    left and right; a plural head too."""
    groups: dict[tuple[str, str], list[str]] = {}  # (words before, words after) -> the words that differ
    for phrase, (regions, _) in list(phrases.items()):
        words = phrase.split(" ")
        if regions and len(words) > 1:
            groups.setdefault(("", " ".join(words[1:])), []).append(words[0])
        if regions and len(words) == 3:
            groups.setdefault((words[0], words[2]), []).append(words[1])
    for (before, after), varying in groups.items():
        lead = f"{before} " if before else ""
        for a in varying:
            for b in varying:
                if a == b:
                    continue
                (one, side_a), (two, side_b) = phrases[f"{lead}{a} {after}"], phrases[f"{lead}{b} {after}"]
                side = side_a if side_a == side_b else "bilateral" if side_a and side_b else None
                for tail in (after, after + "s"):
                    phrases.setdefault(f"{lead}{a} and {b} {tail}", (one | two, side))


@lru_cache(maxsize=1)
def _pipeline() -> Any:
    """spaCy's blank English + a sentencizer, built once per process: the targets (`_targets`) and ConText's
    modifiers (`_modifiers`) are found on its docs."""
    from loguru import logger

    logger.disable("PyRuSH")  # PyRuSH logs every sentence at DEBUG through loguru
    logger.disable("medspacy")
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _context_rules() -> list[Any]:
    """medspaCy ConTextRules of the `context` rules and of every location phrase (`_location_phrases`)."""
    from medspacy.context import ConTextRule

    data = rules().data
    categories = vocabulary().findings
    context_rules = []
    for rule in data["context"]:
        excluded = {f for f, item in categories.items() if item["category"] in rule.get("exclude_categories", ())}
        allowed = set(rule.get("only_findings", ())) or None
        for phrase in rule["phrases"]:
            context_rules.append(
                ConTextRule(
                    phrase,
                    rule["kind"].upper(),
                    direction=rule["direction"].upper().replace("BOTH", "BIDIRECTIONAL"),
                    max_scope=rule.get("max_scope"),
                    max_targets=rule.get("max_targets"),
                    excluded_types=excluded or None,
                    allowed_types=allowed,
                    metadata={"comma_ends": True} if rule.get("comma_ends") else None,
                )
            )
    location = data["location"]
    for phrase, (regions, side) in _location_phrases().items():
        context_rules.append(
            ConTextRule(
                phrase,
                LOCATION if regions else SIDE,
                direction="BIDIRECTIONAL",
                max_scope=location["max_scope"],
                max_targets=None if regions else location["side_targets"],
                metadata={"regions": sorted(regions), "side": side},
            )
        )
    return context_rules


@dataclass(frozen=True)
class _Modifiers:
    """ConText's rules as a spaCy PhraseMatcher, applied as medspaCy's ConText component applies them (its rule
    ids, hence its order of matches; its pruning of overlapping modifiers; its ConTextGraph with the component's
    defaults) without what `read_sentence` does not read: the custom attributes it sets on the doc and on every
    target, and the empty token Matcher it runs (and the warning that raises) on every sentence."""

    phrases: Any  # spaCy PhraseMatcher on LOWER
    rules: dict[int, Any]  # match id -> ConTextRule

    def graph(self, doc: Any) -> Any:
        """The ConTextGraph of the doc's entities: its modifiers (in order) and the edges of what modifies what."""
        from medspacy.common.util import prune_overlapping_matches
        from medspacy.context import ConTextGraph, ConTextModifier

        graph = ConTextGraph(prune_on_modifier_overlap=False)  # the component passes prune_on_target_overlap here
        graph.targets = doc.ents
        graph.modifiers = [
            ConTextModifier(self.rules[key], start, end, doc)
            for key, start, end in prune_overlapping_matches(self.phrases(doc))
        ]
        graph.update_scopes()
        _terminate_scopes(graph.modifiers, _run_on_clauses(doc))
        _end_at_comma(graph.modifiers, doc)
        graph.apply_modifiers()
        return graph


def _end_at_comma(modifiers: list[Any], doc: Any) -> None:
    """End the forward scope of the modifiers of `comma_ends` kinds at the first comma after them, and the scope of
    the context rules marked `comma_ends` at the nearest comma, "with" or "and" either way: "Heart size near top
    normal limits, aortic calcifications and mild ectasia" is no borderline calcification (LLM replay round 13);
    "Small left pleural effusion, the left costophrenic angle is not well seen" no effusion unseen, nor "Retrocardiac
    opacity with the left hemidiaphragm not clearly visualized" an opacity."""
    kinds = {kind.upper() for kind in rules().data["comma_ends"]}
    for modifier in modifiers:
        both_ways = (modifier.rule.metadata or {}).get("comma_ends", False)
        if modifier.category not in kinds and not both_ways:
            continue
        ends = _CLAUSE_ENDS if both_ways else (",",)
        start, end = modifier.modifier_span
        stop = next((i for i in range(end, modifier._scope_end) if doc[i].lower_ in ends), None)
        if stop is not None:
            modifier._scope_end = stop
        stop = next((i for i in range(start - 1, modifier._scope_start - 1, -1) if doc[i].lower_ in ends), None)
        if both_ways and stop is not None:
            modifier._scope_start = stop + 1


#: What ends the scope of a context rule marked `comma_ends`.
_CLAUSE_ENDS = (",", ";", "with", "and")


def _terminate_scopes(modifiers: list[Any], clauses: list[tuple[int, int]]) -> None:
    """End every modifier's scope at the terminators (and the run-on clauses) between it and its targets. medspaCy's
    `limit_scope` skips a modifier whose scope lies inside a terminator's (its overlap test misses containment), so
    a backward modifier with a `max_scope` read past one: "Mild cardiomegaly otherwise pulmonary vascularity appears
    within normal limits" negated the cardiomegaly (LLM replay round 4)."""
    stops = [m.modifier_span for m in modifiers if m.direction.upper() == "TERMINATE"] + clauses
    for modifier in modifiers:
        if modifier.direction.upper() == "TERMINATE":
            continue
        start, end = modifier.modifier_span
        for stop_start, stop_end in stops:
            if stop_end <= start and modifier._scope_start < stop_end:
                modifier._scope_start = stop_end
            elif stop_start >= end and modifier._scope_end > stop_start:
                modifier._scope_end = stop_start


def _run_on_clauses(doc: Any) -> list[tuple[int, int]]:
    """The starts of clauses run on without a stop right after a finding's words (`run_on_clauses`: "There is no
    pneumothorax the lungs are hyperinflated"), or after a clause its verb closes ("no definite pleural effusion
    seen, left hilar calcifications ..."), as (start, start) spans that end scopes like terminators."""
    words = rules().data["run_on_clauses"]
    ends = {e.end for e in doc.ents}
    lowers = [t.lower_ for t in doc]
    starts = [i + 1 for i in range(1, len(lowers) - 1) if lowers[i] == "," and lowers[i - 1] in words["closing_verbs"]]
    starts += [
        i
        for i in range(1, len(lowers) - 2)
        if i in ends and lowers[i] == "the" and lowers[i + 1] in words["subjects"] and lowers[i + 2] in words["verbs"]
    ]
    return [(i, i) for i in starts]


@lru_cache(maxsize=1)
def _modifiers() -> _Modifiers:
    """ConText's matcher, built once per process."""
    from spacy.matcher import PhraseMatcher

    nlp = _pipeline()
    phrases, by_key = PhraseMatcher(nlp.vocab, attr="LOWER"), {}
    for index, rule in enumerate(_context_rules()):
        key = f"{rule.category}_{index}"  # medspaCy's rule id
        by_key[nlp.vocab.strings.add(key)] = rule
        phrases.add(key, [nlp.make_doc(rule.literal.lower())])
    return _Modifiers(phrases, by_key)


def _target_rules() -> list[tuple[str, str | list[dict[str, Any]]]]:
    """(finding, phrase or token pattern) of every target: the findings' synonyms and `extra_targets`, the phrases
    first (a phrase's rule id is the same whether or not the patterns are matched)."""
    phrases: list[tuple[str, str | list[dict[str, Any]]]] = [
        (finding, phrase)
        for finding, item in vocabulary().findings.items()
        for phrase in item["synonyms"]
        if finding != "no_finding"
    ]
    patterns = []
    for finding, items in rules().data["extra_targets"].items():
        for rule in items:
            (patterns if isinstance(rule, list) else phrases).append((finding, rule))
    return phrases + patterns


@dataclass(frozen=True)
class _Targets:
    """The target rules as spaCy matchers, read as medspaCy's TargetMatcher reads them (its rule ids, hence its
    order of matches) without its cost per match (a custom attribute per span, `doc.ents` set again per span) and
    without the token Matcher where no pattern can match. Overlapping matches are pruned as spaCy's `filter_spans`
    does, longest first, not by medspaCy's pairwise pass, which drops a finding of its own before a longer one
    ("Atherosclerotic calcifications of the aorta" lost the atherosclerosis: a fresh rules round)."""

    phrases: Any  # spaCy PhraseMatcher on LOWER: the phrases
    patterns: Any  # spaCy Matcher: the token patterns
    labels: dict[int, str]  # match id -> finding

    def find(self, doc: Any, with_patterns: bool) -> Any:
        """The doc with its entities set to the targets found (``with_patterns`` False: the phrases alone, where no
        token pattern can match: `_Cue.may_match_pattern`)."""
        from spacy.tokens import Span
        from spacy.util import filter_spans

        matches = (self.patterns(doc) if with_patterns and len(self.patterns) else []) + self.phrases(doc)
        doc.ents = filter_spans([Span(doc, start, end, label=self.labels[key]) for key, start, end in matches])
        return doc


@lru_cache(maxsize=1)
def _targets() -> _Targets:
    """The target matchers, built once per process."""
    from spacy.matcher import Matcher, PhraseMatcher

    nlp = _pipeline()
    phrases, patterns = PhraseMatcher(nlp.vocab, attr="LOWER"), Matcher(nlp.vocab)
    labels = {}
    for index, (finding, rule) in enumerate(_target_rules()):
        key = f"{finding}_{index}"  # medspaCy's rule id
        labels[nlp.vocab.strings.add(key)] = finding
        if isinstance(rule, list):
            patterns.add(key, [rule])
        else:
            phrases.add(key, [nlp.make_doc(rule.lower())])
    return _Targets(phrases, patterns, labels)


@lru_cache(maxsize=4096)
def _inner_location(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Regions and sides named inside a finding's own words ("elevation of the right hemidiaphragm"), the longest
    phrases first: "left upper lobe" holds no "upper lobe" of both lungs (LLM replay round 18)."""
    words = re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower())
    phrases = _location_phrases()
    regions, sides, used = set(), set(), set()
    for n in (4, 3, 2, 1):
        for i in range(len(words) - n + 1):
            found = phrases.get(" ".join(words[i : i + n]))
            if found and not used.intersection(range(i, i + n)):
                used.update(range(i, i + n))
                regions |= found[0]
                if found[1]:
                    sides.add(found[1])
    return frozenset(regions), frozenset(sides)


@dataclass(frozen=True)
class _Cue:
    """The tokens without which no target rule can match (`_target_cue`)."""

    phrases: dict[str, tuple[frozenset[str], ...]]  # a token -> the token sets of the phrases holding it
    patterns: tuple[tuple[frozenset[str], ...], ...]  # per token pattern: the words each required token allows

    def may_match(self, lowers: set[str]) -> bool:
        return any(
            tokens <= lowers for word in lowers for tokens in self.phrases.get(word, ())
        ) or self.may_match_pattern(lowers)

    def may_match_pattern(self, lowers: set[str]) -> bool:
        """Whether a token pattern (not a phrase) can match: else spaCy's token Matcher finds nothing. Only the
        patterns one of whose words the sentence holds are tried (`_patterns_by_word`)."""
        by_word = self._patterns_by_word
        return any(
            all(not allowed.isdisjoint(lowers) for allowed in pattern)
            for word in lowers
            for pattern in by_word.get(word, ())
        )

    @cached_property
    def _patterns_by_word(self) -> dict[str, tuple[tuple[frozenset[str], ...], ...]]:
        """A word -> the token patterns whose fewest-word required token allows it: a pattern can match only
        where the sentence holds one of those words."""
        by_word: dict[str, list[tuple[frozenset[str], ...]]] = {}
        for pattern in self.patterns:
            for word in min(pattern, key=len):
                by_word.setdefault(word, []).append(pattern)
        return {word: tuple(patterns) for word, patterns in by_word.items()}


@lru_cache(maxsize=1)
def _target_cue() -> _Cue | None:
    """What a sentence's tokens must hold for the target matcher to find a finding in it.

    The target matcher matches a phrase token by token on their lower case (spaCy's PhraseMatcher on
    LOWER), and a token pattern only where each of its required tokens matches: a sentence whose tokens
    hold not every token of some phrase and, for no pattern, a word each required token allows, names no
    finding. About a third of a report's sentences (normal statements, technique,
    comparison) then skip the matchers and ConText. None when a rule is of a shape this cannot read
    (then every sentence is read in full)."""
    nlp = _pipeline()
    patterns: list[tuple[frozenset[str], ...]] = []
    phrases = [
        phrase
        for finding, item in vocabulary().findings.items()
        if finding != "no_finding"
        for phrase in item["synonyms"]
    ]
    for items in rules().data["extra_targets"].values():
        for pattern in items:
            if not isinstance(pattern, list):
                phrases.append(pattern)
                continue
            allowed = []
            for token in pattern:
                if token.get("OP") not in (None, "+"):
                    continue
                lower = token.get("LOWER")
                values = (
                    lower.get("IN")
                    if isinstance(lower, dict) and set(lower) == {"IN"}
                    else [lower]
                    if isinstance(lower, str)
                    else None
                )
                if not values or set(token) - {"LOWER", "OP"}:
                    return None
                allowed.append(frozenset(str(v).lower() for v in values))
            if not allowed:
                return None
            patterns.append(tuple(allowed))
    by_word: dict[str, set[frozenset[str]]] = {}
    for phrase in phrases:
        tokens = [t.lower_ for t in nlp.make_doc(phrase)]
        if not tokens:
            return None
        by_word.setdefault(max(tokens, key=len), set()).add(frozenset(tokens))
    return _Cue({word: tuple(sets) for word, sets in by_word.items()}, tuple(patterns))


@lru_cache(maxsize=SENTENCES_KEPT)
def read_sentence(text: str) -> tuple[Mention, ...]:
    """The findings a sentence names, each with its ConText modifiers (cached: items share sentences; a reading
    the store kept for the chunk being validated is taken without reading: `cxrvqa.validation.readings`)."""
    return readings.kept(text, read_sentence_afresh, Mention)


def read_sentence_afresh(text: str) -> tuple[Mention, ...]:
    """The ConText reading of one sentence (`read_sentence`; `readings.read_afresh` ahead of the validation).

    Two readings are tightened after ConText: a location phrase that overlaps a finding's words ("right
    pleural" in "right pleural effusion") locates it, and a differential ("or", "versus", "/") holds only
    between two findings (not "perihilar/midlung density"), the ones next to it or listed with them (`_candidate`).
    A sentence whose tokens cannot match a target (`_target_cue`) names no finding: the matchers and ConText are
    not run on it."""
    nlp = _pipeline()
    doc = nlp.make_doc(text)
    lowers = [t.lower_ for t in doc]
    cue = _target_cue()
    words = set(lowers)
    if cue is not None and not cue.may_match(words):
        return ()
    doc = _targets().find(nlp.get_pipe("sentencizer")(doc), cue is None or cue.may_match_pattern(words))
    graph = _modifiers().graph(doc)
    targets_of: dict[int, list[Any]] = {}
    modifiers_of: dict[tuple[int, int], list[Any]] = {}  # a target's (start, end) -> its modifiers, in order
    for target, modifier in graph.edges:
        targets_of.setdefault(id(modifier), []).append(target)
        modifiers_of.setdefault((target.start, target.end), []).append(modifier)
    places = sorted((m for m in graph.modifiers if m.category in (LOCATION, SIDE)), key=lambda m: m.modifier_span)
    at = {i: m for m in places for i in range(*m.modifier_span)}
    ents = _targets_kept(text, doc.ents)
    owner = {i: e for e in ents for i in range(e.start, e.end)}
    deid = rules().deid
    mentions = []
    for ent in ents:
        kinds, regions, sides = set(), set(), set()
        modifiers = modifiers_of.get((ent.start, ent.end), ())
        located = []
        for modifier in modifiers:
            category = modifier.category
            if category == "DIFFERENTIAL":
                others = targets_of.get(id(modifier), [])
                if _candidate(lowers, ent, modifier.modifier_span, others) and not _one_thing(
                    ent, modifier.modifier_span, others
                ):
                    kinds.add("differential")
            elif category in (LOCATION, SIDE):
                located.append(modifier)
            elif category != "HEDGED" or not _differential_closed(lowers, modifier.modifier_span[1], ent.start):
                kinds.add("hedged" if category == "DISFAVOURED" else category.lower())
        walked = _walk(lowers, ent, places, at, owner) or located
        if not walked and ent is ents[0]:
            walked = _subject_place(lowers, ent, at)
        for modifier in walked:
            _add_location(modifier, regions, sides)
        words = ent.text
        kinds |= _inner_kinds(words) | _straddling_kinds(graph.modifiers, ent)
        if _deidentified_after(doc, lowers, ent.end, deid):
            kinds.add("deidentified")
        inner_regions, inner_sides = _inner_location(words)
        mentions.append(
            Mention(
                ent.label_, words, frozenset(kinds), frozenset(regions | inner_regions), frozenset(sides | inner_sides)
            )
        )
    return _completed(lowers, ents, owner, _unexplained(text, mentions))


def _targets_kept(text: str, ents: Any) -> list[Any]:
    """The targets less those inside a `not_targets` phrase of the sentence ("the radiation port" is no port)."""
    spans = [m.span() for m in _not_targets().finditer(text.lower())]
    return [e for e in ents if not any(start <= e.start_char and e.end_char <= end for start, end in spans)]


@lru_cache(maxsize=1)
def _not_targets() -> re.Pattern[str]:
    return _any_word(re.escape(phrase) for phrase in rules().data["not_targets"])


def _unexplained(text: str, mentions: list[Mention]) -> list[Mention]:
    """The mentions less the shadows the sentence explains as a structure outside the lungs (`explained_shadows`),
    and with the shadows of a hemithorax that is fluid read as such (`_fluid_read`)."""
    if _explained_shadows().search(text.lower()) is not None:
        return [m for m in mentions if m.finding not in _shadows()]
    return [read for m in mentions for read in _fluid_read(text, m, mentions)]


def _fluid_read(text: str, mention: Mention, mentions: list[Mention]) -> tuple[Mention, ...]:
    """A shadow of a hemithorax itself, not ruled out (`fluid_hemithorax`): nothing beside an effusion the sentence
    states on its side (the effusion it is), a hedged effusion on its side with a fluid word in its own clause; any
    other mention as read."""
    data = rules().data["fluid_hemithorax"]
    words = mention.text.lower().split()
    if (
        mention.finding not in _shadows()
        or mention.status in ("negated", "narrowed")
        or not (mention.regions & set(data["regions"]) or (words and words[0] in data["shadow_words"]))
    ):
        return (mention,)
    effusion = "pleural_effusion"
    for m in mentions:
        if m.finding in family(effusion) and m.status not in ("negated", "narrowed"):
            if not m.sides or not mention.sides or m.sides & mention.sides:
                return ()
    lowered = text.lower()
    at = lowered.find(mention.text.lower())
    clause = re.split(r"[,;]", lowered[:at])[-1] + re.split(r"[,;]", lowered[at:])[0] if at >= 0 else ""
    if any(w.strip(".") in data["fluid_words"] for w in clause.split()):
        return (Mention(effusion, mention.text, frozenset({"hedged"}), frozenset(), mention.sides),)
    return (mention,)


@lru_cache(maxsize=1)
def _shadows() -> frozenset[str]:
    """The findings that name a shadow, not what casts it (`open_shadows.shadows`)."""
    return frozenset(rules().data["open_shadows"]["shadows"])


@lru_cache(maxsize=1)
def _explained_shadows() -> re.Pattern[str]:
    return rules_pattern(rules().data["explained_shadows"], "explained_shadows")


def _completed(lowers: list[str], ents: Any, owner: dict[int, Any], found: list[Mention]) -> tuple[Mention, ...]:
    """The sentence's mentions, completed: regional findings (`_regional`), the elliptic ones (`_elliptic`), and
    candidates of a differential that ConText left unplaced given the place the sentence gives the others, when it
    gives them one ("calcified XXXX opacity in the left lung base suggestive of old empyema, hematoma, or prior TB":
    the TB is the left base's, not anywhere in the lungs; LLM replay round 12, 3 right lungs answered normal)."""
    paired = _pair_placed(lowers, ents, [_regional(lowers, ent, m) for ent, m in zip(ents, found)])
    mentions = tuple(paired) + _elliptic(lowers, ents, owner, found)
    placed = {(m.regions, m.sides) for m in mentions if "differential" in m.kinds and m.regions}
    if len(placed) != 1:
        return mentions
    regions, sides = next(iter(placed))
    return tuple(
        replace(m, regions=regions, sides=sides) if "differential" in m.kinds and not m.regions and not m.sides else m
        for m in mentions
    )


def _pair_placed(lowers: list[str], ents: Any, mentions: list[Mention]) -> list[Mention]:
    """The second of two findings of one organ joined by "and" or "or" alone is where the first is, when nothing
    places it ("bilateral pulmonary masses and nodules": LLM replay round 17, bilateral nodules read unsided; not
    "bilateral granulomas and degenerative change", whose sites differ)."""
    out = list(mentions)
    for k in range(1, len(out)):
        first, second, ent = out[k - 1], out[k], ents[k]
        if second.regions or second.sides or not (first.regions or first.sides):
            continue
        if ent.start != ents[k - 1].end + 1 or lowers[ent.start - 1] not in ("and", "or"):
            continue
        if (_sites(first.finding) or frozenset()) & (_sites(second.finding) or frozenset()):
            out[k] = replace(second, regions=first.regions, sides=first.sides)
    return out


def _regional(lowers: list[str], ent: Any, mention: Mention) -> Mention:
    """A finding of both lungs named with one side just before it is the regional finding of `both_lungs_findings`:
    "mild right basilar hypoventilation" is volume loss, not low lung volumes; a side ConText attaches from further
    off ("Continued hypoinflation with right middle lobe focal atelectasis") does not count."""
    regional = rules().data["both_lungs_findings"].get(mention.finding)
    before = lowers[max(0, ent.start - 3) : ent.start]
    if regional is None or len({"left", "right"} & set(before)) != 1 or "and" in before:
        return mention
    return replace(mention, finding=regional)


def _elliptic(lowers: list[str], ents: Any, owner: dict[int, Any], mentions: list[Mention]) -> tuple[Mention, ...]:
    """The findings named by a word that shares the head noun of the finding after it ("heavily calcified and mildly
    tortuous aorta": a calcified aorta; "chronic interstitial and bullous disease"; "dilated slightly tortuous
    aorta": LLM replay round 9), read with that finding's modifiers: the word before it, past at least one adverb or
    one "and" or comma, with the finding's words but its first, is a finding's name."""
    names, extra = _finding_by_name(), []
    for ent, mention in zip(ents, mentions):
        if ent.end - ent.start < 2:
            continue
        i, joined = ent.start - 1, False
        while i >= 0 and (lowers[i].endswith("ly") or (lowers[i] in ("and", ",") and not joined)):
            joined = joined or lowers[i] in ("and", ",")
            i -= 1
        if i < 0 or i in owner or i == ent.start - 1:
            continue  # not "aortic atherosclerotic calcifications": the first word of a stack names no other finding
        finding = names.get(" ".join([lowers[i], *lowers[ent.start + 1 : ent.end]]))
        if finding is not None and finding != mention.finding:
            extra.append(Mention(finding, lowers[i], mention.kinds, mention.regions, mention.sides))
    return tuple(extra)


@lru_cache(maxsize=1)
def _kind_phrases() -> tuple[tuple[str, str], ...]:
    """(phrase, kind) of the hedge, borderline and narrowing rules, to read inside a finding's own words."""
    return tuple(
        (" " + phrase + " ", rule["kind"])
        for rule in rules().data["context"]
        if rule["kind"] in ("hedged", "borderline", "narrowing")
        for phrase in rule["phrases"]
    )


#: The modifier kinds that can share words with the finding they modify ("borderline enlarged").
_STRADDLING = frozenset({"BORDERLINE"})


def _straddling_kinds(modifiers: list[Any], ent: Any) -> frozenset[str]:
    """The kinds of the modifiers that begin before a finding's words and end inside them ("borderline enlarged" of
    "Borderline enlarged cardiac silhouette", the finding "enlarged cardiac silhouette": ConText leaves a modifier
    overlapping its target out; synthetic round AA)."""
    return frozenset(
        m.category.lower()
        for m in modifiers
        if m.category in _STRADDLING and m.modifier_span[0] < ent.start < m.modifier_span[1]
    )


@lru_cache(maxsize=4096)
def _inner_kinds(text: str) -> frozenset[str]:
    """Hedges, borderline or narrowing words inside a finding's own synonym ("borderline heart size", "noncalcified
    nodule": "no noncalcified nodule" leaves a calcified one open)."""
    words = " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "
    return frozenset(kind for phrase, kind in _kind_phrases() if phrase in words)


@dataclass(frozen=True)
class _WalkRules:
    """The place walk's words (`location` in the rules file), read once."""

    stops: frozenset[str]
    prepositions: frozenset[str]
    gap: int
    subject_verbs: frozenset[str]  # "projects over": the sentence's first finding is placed however far
    numbers: re.Pattern[str]  # "10th" of "right 10th and left 9th ... rib fracture"
    connectors: frozenset[str]  # words that join two places of one finding ("right perihilar/midlung")


@lru_cache(maxsize=1)
def _walk_rules() -> _WalkRules:
    walk = rules().data["location"]
    return _WalkRules(
        frozenset(walk["stop_words"]),
        frozenset(walk["prepositions"]),
        walk["max_gap"],
        frozenset(walk["subject_verbs"]),
        re.compile(walk.get("numbers", "(?!)")),
        frozenset(walk["connectors"]),
    )


def _walk(lowers: list[str], ent: Any, places: list[Any], at: dict[int, Any], owner: dict[int, Any]) -> list[Any]:
    """The location phrases that belong to a finding by the words around it: those overlapping it, those
    just before it ("left lower lobe opacity", skipping a few words such as "calcified"), a prepositional
    phrase just after it ("opacity in the left base and right base") or a side word ("bilaterally"); none across
    another finding or a stop word. Empty when nothing is found: then ConText's scope decides. (`lowers`: the
    sentence's tokens in lower case; `at`: token index -> the place phrase over it; `owner`: token index -> the
    finding over it.)"""
    walk = _walk_rules()
    stops, prepositions, gap = walk.stops, walk.prepositions, walk.gap
    found = [m for m in places if m.modifier_span[0] < ent.end and ent.start < m.modifier_span[1]]
    i, skipped = ent.start - 1, 0
    while i >= 0 and owner.get(i) is None:
        if i in at:
            found.append(at[i])
            i, skipped = at[i].modifier_span[0] - 1, 0
        elif lowers[i] in walk.connectors and found and (before := _before_connectors(lowers, i)) in at:
            i = before  # "right apical and left basilar", "left midlung, and basilar", "right perihilar/midlung"
        elif lowers[i] in walk.connectors and found and _numbered(lowers, before := _before_connectors(lowers, i)):
            i = before - 1  # "right 10th and left 9th ... rib fracture"
        elif lowers[i] in stops or skipped >= gap:
            break
        else:
            i, skipped = i - 1, skipped + 1
    j, skipped, opened, placed = ent.end, 0, False, bool(found)
    while j < len(lowers) and owner.get(j) is None:
        word = lowers[j]
        # a side word right after a placed one is its side ("Apical pleural thickening bilaterally": synthetic round
        # C); an unplaced one's is ConText's to find with the rest ("Degenerative left glenohumeral osteoarthritis")
        if j in at and (opened or (placed and j == ent.end and at[j].category == SIDE)):
            found.append(at[j])
            j, skipped = at[j].modifier_span[1], 0
            continue
        if word in prepositions:
            opened = True
        elif word in walk.connectors and opened:
            pass
        elif word in stops or skipped >= gap:
            break
        else:
            skipped += 1
        j += 1
    return list(dict.fromkeys(found))


def _candidate(lowers: list[str], ent: Any, span: tuple[int, int], others: list[Any]) -> bool:
    """Whether a finding is one of the candidates a differential ("versus", "or") weighs: the finding next to it,
    or one joined to it by a list ("atelectasis, pneumonia or aspiration"); not a finding before the candidates
    whose cause they are ("Left basilar airspace opacity atelectasis versus pneumonitis": the opacity is stated,
    round AT). A differential needs findings on both sides of it, and is none where the sentence denies a change of
    what it lists before them (`change_lists`: "No significant change in right pneumothorax or pleural fluid")."""
    if not (any(t.end <= span[0] for t in others) and any(t.start >= span[1] for t in others)):
        return False
    if _modifiers_joined(lowers, span, [ent, *others]):
        return False
    if _change_lists().search(" ".join(lowers[: min(ent.start, *(t.start for t in others))])):
        return False
    before = ent.end <= span[0]
    if not before and _differential_closed(lowers, span[0], ent.start):
        return False
    if (
        before
        and ent.label_ in _described_shadows()
        and all(t.start >= ent.end for t in others if t.start != ent.start)
    ):
        return False  # "minimal left basilar opacities, XXXX subsegmental atelectasis or scarring" (LLM round 21)
    low, high = (ent.end, span[0]) if before else (span[1], ent.start)
    between = sorted((t for t in others if low <= t.start and t.end <= high), key=lambda t: t.start)
    edges = [ent, *between] if before else [*between, ent]
    return all(any(w in (",", "or", "and", "/") for w in lowers[a.end : b.start]) for a, b in zip(edges, edges[1:]))


@lru_cache(maxsize=1)
def _described_shadows() -> frozenset[str]:
    """Shadows that only describe what is seen (`open_shadows`: the shadows that are none of what they may be): the
    candidates a differential after one weighs explain it, they do not put it in doubt."""
    return _shadows() - frozenset(rules().data["open_shadows"]["may_be"])


def _modifiers_joined(lowers: list[str], span: tuple[int, int], targets: list[Any]) -> bool:
    """Whether the differential's word joins two words of the finding right after it, not two findings ("mild
    residual or recurrent pneumonia", "mild or moderate effusion": LLM replay round 12): plain words on both sides of
    it, and the next finding at most two plain words on."""
    owned = {i for t in targets for i in range(t.start, t.end)}
    before, after = span[0] - 1, span[1]
    if before < 0 or before in owned or after in owned or not lowers[before].isalpha():
        return False
    following = [t.start for t in targets if t.start >= after]
    if not following or min(following) - after > 2:
        return False
    return all(word.isalpha() for word in lowers[after : min(following)])


def _one_thing(ent: Any, span: tuple[int, int], others: list[Any]) -> bool:
    """Whether the two findings on either side of the differential's word are ones readers take for one another
    (finding_sites.yaml `overlapping`): "chronic fibrosis/scar" names one thing, not a choice (LLM replay rounds),
    and "aortic calcifications and mild ectasia/tortuosity" offers no choice for the calcifications either (round
    13)."""
    found = [ent, *others]
    left = [t for t in found if t.end <= span[0]]
    right = [t for t in found if t.start >= span[1]]
    if not left or not right:
        return False
    near_left, near_right = max(left, key=lambda t: t.end), min(right, key=lambda t: t.start)
    return near_right.label_ in finding_sites().overlapping.get(near_left.label_, frozenset())


#: Words that join the candidates of a differential.
_ALTERNATIVES = frozenset(("or", "versus", "vs", "vs.", "and/or"))


def _differential_closed(lowers: list[str], start: int, end: int) -> bool:
    """Whether the candidates a hedge or a differential weighs end before a finding after them (tokens ``start``
    to ``end``): an "or" list closed by a comma, with no alternative after it ("densities may be compatible with
    scarring or subsegmental atelectasis, scattered chronic appearing irregular interstitial markings": the
    markings are stated, round BD), where words of the finding's own phrase follow the comma ("atelectasis versus
    consolidation, aspiration" and "may represent atelectasis or infiltrate, or less likely aspiration" stay one
    list)."""
    words = lowers[start:end]
    for i, word in enumerate(words):
        if word in _ALTERNATIVES and "," in words[i + 1 :]:
            after = words[words.index(",", i + 1) + 1 :]
            return bool(after) and _ALTERNATIVES.isdisjoint(after)
    return False


@lru_cache(maxsize=1)
def _change_lists() -> re.Pattern[str]:
    return _any_word(rules().data["change_lists"])


def _any_word(words: Iterable[str], tail: str = r"\b") -> re.Pattern[str]:
    """Any of the rules file's lowercased regexes, starting at a word boundary and ending with ``tail``."""
    return re.compile(r"\b(?:" + "|".join(words) + r")" + tail)


def _subject_place(lowers: list[str], ent: Any, at: dict[int, Any]) -> list[Any]:
    """The place a placing verb after the sentence's first finding gives it (`location.subject_verbs`: "... opacity
    with central lucency, seen on PA view only, projects over right midlung"), with those coordinated with it."""
    walk = _walk_rules()
    verbs, prepositions = walk.subject_verbs, walk.prepositions
    verb = next((i for i in range(ent.end, len(lowers)) if lowers[i] in verbs), None)
    if verb is None:
        return []
    found, j = [], verb + 1
    while j < len(lowers) and (lowers[j] in prepositions or lowers[j] in ("the", "a", "and", ",")):
        j += 1
        while j in at:
            found.append(at[j])
            j = at[j].modifier_span[1]
    return list(dict.fromkeys(found))


def _numbered(lowers: list[str], i: int) -> bool:
    """Token i is a number (`location.numbers`), as "10th" after "right" in "right 10th and left 9th"."""
    return i >= 1 and _walk_rules().numbers.fullmatch(lowers[i]) is not None


def _before_connectors(lowers: list[str], i: int) -> int:
    """The index of the token before the run of connectors ("and", ",", "or", "/") that ends at ``i``."""
    while i >= 0 and lowers[i] in _walk_rules().connectors:
        i -= 1
    return i


def _add_location(modifier: Any, regions: set[str], sides: set[str]) -> None:
    meta = modifier.rule.metadata or {}
    regions.update(meta.get("regions", ()))
    if meta.get("side"):
        sides.add(meta["side"])


# -- vocabulary helpers ------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def family(finding: str) -> frozenset[str]:
    """The finding and every finding below it in the findings tree (a pneumonia is a lung opacity)."""
    return frozenset(f for f in vocabulary().findings if f == finding or finding in ancestors("findings", f))


@lru_cache(maxsize=None)
def subtree(region: str) -> frozenset[str]:
    return frozenset(r for r in vocabulary().regions if r == region or region in ancestors("regions", r))


@lru_cache(maxsize=None)
def display_name(finding: str) -> str:
    return in_sentence(vocabulary().findings[finding]["name"])


@lru_cache(maxsize=1)
def _finding_by_name() -> dict[str, str]:
    names = {}
    for finding, item in vocabulary().findings.items():
        for phrase in item["synonyms"]:
            names.setdefault(phrase.lower(), finding)
        names[item["name"].lower()] = finding
    return names


@lru_cache(maxsize=1)
def _region_names() -> list[tuple[str, re.Pattern[str], str]]:
    """(a region's name, it as a whole-word pattern, region id), longest name first."""
    names = sorted(((item["name"].lower(), r) for r, item in vocabulary().regions.items()), key=lambda p: -len(p[0]))
    return [(name, re.compile(rf"(?<![a-z]){re.escape(name)}(?![a-z])"), r) for name, r in names]


def _sites(finding: str) -> frozenset[str] | None:
    return finding_sites().regions.get(finding)


# -- what an item claims ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    kind: str  # present | possible | some_present | absent | uncertain | certain | located |
    #                                 in_region | normal | abnormal
    findings: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # normal: the regions declared normal ("study": the whole chest)
    source: str = ""  # where the findings came from (argument, answer, tagged, ...)


def _arguments(item: dict[str, Any]) -> dict[str, str]:
    return _parse_arguments(str(item.get("arguments") or "{}"))


@lru_cache(maxsize=4096)
def _parse_arguments(text: str) -> dict[str, str]:
    try:
        args = json.loads(text)
        return args if isinstance(args, dict) else {}
    except ValueError:
        return {}


def answer_sentences(text: str) -> list[str]:
    """An answer's sentences (cut after a full stop, a question or an exclamation mark)."""
    return [sentence for sentence in re.split(r"(?<=[.!?])\s+", text) if sentence.strip()]


def _answer_mentions(text: str) -> list[Mention]:
    """The findings an answer names, read like a report sentence ("No pneumothorax." names none)."""
    return [
        m
        for sentence in answer_sentences(text)
        for m in read_sentence(sentence)
        if m.status not in ("negated", "narrowed")
    ]


@lru_cache(maxsize=4096)
def _part_mentions(text: str) -> tuple[Mention, ...]:
    """The findings of a list answer read part by part ("atelectasis in the lung bases and rib fractures on the left":
    the bases are not the fractures' place, LLM replay round 9): the answer cut at each comma or "and" that a part
    naming a finding follows."""
    parts: list[str] = []
    for piece in re.split(r",\s+(?:and\s+)?|\s+and\s+", text):
        if parts and not _answer_mentions(piece):
            parts[-1] += " and " + piece
        else:
            parts.append(piece)
    return tuple(m for part in parts for m in _answer_mentions(part))


def _named_in(text: str) -> list[str]:
    """The findings an answer states (not those it negates), each once."""
    return list(dict.fromkeys(m.finding for m in _answer_mentions(text)))


def _named_finding(text: str) -> str | None:
    return _finding_by_name().get(str(text or "").strip().lower().rstrip("."))


def claims_of(item: dict[str, Any], context: ValidationContext) -> tuple[Claim, ...]:
    """What the item's answer asserts, by its template's answer program (`claims` in the rules file);
    computed once per item while `check_item` validates it (every check asks)."""
    memo = context.memo(item)
    if memo is None:
        return _shared_claims(item, context)
    found = memo.get("claims")
    if found is None:
        found = memo["claims"] = _shared_claims(item, context)
    return found


#: Claims by what they are computed from (`_claims_key`): items of many studies ask the same question of the same
#: finding with the same answer ("Is there a pleural effusion?" "no"), and about half of a batch's items share one.
_CLAIMS: dict[bytes, tuple[Claim, ...]] = {}
#: Each distinct claims value once (`_interned`: most keys share a few, "pleural effusion present").
_CLAIM_VALUES: dict[tuple[Claim, ...], tuple[Claim, ...]] = {}
#: Entries of each cache of `_kept` (then emptied at once).
KEPT_PER_CACHE = 65536


def _claims_key(item: dict[str, Any], context: ValidationContext) -> bytes | None:
    """Everything `_claims_of` reads: the template's program and categories, whether the polarity is True or
    False, and the answer, arguments, findings and options (text, a list of texts as a tuple; the rules and the
    vocabulary are the process's). None when a field is of another type (an odd item of `validate-file`): 1 and
    True are equal keys but not equal answers."""
    found = context.templates.get(item.get("template_id") or "")
    polarity = item.get("polarity")
    key: list[Any] = [
        (found[0].program, found[0].categories) if found else None,
        True if polarity is True else False if polarity is False else None,
    ]
    for name in ("answer", "arguments", "findings", "options"):
        value = item.get(name)
        if type(value) is list and all(type(v) is str for v in value):
            value = tuple(value)
        elif value is not None and type(value) is not str:
            return None
        key.append(value)
    return _digest(tuple(key))


def _digest(key: tuple[Any, ...]) -> bytes:
    """A 128-bit digest of a key of texts (and None, booleans, tuples of them): the caches that items of many
    studies share (`_CLAIMS`, `_GRAMMAR`) keep it instead of the texts, which would keep each item's strings alive
    (claims of 10k synthetic studies, with `_interned`: 30.2 -> 9.9 MB a worker, ~800 -> ~260 bytes an entry)."""
    return hashlib.blake2b(orjson.dumps(key), digest_size=16).digest()


def _kept(cache: dict[bytes, Any], key: bytes, compute: Any) -> Any:
    """The value kept for ``key``, else ``compute()`` kept; a cache at `KEPT_PER_CACHE` entries is emptied first."""
    found = cache.get(key)
    if found is None:
        if len(cache) >= KEPT_PER_CACHE:
            cache.clear()
        found = cache[key] = compute()
    return found


def _shared_claims(item: dict[str, Any], context: ValidationContext) -> tuple[Claim, ...]:
    """`_claims_of`, computed once per distinct `_claims_key` (an item without one on its own)."""
    key = _claims_key(item, context)
    if key is None:
        return _claims_of(item, context)
    return _kept(_CLAIMS, key, lambda: _interned(_claims_of(item, context)))


def _interned(claims: tuple[Claim, ...]) -> tuple[Claim, ...]:
    """The one kept copy of an equal claims value."""
    if len(_CLAIM_VALUES) >= KEPT_PER_CACHE:
        _CLAIM_VALUES.clear()
    return _CLAIM_VALUES.setdefault(claims, claims)


def _claims_of(item: dict[str, Any], context: ValidationContext) -> tuple[Claim, ...]:
    """The claims of the entry of the template's program (`claims` in the rules file) its answer selects: the
    answer itself, else its polarity (yes / no), else `any`."""
    found = context.templates.get(item.get("template_id") or "")
    table = rules().data["claims"].get(found[0].program) if found else None
    if not table:
        return ()
    polarity = item.get("polarity")
    key = "yes" if polarity is True else "no" if polarity is False else None
    chosen = table.get(str(item.get("answer") or "").strip()) or (table.get(key) if key else None) or table.get("any")
    hedged = rules().hedged_answer.search(str(item.get("answer") or "").lower()) is not None
    out = []
    for entry in chosen or []:
        ((kind, source),) = entry.items()
        if kind == "present" and hedged:
            kind = "possible"  # "There may be infiltrate ...": the answer keeps the report's hedge
        if kind == "in_region":
            claim = _in_region_claim(item, source, found[0])
        elif kind in ("normal", "abnormal"):
            claim = _normal_claim(item, kind, source)
        else:
            findings = _claimed_findings(item, source)
            claim = Claim(kind, tuple(dict.fromkeys(findings)), source=source) if findings else None
            if claim is None and kind == "some_present" and source == "tagged":
                claim = Claim(kind, source="untagged")  # an abnormality without a finding: read from the evidence
        if claim is not None:
            out.append(claim)
    return tuple(out)


def _argument_regions(args: dict[str, str], source: str) -> tuple[str, ...]:
    """The regions drawn as `region`, as `region_a` and `region_b` (source `regions`) or as one of those two."""
    regions = vocabulary().regions
    names = ("region_a", "region_b") if source == "regions" else (source,)
    return tuple(args[k] for k in names if args.get(k) in regions)


def _in_region_claim(item: dict[str, Any], source: str, template: Any) -> Claim | None:
    """A finding in a region: the drawn region(s), a category's regions or those of the template's one
    category ("Which of these lung findings ..."), with the item's findings (or the one its answer names)."""
    args, categories = _arguments(item), rules().data["category_regions"]
    if source in ("region", "regions", "region_a", "region_b"):  # "Are both ... abnormal? yes": each on its own
        regions = _argument_regions(args, source)
    elif source == "category":
        regions = tuple(categories.get(args.get("category"), ()))
    else:  # template_category: the categories the template draws from
        regions = tuple(r for c in template.categories for r in categories.get(c, ()))
        if len(template.categories) != 1:
            regions = ()
    findings = (
        [_named_finding(item.get("answer"))] if source == "template_category" else list(item.get("findings") or [])
    )
    findings = [f for f in findings if f in vocabulary().findings]
    return Claim("in_region", tuple(findings), regions, source) if regions and findings else None


def _normal_claim(item: dict[str, Any], kind: str, source: str) -> Claim | None:
    """A region, the drawn regions, a category (`category:<id>`) or the study (`chest`) declared normal (kind
    `normal`) or not normal (`abnormal`)."""
    args = _arguments(item)
    if source in ("region", "regions"):
        regions = _argument_regions(args, source)
    elif source == "category":
        regions = (f"category:{args.get('category')}",)
    else:
        regions = ("chest",)
    return Claim(kind, regions=regions, source=source) if regions else None


def _claimed_findings(item: dict[str, Any], source: str) -> list[str]:
    """The vocabulary findings a claim is about, by its source: the drawn finding, the one the answer names,
    the other of two, those the answer states, the distractors, or the item's tagged findings."""
    args = _arguments(item)
    if source == "argument":
        findings = [args.get("finding")]
    elif source == "answer":
        findings = [_named_finding(item.get("answer"))]
    elif source == "other_argument":
        answer = _named_finding(item.get("answer"))
        findings = [args.get(k) for k in ("finding_a", "finding_b") if args.get(k) != answer]
    elif source == "answer_named":
        findings = _named_in(str(item.get("answer") or ""))
    elif source == "other_options":
        findings = [_named_finding(o) for o in item.get("options") or [] if o != item.get("answer")]
    else:
        findings = list(item.get("findings") or [])
    return [f for f in findings if f in vocabulary().findings]


# -- reading the report ----------------------------------------------------------------------------------
def _evidence(item: dict[str, Any], context: ValidationContext) -> tuple[str, ...]:
    """The item's evidence sentences, each once (computed once per item while `check_item` validates it)."""
    study = context.study
    if study is None:
        return ()
    memo = context.memo(item)
    found = memo.get("evidence") if memo is not None else None
    if found is None:
        readable = _readable(study)
        found = tuple(readable[i] for i in dict.fromkeys(item.get("evidence_ids") or []) if i in readable)
        if memo is not None:
            memo["evidence"] = found
    return found


_last_study: list[Any] = [None, ()]


def _report(context: ValidationContext) -> tuple[str, ...]:
    """The report's sentences that can state findings (not the indication, technique or comparison);
    remembered for the last study (validation goes study by study)."""
    study = context.study
    if study is None:
        return ()
    if _last_study[0] is not study:
        _last_study[:] = [study, _report_of(study)]
    return _last_study[1]


_last_reading: list[Any] = [None, None]


def _report_reading(context: ValidationContext) -> tuple[list[tuple[str, Mention]], "_Coverage"]:
    """The mentions and normal statements of the whole report, remembered for the last study."""
    if _last_reading[0] is not context.study:
        report = _report(context)
        _last_reading[:] = [context.study, (_mentions(report), _normal_statements(report))]
    return _last_reading[1]


_last_readable: list[Any] = [None, {}]


def _readable(study: Any) -> dict[int, str]:
    """The study's sentences as this reader reads them: one the splitter cut mid-clause (it begins in lower
    case after one ending on a word that needs what follows: "No cavitary lesion to suggest. active
    tuberculosis.") is read joined to the one before, whose negation or hedge it is under; remembered for the
    last study."""
    if _last_readable[0] is not study:
        readable, before = {}, None
        endings = frozenset(rules().data["cut_sentence_endings"])
        for i, text in sorted(study.sentences.items()):
            stripped = text.lstrip()
            last = re.findall(r"[a-z]+", before.lower())[-1:] if before else []
            cut = bool(last) and last[0] in endings and stripped[:1].islower()
            readable[i] = f"{before.rstrip(' .')} {stripped}" if cut else text
            before = readable[i]
        _last_readable[:] = [study, readable]
    return _last_readable[1]


def _report_of(study: Any) -> tuple[str, ...]:
    """The report's sentences that can state findings, as read (`_readable`): not the indication's (a sentence
    of the indication field), nor a technique or comparison sentence."""
    indication = (study.indication or "").strip().lower()
    skip = rules().skip
    readable = _readable(study)
    out = []
    for i, text in sorted(study.sentences.items()):
        low = text.strip().lower()
        if not low.strip(" .") or (indication and low.strip(" .") in indication):
            continue
        if any(p.search(low) for p in skip):
            # "No comparison chest x-XXXX Clear lungs.": the period went with the de-identified word, so the
            # splitter kept the next sentence on the comparison's (LLM replay round 17: 4 items read uncovered)
            restart = _deid_restart().search(text)
            if restart and not any(p.search(text[restart.end() :].lower()) for p in skip):
                out.append(text[restart.end() :])
            continue
        out.append(readable[i])
    return tuple(out)


@lru_cache(maxsize=1)
def _deid_restart() -> re.Pattern[str]:
    """A de-identified word followed by a capitalised word: a sentence boundary whose period went with the word."""
    return re.compile(rf"(?:{rules().deid.pattern})\s+(?=[A-Z][a-z]+\b)")


def clear_caches() -> None:
    """Forget every sentence read and every verdict kept (benchmarks; the rules file is read once per process)."""
    forget_readings()
    for cached in (read_sentence, _statements_in, _inner_kinds, _inner_location, _doubt_reading):
        cached.cache_clear()
    _scope.clear_caches()
    _wording.clear_caches()
    _GRAMMAR.clear()
    _CLAIMS.clear()
    _CLAIM_VALUES.clear()


def forget_readings() -> None:
    """Forget the readings of whole reports and evidence (the validation stage, after each chunk of studies: almost
    every hit is within a study). The readings of single sentences stay, as do an item's claims and a wording's
    grammar verdict: keyed by text, bounded, and shared by many studies (a rebuild of one template's items, 10k
    synthetic studies, one process: 246 against 211 us an item when each chunk read its sentences afresh)."""
    for cached in (_reading, _reading_with, _declared_in, _doubt, _doubted_or_resolved):
        cached.cache_clear()
    _last_study[:] = [None, ()]
    _last_readable[:] = [None, {}]
    _last_reading[:] = [None, None]
    _last_negatives[:] = [None, {}]


def _mentions(sentences: Iterable[str]) -> list[tuple[str, Mention]]:
    return [(s, m) for s in sentences for m in read_sentence(s)]


def reading(finding: str, sentences: Iterable[str]) -> tuple[str, list[tuple[str, Mention]]]:
    """How the sentences read the finding (or a finding below it): present | hedged | differential |
    borderline | absent | narrowed | not_mentioned, with the mentions read."""
    return _reading(finding, tuple(sentences))


def speaks_of(finding: str, sentences: tuple[str, ...]) -> bool:
    """Whether the sentences say anything of the finding to this reader: a mention of it (or of one below it), a
    normal statement that covers it ("osseous structures intact": no fracture), or the tip of a device they do not
    name, which a device may be."""
    return (
        _reading(finding, sentences)[0] != "not_mentioned"
        or _finding_covered(finding, _normal_statements(sentences))
        or _unnamed_device_of(finding, sentences)
    )


@lru_cache(maxsize=65536)
def _reading(finding: str, sentences: tuple[str, ...]) -> tuple[str, list[tuple[str, Mention]]]:
    members, above = _readings_of(finding), ancestors("findings", finding)
    shapes = [shape for member in members if (shape := _shape_words().get(member)) is not None]
    found = [
        (s, m)
        for s in sentences
        for m in read_sentence(s)
        if m.finding in members
        or (m.finding in above and _placed_as(m.finding, m.regions) in members)
        or any(m.finding in named and words.search(m.text.lower()) is not None for named, words in shapes)
    ]
    statuses = {m.status for _, m in found}
    if "affirmed" in statuses:
        return "present", found
    for kind in CERTAINTIES:
        if kind in statuses:
            return kind, found
    if "negated" in statuses:
        return "absent", found
    if "narrowed" in statuses:
        return "narrowed", found
    if "historical" in statuses:
        return "historical", found
    return "not_mentioned", found


@lru_cache(maxsize=4096)
def _placed_as(finding: str, regions: frozenset[str]) -> str | None:
    """The one finding right below this one whose sites (finding_sites.yaml) hold every region it is placed in: a
    fracture "involving the left posterolateral 7th rib" is a rib fracture (LLM replay round 5); a calcification in
    the mediastinum is none (the aorta's and the nodes' are both there)."""
    places, own = _most_specific(regions - {"chest"}), _sites(finding)
    fits = [
        child
        for child, item in vocabulary().findings.items()
        if item.get("parent") == finding
        and (sites := _sites(child))
        and sites != own  # an elevated hemidiaphragm is no eventration: both are the diaphragm's
        and places
        and all(any(place in subtree(root) for root in sites) for place in places)
    ]
    return fits[0] if len(fits) == 1 else None


@lru_cache(maxsize=None)
def _readings_of(finding: str) -> frozenset[str]:
    """The findings whose mentions are mentions of this one: it and those below it, and those read also as one of
    them (`read_also_as`)."""
    members = family(finding)
    also = rules().data["read_also_as"]
    return members | {f for f, others in also.items() if not members.isdisjoint(others)}


@lru_cache(maxsize=1)
def _shape_words() -> dict[str, tuple[frozenset[str], re.Pattern[str]]]:
    """Finding -> (the findings, the words in their mention's name) that make a mention of one of them a mention of
    this one too (`read_also_as_shaped`: a "rounded nodular opacity ... measuring 7 mm" is a nodule)."""
    return {
        f: (frozenset(entry["findings"]), _any_word(entry["words"]))
        for f, entry in rules().data["read_also_as_shaped"].items()
    }


def _quote(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# -- 1. second reading -------------------------------------------------------------------------------
def _agrees(kind: str, read: str) -> bool:
    """Whether a reading agrees with a claim (the common case, decided without building messages)."""
    if kind == "present":
        return read == "present"
    if kind == "possible":
        return read in ("present", *CERTAINTIES)
    if kind == "absent":
        return read in ("absent", "narrowed", "not_mentioned", "historical")
    if kind == "uncertain":
        return read not in ("present", "absent", "historical")
    return read not in CERTAINTIES


_CERTAINTY_REASON = {
    "hedged": "second_reading_hedged",
    "differential": "second_reading_differential",
    "borderline": "second_reading_borderline",
}


@validator("second_reading", version=VERSION, kind="content", reads_wording=False)
def check_second_reading(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: presence, certainty and negation misread (`negation`, `hedge_as_definite`, part of
    `vocabulary_mapping` and `evidence`). Each finding the answer claims present, absent, uncertain or
    certain is re-read from the item's evidence sentences (the whole report for multiple-choice
    distractors and items without evidence) by ConText with its own rules: a negated, hedged,
    differential or borderline mention of a finding claimed present, a stated finding claimed absent,
    or a claimed finding the evidence never names, fails."""
    if context.study is None:
        return OK
    evidence = _evidence(item, context)
    for claim in claims_of(item, context):
        if claim.kind == "some_present":
            report = _report(context)
            verdict = _some_present_verdict(claim, evidence or report, report)
            if verdict.ok:
                verdict = _quoted_borderline(str(item.get("answer") or ""), evidence)
            if verdict.ok:
                verdict = _cited_negated(evidence)
        elif claim.kind in ("present", "possible", "absent", "uncertain", "certain"):
            sentences = _report(context) if claim.source == "other_options" or not evidence else evidence
            verdict = _claim_reading_verdict(claim, sentences)
        elif claim.kind == "abnormal":
            verdict = _declared_normal_study(claim, _report(context))
        else:
            continue
        if verdict.ok and claim.kind in ("present", "some_present") and claim.source != "other_options":
            verdict = _doubted_elsewhere(claim, evidence, _report(context))
        if not verdict.ok:
            return verdict
    return OK


def _some_present_verdict(claim: Claim, sentences: tuple[str, ...], report: tuple[str, ...]) -> Verdict:
    """An abnormality claimed present: one of its findings read present, or a finding above one of them
    ("calcified left lower lobe granuloma" read as a granuloma still is an abnormality) or the regional finding one
    of them is on one side (`both_lungs_findings`: "right basilar hypoventilation"), in the evidence or
    else anywhere in the report; one only hedged, differential or borderline everywhere is no abnormality
    a reader states ("Possible subtle increased opacity in right apex versus technique")."""
    if not claim.findings:  # untagged: whatever the evidence names
        statuses = {m.status for _, m in _mentions(sentences)}
        if "affirmed" in statuses or not statuses & set(CERTAINTIES):
            return OK
        return fail(
            "second_reading_only_hedged",
            f"the answer has an abnormality present; the evidence "
            f"{_quote(' '.join(sentences))} names none but hedged ones",
        )
    reads = {f: reading(f, sentences)[0] for f in claim.findings}
    if not sentences or "present" in reads.values():
        return OK
    regional = rules().data["both_lungs_findings"]
    above = {
        a: reading(a, sentences)[0]
        for f in claim.findings
        for a in (*ancestors("findings", f), *([regional[f]] if f in regional else []))
    }
    if "present" in above.values():
        return OK
    named = ", ".join(f"{display_name(f)} ({r})" for f, r in reads.items())
    if any(r in CERTAINTIES for r in (*reads.values(), *above.values())):
        if any(reading(f, report)[0] == "present" for f in (*claim.findings, *above)):
            return OK
        return fail(
            "second_reading_only_hedged",
            f"the answer has an abnormality present; the evidence "
            f"{_quote(' '.join(sentences))} reads {named}, and the report states none",
        )
    reason = (
        "second_reading_negated"
        if "absent" in reads.values() or "narrowed" in reads.values()
        else "second_reading_not_found"
    )
    return fail(
        reason, f"the answer has an abnormality present; the evidence {_quote(' '.join(sentences))} reads {named}"
    )


def _declared_normal_study(claim: Claim, report: tuple[str, ...]) -> Verdict:
    """Error class: `hedge_as_definite` of a report at odds with itself. The study claimed abnormal while a
    sentence of the report declares all of it normal ("There is ectasia of the thoracic aorta." and "Normal chest
    film."): which the radiologist meant is not for the item to settle."""
    for sentence in report:
        cov = _normal_statements((sentence,))
        if any(_covered_region(region, cov) for region in claim.regions) and not cov.partial:
            return fail(
                "abnormal_claim_declared_normal",
                f"the answer has the study abnormal; the report also calls all of it normal ({_quote(sentence)})",
            )
    return OK


def _doubted_elsewhere(claim: Claim, evidence: tuple[str, ...], report: tuple[str, ...]) -> Verdict:
    """Error class: `hedge_as_definite` where the doubt is in a sentence the item does not cite. A finding its
    evidence states plainly is not a definite finding when another sentence of the report says it may be something
    else that casts the shadow ("This may be artifactual secondary to overlapping vascular structures.", "could be
    projectional or solid mass"), or offers other findings right after it as also possible ("Aspiration or edema
    are also possible"). (A finding merely read hedged or differential elsewhere is not enough: in reviewed rounds
    AB-AP that demoted 73 correct items for one faulty, ConText's "or" reaching an interpretation's subject.)"""
    for finding in claim.findings:
        found = _doubted_or_resolved(finding, evidence, report)
        if found is not None:
            reason, sentence, said = found
            return fail(
                reason,
                f"the answer has {display_name(finding)} present as the evidence {_quote(' '.join(evidence))} "
                f"{said}: {_quote(sentence)}",
            )
    return OK


@lru_cache(maxsize=65536)
def _doubted_or_resolved(
    finding: str, evidence: tuple[str, ...], report: tuple[str, ...]
) -> tuple[str, str, str] | None:
    """(reason, sentence, what the two say) where the report doubts, or says resolved, a finding the evidence states
    (`_doubted_elsewhere`); remembered: a study's items ask it of the same findings and evidence."""
    # the mentions that read as the finding (a "nodular density" is a nodule too: `read_also_as_shaped`)
    stated = [m for _, m in reading(finding, evidence)[1] if m.status == "affirmed"]
    # one instance the report does not doubt is enough ("ring-shaped opacity ... Uncertain if this represent
    # something within the lung or external to the patient. There is also a 5 mm nodular opacity ...")
    doubts = [_doubt(mention, report) for mention in stated]
    doubt = doubts[0] if doubts and None not in doubts else None
    for reason, sentence, said in (
        ("second_reading_doubted_elsewhere", doubt, "states it; the report doubts it"),
        (
            "second_reading_resolved_elsewhere",
            None if doubt else _resolved_elsewhere(finding, evidence, report),
            "calls it resolving; the report says it has resolved",
        ),
    ):
        if sentence is not None:
            return reason, sentence, said
    return None


def _resolved_elsewhere(finding: str, evidence: tuple[str, ...], report: tuple[str, ...]) -> str | None:
    """A report sentence that says a finding has resolved (`resolution.resolved`) which every evidence sentence
    stating this one calls resolving (`resolution.resolving`), it or a finding named with it: "Resolving pulmonary
    interstitial edema and pulmonary venous hypertension." after "infiltrates and pulmonary venous engorgement
    have resolved" is no edema seen (rounds AE, AO)."""
    words = _word_patterns("resolution")
    stating = [
        s for s in evidence if any(m.finding in family(finding) and m.status == "affirmed" for m in read_sentence(s))
    ]
    if not stating or not all(words["resolving"].search(s.lower()) for s in stating):
        return None
    named = family(finding).union(*(family(m.finding) for s in stating for m in read_sentence(s)))
    for other in report:
        if other not in stating and words["resolved"].search(other.lower()):
            if any(m.status == "negated" and m.finding in named for m in read_sentence(other)):
                return other
    return None


@lru_cache(maxsize=None)
def _word_patterns(section: str) -> dict[str, re.Pattern[str]]:
    """Each word list of a section of the rules file (`doubt_elsewhere`, `resolution`, `open_shadows`) as one
    whole-word pattern, compiled once."""
    return {key: _any_word(words) for key, words in rules().data[section].items()}


@lru_cache(maxsize=65536)
def _doubt(stated: Mention, report: tuple[str, ...]) -> str | None:
    """The first report sentence that doubts the stated mention (`_doubted_elsewhere`), if any (remembered: the
    items of a study ask it of the same mentions)."""
    follows = False  # the sentence before states it
    for sentence in report:
        mentions, mimic, anaphor, alternatives, sides = _doubt_reading(sentence)
        related = [m for m in mentions if _same_thing(m, stated)]
        # the mimic may explain another finding of the sentence ("The cardiac silhouette is prominent but probably
        # artifactually large due to diminished lung volumes" doubts no low lung volumes)
        aimed = bool(related) and (len(related) == len(mentions) or any(m.status != "affirmed" for m in related))
        if mimic and (aimed or (follows and not mentions and anaphor)):
            return sentence
        # other causes offered doubt an interpretation ("most consistent with pneumonia. Aspiration is also a
        # consideration."), not the shadow it interprets (synthetic round J: an airspace opacity, 2 correct items)
        if follows and alternatives and mentions and not related and stated.finding not in _shadows():
            if all(m.status in CERTAINTIES for m in mentions):
                return sentence
        follows = any(m.status == "affirmed" for m in related) and _sides_agree(sides, stated)
    return None


@lru_cache(maxsize=SENTENCES_KEPT)
def _doubt_reading(sentence: str) -> tuple[tuple[Mention, ...], bool, bool, bool, frozenset[str]]:
    """What `_doubt` reads in a sentence: the findings it names (not negated; apart from a mimic that is itself in
    the vocabulary: "may be artifact"), whether it doubts with a mimic, points back, offers alternatives, and the
    sides its words name."""
    low = sentence.lower()
    words = _word_patterns("doubt_elsewhere")
    mentions = tuple(
        m for m in read_sentence(sentence) if m.status not in ("negated", "narrowed") and _abnormal_kind(m.finding)
    )
    mimic = bool(
        words["existence_hedges"].search(low) and words["mimics"].search(low) and not words["not_doubts"].search(low)
    )
    sides = frozenset(_side_words()[word] for word in _side_pattern().findall(low))
    anaphor = bool(words["anaphors"].search(low) or words["elliptic_starts"].match(low.lstrip()))
    return mentions, mimic, anaphor, bool(words["alternatives"].search(low)), sides


@lru_cache(maxsize=1)
def _side_pattern() -> re.Pattern[str]:
    """Every side word as a whole word, longest first."""
    words = sorted(_side_words(), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b")


def _sides_agree(named: frozenset[str], stated: Mention) -> bool:
    """No side word of the sentence (``named``) contradicts the stated mention's side: ConText may leave a mention's
    place unattached ("ring-shaped opacity ... projects over right midlung" is not the left upper lung's opacity)."""
    named, sides = named - {"bilateral"}, stated.sides - {"bilateral"}
    return not (named and sides) or bool(named & sides) or "bilateral" in stated.sides


def _same_thing(mention: Mention, stated: Mention) -> bool:
    """The mention may name what the stated mention names: a finding of the same line of the findings tree, on no
    other side and in a region that is, holds or is inside the stated one's (where both give one)."""
    a, b = mention.finding, stated.finding
    if a != b and a not in ancestors("findings", b) and b not in ancestors("findings", a):
        return False
    if not (_sides_agree(mention.sides, stated) or "bilateral" in mention.sides):
        return False
    if mention.regions and stated.regions:
        return any(r in subtree(q) or q in subtree(r) for r in mention.regions for q in stated.regions)
    return True


def _quoted_borderline(answer: str, evidence: tuple[str, ...]) -> Verdict:
    """An answer that gives reasons for an abnormality by quoting report sentences must not quote one that
    states only a borderline finding, which is no abnormality: "No. The heart size is at the upper limits of
    normal. ..." gives a normal heart as a reason (round AH). (A hedged or differential finding is still
    something seen.)"""
    low = answer.lower()
    for sentence in evidence:
        if sentence.strip(" .").lower() not in low:
            continue
        statuses = {m.status for m in read_sentence(sentence) if _abnormal_kind(m.finding)}
        if statuses == {"borderline"}:
            return fail(
                "second_reading_quoted_borderline",
                f"the answer gives {_quote(sentence)} as an abnormality; it reads only a borderline finding",
            )
    return OK


#: A sentence that is one negation: it opens with a negation cue and has no second clause.
_ONE_NEGATION = re.compile(r"(?:no|not|without|negative for|there (?:is|are) no)\b[^,;]*$")


def _cited_negated(evidence: tuple[str, ...]) -> Verdict:
    """The evidence for an abnormality must not cite a sentence that is one negation of every finding it names: "No
    cavitary lesion to suggest. active tuberculosis." cited for an abnormal study (round AB; the cut sentence is read
    whole). A sentence of several clauses is not judged: ConText's negation reaches across its commas ("No focal
    consolidation, no definite pleural effusion seen, left hilar calcifications ...": a flagged round read blind)."""
    for sentence in evidence:
        if not _ONE_NEGATION.match(sentence.strip().lower()):
            continue
        statuses = {m.status for m in read_sentence(sentence) if _abnormal_kind(m.finding)}
        if statuses and statuses <= {"negated", "narrowed"}:
            return fail(
                "second_reading_cited_negated",
                f"the evidence cites {_quote(sentence)} for an abnormality; it negates every finding it names",
            )
    return OK


def _deidentified_after(doc: Any, lowers: list[str], end: int, deid: re.Pattern[str]) -> bool:
    """A de-identification token right after a finding's words ending on a modifier ("calcified hilar XXXX", "lymph
    XXXX": `deid_head_needed`) that is not a verb (`_deid_verb`): the head noun that says what the finding is may be
    the word removed (one before it, "a XXXX opacity", removes an adjective)."""
    return (
        end < len(lowers)
        and deid.fullmatch(doc[end].text) is not None
        and _head_needed().search(lowers[end - 1]) is not None
        and not _deid_verb(lowers, end)
    )


@lru_cache(maxsize=1)
def _head_needed() -> re.Pattern[str]:
    return rules_pattern([rules().data["deid_head_needed"]], "deid_head_needed")


def _deid_verb(lowers: list[str], at: int) -> bool:
    """Whether the de-identified token at ``at`` is a verb, by the word after it (`deid_verb_before`)."""
    return at + 1 < len(lowers) and lowers[at + 1] in rules().data["deid_verb_before"]


def _abnormal_kind(finding: str) -> bool:
    return vocabulary().findings[finding]["category"] not in rules().data["not_abnormal_categories"]


@lru_cache(maxsize=None)
def marks_operated_study(finding: str) -> bool:
    """Whether the finding is surgical material that makes the whole study abnormal (`study_surgical_material`)."""
    return any(finding in family(top) for top in rules().data["study_surgical_material"])


def _claim_reading_verdict(claim: Claim, sentences: tuple[str, ...]) -> Verdict:
    """Each finding of a present, possible, absent, uncertain or certain claim as the sentences read it."""
    if not sentences:
        return OK
    for finding in claim.findings:
        read, found = reading(finding, sentences)
        if read == "present" and claim.kind in ("certain", "uncertain") and _favoured_only(found):
            read = "hedged"  # a favoured reading is the report's best guess: no certainty, and still a finding
        deidentified = (
            claim.kind in ("present", "possible")
            and bool(found)
            and all("deidentified" in m.kinds for _, m in found if m.status != "negated")
        )
        if _agrees(claim.kind, read) and not deidentified:
            continue
        if read == "not_mentioned" and claim.kind in ("present", "possible") and _unnamed_device_of(finding, sentences):
            continue  # "right chest XXXX tip in the high SVC": a device whose name was removed (LLM replay round 9)
        name = display_name(finding)
        quoted = _quote(" ".join(sorted({s for s, _ in found})) or " ".join(sentences))
        if deidentified and read in ("present", *CERTAINTIES):
            return fail(
                "second_reading_deidentified",
                f"the answer has {name} present; every mention of it in "
                f"the evidence {quoted} is next to a de-identified word",
            )
        verdict = _disagreement(claim.kind, read, name, quoted)
        if not verdict.ok:
            return verdict
    return OK


def _favoured_only(found: list[tuple[str, Mention]]) -> bool:
    """Every stated mention follows, at most two words on, a phrase that gives it as the favoured reading of what
    is seen (`favoured`: "opacities in the peripheral right lung most compatible with scarring", round AH), or comes
    right before a conditional on the clinical picture (`favoured_after`): readers take it as present, but not as
    certain."""
    stated = [(s, m) for s, m in found if m.status == "affirmed"]
    return bool(stated) and all(
        (at := s.lower().find(m.text.lower())) >= 0
        and (
            _favoured_pattern(m.finding in rules().data["diagnoses"]).search(s.lower()[:at].rstrip())
            or _favoured_after().match(s.lower()[at + len(m.text) :].lstrip())
        )
        for s, m in stated
    )


@lru_cache(maxsize=1)
def _favoured_after() -> re.Pattern[str]:
    """A conditional on the clinical picture right after the mention (`favoured_after`)."""
    return _any_word(rules().data["favoured_after"])


@lru_cache(maxsize=2)
def _favoured_pattern(diagnosis: bool) -> re.Pattern[str]:
    """The favoured-reading phrases (and, before a clinical diagnosis, `diagnosis_links`), up to two words before
    the mention ("most consistent with atypical infectious process": round AX)."""
    data = rules().data
    return _any_word([*data["favoured"], *(data["diagnosis_links"] if diagnosis else ())], tail=r"(?: [a-z-]+){0,2}$")


def _disagreement(kind: str, read: str, name: str, quoted: str) -> Verdict:
    """The failure of a claim of this kind that the evidence reads as `read` (OK where they still agree)."""
    if read == "historical" and kind in ("present", "possible", "uncertain"):
        return fail(
            "second_reading_historical",
            f"the answer has {name} {kind}; the evidence {quoted} names it only as a past disease of the patient or "
            "as not shown on this film",
        )
    if kind == "possible":
        if read in ("absent", "narrowed", "not_mentioned"):
            reason = "second_reading_not_found" if read == "not_mentioned" else "second_reading_negated"
            return fail(reason, f"the answer has {name} possible; the evidence {quoted} reads it as {read}")
    elif kind == "present":
        if read in ("absent", "narrowed"):
            return fail("second_reading_negated", f"the answer has {name} present; the evidence {quoted} negates it")
        if read in _CERTAINTY_REASON:
            return fail(
                _CERTAINTY_REASON[read],
                f"the answer has {name} present; the evidence {quoted} reads it as {read}, not definite",
            )
        if read == "not_mentioned":
            return fail(
                "second_reading_not_found", f"the answer has {name} present; the evidence {quoted} does not name it"
            )
    elif kind == "absent":
        if read == "present":
            return fail("second_reading_affirmed", f"the answer has {name} absent; the evidence {quoted} states it")
        if read in _CERTAINTY_REASON:
            return fail(
                _CERTAINTY_REASON[read], f"the answer has {name} absent; the evidence {quoted} reads it as {read}"
            )
    elif kind == "uncertain":
        if read in ("present", "absent"):
            return fail(
                "second_reading_certain", f"the answer has {name} uncertain; the evidence {quoted} reads it as {read}"
            )
    elif read in _CERTAINTY_REASON:
        return fail(
            _CERTAINTY_REASON[read],
            f"the answer has {name} stated or negated; the evidence {quoted} reads it as {read}",
        )
    return OK


# -- 2. location -------------------------------------------------------------------------------------------
_ANSWER_SIDES = tuple(
    (re.compile(rf"(?<![a-z]){words}(?![a-z])"), side)
    for words, side in (("both sides", "bilateral"), ("bilateral", "bilateral"), ("left", "left"), ("right", "right"))
)


def _answer_places(
    item: dict[str, Any], finding: str, args: dict[str, str], per_part: bool = False
) -> tuple[list[str], set[str]]:
    """(regions, sides) the answer gives the finding: the drawn region, or region names and side words
    in the answer text (the finding's own name removed first); ``per_part``: only in the part of a list
    answer that names the finding ("cardiomegaly in the heart, effusion on both sides and ...")."""
    if args.get("region") in vocabulary().regions and not per_part:
        return [args["region"]], set()
    if per_part:  # the places the answer's own words attach to the finding (read like the report); a
        regions, sides = set(), set()  # place it cannot be only says where it is seen ("apical pneumothorax")
        for m in _part_mentions(str(item.get("answer") or "")):
            if m.finding == finding:
                regions |= {r for r in _most_specific(m.regions) - {"chest"} if _allowed(finding, r)}
                sides |= m.sides
        return sorted(regions), sides
    text = " " + str(item.get("answer") or "").lower() + " "
    name = display_name(finding).lower()
    text = text.replace(name, " ")
    regions = []
    for words, pattern, region in _region_names():
        if words in text and pattern.search(text):  # the name's words first: far cheaper than the pattern
            regions.append(region)
            text = pattern.sub(" ", text)
    sides = {side for pattern, side in _ANSWER_SIDES if pattern.search(text)}
    if "bilateral" in sides:
        sides = {"bilateral"}
    return regions, sides


def _attached(finding: str, sentences: Iterable[str]) -> tuple[set[str], set[str]]:
    """The regions and sides the sentences attach to the finding's (not negated) mentions, with the regions the
    name of the finding read names ("thoracic spondylosis", read as degenerative changes of the thoracic spine); a
    mention without a side has its sentence's (`_sentence_side`)."""
    regions, sides = set(), set()
    for sentence, m in reading(finding, sentences)[1]:
        if m.status not in ("negated", "narrowed"):
            placed = m if m.regions or m.sides else _shadow_placed(sentence, m)
            regions |= _sided(placed) | _own_regions(m.finding)
            sides |= placed.sides or _sentence_side(sentence)
    return regions, sides


def _sentence_side(sentence: str) -> frozenset[str]:
    """The one side the stated findings of a sentence are given, if they all are given the same: a finding named
    without one is on it ("Bilateral moderate pleural effusions with associated compressive atelectasis", "bilateral
    pulmonary nodules, most consistent with metastatic disease": synthetic round C, 4 bilateral answers read right)."""
    given = {m.sides for m in read_sentence(sentence) if m.status not in ("negated", "narrowed") and m.sides}
    return next(iter(given)) if len(given) == 1 else frozenset()


@lru_cache(maxsize=None)
def _own_regions(finding: str) -> frozenset[str]:
    """The regions a finding's own name names ("costophrenic angle blunting": the costophrenic angles), less the
    chest, which every finding is in."""
    return _inner_location(display_name(finding))[0] - {"chest"}


def _shadow_placed(sentence: str, mention: Mention) -> Mention:
    """An unplaced finding named, after a placed shadow of its sentence, as what a shadow may be
    (`open_shadows`) is where the shadow is: "Low lung volumes, bibasilar opacities XXXX due ... in part to
    atelectasis" places the atelectasis at the bases ("streaky opacities in the left perihilar and lingular
    regions, XXXX focal atelectasis": LLM replay round)."""
    data = rules().data["open_shadows"]
    if not any(mention.finding in family(f) for f in data["may_be"]):
        return mention
    shadow = None
    for m in read_sentence(sentence):
        if m == mention:
            break
        if m.finding in _shadows() and m.status not in ("negated", "narrowed") and (m.regions or m.sides):
            shadow = m
    return mention if shadow is None else replace(mention, regions=shadow.regions, sides=shadow.sides)


def _sided(mention: Mention) -> frozenset[str]:
    """The mention's regions, a both-sided one as its part on the mention's one side: a side said of one place
    holds for the places coordinated with it ("Left midlung, and basilar opacity": the left base)."""
    if len(mention.sides) != 1:
        return mention.regions
    side = next(iter(mention.sides))
    return frozenset(sided_region(r, side) for r in mention.regions)


def _whole_paired(finding: str) -> bool:
    """A state of a whole paired organ (low lung volumes): it is on both sides."""
    roots = _sites(finding) or frozenset()
    return (
        finding in finding_sites().unlocated
        and bool(roots)
        and all(vocabulary().regions[r]["laterality"] == "bilateral" for r in roots)
    )


def _implied(finding: str, *regions: str) -> bool:
    """The regions hold every place the finding can be (cardiomegaly: heart): naming them adds nothing, and what
    the report puts the finding down to does not move it out of them."""
    roots = _sites(finding)
    return bool(roots) and all(any(root in subtree(region) for region in regions) for root in roots)


def _allowed(finding: str, region: str) -> bool:
    sites = finding_sites()
    roots = sites.regions.get(finding)
    if roots is None:
        return True
    # a state of a whole organ or a device: only the organ itself (or a region holding it); a lesion: a place in its
    # organ, or a region holding that organ (a spinal degenerative change is in the bony thorax)
    return any(
        root in subtree(region) or (finding not in sites.unlocated and region in subtree(root)) for root in roots
    )


@validator("location_support", version=VERSION, kind="content", reads_wording=False)
def check_location_support(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: wrong or unsupported location or side (`location_side_extent`, and the region half of
    `vocabulary_mapping`: a pleural effusion listed in the lung, cardiomegaly in the mediastinum). A
    region an answer gives a finding must be a region the finding can be in (finding_sites.yaml), and
    the evidence sentences that mention the finding must name it (a synonym of it or of a region inside
    it attached to the mention by ConText) or, for a side, name that side; a region that holds every
    place the finding can be needs no words."""
    if context.study is None:
        return OK
    claims = claims_of(item, context)
    report = _report(context)
    evidence = _evidence(item, context) or report
    verdict = _side_declared_normal(claims, str(item.get("answer") or ""), evidence, report)
    asked = {_side_of_region(r) for c in claims if c.kind == "in_region" for r in c.regions}
    for claim in claims:
        if not verdict.ok:
            break
        if claim.kind == "in_region":
            verdict = _in_region(claim, evidence)
            if verdict.ok:
                verdict = _unplaced_in_normal_region(claim, evidence, report)
            if verdict.ok and len(asked) == 1 and None not in asked:
                verdict = _evidence_other_side(next(iter(asked)), evidence)
        elif claim.kind == "located":
            for finding in claim.findings:
                verdict = _located_verdict(item, claim, finding, evidence, report or evidence)
                if not verdict.ok:
                    break
    return verdict


def _located_verdict(
    item: dict[str, Any], claim: Claim, finding: str, evidence: tuple[str, ...], report: tuple[str, ...]
) -> Verdict:
    """The regions and sides the answer gives one finding: places it can be, named there by the evidence, and
    every side the report states it on."""
    regions, sides = _answer_places(item, finding, _arguments(item), per_part=claim.source == "answer_named")
    name = display_name(finding)
    for region in regions:
        if not _allowed(finding, region):
            return fail(
                "region_not_a_site",
                f"{name} cannot be in the {vocabulary().regions[region]['name']} (finding_sites.yaml)",
            )
    if not regions and not sides:
        return OK
    named, named_sides = _attached(finding, evidence)
    named_sides |= {side for r in named for side in [_side_of_region(r)] if side}
    quoted = _quote(" ".join(evidence))
    by_side = finding_sites().by_side
    for region in regions:
        if _implied(finding, region) or (named | _own_regions(finding)) & subtree(region):
            continue
        side = _side_of_region(region)
        if side and side in named_sides and by_side.get(finding, {}).get(side) == region:
            continue
        return fail(
            "region_not_in_evidence",
            f"the answer places {name} in the "
            f"{vocabulary().regions[region]['name']}; the evidence {quoted} "
            f"does not name it there",
        )
    for side in sorted(sides):  # the first failing side names the verdict: the same one in every process
        ok = side in named_sides or (
            side == "bilateral" and ({"left", "right"} <= named_sides or _whole_paired(finding))
        )
        if not ok:
            return fail(
                "side_not_in_evidence",
                f"the answer gives {name} the side {side}; the evidence "
                f"{quoted} gives {sorted(named_sides) or 'no side'}",
            )
    # only an answer to "where is it?" must give every place (a region's findings need not be in it alone)
    verdict = _region_incomplete(finding, regions, evidence) if item.get("question_type") == "where" else OK
    # a description gives each instance its own place: a midline one is no other side of the one it names
    return _side_incomplete(finding, sides, report, claim.source != "answer_named") if verdict.ok else verdict


def _region_incomplete(finding: str, regions: list[str], evidence: tuple[str, ...]) -> Verdict:
    """An answer that places a finding in one of the regions a mention of it names and leaves out another it
    can be in: "Where is the aortic tortuosity?" "descending aorta" of "Slightly unfolded ascending and
    descending aorta"; "perihilar regions" of "opacities greatest in the central lungs and bases" (rounds AB,
    AC). Per mention: two mentions may name one place in two ways ("right middle lobe", "right mid lung")."""
    given = {r for region in regions for r in subtree(region)}
    structures = set(rules().data["location"]["structures"])
    for _, m in reading(finding, evidence)[1]:
        places = _most_specific(_sided(m))
        if m.status in ("negated", "narrowed") or not places & given:
            continue
        left_out = [
            r
            for r in sorted(places - given)
            if r != "chest"
            and r not in structures
            and _allowed(finding, r)
            and not any(a in subtree(r) for a in regions)
        ]
        if not left_out:
            continue
        region = left_out[0]
        return fail(
            "region_incomplete",
            f"the answer places {display_name(finding)} in the "
            f"{', '.join(vocabulary().regions[r]['name'].lower() for r in regions)}; the evidence "
            f"{_quote(' '.join(evidence))} names it in the {vocabulary().regions[region]['name'].lower()} too",
        )
    return OK


def _side_incomplete(finding: str, sides: set[str], report: tuple[str, ...], midline: bool) -> Verdict:
    """An answer that gives a finding one side, where the report states it (or a lesion below it that is not
    chronic) on the other side too: "On which side is the pleural effusion?" "the right side" of "moderate right,
    small left effusions" (round AO); or, for an answer that is the finding's side (``midline``), also in a midline
    structure."""
    if len(sides) != 1 or "bilateral" in sides:
        return OK
    side = next(iter(sides))
    chronic = vocabulary().findings[finding].get("chronic")
    for text, m in reading(finding, report)[1]:
        if m.status != "affirmed" or (vocabulary().findings[m.finding].get("chronic") and not chronic):
            continue
        if m.sides - {side} or (m.sides and _elliptic_side(text) - {side}):
            return fail(
                "side_incomplete",
                f"the answer gives {display_name(finding)} the {side} side only; the report states it on "
                f"{'both sides' if 'bilateral' in m.sides else 'the other side'}: {_quote(text)}",
            )
        if midline and not m.sides and _midline(m):
            return fail(
                "side_incomplete",
                f"the answer gives {display_name(finding)} the {side} side only; the report also states it in the "
                f"midline, which has no side: {_quote(text)}",
            )
    return OK


def _midline(m: Mention) -> bool:
    """Whether the report places a mention only in midline structures (laterality `none`: "degenerative changes in
    the spine" beside "degenerative changes of the right shoulder" make "which side?" ill-posed; a fresh rules
    round)."""
    places = _most_specific(m.regions) - {"chest"}
    return bool(places) and all(vocabulary().regions[r]["laterality"] == "none" for r in places)


@lru_cache(maxsize=4096)
def _elliptic_side(sentence: str) -> frozenset[str]:
    """The side a clause after a sentence's only finding gives it without naming it again ("Moderate
    right-sided pleural effusion, small left sided.": left)."""
    if len(read_sentence(sentence)) != 1:
        return frozenset()
    pattern = re.compile(rules().data["location"]["elliptic_side"])
    return frozenset(m.group("side") for m in pattern.finditer(sentence.lower()))


def _side_declared_normal(
    claims: tuple[Claim, ...], answer: str, evidence: tuple[str, ...], report: tuple[str, ...]
) -> Verdict:
    """A finding the answer places on one side, as its evidence does, where another sentence of the report
    declares that side's organ normal without exception ("Yes. Left lower lobe airspace disease consistent with
    pneumonia." beside "Left lung clear." and a right lower lobe consolidation: round AF), or on the side the
    question asks of ("List all findings in the left lung.": LLM replay round 19). An answer that gives no side
    is not at fault for the report's."""
    declared = [(region, text) for region, text in _declared_normal(evidence, report) if _side_of_region(region)]
    if not declared:
        return OK
    asked = {_side_of_region(r) for c in claims if c.kind == "in_region" for r in c.regions} - {None}
    for claim in claims:
        if claim.kind not in ("present", "located"):
            continue
        for finding in claim.findings:
            primary = _primary_site(finding)
            sides = _attached(finding, evidence)[1]
            if primary is None or not _paired(finding) or len(sides) != 1 or "bilateral" in sides:
                continue
            side = next(iter(sides))
            if side not in asked and not any(
                m.finding in family(finding) and side in m.sides for m in _answer_mentions(answer)
            ):
                continue
            for region, text in declared:
                if _side_of_region(region) == side and region in subtree(primary):
                    return fail(
                        "side_declared_normal",
                        f"the evidence places {display_name(finding)} on the {side}; the report declares the "
                        f"{vocabulary().regions[region]['name'].lower()} normal: {_quote(text)}",
                    )
    return OK


def _declared_normal(evidence: tuple[str, ...], report: tuple[str, ...]) -> list[tuple[str, str]]:
    """(region, sentence) of each region a sentence outside the evidence declares normal without exception."""
    return [(region, text) for region, text in _declared_in(report) if text not in evidence]


@lru_cache(maxsize=256)
def _declared_in(report: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(region, sentence) of each region a sentence of the report declares normal without exception (a study's
    items share it)."""
    return tuple(
        (region, text)
        for text in report
        if not _partial_normal().search(text.lower())
        for region in _statements_in(text)[0]  # it reads the text in lower case: one reading for both callers
    )


def _evidence_other_side(side: str, evidence: tuple[str, ...]) -> Verdict:
    """Evidence for an abnormality of one side only must not cite a sentence whose findings are all on the other
    side: "Is there an abnormality in the right lung?" citing "left base streaky opacity" (rounds AG, AK, AM). A
    finding the sentence gives no side of goes with those it does ("ring-shaped opacity with central lucency ...
    projects over right midlung" cited for the left lung: round AM)."""
    for sentence in evidence:
        found = [
            m for m in read_sentence(sentence) if m.status not in ("negated", "narrowed") and _abnormal_kind(m.finding)
        ]
        sided = [m for m in found if m.sides]
        if sided and all(side not in m.sides and "bilateral" not in m.sides for m in sided):
            return fail(
                "evidence_other_side",
                f"the answer has the {side} side abnormal; the evidence {_quote(sentence)} reads its findings on "
                f"the other side",
            )
    return OK


def _unplaced_in_normal_region(claim: Claim, evidence: tuple[str, ...], report: tuple[str, ...]) -> Verdict:
    """Findings that may be in several organs (granulomatous disease: the lungs or the nodes), placed nowhere by
    their evidence, claimed in a region another sentence declares normal: "Old granulomatous disease." beside
    "The lungs are clear." makes no lung abnormality (rounds AH, AI)."""
    normal = {region for region, _ in _declared_normal(evidence, report)}
    if not any(r in subtree(n) for r in claim.regions for n in normal):
        return OK
    unplaced = []
    for finding in claim.findings:
        if not any(_allowed(finding, r) for r in claim.regions):
            continue
        sites = _sites(finding)
        if (sites is not None and len(sites) == 1) or _attached(finding, evidence)[0] - {"chest"}:
            return OK
        unplaced.append(display_name(finding))
    if not unplaced:
        return OK
    names = ", ".join(vocabulary().regions[r]["name"].lower() for r in claim.regions)
    return fail(
        "region_declared_normal",
        f"the evidence places {', '.join(unplaced)} nowhere; the report declares the {names} normal",
    )


@lru_cache(maxsize=1)
def _partial_normal() -> Guarded:
    return guarded(re.compile("|".join(rules().data["partial_normal"])))


def _in_region(claim: Claim, evidence: tuple[str, ...]) -> Verdict:
    """At least one of the findings is in one of the regions: a place it can be (finding_sites.yaml) and,
    where the evidence places it, there ("Is there an abnormality in the lungs? yes" of a splenic
    calcification or a scoliosis fails)."""
    names = ", ".join(vocabulary().regions[r]["name"].lower() for r in claim.regions)
    allowed = [f for f in claim.findings if any(_allowed(f, r) for r in claim.regions)]
    if not allowed:
        return fail(
            "region_not_a_site",
            f"none of {', '.join(display_name(f) for f in claim.findings)} can be in the {names} (finding_sites.yaml)",
        )
    apart = {r for q in claim.regions for x in rules().data["regions_apart"].get(q, ()) for r in subtree(x)}
    for finding in allowed:
        named, _ = _attached(finding, evidence)
        placed = named - {"chest"}
        if placed and placed <= apart:
            continue  # "left hilar lymphadenopathy" is no mediastinal abnormality to a reader
        # a place the finding cannot be only says where it is seen ("left apical pneumothorax": the pleura)
        specific = _most_specific({r for r in named if _allowed(finding, r)}) - {"chest"}
        if not specific or any(r in subtree(q) or q in subtree(r) for r in specific for q in claim.regions):
            return OK
    return fail(
        "region_not_in_evidence",
        f"the evidence {_quote(' '.join(evidence))} places "
        f"{', '.join(display_name(f) for f in allowed)} outside the {names}",
    )


@lru_cache(maxsize=None)
def _side_of_region(region: str) -> str | None:
    """The side a region is on by the vocabulary's `laterality` (left lower lobe, lingula: left; the right atrium is
    midline); none for paired groupings and midline regions."""
    side = vocabulary().regions[region]["laterality"]
    return side if side in ("left", "right") else None


# -- 3. negative answers -----------------------------------------------------------------------------------
@dataclass
class _Coverage:
    regions: set[str]  # declared normal (scope all)
    acute: bool  # an acute-only normal statement was made
    statements: list[str]
    findings: set[str]  # ruled out by a statement that calls no region normal
    partial: set[str] = field(default_factory=set)  # declared normal only "otherwise" ("The remainder of the lungs")
    operations: list[tuple[frozenset[str], str]] = field(default_factory=list)  # (regions operated on, sentence)
    unnamed_devices: list[str] = field(default_factory=list)  # sentences placing the tip of a device they do not name


def _normal_statements(sentences: Iterable[str]) -> _Coverage:
    cov, whole = _Coverage(set(), False, [], set()), set()
    for text in sentences:
        regions, acute, ids, findings = _statements_in(text)
        cov.regions.update(regions)
        (cov.partial if _partial_normal().search(text.lower()) else whole).update(regions)
        cov.acute = cov.acute or acute
        cov.statements.extend(ids)
        cov.findings.update(findings)
        cov.operations.extend((regions, text) for regions in _operations_in(text))
        if _unnamed_device(text):
            cov.unnamed_devices.append(text)
    cov.partial -= whole
    return cov


@lru_cache(maxsize=SENTENCES_KEPT)
def _unnamed_device(text: str) -> bool:
    """A sentence that places a device's tip without naming a device the reader knows ("Right chest XXXX tip in the
    low SVC", "the distal tip coursing inferiorly into the stomach": `device_tip`)."""
    if not _device_tip().search(text.lower()):
        return False
    return not any(vocabulary().findings[m.finding]["category"] == "device" for m in read_sentence(text))


def _unnamed_device_of(finding: str, sentences: tuple[str, ...]) -> bool:
    """A device finding the sentences may name only by the tip of a device whose name they do not give."""
    return vocabulary().findings[finding]["category"] == "device" and any(_unnamed_device(s) for s in sentences)


@lru_cache(maxsize=1)
def _device_tip() -> Guarded:
    return guarded(rules_pattern([rules().data["device_tip"]], "device_tip"))


@lru_cache(maxsize=1)
def _operation_rules() -> tuple[tuple[Guarded, tuple[str, ...]], ...]:
    return tuple((guarded(re.compile(e["pattern"])), tuple(e["regions"])) for e in rules().data["operations"])


@lru_cache(maxsize=SENTENCES_KEPT)
def _operations_in(text: str) -> tuple[frozenset[str], ...]:
    """The regions of each operation a sentence states by its marks (`operations`), narrowed to the side its words
    give; those of an operation without regions are the regions named right after it, else the chest."""
    low = text.lower()
    out: list[frozenset[str]] = []
    side = None  # the one side the whole sentence names, read only where it states an operation
    for pattern, regions in _operation_rules():
        found = pattern.search(low)
        if found and (regions or not out):
            # "postsurgical changes of the distal right clavicle": the words after it, up to the next clause
            named = _inner_location(re.split(r",|;| with | and | but ", low[found.end() :], maxsplit=1)[0])[0]
            if side is None:
                sides = _inner_location(text)[1]
                side = next(iter(sides)) if len(sides) == 1 else ""
            placed = {sided_region(r, side) for r in regions} if regions else set(_most_specific(named))
            out.append(frozenset(placed or {"chest"}))
    return tuple(out)


@lru_cache(maxsize=SENTENCES_KEPT)
def _statements_in(text: str) -> tuple[frozenset[str], bool, tuple[str, ...], frozenset[str]]:
    """(regions declared normal, an acute-only statement made, statement ids, findings ruled out) of one
    sentence."""
    low = text.lower()
    if not holds_one(low, _declaring_words()):
        return _DECLARES_NOTHING
    cov = _Coverage(set(), False, [], set())
    listed = rules().data["normal_lists"]
    match = _list_pattern().search(low)
    if match and re.search(r",| and ", match.group("subjects")):
        words = re.findall(r"[a-z]+", match.group("subjects"))
        regions = {r for w in words for r in listed["subjects"].get(w, ())}
        if regions:
            cov.regions.update(regions)
            cov.statements.append("normal_list")
    for st in rules().statements:
        if not holds_one(low, st.literals):
            continue
        for pattern in st.patterns:
            match = pattern.search(low)
            if not match:
                continue
            side = match.groupdict().get("side")
            regions = [st.sided[side]] if side and side in st.sided else list(st.regions)
            if st.scope == "all":
                cov.regions.update(regions)
            else:
                cov.acute = True
            cov.findings.update(st.findings)
            cov.statements.append(st.id)
            break
    return frozenset(cov.regions), cov.acute, tuple(cov.statements), frozenset(cov.findings)


#: What a sentence without a normal statement declares (`_statements_in`).
_DECLARES_NOTHING: tuple[frozenset[str], bool, tuple[str, ...], frozenset[str]] = (frozenset(), False, (), frozenset())


@lru_cache(maxsize=1)
def _declaring_words() -> tuple[str, ...] | None:
    """Literals one of which every normal list and every normal statement contains, read from their patterns
    (`literals_of_any`): a sentence without any of them declares nothing, and is not searched by every pattern (a
    rebuild's worker meets more distinct sentences than `_statements_in` remembers)."""
    return literals_of_any([_list_pattern(), *(p for st in rules().statements for p in st.patterns)])


@lru_cache(maxsize=1)
def _list_pattern() -> re.Pattern[str]:
    return re.compile(rules().data["normal_lists"]["pattern"])


def _covered_region(region: str, cov: _Coverage) -> bool:
    return any(region in subtree(r) for r in cov.regions)


def _negated(finding: str, mentions: list[tuple[str, Mention]]) -> tuple[bool, bool, bool, str | None]:
    """(explicitly negated, only a narrowed negation, only an acute-limited negation, the one side it is negated
    on when only one is) of the finding or a finding above it in the tree. A negation on one side ("the left
    lung is clear without focal consolidation") is not a negation of both."""
    above = _negations_of(finding)
    relevant = [m for _, m in mentions if m.finding in above]
    acute = finding in rules().acute
    plain = [m for m in relevant if m.status == "negated" and not m.acute_only and _negated_throughout(finding, m)]
    sides = {side for m in plain for side in m.sides}
    both = (
        not _paired(finding) or any(not m.sides or "bilateral" in m.sides for m in plain) or {"left", "right"} <= sides
    )
    full = (bool(plain) and both) or (acute and any(m.status == "narrowed" and m.acute_only for m in relevant))
    acute_only = any(m.status == "narrowed" and m.acute_only for m in relevant)
    narrowed = any(m.status == "narrowed" and not m.acute_only for m in relevant)
    return full, narrowed, acute_only, (next(iter(sides)) if plain and not both and len(sides) == 1 else None)


@lru_cache(maxsize=None)
def _negations_of(finding: str) -> frozenset[str]:
    """The findings whose negation is one of this finding (`_negated`): it, those above it in the tree, and those
    whose negation covers one of them (`negation_covers`), but not through a covered finding above it whose own kinds
    it leaves open (`negation_covers_exactly`)."""
    above = {finding, *ancestors("findings", finding)}
    reach = (above - set(rules().data["negation_covers_exactly"])) | {finding}
    return frozenset(
        above | {other for other, covered in rules().data["negation_covers"].items() if reach & set(covered)}
    )


def _negated_throughout(finding: str, negation: Mention) -> bool:
    """A negation of a finding of several organs (a fracture: the bony thorax, the shoulders, the neck) placed
    nowhere, or in a region that holds one of them whole: "Mild degenerative changes of the thoracic spine without
    fracture" rules out no rib fracture (rounds AF, AT). A place the finding cannot be is another finding's, read
    into a list of negations ("No consolidation or pleural effusion"). Within one organ readers take a negation in
    part of it as the report's word on the whole ("No infiltrates are present in the left lower lobe or in the
    right lung": no infiltrate, rounds AF, AP)."""
    roots = _sites(finding)
    if not roots or len(roots) == 1:
        return True
    places = {r for r in _most_specific(negation.regions - {"chest"}) if _allowed(finding, r)}
    return not places or any(root in subtree(region) for region in places for root in roots)


def _abnormal_on_other_side(finding: str, side: str, mentions: list[tuple[str, Mention]]) -> Mention | None:
    """A finding of the same kind (the same root in the findings tree), or one of its `one_side_open` findings
    itself (not those below it), the report states or hedges on the side opposite to `side`: "the left lung is clear
    without focal consolidation" beside a right lower lobe airspace opacity (round AQ) leaves the consolidation open
    there; a right lung fibrosis does not; "No left pleural effusion" beside a right-sided opacity leaves an effusion
    open there, beside a right upper lobe nodule it does not (review of session 31)."""
    root = _root(finding)
    also = set(rules().data["one_side_open"].get(root, ()))
    for _, m in mentions:
        if (
            m.status in ("negated", "narrowed")
            or not _paired(m.finding)
            or (_root(m.finding) != root and m.finding not in also)
        ):
            continue
        if m.sides - {side}:
            return m
    return None


def _root(finding: str) -> str:
    return (finding, *ancestors("findings", finding))[-1]


@lru_cache(maxsize=None)
def _paired(finding: str) -> bool:
    """The finding is a lesion of a paired organ (a lung, a pleura): it may be on either side. A device, a
    midline or whole-organ finding is not ("the left PICC line has been removed" leaves no right one open)."""
    sites = finding_sites()
    return (
        finding not in sites.unlocated
        and finding not in sites.unsided
        and any(vocabulary().regions[r]["laterality"] == "bilateral" for r in sites.regions.get(finding, ()))
    )


def _finding_covered(finding: str, cov: _Coverage) -> bool:
    """A normal statement covers the finding's main place (the first region of its group in
    finding_sites.yaml: a pleural effusion's pleura, an enlarged cardiomediastinum's mediastinum), or the statement
    names the finding or one above it."""
    if "chest" in cov.regions or cov.findings & {finding, *ancestors("findings", finding)}:
        return True
    primary = _primary_site(finding)
    return primary is not None and _covered_region(primary, cov)


@lru_cache(maxsize=1)
def _site_groups() -> list[dict[str, Any]]:
    return load_checked_yaml("schemas/vocab/finding_sites.yaml", "finding_sites.schema.json")[0]["groups"]


@lru_cache(maxsize=None)
def _primary_site(finding: str) -> str | None:
    for f in (finding, *ancestors("findings", finding)):
        for group in _site_groups():
            if f in group["findings"]:
                return group["regions"][0]
    return rules().data["statement_sites"].get(finding)


def _located_in(m: Mention, region: str) -> bool:
    """Whether a mention may be in the region: by the regions or side attached to it, else by where its
    finding can be."""
    inside = subtree(region)
    side = _side_of_region(region)
    if m.sides and side and side not in m.sides and "bilateral" not in m.sides:
        return False
    specific = _most_specific(m.regions)
    if specific:
        return any(
            r in inside or (r != "chest" and region in subtree(r)) or _unsided_part_of(r, region, m) for r in specific
        )
    if m.sides and side is None and region != "chest":
        implied = {finding_sites().by_side.get(m.finding, {}).get(s) for s in m.sides} - {None}
        if implied:
            return any(r in inside for r in implied)
    roots = _sites(m.finding)
    if region == "chest":
        return True
    if not roots:
        return False
    return any(root in inside or region in subtree(root) for root in roots)


def _unsided_part_of(place: str, region: str, m: Mention) -> bool:
    """A paired part given no side ("apical oligemia", "basilar scarring") lies in each side's organ: the apices
    in the left lung as well as in the right one (the place and the region are children of one organ)."""
    regions = vocabulary().regions
    parent = regions[place].get("parent")
    return (
        not m.sides
        and regions[place].get("laterality") == "bilateral"
        and _side_of_region(region) is not None
        and parent is not None
        and parent == regions[region].get("parent")
    )


def _most_specific(regions: frozenset[str] | set[str]) -> set[str]:
    """The regions no other listed region lies inside ("thoracic spine", not also "chest")."""
    return {r for r in regions if not any(o != r and o in subtree(r) for o in regions)}


def _region_label(region: str) -> str:
    if region.startswith("category:"):
        return f"the {region.split(':', 1)[1]} findings"
    return "the study" if region == "chest" else f"the {vocabulary().regions[region]['name'].lower()}"


_DISTRACTORS = ("other_argument", "other_options")
#: The failures that leave a distractor's absence good enough (see `check_negative_support`).
_DISTRACTOR_ENOUGH = ("negative_narrowed", "negative_one_side")


@validator("negative_support", version=VERSION, kind="content", reads_wording=False)
def check_negative_support(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: a closed-world "no" the report does not cover (`closed_world_no`) and a "no" the report
    contradicts (`negation`). A finding claimed absent needs an explicit negation of it (or of a finding
    above it: "no opacity" rules out consolidation) that nothing narrows ("no large effusion" leaves a
    small one), or a normal statement whose scope covers it: "lungs are clear" covers the lungs, an
    acute-only statement ("no acute cardiopulmonary process") covers only acute findings, never
    granulomas, scarring, degenerative change or devices. A region, category or study claimed normal
    needs a normal statement covering it, and the report must state no abnormal finding there."""
    if context.study is None:
        return OK
    claims = claims_of(item, context)
    negatives = [c for c in claims if c.kind in ("absent", "normal")]
    if not negatives:
        return OK
    report = _report(context)
    evidence = _evidence(item, context)
    extra = tuple(s for s in evidence if s not in report)
    read = _reading_with(extra, report) if extra else _report_reading(context)
    for claim in negatives:
        checks = [
            _negative_verdict(claim.kind, target, read)
            for target in (claim.findings if claim.kind == "absent" else claim.regions)
        ]
        failed = next((v for v in checks if not v.ok), None)
        # the other finding of two, or a distractor, is only not the present one: "no large pleural effusion" does
        # (LLM replay rounds 1-9: 10 such correct items), as does "no left pleural effusion" (rounds J, M: 3)
        if failed is not None and not (failed.reason in _DISTRACTOR_ENOUGH and claim.source in _DISTRACTORS):
            return failed
    for claim in negatives:  # a whole category or study: its evidence is its normal statements (a region's may
        # be the sentence placing the finding elsewhere: rounds AS-BJ, 10 correct "Is X in the left base? no" items)
        if (
            claim.kind == "normal"
            and claim.source in ("category", "study")
            and evidence
            and not _evidence_backs(claim.regions, evidence)
        ):
            return fail(
                "normal_evidence_unbacked",
                f"the answer has {_region_label(claim.regions[0])} normal; the cited evidence "
                f"{_quote(' '.join(evidence))} holds no normal statement covering it",
            )
    if any(c.kind == "present" and any(f in family(s) for f in c.findings for s in _shadows()) for c in claims):
        return OK  # the answer names the shadow, or what it is: the other findings are not claimed ruled out
    return _partial_normal_verdict([f for c in negatives if c.kind == "absent" for f in c.findings], read)


def _partial_normal_verdict(findings: list[str], read: tuple[list[tuple[str, Mention]], "_Coverage"]) -> Verdict:
    """A finding claimed absent whose only backing is a normal statement that leaves something out, beside a shadow
    it may be (`_open_shadow`)."""
    for finding in findings:
        shadow = _open_shadow_of(finding, read)
        if shadow is not None:
            name = display_name(finding)
            return fail(
                "negative_partial_normal",
                f"the answer has {name} absent; the report's normal statement leaves out a shadow it does not say "
                f"is what ({_quote(shadow)}), which may be {name}",
            )
    return OK


_last_negatives: list[Any] = [None, {}]


def _negatives_of(read: tuple[list[tuple[str, Mention]], "_Coverage"]) -> dict[tuple[str, str], Any]:
    """What `_negative_verdict` and `_open_shadow_of` remember of the last reading of a report: a study's items ask
    about the same findings ("Is there an effusion?" "no", "Is an effusion ruled out?" "yes", the distractors of a
    multiple-choice question)."""
    if _last_negatives[0] is not read:
        _last_negatives[:] = [read, {}]
    return _last_negatives[1]


def _open_shadow_of(finding: str, read: tuple[list[tuple[str, Mention]], "_Coverage"]) -> str | None:
    """`_open_shadow` of a finding the reading does not negate outright (remembered: `_negatives_of`)."""
    verdicts, key = _negatives_of(read), ("open_shadow", finding)
    if key not in verdicts:
        mentions, cov = read
        verdicts[key] = None if _negated(finding, mentions)[0] else _open_shadow(finding, mentions, cov)
    return verdicts[key]


def _negative_verdict(kind: str, target: str, read: tuple[list[tuple[str, Mention]], "_Coverage"]) -> Verdict:
    """A finding claimed absent (`_absent_verdict`) or a region claimed normal (`_normal_verdict`) on a reading of
    the report (remembered: `_negatives_of`)."""
    verdicts = _negatives_of(read)
    found = verdicts.get((kind, target))
    if found is None:
        mentions, cov = read
        found = verdicts[(kind, target)] = (
            _absent_verdict(target, mentions, cov) if kind == "absent" else _normal_verdict(target, mentions, cov)
        )
    return found


@lru_cache(maxsize=256)
def _reading_with(extra: tuple[str, ...], report: tuple[str, ...]) -> tuple[list[tuple[str, Mention]], _Coverage]:
    """The mentions and normal statements of evidence sentences outside the report's (the indication) and the
    report (items of a study share them)."""
    sentences = (*extra, *report)
    return _mentions(sentences), _normal_statements(sentences)


def _absent_verdict(finding: str, mentions: list[tuple[str, Mention]], cov: _Coverage) -> Verdict:
    """A finding claimed absent: not stated, and negated or covered by a normal statement of its scope."""
    name = display_name(finding)
    affirmed = [s for s, m in mentions if m.finding in family(finding) and m.status == "affirmed"]
    if affirmed:
        return fail(
            "negative_contradicted", f"the answer has {name} absent; the report states it: {_quote(affirmed[0])}"
        )
    full, narrowed, acute_only, one_side = _negated(finding, mentions)
    # a device of a kind ("an indwelling catheter"), or one the report does not rule out by name, may be it
    if cov.unnamed_devices and vocabulary().findings[finding]["category"] == "device":
        if not full or len(family(finding)) > 1:
            return fail(
                "negative_unnamed_device",
                f"the answer has {name} absent; the report places a device it does not name, which may be one: "
                f"{_quote(cov.unnamed_devices[0])}",
            )
    if full or _finding_covered(finding, cov):
        return OK
    if one_side is not None:
        other = _abnormal_on_other_side(finding, one_side, mentions)
        if other is not None:
            return fail(
                "negative_one_side",
                f"the answer has {name} absent; the report negates it on the {one_side} only and reads "
                f"{display_name(other.finding)} on the other side ({_quote(other.text)})",
            )
        return OK
    # "no large effusion" says more about the effusion than "no acute process" does
    if cov.acute and finding in rules().acute and not narrowed:
        return OK
    if narrowed:
        return fail(
            "negative_narrowed",
            f"the answer has {name} absent; the report only negates a narrowed form of it (e.g. 'no large ...')",
        )
    if cov.acute or acute_only:
        return fail(
            "negative_acute_only",
            f"the answer has {name} absent; the report only rules out acute disease, which does not cover {name}",
        )
    return fail(
        "negative_unbacked", f"the answer has {name} absent; no negation or normal statement in the report covers it"
    )


def _open_shadow(finding: str, mentions: list[tuple[str, Mention]], cov: _Coverage) -> str | None:
    """The first sentence stating (or hedging) a shadow of the lungs (`open_shadows.shadows`) that names nothing it
    is, or may be one of ("scarring or subsegmental atelectasis"), neither in its sentence nor in a next one that
    points back, where the only statement covering the finding leaves something out ("Lungs are otherwise clear",
    "The remainder of the lungs are clear"): a finding the shadow may be (`open_shadows.may_be`) is not ruled out
    (rounds AN, AU). A finding only hedged ("Question of this could be developing or resolving pneumonia") leaves
    the shadow open for what it names; a lesion ("nodular density": `lesion_words`) is no such shadow."""
    data = rules().data["open_shadows"]
    if not any(finding in family(f) for f in data["may_be"]):
        return None
    if _finding_covered(finding, replace(cov, regions=cov.regions - cov.partial)):
        return None
    lungs, lesion = subtree("lungs"), _word_patterns("open_shadows")["lesion_words"]
    by_sentence: dict[str, list[Mention]] = {}
    for sentence, m in mentions:
        by_sentence.setdefault(sentence, []).append(m)
    sentences = list(by_sentence)
    for i, sentence in enumerate(sentences):
        stated = [m for m in by_sentence[sentence] if m.status not in ("negated", "narrowed")]
        if not any(
            m.finding in _shadows() and (not m.regions or m.regions & lungs) and not lesion.search(m.text.lower())
            for m in stated
        ):
            continue
        following = by_sentence[sentences[i + 1]] if i + 1 < len(sentences) else []
        if _word_patterns("doubt_elsewhere")["anaphors"].match(sentences[i + 1].lower() if following else ""):
            stated += following
        if any(m.finding not in _shadows() and m.status in ("affirmed", "differential") for m in stated):
            continue
        # a shadow that may be only what its sentence names is open for those alone ("Minimal residual linear opacity
        # at the left base likely represents scarring or atelectasis" leaves no pneumonia open: synthetic round B),
        # unless one of them is a shadow of the airspace, which may be any of them ("may represent pneumonia")
        named = [m.finding for m in stated if m.finding not in _shadows() and m.status in CERTAINTIES]
        if not named or any(finding in family(n) or n in data["open_with"] for n in named):
            return sentence
    return None


def _normal_verdict(region: str, mentions: list[tuple[str, Mention]], cov: _Coverage) -> Verdict:
    """A region, category (`category:...`) or the study (`chest`) claimed normal: no abnormal finding stated or
    uncertain there, and a normal statement (or negations) covering it."""
    data = rules().data
    targets, roots_needed = _normal_targets(region)
    for _, m in mentions:
        category = vocabulary().findings[m.finding]["category"]
        if _surgical_mark(m, region):
            return fail(
                "normal_claim_surgical",
                f"the answer has {_region_label(region)} normal; the report places {display_name(m.finding)} there "
                f"({_quote(m.text)}), the mark of an operation on it",
            )
        if category in data["not_abnormal_categories"] or m.status in ("negated", "narrowed"):
            continue
        # a finding that cannot be in the region is placed there by a neighbouring word ("Large hiatal hernia projects
        # behind the heart" is no finding of the left lung: synthetic round A)
        in_region = (
            (category == region.split(":", 1)[1])
            if region.startswith("category:")
            else any(_located_in(m, t) and _allowed(m.finding, t) for t in targets)
        )
        if not in_region:
            continue
        if region.startswith("category:") and targets and not any(_located_in(m, t) for t in targets):
            continue
        reason = "normal_claim_contradicted" if m.status == "affirmed" else "normal_claim_uncertain"
        return fail(
            reason,
            f"the answer has {_region_label(region)} normal; the report reads "
            f"{display_name(m.finding)} there as {m.status} ({_quote(m.text)})",
        )
    operated = _operated(region, targets, cov)
    if operated is not None:
        return fail(
            "normal_claim_operated",
            f"the answer has {_region_label(region)} normal; the report states an operation on it: {_quote(operated)}",
        )
    if not _normal_backed(region, targets, roots_needed, cov, mentions):
        reason = "negative_acute_only" if cov.acute else "negative_unbacked"
        return fail(
            reason,
            f"the answer has {_region_label(region)} normal; no normal statement in the "
            f"report covers it" + (" (only acute disease is ruled out)" if cov.acute else ""),
        )
    return OK


def _surgical_mark(m: Mention, region: str) -> bool:
    """Whether a stated mention is surgical material marking an operation on the region claimed normal: placed in it
    (`surgical_material`), or anywhere for the whole study (`study_surgical_material`)."""
    if m.status != "affirmed" or region.startswith("category:"):
        return False
    if region == "chest":
        return marks_operated_study(m.finding)
    return m.finding in rules().data["surgical_material"] and bool(m.regions) and _located_in(m, region)


def _operated(region: str, targets: list[str], cov: _Coverage) -> str | None:
    """The sentence stating an operation on a region claimed normal, on a part of it or on an organ it is part of (the
    whole study: any operation, placed or not)."""
    for regions, sentence in cov.operations:
        if region == "chest" or any(
            r in subtree(t) or (r != "chest" and t in subtree(r)) for r in regions for t in targets
        ):
            return sentence
    return None


def _evidence_backs(regions: tuple[str, ...], evidence: tuple[str, ...]) -> bool:
    """Whether the cited sentences alone hold what backs the regions claimed normal (a right answer citing "No
    evidence of tuberculosis" for normal lungs cites nothing that says so: LLM replay round 2)."""
    mentions, cov = _reading_with(evidence, ())
    return all(_normal_backed(region, *_normal_targets(region), cov, mentions) for region in regions)


def _normal_targets(region: str) -> tuple[list[str], list[list[str]]]:
    """(the regions a normal claim is about, the groups of regions that must be declared normal)."""
    data = rules().data
    if region == "chest":
        return ["chest"], [list(group) for group in data["study_regions"]]
    if region.startswith("category:"):
        regions = list(data["category_regions"].get(region.split(":", 1)[1], []))
        return regions, [[r] for r in regions]
    return [region], [[region]]


def _normal_backed(
    region: str, targets: list[str], groups: list[list[str]], cov: _Coverage, mentions: list[tuple[str, Mention]]
) -> bool:
    data = rules().data
    if "chest" in cov.regions:
        return True
    if region.startswith("category:"):
        category = region.split(":", 1)[1]
        negations = data["category_negations"].get(category)
        if negations and all(_negated(f, mentions)[0] for f in negations):
            return True
        if not groups:
            return False
    by_negation = {
        r
        for r, groups in data["normal_by_negations"].items()
        if all(any(_negated_sided(f, mentions) for f in group) for group in groups)
    }
    for group in groups:
        if not any(
            _covered_region(r, cov)
            or any(r in subtree(n) for n in by_negation)
            or _sided_negation_covers(r, data["normal_by_negations"], mentions)
            for r in group
        ):
            return False
    return True


def _negated_sided(finding: str, mentions: list[tuple[str, Mention]]) -> bool:
    """Explicitly negated with no side given (then it holds for both sides)."""
    above = {finding, *ancestors("findings", finding)}
    return any(m.finding in above and m.status == "negated" and not m.acute_only and not m.sides for _, m in mentions)


def _sided_negation_covers(region: str, table: dict[str, list[list[str]]], mentions: list[tuple[str, Mention]]) -> bool:
    """ "No left effusion or pneumothorax": the left pleura, by negations on its side."""
    side = _side_of_region(region)
    if side is None:
        return False
    for parent, groups in table.items():
        if region not in subtree(parent):
            continue
        if all(
            any(
                m.finding in {f, *ancestors("findings", f)}
                and m.status == "negated"
                and not m.acute_only
                and (not m.sides or side in m.sides or "bilateral" in m.sides)
                for _, m in mentions
                for f in group
            )
            for group in groups
        ):
            return True
    return False


# -- 4. question sense and grammar -------------------------------------------------------------------------
@validator("question_sense", version=VERSION, kind="content")
def check_question_sense(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: ill-posed questions (`presupposition` and circular locations). A question that
    presupposes its finding ("Describe the effusion.", "Where is the nodule?", "How severe is the
    edema?") must not be answered with a denial ("There is no effusion."), a question about how certain a
    finding is ("Is airspace disease only suspected?") must not be about one the evidence negates, and a
    location answer must not only restate where the finding always is ("Where is the cardiomegaly?" "heart")."""
    args = _arguments(item)
    finding = args.get("finding")
    if finding not in vocabulary().findings:
        return OK
    question = str(item.get("question") or "").strip().lower()
    answer = str(item.get("answer") or "").strip().lower()
    presupposing, denying = _sense_patterns()
    name = display_name(finding).lower()
    if presupposing.search(question.replace(name, _SLOT)):
        if item.get("polarity") is False or denying.search(answer.replace(name, _SLOT)):
            return fail(
                "presupposes_absent_finding",
                f"the question presupposes {display_name(finding)}; the answer {item.get('answer')!r} denies it",
            )
    found = context.templates.get(item.get("template_id") or "")
    program = found[0].program if found else None
    sites = finding_sites()
    sense = rules().data["question_sense"]
    if program in sense["certainty_programs"]:
        sentences = _evidence(item, context) or _report(context)
        read = reading(finding, sentences)[0] if sentences else "not_mentioned"
        if read in ("absent", "narrowed"):
            return fail(
                "presupposes_absent_finding",
                f"the question asks how certain {display_name(finding)} is; "
                f"the evidence {_quote(' '.join(sentences))} negates it",
            )
    if program in sense["severity_programs"] and finding in sites.sized:
        return fail(
            "severity_of_sized_finding",
            f"{display_name(finding)} is graded by size, not severity "
            f"(finding_sites.yaml `sized`): {item.get('answer')!r}",
        )
    if program in sense["change_programs"] and answer.strip(" .") not in sense["interval_changes"]:
        return fail("not_an_interval_change", f"{item.get('answer')!r} is not a change since the prior study")
    return _circular_location(item, context, finding, args)


def _circular_location(item: dict[str, Any], context: ValidationContext, finding: str, args: dict[str, str]) -> Verdict:
    """A location answer (to a question that names no region) that gives a place to a finding without one, or
    only restates where the finding always is."""
    located = [c for c in claims_of(item, context) if c.kind == "located" and c.source == "argument"]
    if located and "region" not in args and finding in finding_sites().unlocated:
        regions, sides = _answer_places(item, finding, args)
        if regions or sides:
            return fail(
                "circular_location",
                f"{display_name(finding)} is a state of a whole organ or a device "
                f"(finding_sites.yaml `unlocated`): it has no location to give",
            )
    if located and "region" not in args:
        regions, sides = _answer_places(item, finding, args)
        if (
            regions
            and not sides
            and all(
                _implied(finding, r) or vocabulary().regions[r]["name"].lower() in display_name(finding).lower()
                for r in regions
            )
        ):
            return fail(
                "circular_location",
                f"the answer places {display_name(finding)} only where it always is "
                f"({', '.join(vocabulary().regions[r]['name'] for r in regions)})",
            )
    return OK


#: A word that stands for the finding's name in the question and answer read by `_sense_patterns`.
_SLOT = "findingslot"


@lru_cache(maxsize=1)
def _sense_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(questions that presuppose their finding, answers that deny it), compiled once: they are matched against
    the question and answer with the finding's name replaced by `_SLOT` (a pattern per finding cost ~40 ms
    each to compile)."""
    return (
        re.compile("|".join(f"(?:{p.replace('{finding}', _SLOT)})" for p in rules().presupposing)),
        re.compile("|".join(f"(?:{p.replace('{finding}', _SLOT)})" for p in rules().negative_answers)),
    )


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _occurrences(tokens: list[str], name: list[str]) -> Iterable[int]:
    """Where the name's tokens start in the tokens."""
    n = len(name)
    for i in range(len(tokens) - n + 1):
        if tokens[i] == name[0] and tokens[i : i + n] == name:
            yield i


@lru_cache(maxsize=None)
def _name_tokens(finding: str) -> list[str]:
    return _tokens(display_name(finding))


@lru_cache(maxsize=1)
def _grammar() -> tuple[
    frozenset[str], frozenset[str], frozenset[str], int, frozenset[str], frozenset[str], frozenset[str]
]:
    g = rules().data["grammar"]
    return (
        frozenset(g["singular_verbs"]),
        frozenset(g["plural_verbs"]),
        frozenset(g["between_verb_and_name"]),
        g["verb_window"],
        frozenset(g["determiners"]),
        frozenset(g["article_contexts"]),
        frozenset(g["adjectives"]),
    )


@validator("grammar_agreement", version=VERSION, strictness="warn", kind="content")
def check_grammar_agreement(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: `grammar` (number agreement with the vocabulary's `number`: "Is degenerative changes
    excluded?", "There is support devices."; a missing article before a singular finding: "Is nodule
    excluded?", "Has granuloma been ruled out?"; an article before a mass or plural noun). The verdict is one of
    the item's arguments, question, answer and format: items of many studies share them, so it is computed once
    per distinct four (when each is text; an odd item of `validate-file` on its own)."""
    fields = (item.get("arguments"), item.get("question"), item.get("answer"), item.get("answer_format"))
    if all(v is None or type(v) is str for v in fields):
        return _kept(_GRAMMAR, _digest(fields), lambda: _grammar_verdict(*fields))
    return _grammar_verdict(*fields)


#: `check_grammar_agreement`'s verdicts by the digest of the four fields it reads.
_GRAMMAR: dict[bytes, Verdict] = {}


def _grammar_verdict(arguments: Any, question: Any, answer: Any, answer_format: Any) -> Verdict:
    """`check_grammar_agreement` of an item with these fields."""
    singular_verbs, plural_verbs, between, window, determiners, contexts, adjectives = _grammar()
    args = _parse_arguments(str(arguments or "{}"))
    findings = [v for k, v in args.items() if k.startswith("finding") and v in vocabulary().findings]
    if not findings:
        return OK
    names = [(finding, _name_tokens(finding)) for finding in findings]
    for key, value in (("question", question), ("answer", answer)):
        text = str(value or "")
        if key == "answer" and answer_format == "full_sentence":
            text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]  # the rest quotes the report's own words
        low = text.lower()
        present = [(f, name) for f, name in names if name and name[0] in low]  # the name cannot occur otherwise
        if not present:
            continue
        tokens = _tokens(text)
        for finding, name in present:
            number = vocabulary().findings[finding]["number"]
            for i in _occurrences(tokens, name):
                j = i - 1
                while j >= 0 and tokens[j] in between and i - j <= window:
                    j -= 1
                verb = tokens[j] if j >= 0 and i - j <= window else None
                if (number == "plural" and verb in singular_verbs) or (number != "plural" and verb in plural_verbs):
                    return fail(
                        "number_agreement",
                        f"{key}: {' '.join(tokens[max(j, 0) : i + len(name)])!r}: {display_name(finding)} is {number}",
                    )
                k = i - 1
                while k >= 0 and tokens[k] in adjectives:
                    k -= 1
                before = tokens[k] if k >= 0 else None
                if number != "singular" and before in ("a", "an"):
                    return fail(
                        "number_agreement",
                        f"{key}: {' '.join(tokens[k : i + len(name)])!r}: "
                        f"{display_name(finding)} is {number}, it takes no 'a'",
                    )
                if number == "singular" and before in contexts and before not in determiners:
                    return fail(
                        "missing_article",
                        f"{key}: {' '.join(tokens[k : i + len(name)])!r}: {display_name(finding)} needs an article",
                    )
    return OK


# the checks of what an answer rests on and of the words next to a finding, built on this reading (registered
# by their modules)
from cxrvqa.validation import scope as _scope  # noqa: E402,F401
from cxrvqa.validation import wording as _wording  # noqa: E402,F401
