"""Answer programs: named pure functions from (study, image, arguments) to an answer.

Templates name a program (MIMIC-CXR-VQA style); a program returns None when the study cannot
answer the question (the finding is only hedged, the region is never mentioned, ...), so that
no item is ever made up. Each program declares the arguments it takes and the answer formats
it can fill; `cxrvqa templates lint` checks templates against both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import TYPE_CHECKING, NamedTuple

from cxrvqa.core.scene_graph import deid_pattern
from cxrvqa.core.text import lower_form_field, section_rules
from cxrvqa.core.vocab import finding_sites, in_sentence, sided_region, vocabulary
from cxrvqa.qa.study import (
    ANAPHOR,
    MIXED,
    Box,
    Fact,
    ImageView,
    StudyView,
    finding_ancestors,
    plural_noun,
    region_ancestors,
    region_subtree,
)

if TYPE_CHECKING:
    from cxrvqa.qa.templates import Template


class Part(NamedTuple):
    """A piece of a multi-part answer with its tags."""

    kind: str  # detail | related
    text: str
    findings: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()


class Answer(NamedTuple):
    """What a program answers. A named tuple, not a frozen dataclass: made once per candidate (~600k in a build of
    10k studies), it is built three times as fast."""

    text: str  # the short answer
    polarity: bool | None = None  # True: yes / positive; False: no; None: not a yes/no answer
    evidence: tuple[int, ...] = ()  # sentence ids it rests on
    findings: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    details: tuple[Part, ...] = ()
    related: tuple[Part, ...] = ()
    boxes: tuple[Box, ...] = ()
    distractors: tuple[str, ...] = ()  # multiple choice: wrong options, most plausible first


class Ask(NamedTuple):
    """One question to answer: the study, the image it is asked on (None: the study has none), arguments. A named
    tuple, not a frozen dataclass: made once per candidate (tens of thousands a batch), it is built twice as fast."""

    study: StudyView
    image: ImageView | None
    args: dict[str, str]
    template: "Template"

    @property
    def closed_world(self) -> bool:
        return self.template.closed_world


ProgramFn = Callable[[Ask], Answer | None]
CandidatesFn = Callable[[StudyView, ImageView | None, "Template"], list[dict[str, str]]]


#: The template keys an argument kind's default draw reads (`default_candidates`, `finding_pool`, `region_pool`).
DRAW_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "finding": ("draw.findings", "draw.categories", "draw.exclude_categories"),
    "region": ("draw.regions",),
    "category": ("draw.categories", "draw.exclude_categories"),
    "finding_region": ("draw.findings", "draw.categories", "draw.exclude_categories", "draw.regions"),
    "two_regions": ("draw.regions",),
    "two_findings": ("draw.findings", "draw.categories", "draw.exclude_categories"),
}
#: Every template key a program may or may not use; `templates lint` rejects one its program does not use.
OPTIONAL_KEYS = ("draw.findings", "draw.categories", "draw.exclude_categories", "draw.regions", "negatives", "options")


@dataclass(frozen=True)
class Program:
    name: str
    fn: ProgramFn
    arguments: tuple[str, ...]
    formats: tuple[str, ...]
    candidates: CandidatesFn | None = None  # argument enumeration when the default does not fit
    hidden: tuple[str, ...] = ()  # placeholders a question must not name: they are the answer
    yes_when: str | None = None  # yes/no about one finding: the presence that makes it "yes"
    uses: tuple[str, ...] = ()  # template keys it reads (OPTIONAL_KEYS); others are lint errors
    options: tuple[int, int] | None = None  # multiple choice: the fewest and most options it can fill
    answers: str = ""  # what it answers, one line (`cxrvqa templates programs`)
    source: str | None = None  # None: built in; else the plugin file or entry point it came from
    source_hash: str | None = None  # sha256 (16 hex) of the plugin's source: part of template versions
    lists: bool = False  # answers with a list of findings (its positive share: items naming one)

    @property
    def builtin(self) -> bool:
        return self.source is None

    def describe(self) -> dict[str, object]:
        """The program as `cxrvqa templates programs` lists it."""
        return {
            "name": self.name,
            "answers": self.answers,
            "arguments": list(self.arguments),
            "formats": list(self.formats),
            "yes_when": self.yes_when,
            "hidden": list(self.hidden),
            "uses": list(self.uses),
            "options": list(self.options) if self.options else None,
            "lists": self.lists,
            "source": self.source or "builtin",
            "source_hash": self.source_hash,
        }


PROGRAMS: dict[str, Program] = {}
YES_NO = ("yes_no", "full_sentence", "multi_part")
TEXT = ("short", "full_sentence", "multi_part")
#: Set while a plugin module is imported (cxrvqa.qa.plugins): the programs it registers come from it.
_LOADING: list[tuple[str, str]] = []


def _first_line(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def program(
    name: str,
    arguments: tuple[str, ...],
    formats: tuple[str, ...],
    candidates: CandidatesFn | None = None,
    hidden: tuple[str, ...] = (),
    yes_when: str | None = None,
    *,
    uses: tuple[str, ...] | None = None,
    extra_uses: tuple[str, ...] = (),
    options: tuple[int, int] | None = None,
    answers: str | None = None,
    lists: bool = False,
) -> Callable[[ProgramFn], ProgramFn]:
    """Register an answer program (built in, or in a plugin module: see `cxrvqa.qa.plugins`).

    ``uses``: the template keys (OPTIONAL_KEYS) the program reads; default: the draw keys of its argument
    kinds (DRAW_KEYS) plus ``extra_uses`` (e.g. "negatives" for a program that reads closed-world negatives).
    ``options``: for multiple choice, the (fewest, most) options it can fill (default (4, 4)).
    ``answers``: one line on what it answers (default: the first paragraph of its docstring).
    ``lists``: it answers with a list of findings (the audit charts the share of its items that name one).
    """
    bad = [k for k in (*(uses or ()), *extra_uses) if k not in OPTIONAL_KEYS]
    if bad:
        raise ValueError(f"answer program {name!r}: unknown template keys {bad}; keys are {list(OPTIONAL_KEYS)}")
    if options is not None and not 2 <= options[0] <= options[1] <= 5:
        raise ValueError(f"answer program {name!r}: options must be (fewest, most) within 2..5, found {options}")

    def register(fn: ProgramFn) -> ProgramFn:
        if name in PROGRAMS:
            where = PROGRAMS[name].source or "cxrvqa"
            raise ValueError(f"answer program {name!r} is registered twice (first by {where})")
        used = tuple(
            dict.fromkeys(
                uses if uses is not None else (*(k for kind in arguments for k in DRAW_KEYS.get(kind, ())), *extra_uses)
            )
        )
        chosen = options or ((4, 4) if "multiple_choice" in formats else None)
        if chosen and "options" not in used:
            used += ("options",)
        source, digest = _LOADING[-1] if _LOADING else (None, None)
        PROGRAMS[name] = Program(
            name,
            fn,
            arguments,
            formats,
            candidates,
            hidden,
            yes_when,
            used,
            chosen,
            answers if answers is not None else _first_line(fn.__doc__),
            source,
            digest,
            lists,
        )
        return fn

    return register


# -- names --------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def finding_name(finding: str) -> str:
    return in_sentence(vocabulary().findings[finding]["name"])


def finding_number(finding: str) -> str:
    """singular | plural | mass, from the vocabulary: questions and answers agree with it."""
    return vocabulary().findings[finding]["number"]


def indefinite_article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


@lru_cache(maxsize=None)
def indefinite_finding(finding: str) -> str:
    """The finding as it follows "Is there": "a nodule", "edema", "degenerative changes"."""
    name = finding_name(finding)
    if finding_number(finding) != "singular":
        return name
    return f"{vocabulary().findings[finding].get('article') or indefinite_article(name)} {name}"


@lru_cache(maxsize=None)
def region_name(region: str) -> str:
    return in_sentence(vocabulary().regions[region]["name"])


def category_name(category: str) -> str:
    """How a category reads before a noun ("pleural" abnormalities)."""
    return vocabulary().category_adjectives[category]


def modifier_name(modifier_id: str) -> str:
    return modifier_id.replace("_", " ")


@lru_cache(maxsize=1)
def _interval_changes() -> frozenset[str]:
    return frozenset(c["id"] for c in vocabulary().change if c.get("interval"))


def interval_change(change: str | None) -> bool:
    """A change since a prior study (new, worsened, ...), not an age (chronic, acute)."""
    return change in _interval_changes()


def severity_word(severity: str, name: str) -> str:
    """The severity before a finding's name: an adverb before a name that starts with a participle or
    an -ous adjective ("mildly tortuous aorta", "mildly enlarged ..."), else an adjective."""
    word = modifier_name(severity)
    first = name.split()[0]
    if len(name.split()) > 1 and (first.endswith(("ed", "ous")) or first in ("low", "hyperlucent")):
        return " ".join(
            w + "ly" if w in ("mild", "moderate", "severe", "minimal") else (w[:-1] + "ly" if w.endswith("le") else w)
            for w in word.split()
        )
    return word


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def yes_no(value: bool, **tags: object) -> Answer:
    return Answer("yes" if value else "no", polarity=value, **tags)  # type: ignore[arg-type]


def _most_specific(regions: list[str]) -> list[str]:
    """Drop regions that are ancestors of another listed region (keep 'left lower lobe', not 'left lung')."""
    return list(_most_specific_of(tuple(regions)))


@lru_cache(maxsize=4096)
def _most_specific_of(regions: tuple[str, ...]) -> tuple[str, ...]:
    listed = set(regions)
    return tuple(r for r in regions if not any(r in region_ancestors(other) for other in listed if other != r))


def _tags(fact: Fact) -> dict[str, tuple]:
    return {"evidence": tuple(fact.evidence), "findings": (fact.finding,), "regions": tuple(fact.regions)}


def side_of(fact: Fact) -> str | None:
    """left | right | bilateral from the fact's sides and regions; None when it has no side, or when one
    mention says both sides and another one side only (the report does not say which holds)."""
    # a both-sided region says both sides only when its words did (the extractor's laterality: "bibasilar"),
    # not by itself ("flattened posterior diaphragm": which side is not said)
    sides = set(fact.lateralities) | {vocabulary().regions[r]["laterality"] for r in fact.regions}
    sides &= {"left", "right", "bilateral"} if "bilateral" in fact.lateralities else {"left", "right"}
    if "bilateral" in set(fact.lateralities) and len(set(fact.lateralities)) > 1:
        return None
    if "bilateral" in sides or {"left", "right"} <= sides:
        return "bilateral"
    return next(iter(sides)) if sides else None


@lru_cache(maxsize=None)
def counterpart(region: str) -> str | None:
    """The same region on the other side (left_lower_lobe <-> right_lower_lobe), if the vocabulary has it."""
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if region.startswith(side):
            twin = other + region.removeprefix(side)
            return twin if twin in vocabulary().regions else None
        if region.endswith("_" + side.rstrip("_")):
            twin = region.removesuffix(side.rstrip("_")) + other.rstrip("_")
            return twin if twin in vocabulary().regions else None
    return None


# -- argument pools ------------------------------------------------------------------------
def _category_ok(category: str, template: "Template") -> bool:
    if template.categories:
        return category in template.categories
    return category not in template.exclude_categories


def pool_key(template: "Template", image: ImageView | None) -> tuple:
    """What a finding pool depends on: templates (and images) with equal keys draw from the same pool."""
    return (
        template.needs_boxes,
        image.image_id if image and template.needs_boxes else None,
        template.findings,
        template.categories,
        template.exclude_categories,
        template.closed_world,
    )


def finding_pool(study: StudyView, image: ImageView | None, template: "Template") -> list[str]:
    """Findings a template may ask about: those the report mentions (plus, closed-world, the vocabulary).
    Memoised per study: many templates draw from the same pool."""
    key = pool_key(template, image)
    pool = study.pools.get(key)
    if pool is None:
        pool = study.pools[key] = _finding_pool(study, image, template)
    return pool


def _finding_pool(study: StudyView, image: ImageView | None, template: "Template") -> list[str]:
    if template.needs_boxes == "finding":
        pool = sorted({b.label for b in image.finding_boxes}) if image else []
    elif template.findings:
        pool = list(template.findings)
    elif template.closed_world:
        return list(_vocabulary_pool(template))
    else:
        pool = sorted(study.facts)
    findings = vocabulary().findings
    return [f for f in pool if _category_ok(findings[f]["category"], template)]


_VOCABULARY_POOLS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}


def _vocabulary_pool(template: "Template") -> tuple[str, ...]:
    """A closed-world template's pool: the vocabulary's findings of its categories (the study's findings are among
    them), sorted; the same for every study, so drawn once per categories."""
    key = (template.categories, template.exclude_categories)
    if key not in _VOCABULARY_POOLS:
        findings = vocabulary().findings
        _VOCABULARY_POOLS[key] = tuple(f for f in sorted(findings) if _category_ok(findings[f]["category"], template))
    return _VOCABULARY_POOLS[key]


def region_pool(study: StudyView, template: "Template") -> list[str]:
    """Regions the report mentions and their ancestors (not `chest`), or the template's own list."""
    if template.regions:
        return list(template.regions)
    pool = study.pools.get(("regions",))
    if pool is None:
        pool = study.pools[("regions",)] = _mentioned_regions(study)
    return pool


def _mentioned_regions(study: StudyView) -> list[str]:
    mentioned = {r for fact in study.facts.values() if not fact.derived for r in fact.places}
    return sorted(mentioned | {a for r in mentioned for a in region_ancestors(r)} - {"chest"})


def default_candidates(study: StudyView, image: ImageView | None, template: "Template") -> list[dict[str, str]]:
    kind = template.arguments
    if kind == "none":
        return [{}]
    if kind == "finding":
        return [{"finding": f} for f in finding_pool(study, image, template)]
    if kind == "region":
        return [{"region": r} for r in region_pool(study, template)]
    if kind == "category":
        categories = template.categories or [c for c in vocabulary().categories if c not in template.exclude_categories]
        return [{"category": c} for c in categories]
    if kind == "two_regions":
        return [
            {"region_a": a, "region_b": b}
            for a, b in combinations(region_pool(study, template), 2)
            if a not in region_ancestors(b) and b not in region_ancestors(a)
        ]
    if kind == "two_findings":
        return [{"finding_a": a, "finding_b": b} for a, b in combinations(finding_pool(study, image, template), 2)]
    raise ValueError(f"template {template.id}: arguments {kind!r} need a program with its own candidates")


# -- study level ---------------------------------------------------------------------------
def _abnormal_state(study: StudyView) -> bool | None:
    """True: something abnormal is present or hedged; False: the report only negates and every sentence
    of it was understood; None: it says nothing, leaves a sentence unread, or has only devices (a
    study with sternotomy wires is neither normal nor abnormal) or borderline findings ("the cardiac silhouette
    is borderline enlarged" and nothing else: round AF)."""
    stated = [f for f in study.facts.values() if f.abnormal]
    if any(f.presence == "present" or f.hedged for f in stated):
        return True
    undecided = any(f.presence != "absent" for f in study.facts.values() if f.category == "device" or f.abnormal)
    if (
        undecided
        or not study.read_all
        or not all(
            study.is_normal_region(r)  # "no acute disease" is not "normal"
            for r in finding_sites().normal_study_regions
        )
    ):
        return None
    return False


def _abnormal_evidence(study: StudyView) -> tuple[int, ...]:
    """The sentences of what is abnormal: not of a borderline finding ("heart size at the upper limits of normal"
    is no reason the study is not normal: round AH)."""
    return tuple(
        dict.fromkeys(
            i for f in study.facts.values() if f.abnormal and (f.presence == "present" or f.hedged) for i in f.evidence
        )
    )


@program(
    "is_abnormal",
    ("none",),
    YES_NO,
    answers=(
        "Is anything abnormal (present or hedged) in the study? yes: something is; no: the whole report only negates."
    ),
)
def is_abnormal(ask: Ask) -> Answer | None:
    state = _abnormal_state(ask.study)
    if state is None:
        return None
    leaves = ask.study.leaf_present()
    return yes_no(state, evidence=_abnormal_evidence(ask.study), findings=tuple(f.finding for f in leaves))


@program(
    "is_normal",
    ("none",),
    YES_NO,
    answers=("Is the study normal? yes: the whole report only negates; no: something abnormal is present or hedged."),
)
def is_normal(ask: Ask) -> Answer | None:
    state = _abnormal_state(ask.study)
    if state is None:
        return None
    return yes_no(
        not state, evidence=_abnormal_evidence(ask.study), findings=tuple(f.finding for f in ask.study.leaf_present())
    )


@program(
    "list_abnormal",
    ("none",),
    TEXT,
    answers="The definite abnormal findings of a fully read report (hedged ones as related parts).",
    lists=True,
)
def list_abnormal(ask: Ask) -> Answer | None:
    state = _abnormal_state(ask.study)
    if state is None or not ask.study.read_all:  # a list is only complete when the whole report was read
        return None
    if ask.study.unnamed_change or any(f.finding in finding_sites().unlisted for f in ask.study.present()):
        return None  # surgical clips: in the list or not, readers split (rounds AI, AW, BB); changes of CABG: none
    leaves = sorted(ask.study.leaf_present(), key=lambda f: f.finding)
    hedged = sorted(
        (f for f in ask.study.facts.values() if f.abnormal and f.hedged),  # not a borderline one
        key=lambda f: f.finding,
    )  # (round AO)
    if not leaves:
        text = "no definite abnormality" if hedged else "no abnormality"
    else:  # after "The chest X-ray shows": "a hiatal hernia", not "hiatal hernia"
        text = _join([_indefinite_fact(f) for f in leaves])
    details = tuple(Part("detail", _fact_detail(f), (f.finding,), tuple(f.regions)) for f in leaves)
    related = tuple(Part("related", f"possible {_fact_name(f)}", (f.finding,), tuple(f.regions)) for f in hedged)
    return Answer(
        text,
        polarity=bool(leaves),
        evidence=_abnormal_evidence(ask.study),
        findings=tuple(f.finding for f in leaves),
        regions=tuple(r for f in leaves for r in f.regions),
        details=details,
        related=related,
    )


def _fact_name(fact: Fact) -> str:
    """The fact's finding named in the number the report gives it: "calcified granulomas" (several), "calcified hilar
    lymph node" (one of a plural-named finding: findings.yaml `one`), else the vocabulary's name."""
    if fact.several:
        return _plural_name(fact)
    return _one_name(fact.finding) if fact.one else finding_name(fact.finding)


def _indefinite_fact(fact: Fact) -> str:
    """`_fact_name` as it follows "Is there" or "shows": "a calcified hilar lymph node", "calcified granulomas"."""
    if fact.one:
        name = _one_name(fact.finding)
        return f"{indefinite_article(name)} {name}"
    return _plural_name(fact) if fact.several else indefinite_finding(fact.finding)


def _singular(fact: Fact) -> bool:
    """Whether the fact's name takes a singular verb and article ("a nodule", "a calcified hilar lymph node")."""
    return fact.one or (finding_number(fact.finding) == "singular" and not fact.several)


@lru_cache(maxsize=None)
def _one_name(finding: str) -> str:
    return in_sentence(vocabulary().findings[finding]["one"])


def _plural_name(fact: Fact) -> str:
    """A countable finding the report names in the plural, named so ("scattered calcified granulomas": not "a
    calcified granuloma")."""
    *words, head = finding_name(fact.finding).split()
    return " ".join([*words, plural_noun(head)])


def _fact_detail(fact: Fact, article: bool = False, where: bool = True) -> str:
    """ "mild cardiomegaly", "small pleural effusion in the left pleura (new)"; ``article``: as a noun phrase
    that can follow "there is" ("a small pleural effusion"); ``where=False``: without its place (the
    question names it)."""
    words = (
        [severity_word(fact.severity, finding_name(fact.finding))]
        if fact.severity and fact.finding not in finding_sites().sized
        else []
    )  # "small granuloma": a size, not "mild"
    words.append(_fact_name(fact))
    if article and _singular(fact):
        words.insert(0, indefinite_article(words[0]))
    regions = _located(fact) if where else []
    if regions:
        words.append("in the " + _join([region_name(r) for r in regions]))
    elif where and side_of(fact):
        words.append("on both sides" if side_of(fact) == "bilateral" else f"on the {side_of(fact)}")
    if interval_change(fact.change) or fact.change == "chronic":  # "rib fractures on the left (chronic)": not
        words.append(f"({modifier_name(fact.change)})")  # read as current ones (rounds AI, AK)
    return " ".join(words)


@program(
    "describe_study",
    ("none",),
    ("full_sentence",),
    answers="Every finding of a fully read report, described in one sentence.",
)
def describe_study(ask: Ask) -> Answer | None:
    if not ask.study.facts or not ask.study.read_all or ask.study.unnamed_change:
        return None
    ids = {i for f in ask.study.facts.values() if not f.derived for i in f.evidence}
    # with the sentence a "This could indicate cavitation." speaks of (round AG: not left out), a finding's: not the
    # technique's "Xray Chest PA and Lateral" before "This is an apical lordotic view" (round AT)
    before = {i - 1 for i in ids if i - 1 in ask.study.finding_sentences and ANAPHOR.match(ask.study.sentences[i])}
    ids = tuple(sorted(ids | before))
    leaves = [f for f in ask.study.leaf_present(abnormal_only=False) if f.category != "normal"]  # devices too
    if not leaves and any(f.abnormal and f.hedged for f in ask.study.facts.values()):
        return None  # "calcified ... lymph XXXX which suggest prior histoplasmosis exposure": no "no abnormality"
    text = _join([_fact_detail(f, article=True) for f in leaves]) if leaves else "no abnormality"
    return Answer(text, polarity=None, evidence=ids, findings=tuple(f.finding for f in leaves))


@program(
    "indication",
    ("none",),
    ("short", "full_sentence"),
    answers="The indication (reason for the examination) as a phrase.",
)
def indication(ask: Ask) -> Answer | None:
    """The indication as a phrase: without a repeated header ("INDICATION: ...") or trailing punctuation
    ("PLEURAL EFFUSIONS;"), a form field typed in capitals in lower case with its acronyms kept ("COPD"),
    any other text as written (its first word may be a name: "Burmese male"); diagnosis codes left out
    (",786.50 chest pain"), none for a field that gives no reason ("Unavailable", ",486")."""
    rules, text = section_rules(), (ask.study.indication or "").strip()
    header = rules.header.match(text)
    text = rules.indication_codes.sub(" ", text[header.end() :] if header else text)
    text = " ".join(text.split()).strip(" .;:,")
    if (
        sum(c.isalpha() for c in text) < 3
        or text.upper() in rules.indication_placeholders
        or deid_pattern().search(text)
    ):
        return None
    return Answer(lower_form_field(text))


def _category_facts(study: StudyView, category: str) -> list[Fact]:
    return [f for f in study.facts.values() if f.category == category]


@program(
    "has_category",
    ("category",),
    YES_NO,
    answers="Is a finding of this category present? yes: one is present; no: the report negates the category.",
)
def has_category(ask: Ask) -> Answer | None:
    if _blurred(ask.study, finding_sites().category_regions.get(ask.args["category"])):
        return None
    facts = _category_facts(ask.study, ask.args["category"])
    if any(f.misplaced for f in facts):
        return None  # a calcified node at the hilum: readers do not call it mediastinal, nor the mediastinum clear
    present = _category_present(facts)
    sites, category = finding_sites(), ask.args["category"]
    region = sites.category_regions.get(category)
    if present and region is not None and ask.study.is_normal_region(region):
        return None  # "The lungs are clear." beside "Old granulomatous disease" (calcified nodes): readers split
        # on whether the lungs are abnormal (round AI), as they do on the region (_region_state)
    if present:
        return yes_no(
            True, evidence=tuple(i for f in present for i in f.evidence), findings=tuple(f.finding for f in present)
        )
    if any(f.presence == "uncertain" for f in facts):
        return None
    root = ask.study.facts.get(sites.category_roots.get(category, ""))
    if (region is not None and ask.study.is_normal_region(region)) or (root is not None and root.presence == "absent"):
        return yes_no(
            False, evidence=tuple(i for f in facts for i in f.evidence), findings=tuple(f.finding for f in facts)
        )
    return None  # negating some of a category's findings does not rule the category out


def _category_present(facts: list[Fact]) -> list[Fact]:
    """The category's present findings as the report states them: not a parent only implied by a
    finding of another category (cardiomegaly is not a mediastinal finding)."""
    return sorted((f for f in facts if f.presence == "present" and not f.derived), key=lambda f: f.finding)


@program(
    "list_category",
    ("category",),
    TEXT,
    answers="The present findings of a category, from a fully read report.",
    lists=True,
)
def list_category(ask: Ask) -> Answer | None:
    """All of a category's findings: only when the whole report was read, and none of them is hedged (whether
    a list of "all" of them holds a hedged one is the reader's call)."""
    facts = _category_facts(ask.study, ask.args["category"])
    if (
        not ask.study.read_all
        or any(f.presence == "uncertain" for f in facts)
        or _blurred(ask.study, finding_sites().category_regions.get(ask.args["category"]))
    ):
        return None
    present = _category_present(facts)
    if not present:
        return None
    return Answer(
        _join([_fact_name(f) for f in present]),
        polarity=True,
        evidence=tuple(i for f in present for i in f.evidence),
        findings=tuple(f.finding for f in present),
        details=tuple(Part("detail", _fact_detail(f), (f.finding,), tuple(f.regions)) for f in present),
    )


# -- finding level -------------------------------------------------------------------------
@program(
    "has_finding",
    ("finding",),
    YES_NO,
    yes_when="present",
    answers=(
        "Is the finding present? yes: the report says it is present; no: it negates it (closed world: or "
        "never mentions it)."
    ),
    extra_uses=("negatives",),
)
def has_finding(ask: Ask) -> Answer | None:
    finding = ask.args["finding"]
    presence = ask.study.presence(finding, ask.closed_world)
    if presence not in ("present", "absent"):
        return None
    fact = ask.study.facts.get(finding)
    tags = _tags(fact) if fact else {"findings": (finding,)}
    return yes_no(presence == "present", **tags)


@program(
    "finding_ruled_out",
    ("finding",),
    YES_NO,
    yes_when="absent",
    answers="Has the finding been ruled out? yes: the report explicitly negates it; no: it says it is present.",
)
def finding_ruled_out(ask: Ask) -> Answer | None:
    fact = ask.study.facts.get(ask.args["finding"])
    if fact is None or fact.presence == "uncertain":
        return None
    return yes_no(fact.presence == "absent", **_tags(fact))


@program(
    "finding_uncertain",
    ("finding",),
    YES_NO,
    yes_when="uncertain",
    answers="Is the finding only suspected? yes: the report hedges it; no: it commits to it being present.",
)
def finding_uncertain(ask: Ask) -> Answer | None:
    """Of a finding the report names as present or uncertain ("Is consolidation only suspected?" of a
    ruled-out consolidation presupposes one); not of one with a mention hidden by a de-identified word, which may
    be its hedge ("XXXX represents scarring"); not of a borderline one, which the report grades rather than
    suspects ("heart size upper limits of normal": is cardiomegaly only suspected?)."""
    fact = ask.study.facts.get(ask.args["finding"])
    if (
        fact is None
        or fact.derived
        or fact.presence == "absent"
        or fact.certainty in (MIXED, "borderline")
        or fact.partial
    ):
        return None
    return yes_no(fact.presence == "uncertain", **_tags(fact))


def _present_fact(ask: Ask, key: str = "finding") -> Fact | None:
    fact = ask.study.facts.get(ask.args[key])
    return fact if fact is not None and fact.presence == "present" else None


def _locatable_fact(ask: Ask) -> Fact | None:
    """A present fact that a where / which side question may ask about: not low lung volumes; not a parent only
    implied by its children (the "lung opacity" of a granuloma and an atelectasis is neither's place); not one
    with a mention the report hides by a de-identified word (where it is would be incomplete); not one that a
    finding readers take for it leaves ambiguous (finding_sites.yaml `overlapping`: "right basilar airspace
    disease" beside "left lower lobe consolidation")."""
    fact = _present_fact(ask)
    if fact is None or fact.finding in finding_sites().unlocated or fact.derived or fact.partial:
        return None
    if fact.misplaced or fact.nested_places:  # "left hilar and medial left base granuloma": the hilum is not one
        return None  # of its sites; "bilateral lung and perihilar granulomas": not only
        # the perihilar regions
    if any(side not in fact.lateralities for side in fact.clause_sides):
        return None  # a right opacity placed from its clause beside a left one placed by its own words: not only
        # the left (round AK)
    return None if _overlapped_elsewhere(ask.study, fact) else fact


def _taken_for_stated(study: StudyView, finding: str) -> bool:
    """Whether a finding readers take for this one is stated or hedged, so that offering this one as the finding
    the report rules out is ambiguous ("consolidation ... cleared" beside "persistent right middle lobe airspace
    disease": which is present, consolidation or a tortuous aorta? round AE)."""
    return any(
        study.facts[other].presence != "absent"
        for other in finding_sites().overlapping.get(finding, ())
        if other in study.facts
    )


def _overlapped_elsewhere(study: StudyView, fact: Fact) -> bool:
    """Whether a present (or hedged) finding readers take for this one is placed other than it, or nowhere."""
    for other in finding_sites().overlapping.get(fact.finding, ()):
        seen = study.facts.get(other)
        if (
            seen is not None
            and seen.presence != "absent"
            and (set(_located(seen)) != set(_located(fact)) or set(seen.lateralities) != set(fact.lateralities))
        ):
            return True
    return False


@program(
    "finding_location",
    ("finding",),
    TEXT,
    answers="Where a present finding is: its most specific regions, else its side.",
)
def finding_location(ask: Ask) -> Answer | None:
    fact = _locatable_fact(ask)
    if fact is None:
        return None
    regions = _located(fact)
    if regions and not _covers_its_sides(fact, regions):
        return None  # "increase in right and decrease in left basilar atelectasis": not only the left base
    if regions:
        text = _join([region_name(r) for r in regions])
    elif side_of(fact):
        text = "both sides" if side_of(fact) == "bilateral" else f"the {side_of(fact)} side"
    else:
        return None
    return Answer(text, evidence=tuple(fact.evidence), findings=(fact.finding,), regions=tuple(regions))


def _covers_its_sides(fact: Fact, regions: list[str]) -> bool:
    """Whether the regions are on every side the report gives the finding (a finding on both sides placed only in
    the left base is placed incompletely)."""
    sides = {vocabulary().regions[r]["laterality"] for r in regions}
    return side_of(fact) != "bilateral" or not sides or not sides <= {"left"} and not sides <= {"right"}


def _located(fact: Fact) -> list[str]:
    """The most specific regions of a fact, without one that restates where the finding always is
    ("cardiomegaly": heart; "low lung volumes": lungs)."""
    one_side = side_of(fact) in ("left", "right")  # a right-only blunting is not "in the costophrenic angles"
    return [
        r
        for r in _most_specific(fact.regions)
        if not finding_sites().circular(fact.finding, r)
        and not (one_side and vocabulary().regions[r]["laterality"] == "bilateral")
    ]


@program(
    "finding_laterality", ("finding",), TEXT, answers="Which side a present finding is on: left, right or bilateral."
)
def finding_laterality(ask: Ask) -> Answer | None:
    fact = _locatable_fact(ask)
    side = side_of(fact) if fact else None
    if fact is None or side is None:
        return None
    return Answer(side, **_tags(fact))


def _finding_region_candidates(study: StudyView, image: ImageView | None, template: "Template") -> list[dict[str, str]]:
    """(finding, region) pairs: where a present finding is, and the same region on the other side
    for a finding the report places on one side only."""
    pairs = []
    for finding in finding_pool(study, image, template):
        fact = study.facts.get(finding)
        if fact is None or fact.presence != "present" or fact.derived or finding in finding_sites().unlocated:
            continue
        for region in _located(fact):
            pairs.append({"finding": finding, "region": region})
            twin = counterpart(region)
            if twin is not None:
                pairs.append({"finding": finding, "region": twin})
    if template.regions:  # only the regions the template asks about
        pairs = [p for p in pairs if p["region"] in template.regions]
    return pairs


@program(
    "finding_in_region",
    ("finding_region",),
    YES_NO,
    candidates=_finding_region_candidates,
    answers=(
        "Is the finding in this region? yes: the report places it there; no: it places it only elsewhere "
        "(e.g. the other side)."
    ),
)
def finding_in_region(ask: Ask) -> Answer | None:
    fact = _present_fact(ask)
    region = ask.args["region"]
    if fact is None:
        return None
    inside = region_subtree(region)
    if any(r in inside for r in fact.regions):
        return yes_no(True, **_tags(fact))
    if ask.study.is_normal_region(region):  # a finding placed on the right says nothing of the left lung: the
        evidence = (*fact.evidence, *ask.study.normal_evidence(region))  # normal statement does (round BB)
        return yes_no(False, evidence=tuple(dict.fromkeys(evidence)), findings=(fact.finding,), regions=(region,))
    return None


@program("finding_severity", ("finding",), TEXT, answers="How severe a present finding is (mild, moderate, ...).")
def finding_severity(ask: Ask) -> Answer | None:
    """Of a finding graded once (or alike each time): "how severe is the scoliosis?" of a moderate thoracic and a
    mild thoracolumbar one has no one answer (round AF)."""
    fact = _present_fact(ask)
    if (
        fact is None
        or fact.severity is None
        or fact.finding in finding_sites().sized
        or fact.partial
        or fact.graded_apart
    ):
        return None
    return Answer(modifier_name(fact.severity), **_tags(fact))


@program(
    "finding_change",
    ("finding",),
    TEXT,
    answers="How a present finding changed since the prior study (new, worsened, improved, ...).",
)
def finding_change(ask: Ask) -> Answer | None:
    fact = _present_fact(ask)  # "How has the effusion changed?" presupposes an effusion
    if fact is None or not interval_change(fact.change) or fact.derived or fact.partial:
        return None
    return Answer(modifier_name(fact.change), **_tags(fact))


@program(
    "describe_finding",
    ("finding",),
    ("full_sentence", "multi_part"),
    answers="A present finding described: where, how severe, how it changed.",
)
def describe_finding(ask: Ask) -> Answer | None:
    """Only of a finding the report commits to ("Describe the pneumothorax." presupposes one), and only
    when the report says something about it beyond its presence (where, how severe, how it changed)."""
    fact = _present_fact(ask)
    if fact is None or fact.derived or fact.partial:
        return None
    prefix = "there is" if _singular(fact) or finding_number(fact.finding) == "mass" else "there are"
    details = []
    sites = finding_sites()
    regions = _located(fact)
    if fact.finding not in sites.unlocated and (regions or side_of(fact)):
        where = (
            _join([region_name(r) for r in regions])
            if regions
            else ("both sides" if side_of(fact) == "bilateral" else f"{side_of(fact)} side")
        )
        details.append(Part("detail", f"location: {where}", (fact.finding,), tuple(regions)))
    if fact.severity and fact.finding not in sites.sized:
        details.append(Part("detail", f"severity: {modifier_name(fact.severity)}", (fact.finding,)))
    if interval_change(fact.change):
        details.append(Part("detail", f"change: {modifier_name(fact.change)}", (fact.finding,)))
    if not details:
        return None
    nearby = sorted(
        {
            other.finding
            for r in regions
            for other in ask.study.facts_in_region(r)
            if other.finding != fact.finding and other.presence == "present"
        }
    )
    related = tuple(Part("related", f"also in this region: {finding_name(f)}", (f,), tuple(regions)) for f in nearby)
    return Answer(
        f"{prefix} {_fact_detail(fact, article=True)}",
        polarity=True,
        details=tuple(details),
        related=related,
        **_tags(fact),
    )


def _distractors(candidates: list[str], correct: str) -> tuple[str, ...]:
    family = {correct, *finding_ancestors(correct)}
    return tuple(dict.fromkeys(f for f in candidates if f not in family and correct not in finding_ancestors(f)))


def _finding_distractors(study: StudyView, correct: str, presence: str, template: "Template") -> tuple[str, ...]:
    """Wrong options for a finding question: findings the study has with ``presence`` (same category first),
    then, closed-world only, unmentioned vocabulary findings of the same category."""
    findings = vocabulary().findings
    category = findings[correct]["category"]
    pool = sorted(
        (
            f
            for f, fact in study.facts.items()
            if fact.presence == presence
            and not fact.derived
            and _category_ok(findings[f]["category"], template)
            and (presence != "absent" or not _taken_for_stated(study, f))
        ),
        key=lambda f: (findings[f]["category"] != category, f),
    )
    if template.closed_world and presence == "absent":
        pool += sorted(
            f
            for f, item in findings.items()
            if item["category"] == category
            and f not in study.facts
            and "parent" in item
            and _category_ok(category, template)
        )
    return tuple(finding_name(f) for f in _distractors(pool, correct))


@program(
    "present_finding_choice",
    ("finding",),
    ("multiple_choice",),
    hidden=("finding",),
    answers="Which of the options is present: the present finding among findings the report negates.",
    extra_uses=("negatives",),
    options=(2, 5),
)
def present_finding_choice(ask: Ask) -> Answer | None:
    fact = _present_fact(ask)
    if fact is None or fact.derived:
        return None
    return Answer(
        finding_name(fact.finding),
        distractors=_finding_distractors(ask.study, fact.finding, "absent", ask.template),
        **_tags(fact),
    )


@program(
    "absent_finding_choice",
    ("finding",),
    ("multiple_choice",),
    hidden=("finding",),
    answers="Which of the options has been ruled out: the negated finding among present ones.",
    options=(2, 5),
)
def absent_finding_choice(ask: Ask) -> Answer | None:
    fact = ask.study.facts.get(ask.args["finding"])
    if fact is None or fact.presence != "absent" or _taken_for_stated(ask.study, fact.finding):
        return None
    return Answer(
        finding_name(fact.finding),
        distractors=_finding_distractors(ask.study, fact.finding, "present", ask.template),
        **_tags(fact),
    )


@program(
    "finding_region_choice",
    ("finding",),
    ("multiple_choice",),
    answers=(
        "Where a present finding is, as a choice among regions of the same kind (draw.regions restricts "
        "the regions asked about, e.g. lobes only)."
    ),
    extra_uses=("draw.regions",),
    options=(2, 5),
)
def finding_region_choice(ask: Ask) -> Answer | None:
    """With `draw.regions` (e.g. the five lobes), the answer is the listed region that holds the finding and the
    options are listed regions: a finding placed in a zone, not a lobe, is not asked about."""
    fact = _locatable_fact(ask)
    regions = _located(fact) if fact else []
    if fact is None or len(regions) != 1 or not _covers_its_sides(fact, regions):
        return None
    correct, all_regions = regions[0], vocabulary().regions
    listed = ask.template.regions
    if listed:
        holding = [r for r in listed if r == correct or r in region_ancestors(correct)]
        if len(holding) != 1:
            return None
        correct = holding[0]
        occupied = {r for f in fact.regions for r in (f, *region_ancestors(f), *region_subtree(f))}
        twin = counterpart(correct)
        pool = [r for r in dict.fromkeys([*([twin] if twin in listed else []), *listed]) if r not in occupied]
        return Answer(region_name(correct), distractors=tuple(region_name(r) for r in pool), **_tags(fact))
    kind = correct.rsplit("_", 1)[-1]  # lobe, zone, apex, hilum...: regions of one kind do not overlap
    twin = counterpart(correct)
    parents = {all_regions[r].get("parent") for r in (correct, twin) if r is not None}
    occupied = {r for f in fact.regions for r in (f, *region_ancestors(f), *region_subtree(f))}
    same_kind = sorted(
        r for r, item in all_regions.items() if item.get("parent") in parents and r.rsplit("_", 1)[-1] == kind
    )
    pool = [r for r in dict.fromkeys([*([twin] if twin else []), *same_kind]) if r not in occupied]
    return Answer(region_name(correct), distractors=tuple(region_name(r) for r in pool), **_tags(fact))


@program(
    "which_of_two_findings",
    ("two_findings",),
    TEXT,
    answers="Which of two findings is present, when the report says one is present and the other absent.",
    extra_uses=("negatives",),
)
def which_of_two_findings(ask: Ask) -> Answer | None:
    a, b = ask.args["finding_a"], ask.args["finding_b"]
    if a in finding_ancestors(b) or b in finding_ancestors(a):
        return None  # "consolidation or lung opacity?": consolidation is a lung opacity (rounds BC, BD)
    pa, pb = ask.study.presence(a, ask.closed_world), ask.study.presence(b, ask.closed_world)
    if {pa, pb} != {"present", "absent"}:
        return None
    present, absent = (a, b) if pa == "present" else (b, a)
    if _taken_for_stated(ask.study, absent):
        return None
    evidence = tuple(i for f in (a, b) if f in ask.study.facts for i in ask.study.facts[f].evidence)
    # the present one first: the evaluation profile balances each pair on it (migration 0020)
    return Answer(finding_name(present), evidence=evidence, findings=(present, absent))


# -- region level --------------------------------------------------------------------------
def _per_region(study: StudyView, check: Callable[[StudyView, str], bool | None], region: str) -> bool | None:
    """``check`` of the study and region, once per study: the region templates ask it of the same regions again
    and again."""
    key = (check.__name__, region)
    if key not in study.region_checks:
        study.region_checks[key] = check(study, region)
    return study.region_checks[key]


def _region_state(study: StudyView, region: str) -> bool | None:
    """True: an abnormal finding is present there; False: a normal statement declares the region normal
    (negated findings alone do not: "no pneumothorax" says nothing of a nodule); None otherwise, and where the
    report contradicts itself ("Left lung clear." beside "left lower lobe pneumonia")."""
    return _per_region(study, _read_region_state, region)


def _read_region_state(study: StudyView, region: str) -> bool | None:
    if _blurred(study, region):
        return None
    facts = [f for f in study.facts_in_region(region) if f.abnormal]
    if any(f.presence == "present" for f in facts):
        return None if region in study.normal_regions else True
    if any(f.presence == "uncertain" for f in facts) or not study.read_all or _elsewhere_maybe(study, region):
        return None
    return False if study.is_normal_region(region) else None


def _blurred(study: StudyView, region: str | None) -> bool:
    """Whether a reported finding makes questions about the region ambiguous (a tortuous aorta, for the
    mediastinum: schemas/vocab/finding_sites.yaml `blurs`)."""
    return region is not None and bool(_per_region(study, _read_blurred, region))


def _read_blurred(study: StudyView, region: str) -> bool:
    blurs = finding_sites().blurs
    return any(region in blurs.get(f.finding, ()) for f in study.facts.values() if f.presence != "absent")


def _elsewhere_maybe(study: StudyView, region: str) -> bool:
    """Whether a stated abnormal finding not placed in ``region`` may still be there, so that a reader would
    not call the region normal nor a list of its findings complete: one placed only in a region containing it
    ("granulomatous disease" of the lungs, for the left lung), one placed nowhere that may be anywhere or in
    a region containing it, or one on the region's side (a right pneumothorax, for the right lung)."""
    return bool(_per_region(study, _read_elsewhere_maybe, region))


def _read_elsewhere_maybe(study: StudyView, region: str) -> bool:
    inside, around = set(region_subtree(region)), set(region_ancestors(region)) | {region}
    side = vocabulary().regions[region]["laterality"]
    sites = finding_sites()
    for fact in study.facts.values():
        if not fact.abnormal or fact.presence == "absent" or fact.derived or inside & set(fact.places):
            continue
        if around & set(fact.places):
            return True
        if not fact.regions and (
            fact.finding not in sites.regions
            or around & sites.regions[fact.finding]
            or inside & sites.regions[fact.finding]
        ):  # spine changes, for the chest
            return True
        if any(sided_region(p, s) in inside for p in fact.places for s in ("left", "right")):
            return True  # "apical oligemia suggestive of emphysema": the apices, each lung's too
        if side in ("left", "right", "bilateral") and side_of(fact) in (
            {"bilateral", "left", "right"} if side == "bilateral" else {"bilateral", side}
        ):
            return True
    return False


def _region_tags(study: StudyView, *regions: str) -> dict[str, tuple]:
    """The findings present in the regions and the sentences that place them there (not a sentence placing the same
    finding elsewhere: round AM cited a right midlung opacity for the left lung)."""
    placed = [(r, f) for r in regions for f in study.facts_in_region(r) if f.abnormal and f.presence == "present"]
    evidence = [
        i
        for r, f in placed
        for i in ([i for at, ids in f.evidence_at.items() if at in region_subtree(r) for i in ids] or f.evidence)
    ]
    return {
        "evidence": tuple(dict.fromkeys(evidence)),
        "findings": tuple(dict.fromkeys(f.finding for _, f in placed)),
        "regions": regions,
    }


@program(
    "region_abnormal",
    ("region",),
    YES_NO,
    answers=("Is the region abnormal? yes: an abnormal finding is present there; no: a normal statement covers it."),
    extra_uses=("negatives",),
)
def region_abnormal(ask: Ask) -> Answer | None:
    state = _region_state(ask.study, ask.args["region"])
    return None if state is None else yes_no(state, **_region_tags(ask.study, ask.args["region"]))


@program(
    "describe_region",
    ("region",),
    ("full_sentence", "multi_part"),
    answers="What the report says of a region: its present findings, or that it is normal.",
    extra_uses=("negatives",),
)
def describe_region(ask: Ask) -> Answer | None:
    facts = sorted(ask.study.facts_in_region(ask.args["region"]), key=lambda f: f.finding)
    if (
        not facts
        or not ask.study.read_all
        or _elsewhere_maybe(ask.study, ask.args["region"])
        or _blurred(ask.study, ask.args["region"])
    ):
        return None
    present = [f for f in facts if f.presence == "present"]
    if not present and _region_state(ask.study, ask.args["region"]) is not False:
        return None  # negated findings alone do not make a region normal
    text = _join([_fact_detail(f, article=True, where=False) for f in present]) if present else "no abnormality"
    cited = present or facts  # the sentences of what the answer states (not of the negations beside it)
    return Answer(
        text,
        polarity=bool(present),
        evidence=tuple(dict.fromkeys(i for f in cited for i in f.evidence)),
        findings=tuple(f.finding for f in facts),
        regions=(ask.args["region"],),
        details=tuple(Part("detail", _fact_detail(f), (f.finding,), tuple(f.regions)) for f in present),
    )


@program(
    "list_region_findings",
    ("region",),
    TEXT,
    answers="The present findings of a region, from a fully read report.",
    extra_uses=("draw.exclude_categories",),
    lists=True,
)
def list_region_findings(ask: Ask) -> Answer | None:
    """All of a region's findings: only when the whole report was read and no finding placed elsewhere or
    nowhere may be there too (a list that omits one is false), none of its findings is hedged, and nothing of
    an excluded kind is said to be there ("all findings in the heart" without the pacemaker leads projecting
    over it: incomplete to a reader, round AE)."""
    inside = region_subtree(ask.args["region"])
    placed = ask.study.facts_in_region(ask.args["region"])
    facts = [f for f in placed if f.category not in ask.template.exclude_categories]
    if any(f.presence == "present" and f.category in ask.template.exclude_categories for f in placed) or any(
        f.presence == "present" and f not in placed and inside.intersection(f.misplaced + f.over)
        for f in ask.study.facts.values()
    ):
        return None
    if (
        not ask.study.read_all
        or _elsewhere_maybe(ask.study, ask.args["region"])
        or _blurred(ask.study, ask.args["region"])
        or any(f.presence == "uncertain" for f in facts)
    ):
        return None
    apart = {r for a in finding_sites().apart if ask.args["region"] not in region_subtree(a) for r in region_subtree(a)}
    if any(f.presence == "present" and apart.intersection(f.over + f.regions) for f in facts):
        return None  # "surgical clips in the right upper quadrant" are no finding in the chest (rounds AJ, AN)
    present = sorted((f for f in facts if f.presence == "present"), key=lambda f: f.finding)
    if not present:
        return None
    return Answer(
        _join([_fact_name(f) for f in present]),
        evidence=tuple(dict.fromkeys(i for f in present for i in f.evidence)),
        findings=tuple(f.finding for f in present),
        regions=(ask.args["region"],),
    )


@program(
    "either_region_abnormal",
    ("two_regions",),
    YES_NO,
    answers="Is either of two regions abnormal? yes: one is; no: both are declared normal.",
    extra_uses=("negatives",),
)
def either_region_abnormal(ask: Ask) -> Answer | None:
    a, b = ask.args["region_a"], ask.args["region_b"]
    states = [_region_state(ask.study, r) for r in (a, b)]
    if True in states:
        return yes_no(True, **_region_tags(ask.study, a, b))
    return None if None in states else yes_no(False, **_region_tags(ask.study, a, b))


@program(
    "both_regions_abnormal",
    ("two_regions",),
    YES_NO,
    answers="Are both regions abnormal? yes: both are; no: at least one is declared normal.",
    extra_uses=("negatives",),
)
def both_regions_abnormal(ask: Ask) -> Answer | None:
    a, b = ask.args["region_a"], ask.args["region_b"]
    states = [_region_state(ask.study, r) for r in (a, b)]
    if False in states:
        return yes_no(False, **_region_tags(ask.study, a, b))
    return None if None in states else yes_no(True, **_region_tags(ask.study, a, b))


# -- image level ---------------------------------------------------------------------------
VIEW_NAMES = {
    "PA": "PA (posteroanterior)",
    "AP": "AP (anteroposterior)",
    "LL": "lateral",
    "RL": "lateral",
    "LATERAL": "lateral",
}


@program(
    "view_position",
    ("none",),
    ("short", "full_sentence"),
    answers="The view position of the image (PA, AP, lateral, ...).",
)
def view_position(ask: Ask) -> Answer | None:
    if ask.image is None or ask.image.view_position not in VIEW_NAMES:
        return None
    return Answer(VIEW_NAMES[ask.image.view_position])


@program("is_frontal", ("none",), YES_NO, answers="Is the image a frontal view? yes: frontal; no: lateral.")
def is_frontal(ask: Ask) -> Answer | None:
    if ask.image is None or ask.image.view_plane == "unknown":
        return None
    return yes_no(ask.image.view_plane == "frontal")


def _boxes(ask: Ask) -> tuple[Box, ...]:
    return tuple(b for b in ask.image.finding_boxes if b.label == ask.args["finding"]) if ask.image else ()


@program("finding_boxes", ("finding",), ("box",), answers="The boxes of a finding on the image, in PNG pixels.")
def finding_boxes(ask: Ask) -> Answer | None:
    boxes = _boxes(ask)
    if not boxes:
        return None
    text = "; ".join(
        "[" + ", ".join(str(math.floor(v + 0.5)) for v in (b.x_min, b.y_min, b.x_max, b.y_max)) + "]" for b in boxes
    )  # pixels rounded half up (format's half-to-even made 62.5 -> 62)
    return Answer(text, findings=(ask.args["finding"],), boxes=boxes)


@program("finding_box_count", ("finding",), ("short",), answers="How many boxes of a finding the image has.")
def finding_box_count(ask: Ask) -> Answer | None:
    boxes = _boxes(ask)
    return Answer(str(len(boxes)), findings=(ask.args["finding"],), boxes=boxes) if boxes else None


#: Region boxes that give the cardiothoracic ratio: heart width over thorax width.
CTR_REGIONS = ("heart", "chest")


def cardiothoracic_ratio_of(image: ImageView | None) -> tuple[float, tuple[Box, Box]] | None:
    if image is None:
        return None
    boxes = {b.label: b for b in image.region_boxes}
    heart, thorax = (boxes.get(r) for r in CTR_REGIONS)
    if heart is None or thorax is None or thorax.x_max - thorax.x_min <= 0:
        return None
    return (heart.x_max - heart.x_min) / (thorax.x_max - thorax.x_min), (heart, thorax)


@program(
    "cardiothoracic_ratio",
    ("none",),
    ("short",),
    answers="The cardiothoracic ratio measured on the heart and lung boxes.",
)
def cardiothoracic_ratio(ask: Ask) -> Answer | None:
    found = cardiothoracic_ratio_of(ask.image)
    if found is None:
        return None
    ratio, boxes = found
    return Answer(f"{ratio:.2f}", regions=CTR_REGIONS, boxes=boxes)


@program(
    "cardiothoracic_ratio_enlarged",
    ("none",),
    YES_NO,
    answers="Is the cardiothoracic ratio above 0.5? yes: it is; no: it is not.",
)
def cardiothoracic_ratio_enlarged(ask: Ask) -> Answer | None:
    found = cardiothoracic_ratio_of(ask.image)
    if found is None:
        return None
    ratio, boxes = found
    return yes_no(ratio > 0.5, regions=CTR_REGIONS, boxes=boxes)
