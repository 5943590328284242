"""Independent checks of the words next to a finding: a hedge a de-identification may have removed, a severity
word that belongs to another finding or to one of two mentions, and a density the report attributes to something
that is not where the answer puts it.

They read the report with the ConText reading of `cxrvqa.validation.independent` (its own rules, shared with
neither the extractor nor the programs), the vocabulary and finding_sites.yaml, and the section `wording` (and
`attribute_support.severities`) of schemas/vocab/independent_checks.yaml. Each check names the reviewers' error
class it targets (schemas of the verdicts: bench/item_accuracy/CRITERIA.md, ../shared/review-criteria.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxrvqa.core.vocab import vocabulary
from cxrvqa.validation.independent import (
    SENTENCES_KEPT,
    rules_pattern,
    VERSION,
    Mention,
    _allowed,
    _implied,
    _inner_location,
    _sites,
    _arguments,
    _evidence,
    _quote,
    claims_of,
    display_name,
    family,
    read_sentence,
    rules,
    subtree,
)
from cxrvqa.validation.validators import OK, ValidationContext, Verdict, fail, validator

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,;:()]")


@dataclass(frozen=True)
class WordingRules:
    deid_hedge: re.Pattern[str]  # a removed word before a linking phrase
    deid_hedge_claims: frozenset[str]  # the claim kinds it puts in doubt
    deid_link: re.Pattern[str]  # a removed word before a linking phrase alone
    deid_link_claims: frozenset[str]  # the claim kinds that one puts in doubt
    severity_programs: frozenset[str]
    severity_words: dict[str, str]  # word -> level (attribute_support.severities)
    window: int  # words before a mention a severity word may be
    breaks: frozenset[str]  # words across which no severity word attaches
    copulas: frozenset[str]  # a severity word after a mention only behind one of these
    attribution: re.Pattern[str]  # "corresponds to", "represents": what a density is
    anaphora: re.Pattern[str]  # "This may represent ..." at the start of the next sentence
    pointing_back: re.Pattern[str]  # "This could indicate cavitation.": a sentence about the one before it
    shadows: frozenset[str]  # findings that only describe a shadow: what it is attributed to is what it is
    shadow_overlaps: tuple[str, ...]  # regions whose findings a shadow of the lungs still is


@lru_cache(maxsize=1)
def wording_rules() -> WordingRules:
    """The `wording` section (shape checked by the schema), compiled once."""
    data = rules().data["wording"]
    levels = rules().data["attribute_support"]["severities"]
    return WordingRules(
        rules_pattern(data["deid_hedges"], "wording.deid_hedges"),
        frozenset(data["deid_hedge_claims"]),
        rules_pattern(data["deid_links"], "wording.deid_links"),
        frozenset(data["deid_link_claims"]),
        frozenset(rules().data["attribute_support"]["severity_programs"]),
        {word: level for level, words in levels.items() for word in words},
        data["severity"]["window"],
        frozenset(data["severity"]["breaks"]),
        frozenset(data["severity"]["copulas"]),
        rules_pattern(data["attribution"], "wording.attribution"),
        rules_pattern(data["anaphora"], "wording.anaphora"),
        rules_pattern(data["pointing_back"], "wording.pointing_back"),
        frozenset(data["shadows"]),
        tuple(data["shadow_overlaps"]),
    )


@lru_cache(maxsize=SENTENCES_KEPT)
def _placed(sentence: str) -> tuple[tuple[Mention, int, int], ...]:
    """The sentence's mentions with the character span of their words in the lowered sentence (left to right,
    as ConText found them; -1 when the words cannot be found)."""
    low, at, out = sentence.lower(), 0, []
    for m in read_sentence(sentence):
        start = low.find(m.text.lower(), at)
        if start < 0:
            out.append((m, -1, -1))
            continue
        out.append((m, start, start + len(m.text)))
        at = start + len(m.text)
    return tuple(out)


def _named(finding: str, sentences: Iterable[str]) -> list[tuple[str, Mention, int, int]]:
    """The placed mentions of the finding (or one below it) that are not negated."""
    members = family(finding)
    return [
        (s, m, a, b)
        for s in sentences
        for m, a, b in _placed(s)
        if m.finding in members and m.status not in ("negated", "narrowed") and a >= 0
    ]


# -- 1. a hedge that may have been de-identified ----------------------------------------------------------
@validator("deid_hedge", version=VERSION, kind="content", reads_wording=False)
def check_deid_hedge(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: `unsupported` (and `hedge_as_definite`) resting on a de-identified word: "opacities XXXX
    related to emphysema", "markings XXXX related to history of bronchitis". The word the de-identification
    removed before a linking phrase is often the hedge ("likely", "possibly"), so an answer that the finding is
    certain (`wording.deid_hedge_claims`) is not supported when every evidence sentence naming it does so only
    after such a removed word, nor one that it is present (`deid_link_claims`) when each names it only after a
    removed word right before a linking phrase ("calcification ..., XXXX representing a granuloma")."""
    if context.study is None:
        return OK
    wr = wording_rules()
    evidence = _evidence(item, context)
    if not any(rules().deid.search(s) for s in evidence):
        return OK  # every pattern reads a removed word: most items' evidence has none
    for claim in claims_of(item, context):
        if claim.source == "other_options":
            continue
        if claim.kind in wr.deid_hedge_claims:
            pattern = wr.deid_hedge
        elif claim.kind in wr.deid_link_claims:
            pattern = wr.deid_link
        else:
            continue
        for finding in claim.findings:
            named = _named(finding, evidence)
            if named and all(pattern.search(s.lower()[:start]) for s, _, start, _ in named):
                return fail(
                    "certainty_deidentified",
                    f"the answer has {display_name(finding)} {claim.kind}; every "
                    f"evidence sentence naming it {_quote(named[0][0])} links it "
                    f"through a de-identified word that may have been a hedge",
                )
    return OK


def _after_deid_hedge(sentence: str, start: int) -> bool:
    """Whether a removed word that may be a hedge comes before the mention at ``start`` (the patterns read the text
    before it, so one may end right before it: "XXXX bilateral pleural effusions")."""
    return wording_rules().deid_hedge.search(sentence.lower()[:start]) is not None


# -- 2. the severity words of a mention --------------------------------------------------------------------
def _attached_levels(sentence: str, start: int, end: int, others: list[tuple[int, int]]) -> set[str]:
    """The severity levels whose words belong to the mention at [start, end): inside its words, just before
    it (at most `window` words, none of the `breaks` and no other finding between) or after it behind a copula
    ("the effusion is small")."""
    wr = wording_rules()
    low = sentence.lower()
    levels = {wr.severity_words[w] for w in _WORD.findall(low[start:end]) if w in wr.severity_words}
    left_edge = max([b for a, b in others if b <= start], default=0)
    before = _WORD.findall(low[left_edge:start])[::-1][: wr.window]
    for word in before:
        if word in wr.breaks:
            break
        if word in wr.severity_words:
            levels.add(wr.severity_words[word])
    right_edge = min([a for a, b in others if a >= end], default=len(low))
    after = _WORD.findall(low[end:right_edge])
    if after and after[0] in wr.copulas:
        for word in after[1 : 1 + wr.window]:
            if word in wr.breaks:
                break
            if word in wr.severity_words:
                levels.add(wr.severity_words[word])
    return levels


@validator("severity_attachment", version=VERSION, kind="content", reads_wording=False)
def check_severity_attachment(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: a severity read off another finding's words (`evidence`: "lungs are hypoinflated with mild
    bronchovascular crowding" answered "mild" low lung volumes) and the ambiguous referent of `bad_question`
    ("moderate thoracic levoscoliosis and mild thoracolumbar dextroscoliosis": "How severe is the scoliosis?").
    A severity word must belong to a mention of the finding itself (`_attached_levels`), and no mention may
    be graded otherwise than one graded as answered, nor named ungraded on a side no graded one is on ("focal
    right base airspace disease ... minimal left base airspace disease"; which level a word names is
    `attribute_support`'s question)."""
    if context.study is None:
        return OK
    wr = wording_rules()
    found = context.templates.get(item.get("template_id") or "")
    if not found or found[0].program not in wr.severity_programs:
        return OK
    finding = _arguments(item).get("finding")
    answer = str(item.get("answer") or "").strip().lower().rstrip(".")
    answered = {wr.severity_words[w] for w in _WORD.findall(answer) if w in wr.severity_words}
    evidence = _evidence(item, context)
    if finding not in vocabulary().findings or not answered or not evidence:
        return OK
    graded, ungraded_sides = [], set()
    for sentence, m, start, end in _named(finding, evidence):
        others = [(a, b) for o, a, b in _placed(sentence) if a >= 0 and (a, b) != (start, end)]
        levels = _attached_levels(sentence, start, end, others)
        if levels:
            graded.append((sentence, m, frozenset(levels)))
        else:
            ungraded_sides |= m.sides
    name = display_name(finding)
    if not graded:
        return fail(
            "severity_not_attached",
            f"the answer grades {name} {answer!r}; no severity word in the "
            f"evidence {_quote(' '.join(evidence))} belongs to {name}",
        )
    # which level a word names is attribute_support's question; here: one mention graded as answered, another not
    if any(answered & levels for _, _, levels in graded) and any(not answered & levels for _, _, levels in graded):
        return fail(
            "severity_ambiguous",
            f"the evidence grades two mentions of {name} differently ("
            + ", ".join(f"{m.text!r}: {'/'.join(sorted(lv))}" for _, m, lv in graded)
            + f"): 'the {name}' is ambiguous",
        )
    graded_sides = frozenset().union(*(m.sides for _, m, _ in graded))
    if graded_sides and ungraded_sides - graded_sides:  # "focal airspace disease in the right base ... minimal
        return fail(  # airspace disease in the left base": "How severe is the airspace disease?" (round BB)
            "severity_ambiguous",
            f"the evidence grades {name} on the {'/'.join(sorted(graded_sides))} side only, not on the "
            f"{'/'.join(sorted(ungraded_sides - graded_sides))}: 'the {name}' is ambiguous",
        )
    return OK


# -- 3. what the report says a density is ------------------------------------------------------------------
@validator("attribution", version=VERSION, kind="content", reads_wording=False)
def check_attribution(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: the region half of `vocabulary_mapping` and `hedge_as_definite` for region questions: an
    abnormality placed in a region ("Is there an abnormality in the left lung? yes") on a density the report
    attributes to a finding that cannot be there ("retrocardiac density which corresponds to the known hiatal
    hernia") or, in the next sentence, offers alternatives of which one cannot be there ("Calcific density over
    the right upper lung. This may represent a healed rib fracture ... or a granuloma"); and a shadow (a lung
    opacity, density or lucency: `wording.shadows`) answered present where the report says it is only a finding
    that cannot be in its organ ("Which is present: atelectasis or lung opacity?" "lung opacity" of a
    "retrocardiac density which may be secondary to small hiatal hernia"). The attribution is a phrase after
    the mention (`wording.attribution`) or an anaphoric next sentence (`wording.anaphora`)."""
    if context.study is None:
        return OK
    evidence, ordered = _evidence(item, context), None
    for claim in claims_of(item, context):
        if claim.kind == "in_region":
            # a finding that can only be in the regions stays there ("flattening of the diaphragms consistent with
            # emphysematous change": the diaphragm's, round AT)
            places = [(f, claim.regions) for f in claim.findings if not _implied(f, *claim.regions)]
        elif claim.kind == "present" and claim.source != "other_options":
            places = [(f, tuple(_sites(f) or ())) for f in claim.findings if f in wording_rules().shadows]
        else:
            continue
        for finding, regions in places:
            ordered = ordered or [text for _, text in sorted(context.study.sentences.items())]  # only when asked
            other = _attributed_elsewhere(finding, regions, evidence, ordered, shadow=claim.kind == "present")
            if other is None:
                continue
            sentence, attributed = other
            where = ", ".join(vocabulary().regions[r]["name"].lower() for r in regions)
            said = (
                f"places {display_name(finding)} in the {where}"
                if claim.kind == "in_region"
                else f"has {display_name(finding)} (a finding of the {where}) present"
            )
            return fail(
                "attributed_outside_region" if claim.kind == "in_region" else "attributed_to_other_finding",
                f"the answer {said}; the report attributes it to {attributed} ({_quote(sentence)}), which cannot "
                "be there",
            )
    return OK


def _attributed_elsewhere(
    finding: str, regions: tuple[str, ...], evidence: tuple[str, ...], ordered: list[str], shadow: bool
) -> tuple[str, str] | None:
    """(sentence, what it is said to be) where every evidence sentence naming the finding attributes it to a
    finding that cannot be in any of the regions, or only to places outside them ("This is favored to be arising
    from the chest wall and be pleural based": round AS); None otherwise (or where no region is known). A `shadow`
    is what the report says it is only where every finding it offers is elsewhere, in regions it does not
    overlap."""
    named = _named(finding, evidence) if regions else []
    if not named:
        return None
    allowed = (*regions, *wording_rules().shadow_overlaps) if shadow else regions
    first = None
    for s, _, _, end in named:
        said, places = _attributed(s, end, ordered)
        away = [display_name(n.finding) for n in said if not any(_allowed(n.finding, r) for r in allowed)]
        if not said and places and not any(p in subtree(r) or r in subtree(p) for p in places for r in allowed):
            away = [" and ".join(sorted(vocabulary().regions[p]["name"].lower() for p in places))]
        if not away or (shadow and len(away) < len(said)):
            return None
        first = first or (s, away[0])
    return first


def _attributed(sentence: str, end: int, ordered: list[str]) -> tuple[list[Mention], frozenset[str]]:
    """(the findings, the places) the report says the mention ending at `end` is, or is in: those after an
    attribution phrase that follows it in its sentence, and those of the next sentence when it starts with an
    anaphor (places: the regions its words name but the chest)."""
    wr = wording_rules()
    low = sentence.lower()
    found, places = [], set()
    phrase = wr.attribution.search(low, end)
    if phrase:
        found += [m for m, a, _ in _placed(sentence) if a >= phrase.end() and m.status not in ("negated", "narrowed")]
        places |= _inner_location(sentence[phrase.end() :])[0]
    try:
        following = ordered[ordered.index(sentence) + 1]
    except (ValueError, IndexError):
        following = ""
    if following and wr.anaphora.match(following.strip().lower()):
        found += [m for m in read_sentence(following) if m.status not in ("negated", "narrowed")]
        places |= _inner_location(following)[0]
    return found, frozenset(places - {"chest"})


#: A technique line is short ("Xray Chest PA and Lateral") and names no finding; a longer sentence that opens like
#: one goes on to state findings ("Frontal and lateral views of the chest ... show normal size and configuration of
#: the heart"), as does a short one that names one ("Exam quality limited by hypoinflation and rotation.").
_TECHNIQUE_WORDS = 8


# -- 4. what a quoted sentence points at -------------------------------------------------------------------
@validator("quotation", version=VERSION, kind="content", reads_wording=False)
def check_quotation(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: `evidence` (a quote that changes what the report says): an answer that quotes a report
    sentence pointing back at the one before it (`wording.pointing_back`: "This could indicate cavitation.")
    without that sentence, so that it now points at the sentence quoted before it (round AG: the dropped
    "1.3 cm apical ovoid lucency" left the cavitation on a patchy airspace opacity); or one that states no finding,
    a short technique line (`skip_sentences`: "Xray Chest PA and Lateral", rounds AN, AT)."""
    if context.study is None:
        return OK
    answer, sentences = str(item.get("answer") or ""), context.study.sentences
    for sentence_id in sorted(set(item.get("evidence_ids") or ())):  # sentence ids number a report's sentences
        quoted = (sentences.get(sentence_id) or "").strip()
        if not quoted or quoted not in answer:
            continue
        if (
            len(quoted.split()) <= _TECHNIQUE_WORDS
            and any(p.search(quoted.lower()) for p in rules().skip)
            and not read_sentence(quoted)
        ):
            return fail("quote_not_a_finding", f"the answer quotes {_quote(quoted)}, which states no finding")
        if not wording_rules().pointing_back.match(quoted.lower()):
            continue
        before = (sentences.get(sentence_id - 1) or "").strip()
        if before and before not in answer:
            return fail(
                "quote_without_antecedent",
                f"the answer quotes {_quote(quoted)}, which points back at {_quote(before)}, without it",
            )
    return OK


# -- 5. the reason for the examination -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def _indication_rules() -> tuple[frozenset[str], re.Pattern[str], re.Pattern[str]]:
    data = rules().data["indication"]
    return (
        frozenset(data["programs"]),
        rules_pattern(data["no_reason"], "indication.no_reason"),
        rules_pattern(data["technique"], "indication.technique"),
    )


@validator("indication_reason", version=VERSION, kind="content", reads_wording=False)
def check_indication_reason(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: `other` (an answer that is no reason for the examination): an indication answer that quotes a
    field saying none was given ('... was "Unavailable".': round AB) or gives how the examination was done as a
    reason ("The patient's lower abdomen was shielded for this exam": round AH). Rules: `indication`."""
    programs, no_reason, technique = _indication_rules()
    found = context.templates.get(item.get("template_id") or "")
    if found is None or found[0].program not in programs:
        return OK
    answer = str(item.get("answer") or "").strip()
    if no_reason.search(answer.lower()):
        return fail("indication_no_reason", f"the answer {_quote(answer)} gives a field that names no reason")
    note = technique.search(answer.lower())
    if note:
        return fail(
            "indication_technique", f"the answer {_quote(answer)} gives how the examination was done ({note.group()!r})"
        )
    return OK


def clear_caches() -> None:
    _placed.cache_clear()
