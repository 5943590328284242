"""Independent checks of what an answer rests on: the scope of its evidence, findings a "no" overlooks, lists
that leave out what the report states, and changes or severities the evidence does not word.

They read the report with the ConText reading of `cxrvqa.validation.independent` (its own rules, shared with
neither the extractor nor the programs) and the sections `evidence_scope`, `absent_conflicts`,
`list_completeness` and `attribute_support` of schemas/vocab/independent_checks.yaml. Each check names the
reviewers' error class it targets (bench/item_accuracy/CRITERIA.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxrvqa.errors import ResourceError
from cxrvqa.core.vocab import vocabulary
from cxrvqa.validation.independent import (
    rules_pattern,
    RULES_FILE,
    SENTENCES_KEPT,
    VERSION,
    Mention,
    _arguments,
    _evidence,
    _located_in,
    _most_specific,
    _answer_mentions,
    _part_mentions,
    answer_sentences,
    _operations_in,
    _quote,
    _readings_of,
    _report_reading,
    _sites,
    claims_of,
    display_name,
    family,
    marks_operated_study,
    reading,
    rules,
    subtree,
)
from cxrvqa.validation.validators import OK, ValidationContext, Verdict, fail, validator
from cxrvqa.validation.wording import _after_deid_hedge, _attributed, _placed


@dataclass(frozen=True)
class ScopeRules:
    other_exam: re.Pattern[str]
    still_here: re.Pattern[str]
    not_the_finding: re.Pattern[str]
    outside_chest: re.Pattern[str]
    chest_categories: frozenset[str]
    conflicts: dict[str, tuple[frozenset[str], str]]  # finding -> (findings counted as it, region)
    list_scope: dict[str, str]  # answer program -> study | abnormal | region | category
    list_ignored: frozenset[str]  # categories a list need not name


@lru_cache(maxsize=1)
def scope_rules() -> ScopeRules:
    """The three sections, checked against the vocabulary (the schema checked their shape)."""
    data, vocab = rules().data, vocabulary()

    def compiled(key: str) -> re.Pattern[str]:
        return rules_pattern(data["evidence_scope"][key], f"evidence_scope.{key}")

    scope, listed = data["evidence_scope"], data["list_completeness"]
    categories = set(vocab.categories)
    unknown = sorted((set(scope["chest_categories"]) | set(listed["ignore_categories"])) - categories)
    if unknown:
        raise ResourceError(RULES_FILE, f"evidence_scope / list_completeness: not a category: {unknown}")
    conflicts = {}
    for finding, entry in data["absent_conflicts"].items():
        bad = sorted({finding, *entry["findings"]} - set(vocab.findings))
        if bad or entry["region"] not in vocab.regions:
            raise ResourceError(
                RULES_FILE, f"absent_conflicts.{finding}: not in the vocabulary: {bad or [entry['region']]}"
            )
        conflicts[finding] = (frozenset(f for top in entry["findings"] for f in family(top)), entry["region"])
    return ScopeRules(
        compiled("other_exam"),
        compiled("still_here"),
        compiled("not_the_finding"),
        compiled("outside_chest"),
        frozenset(scope["chest_categories"]),
        conflicts,
        dict(listed["programs"]),
        frozenset(listed["ignore_categories"]),
    )


def clear_caches() -> None:
    """Forget the sentences read (benchmarks: `independent.clear_caches`)."""
    _elsewhere.cache_clear()


@lru_cache(maxsize=SENTENCES_KEPT)
def _elsewhere(sentence: str) -> tuple[bool, bool, bool]:
    """(about another exam, explained as something else, outside the chest) for one sentence."""
    low, sr = sentence.lower(), scope_rules()
    return (
        sr.other_exam.search(low) is not None and sr.still_here.search(low) is None,
        sr.not_the_finding.search(low) is not None,
        sr.outside_chest.search(low) is not None,
    )


_SCOPE_REASONS = (
    ("evidence_other_exam", "speaks of another examination or says it is not well seen here"),
    ("evidence_not_the_finding", "explains the density as something else"),
    ("evidence_outside_chest", "places it outside the chest"),
)


def _scope_failure(name: str, sentences: Iterable[str], chest: bool) -> Verdict:
    """A failure when every sentence is out of scope for the same cause (the third only for a chest claim)."""
    sentences = tuple(dict.fromkeys(sentences))
    if not sentences or not any(_elsewhere(sentences[0])):  # each cause needs every sentence: the first has none
        return OK
    flags = [_elsewhere(s) for s in sentences]
    for index, (reason, words) in enumerate(_SCOPE_REASONS):
        if (index < 2 or chest) and all(f[index] for f in flags):
            return fail(
                reason,
                f"the answer has {name} present; every evidence sentence naming it "
                f"{_quote(' '.join(sentences))} {words}",
            )
    return OK


def _category(finding: str) -> str | None:
    return vocabulary().findings.get(finding, {}).get("category")


def _places_in_chest(item: dict[str, Any], context: ValidationContext) -> bool:
    """Whether the answer puts its findings in a region of the chest (an abnormality in the lungs, the findings
    listed for the heart), not the abdomen."""
    abdomen = subtree("abdomen")
    for claim in claims_of(item, context):
        if claim.kind == "in_region" and not set(claim.regions) <= abdomen:
            return True
        if claim.kind == "located" and _arguments(item).get("region") not in (None, *abdomen):
            return True
    return False


@validator("evidence_scope", version=VERSION, kind="content", reads_wording=False)
def check_evidence_scope(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: `evidence` and the region half of `vocabulary_mapping`. A finding claimed present (or an
    abnormality in a chest region) must rest on a sentence about this examination and this chest: not on
    another exam ("seen on the outside CT", "not well demonstrated on radiography"), not on a density the
    report explains as something else ("may be attributable to the sternoclavicular joint", nipple markers),
    and, for a chest finding, not on something outside the chest (right upper quadrant clips, a breast mass)."""
    if context.study is None:
        return OK
    evidence = _evidence(item, context)
    if not evidence:
        return OK
    chest_claim = _places_in_chest(item, context)
    for claim in claims_of(item, context):
        if claim.kind in ("present", "possible") and claim.source != "other_options":
            for finding in claim.findings:
                _, found = reading(finding, evidence)
                named = [s for s, m in found if m.status not in ("negated", "narrowed")]
                chest = chest_claim or _category(finding) in scope_rules().chest_categories
                verdict = _scope_failure(display_name(finding), named, chest)
                if not verdict.ok:
                    return verdict
        elif claim.kind in ("some_present", "in_region"):
            verdict = _scope_failure("an abnormality", evidence, chest_claim)
            if not verdict.ok:
                return verdict
    return OK


def _stated(mentions: Iterable[tuple[str, Mention]]) -> list[tuple[str, Mention]]:
    """Mentions the report states about this chest: affirmed, not next to a de-identified word, and not in a
    sentence about another exam or explained as something else."""
    return [
        (s, m)
        for s, m in mentions
        if m.status == "affirmed" and "deidentified" not in m.kinds and not any(_elsewhere(s)[:2])
    ]


@validator("related_absent", version=VERSION, kind="content", reads_wording=False)
def check_related_absent(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: `vocabulary_mapping` and the two-true-options `bad_question`. A finding claimed absent
    (a "no", a "ruled out", the other finding of two, a distractor) while the report states a finding a
    radiologist counts as one of it (`absent_conflicts`: a calcified granuloma or scarring is a lung opacity;
    "the lungs are otherwise clear" does not take it back), in the region it would be in."""
    if context.study is None:
        return OK
    conflicts = scope_rules().conflicts
    absent = [
        (f, c.source) for c in claims_of(item, context) if c.kind == "absent" for f in c.findings if f in conflicts
    ]
    if not absent:
        return OK
    mentions = _stated(_report_reading(context)[0])
    for finding, source in absent:
        members, region = conflicts[finding]
        for sentence, m in mentions:
            if m.finding in members and _located_in(m, region):
                what = "a distractor" if source == "other_options" else "absent"
                return fail(
                    "related_present",
                    f"the answer has {display_name(finding)} {what}; the report "
                    f"states {display_name(m.finding)}: {_quote(sentence)}",
                )
    return OK


def _list_scope(item: dict[str, Any], context: ValidationContext) -> tuple[str, str | None] | None:
    found = context.templates.get(item.get("template_id") or "")
    if not found or item.get("polarity") is False:
        return None
    scope = scope_rules().list_scope.get(found[0].program)
    if scope is None:
        return None
    args = _arguments(item)
    target = args.get("region") if scope == "region" else args.get("category") if scope == "category" else None
    if scope in ("region", "category") and not target:
        return None
    return scope, target


def _in_scope(m: Mention, scope: str, target: str | None) -> bool:
    category = _category(m.finding)
    if category in scope_rules().list_ignored:
        return False
    if scope == "abnormal":
        return category not in rules().data["not_abnormal_categories"] or marks_operated_study(m.finding)
    if scope == "region":
        return bool(target in vocabulary().regions and _placed_in(m, target))
    if scope == "category":
        return category == target
    return True


def _placed_in(m: Mention, region: str) -> bool:
    """Whether the report puts a mention in the region: by the regions attached to it, else by every place its
    finding can be (a cardiomegaly is in the heart; surgical clips placed nowhere are in no region)."""
    inside = subtree(region)
    sites = _sites(m.finding)
    if sites and not any(s in inside or region in subtree(s) for s in sites):
        return False  # a place ConText attached to its neighbour ("cardiomegaly and left pleural effusion")
    specific = _most_specific(m.regions) - {"chest"}
    if specific:
        return any(r in inside for r in specific)
    return bool(sites) and all(s in inside for s in sites)


def _covered(finding: str, listed: Iterable[str]) -> bool:
    """A listed finding names a stated one when either is below the other, or the stated one also reads as the
    listed one (`read_also_as`: calcified hilar nodes listed as calcified lymph nodes; LLM replay round)."""
    return any(finding in _readings_of(f) or f in family(finding) for f in listed)


@validator("list_completeness", version=VERSION, kind="content", reads_wording=False)
def check_list_completeness(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: the incomplete-list `other` and `location_side_extent` ("What does this X-ray show?"
    answered with one of two stated findings). A list of the study's, a region's or a category's findings
    must name (itself, or a finding above or below it) every finding the report states in that scope; an answer
    that quotes the sentence stating it names it, whatever findings the item was tagged with ("Atherosclerotic
    calcification of the aortic arch." quoted, tagged atherosclerosis only: synthetic round I, 4 correct items)."""
    if context.study is None:
        return OK
    scope = _list_scope(item, context)
    if scope is None:
        return OK
    listed = [f for c in claims_of(item, context) if c.kind == "present" for f in c.findings]
    described = _described(str(item.get("answer") or ""), context) if scope[0] == "study" else None
    if not listed and described is not None:  # a description without tagged findings: what it states
        listed = list(dict.fromkeys(m.finding for m in described))
    elif not listed:
        return OK
    mentions, coverage = _report_reading(context)
    named = ", ".join(display_name(f) for f in listed) or "nothing abnormal"
    quoted = {s.strip() for s in answer_sentences(str(item.get("answer") or ""))}
    for sentence, m in _stated(mentions):
        if (
            _in_scope(m, *scope)
            and sentence.strip() not in quoted
            and not (_covered(m.finding, listed) and (not described or _named_in_place(m, described)))
            and not _said_listed(sentence, m, context, listed)
            and not _after_removed_hedge(sentence, m)
        ):
            return fail(
                "list_incomplete",
                f"the answer lists {named}; the report also states {display_name(m.finding)}: {_quote(sentence)}",
            )
    operation = _unlisted_operation(listed, scope, coverage.operations, str(item.get("answer") or ""))
    if operation is not None:
        return fail(
            "list_incomplete", f"the answer lists {named}; the report also states an operation: {_quote(operation)}"
        )
    return OK


def _described(answer: str, context: ValidationContext) -> list[Mention]:
    """The findings a description names, each with the place its words give: a description made of the report's
    own sentences read sentence by sentence, a list in the template's words part by part (`_part_mentions`: a
    place read across the whole list bleeds from one finding to the next)."""
    sentences = [s.strip() for s in answer_sentences(answer)]
    report = {text.strip() for text in context.study.sentences.values()}
    if not sentences or any(s not in report for s in sentences):
        return list(_part_mentions(answer))
    return _answer_mentions(answer)


def _named_in_place(m: Mention, described: list[Mention]) -> bool:
    """Whether a description names the stated finding where the report places it: "Degenerative left glenohumeral
    osteoarthritis." does not quote "Degenerative disease within the spine" (LLM replay round 17); a name or a
    statement without a place covers every place."""
    return any(
        _covered(m.finding, [q.finding])
        and (
            not m.regions
            or not q.regions
            or any(a in subtree(b) or b in subtree(a) for a in m.regions for b in q.regions)
        )
        for q in described
    )


def _after_removed_hedge(sentence: str, m: Mention) -> bool:
    """Whether the mention follows a de-identified word that may have been a hedge ("central vascular congestion XXXX
    interstitial edema": LLM replay round 18, two lists without the edema read complete): not a finding a list must
    name."""
    return any(
        found is m and start >= 0 and _after_deid_hedge(sentence, start) for found, start, _ in _placed(sentence)
    )


def _said_listed(sentence: str, m: Mention, context: ValidationContext, listed: list[str]) -> bool:
    """Whether the report says the mention is one of the listed findings, or what one of them is ("A calcific density
    in the left midlung zone XXXX represents old granulomatous disease", "calcified nodule XXXX representing a
    granuloma": LLM replay rounds): a list that names either names it."""
    ordered = [text for _, text in sorted(context.study.sentences.items())]
    for found, start, end in _placed(sentence):
        if start < 0:
            continue
        said = _attributed(sentence, end, ordered)[0]
        if found is m and any(_covered(a.finding, listed) for a in said):
            return True
        if found is not m and _covered(found.finding, listed) and any(a is m for a in said):
            return True  # what a listed finding is said to be ("calcified nodule ... representing a granuloma")
    return False


def _unlisted_operation(
    listed: list[str], scope: tuple[str, str | None], operations: list[tuple[frozenset[str], str]], answer: str
) -> str | None:
    """The sentence of an operation in the list's scope (`operations`) when the list names none
    (`operation_findings`: "sternotomy wires", "surgical clips") and the answer states none (a description
    quoting "Status post left mastectomy.")."""
    kind, target = scope
    if kind == "category" or any(f in family(o) for f in listed for o in rules().data["operation_findings"]):
        return None
    if _operations_in(answer):
        return None
    for regions, sentence in operations:
        if kind != "region" or any(r in subtree(target or "") for r in regions):
            return sentence
    return None


@dataclass(frozen=True)
class AttributeRules:
    change_programs: frozenset[str]
    severity_programs: frozenset[str]
    changes: dict[str, re.Pattern[str]]  # answered change -> words that state it
    descriptive: re.Pattern[str]  # change words that also describe ("increased markings")
    anchors: re.Pattern[str]  # words that compare with an earlier study
    change_hedges: re.Pattern[str]  # what before a change word hedges it ("likely increased")
    severities: dict[str, re.Pattern[str]]  # answered severity -> its words
    ranges: re.Pattern[str]  # a graded range ("mild to moderate")
    other_clause: re.Pattern[str]  # ", mediastinal contours appear ...": a clause with a subject of its own


@lru_cache(maxsize=1)
def attribute_rules() -> AttributeRules:
    data, where = rules().data["attribute_support"], "attribute_support"
    return AttributeRules(
        frozenset(data["change_programs"]),
        frozenset(data["severity_programs"]),
        {change: rules_pattern(words, f"{where}.changes.{change}") for change, words in data["changes"].items()},
        rules_pattern(data["descriptive"], f"{where}.descriptive"),
        rules_pattern(data["temporal_anchors"], f"{where}.temporal_anchors"),
        rules_pattern(data["change_hedges"], f"{where}.change_hedges"),
        {
            level: rules_pattern([rf"\b{re.escape(w)}\b" for w in words], f"{where}.severities.{level}")
            for level, words in data["severities"].items()
        },
        rules_pattern(data["ranges"], f"{where}.ranges"),
        rules_pattern(data["other_clause"], f"{where}.other_clause"),
    )


def _change_verdict(change: str, name: str, placed: list[tuple[str, Mention]]) -> Verdict:
    """The answered change against the clauses that name the finding (each with its mention)."""
    ar = attribute_rules()
    sentences = tuple(dict.fromkeys(c for c, _ in placed))
    words = ar.changes.get(change)
    if words is None:
        return OK  # a change word the rules do not know (question_sense judges whether it is one)
    quoted = _quote(" ".join(sentences))
    stating = [s for s in sentences if words.search(s.lower())]
    if not stating:
        return fail("change_not_stated", f"the answer has {name} {change}; the evidence {quoted} has no word for it")
    compared = [s for s in stating if not _only_descriptive(words, s.lower()) or ar.anchors.search(s.lower())]
    if not compared:
        return fail(
            "change_not_temporal",
            f"the answer has {name} {change}; in the evidence {quoted} the word for "
            f"it describes the finding and compares with no earlier study",
        )
    if all(_change_hedged(words, clause, m.text) for clause, m in placed if clause in compared):
        return fail("change_hedged", f"the answer has {name} {change}; the evidence {quoted} only hedges the change")
    return OK


def _change_hedged(words: re.Pattern[str], clause: str, mention: str) -> bool:
    """Every word of the change in the clause outside the finding's own words ("cardiac silhouette is enlarged, ...
    likely increased from prior") comes after a hedge of it (`attribute_support.change_hedges`)."""
    hedges = attribute_rules().change_hedges
    text = clause.lower().replace(mention.lower(), " " * len(mention))
    found = list(words.finditer(text))
    return bool(found) and all(hedges.search(text[: m.start()]) for m in found)


def _change_ambiguous(change: str, name: str, placed: list[tuple[str, Mention]]) -> Verdict:
    """Error class: the ill-posed `bad_question` of two instances with different courses ("Moderate sized right
    pleural effusion appears smaller than the prior study. Small left pleural effusion appears unchanged."): a
    clause words the answered change of the finding on one side, another clause another change on the other."""
    changes = attribute_rules().changes
    if change not in changes:
        return OK

    def worded(clause: str) -> set[str]:
        return {c for c, words in changes.items() if words.search(clause.lower())}

    one_side = ({"left"}, {"right"})
    answered = [m.sides for clause, m in placed if change in worded(clause) and m.sides in one_side]
    for clause, m in placed:
        said = worded(clause)
        if said and change not in said and m.sides in one_side and any(m.sides != sides for sides in answered):
            return fail(
                "change_ambiguous",
                f"the answer has {name} {change}; the report gives another course on the other side: {_quote(clause)}",
            )
    return OK


def _own_clause(sentence: str, words: str) -> str:
    """The sentence up to the first clause after the finding's words that has a subject of its own
    (`attribute_support.other_clause`)."""
    low = sentence.lower()
    at = low.find(words.lower())
    if at < 0:
        return sentence
    other = attribute_rules().other_clause.search(low, at + len(words))
    return sentence if other is None else sentence[: other.start()]


def _only_descriptive(words: re.Pattern[str], text: str) -> bool:
    """Every word of the change in the sentence also describes ("increased", "decreased", "larger")."""
    return all(attribute_rules().descriptive.match(text, m.start()) for m in words.finditer(text))


def _severity_verdict(answer: str, name: str, sentences: tuple[str, ...]) -> Verdict:
    ar = attribute_rules()
    quoted = _quote(" ".join(sentences))
    levels = [level for level in ar.severities if re.search(rf"\b{level}\b", answer)]
    if not levels:
        return OK
    if len(levels) == 1 and any(ar.ranges.search(s.lower()) for s in sentences):
        return fail("severity_range_cut", f"the answer grades {name} {answer!r}; the evidence {quoted} gives a range")
    missing = [level for level in levels if not any(ar.severities[level].search(s.lower()) for s in sentences)]
    if missing:
        return fail(
            "severity_not_stated",
            f"the answer grades {name} {answer!r}; the evidence {quoted} has no word for {', '.join(missing)}",
        )
    return OK


@validator("attribute_support", version=VERSION, kind="content", reads_wording=False)
def check_attribute_support(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """Error class: an interval change or a severity the report does not give (`other`, `vocabulary_mapping`):
    "increased interstitial markings" answered "worsened", "decreased peripheral vascular markings" answered
    "improved", "moderate severe hyperexpansion" answered "severe". The answered change or severity must be
    worded in the evidence sentences that name the finding (`attribute_support` in the rules file)."""
    if context.study is None:
        return OK
    found = context.templates.get(item.get("template_id") or "")
    program = found[0].program if found else None
    ar = attribute_rules()
    if program not in ar.change_programs and program not in ar.severity_programs:
        return OK
    finding = _arguments(item).get("finding")
    evidence = _evidence(item, context)
    if finding not in vocabulary().findings or not evidence:
        return OK
    _, found_mentions = reading(finding, evidence)
    sentences = tuple(dict.fromkeys(s for s, m in found_mentions if m.status not in ("negated", "narrowed")))
    if not sentences:
        return OK  # second_reading judges a finding its evidence does not name
    answer = str(item.get("answer") or "").strip().lower().rstrip(".")
    if program in ar.change_programs:
        placed = [(_own_clause(s, m.text), m) for s, m in found_mentions if s in sentences]
        verdict = _change_verdict(answer, display_name(finding), placed)
        return verdict if not verdict.ok else _change_ambiguous(answer, display_name(finding), placed)
    return _severity_verdict(answer, display_name(finding), sentences)
