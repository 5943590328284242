"""What the answer programs read: one study's scene graph, summarised per finding and region,
and the images it has (view plane, PNG size, boxes in PNG pixels).

Built once per study and shared by every template, so that a program is a few lines of
lookups. Presence per finding merges its observations (present > uncertain > absent); a
present finding makes its vocabulary ancestors present too (pneumonia -> lung opacity).
A negation the report narrows ("no large effusion") answers nothing; a region a finding cannot be
in (schemas/vocab/finding_sites.yaml) is dropped; a side implies a region only where the sites
data says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cxrvqa.core.scene_graph import (
    ATTRIBUTED_TO_ARTIFACT,
    DEID_ADJACENT,
    FINDING_SECTIONS,
    HISTORICAL,
    HYPOTHETICAL,
    OTHER_EXAM,
    PLACE_FROM_CLAUSE,
    QUALIFIED_NEGATION,
    READ_AS_OTHER,
    SLASH_PAIR,
    deid_pattern,
)
from cxrvqa.core.text import ANAPHORS
from cxrvqa.core.vocab import NOT_ABNORMAL, Sites, ancestors, finding_sites, sided_region, vocabulary

_PRESENCE_RANK = {"absent": 0, "uncertain": 1, "present": 2}
#: Changes that say alike that a finding is as it was (`changed_apart` does not count them as two).
_NO_CHANGE = frozenset({"unchanged", "persistent", "chronic"})
#: Observations no question rests on: a narrowed negation, a mention by a de-identification token, another
#: examination's finding (a knee), a finding put down to an artifact, the patient's history, a condition.
_UNUSABLE = frozenset(
    {
        QUALIFIED_NEGATION,
        DEID_ADJACENT,
        OTHER_EXAM,
        ATTRIBUTED_TO_ARTIFACT,
        HISTORICAL,
        HYPOTHETICAL,
        READ_AS_OTHER,
        SLASH_PAIR,
    }
)
#: Of these, the ones that leave a finding unread unless absent: the study is then not understood as a whole (a
#: finding "seen on prior CT chest" may be on this film too: a description without it leaves out the study's one
#: abnormality, round AU).
_NOT_UNDERSTOOD = frozenset({DEID_ADJACENT, ATTRIBUTED_TO_ARTIFACT, SLASH_PAIR, OTHER_EXAM})
#: The certainty of a finding one sentence states and another hedges or denies outright ("No focal airspace
#: disease." beside "Bibasilar streaky airspace opacities."): the report does not commit to it, nor is it
#: merely hedged; no question rests on it.
MIXED = "mixed"


@dataclass
class Fact:
    """Everything the report says about one finding."""

    finding: str
    category: str
    presence: str  # present | uncertain | absent
    certainty: str | None = None  # uncertain: possible | probable | differential | borderline
    derived: bool = False  # only implied by a present descendant
    misplaced: list[str] = field(default_factory=list)  # where the report placed it but it cannot be (a hilar
    # node in the mediastinum; pacemaker leads in the heart)
    partial: bool = False  # a mention of it (or of a descendant) is not understood
    several: bool = False  # a countable finding named in the plural ("granulomas")
    one: bool = False  # a plural-named finding the report names one of ("calcified hilar lymph node")
    nested_places: bool = False  # one mention placed in a region and in a part of it
    over: list[str] = field(default_factory=list)  # where an unlocated kind is said to be (leads over the heart)
    graded_apart: bool = False  # two mentions give it two severities (a moderate thoracic
    # and a mild thoracolumbar scoliosis), or one side's is graded and the other's not
    side_grades: dict[str, set[str | None]] = field(default_factory=dict)  # left/right: the severities said there
    side_changes: dict[str, set[str | None]] = field(default_factory=dict)  # left/right: the changes said there
    changed_apart: bool = False  # two mentions give it two changes, or one side's changed and the other's not
    # ("right basilar atelectasis is improved" beside "left basilar atelectasis": no one change; its `change` is None)
    clause_sides: list[str] = field(default_factory=list)  # sides of mentions placed only from their clause
    # ("opacity with central lucency, ..., projects over
    # right midlung"): maybe where it also is
    regions: list[str] = field(default_factory=list)
    lateralities: list[str] = field(default_factory=list)
    severity: str | None = None
    change: str | None = None
    evidence: list[int] = field(default_factory=list)  # sentence ids
    evidence_at: dict[str, list[int]] = field(default_factory=dict)  # per region: the sentences placing it there

    @property
    def abnormal(self) -> bool:
        return self.category not in NOT_ABNORMAL

    @property
    def hedged(self) -> bool:
        """Uncertain, and not only graded borderline ("heart size at the upper limits of normal" is no possible
        cardiomegaly, nor a reason the study is not normal)."""
        return self.presence == "uncertain" and self.certainty != "borderline"

    @property
    def places(self) -> list[str] | frozenset[str]:
        """Its regions, or the one region where a finding of its kind always is when the report places it
        nowhere (cardiomegaly: the heart)."""
        if self.regions or self.presence == "absent" or self.misplaced:
            return self.regions  # an unplaced absence (derived from "vasculature normal") is nowhere, and a
            # finding placed where its kind is not ("perihilar calcified lymph node": no
            # mediastinal one) is not where its kind usually is
        sites = finding_sites().regions.get(self.finding, frozenset())  # hyperinflation: the lungs
        return sites if len(sites) == 1 else []  # a bone finding may be in the thorax, a shoulder or the neck


@dataclass(frozen=True)
class Box:
    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def as_dict(self) -> dict[str, float | str]:
        return {
            "label": self.label,
            "x_min": round(self.x_min, 1),
            "y_min": round(self.y_min, 1),
            "x_max": round(self.x_max, 1),
            "y_max": round(self.y_max, 1),
        }


@dataclass(frozen=True)
class ImageView:
    image_id: str
    view_position: str  # PA | AP | LL | RL | LATERAL | unknown
    view_plane: str  # frontal | lateral | unknown
    png_cols: int
    png_rows: int
    finding_boxes: tuple[Box, ...] = ()
    region_boxes: tuple[Box, ...] = ()
    split: str | None = None  # the dataset's official split, from its metadata files


@dataclass
class StudyView:
    study_id: str
    patient_id: str
    indication: str | None
    sentences: dict[int, str]
    facts: dict[str, Fact]
    images: tuple[ImageView, ...]
    normal_regions: frozenset[str] = frozenset()  # regions a normal statement declares normal
    normal_at: dict[str, tuple[int, ...]] = field(default_factory=dict)  # region: the sentences declaring it normal
    read_all: bool = False  # every finding/impression sentence was understood
    unnamed_change: bool = False  # a sentence states an operation's changes no finding names (`unlisted_changes`)
    unquotable: frozenset[int] = frozenset()  # sentences that contradict a normal statement
    finding_sentences: frozenset[int] = frozenset()  # the sentences of the finding sections (not the technique's)
    _in_region: dict[str, list[Fact]] = field(default_factory=dict, repr=False)
    pools: dict[tuple, list[str]] = field(default_factory=dict, repr=False)  # argument pools, by template draw
    region_checks: dict[tuple[str, str], bool | None] = field(default_factory=dict, repr=False)  # by qa.programs
    candidates: dict[tuple, list] = field(default_factory=dict, repr=False)  # by qa.generate, per draw
    _evidence_texts: dict[tuple[int, ...], str | None] = field(default_factory=dict, repr=False)

    def presence(self, finding: str, closed_world: bool = False) -> str | None:
        """The finding's presence; closed-world, an unmentioned finding is absent where the report rules out
        a kind it belongs to and it cannot be chronic ("lungs are clear" rules out lung opacity: no
        aspiration; nothing rules out a granuloma or a fracture the report never mentions)."""
        fact = self.facts.get(finding)
        if fact is not None:
            return fact.presence
        if (
            closed_world
            and not vocabulary().findings[finding].get("chronic")
            and any(self.facts[a].presence == "absent" for a in finding_ancestors(finding) if a in self.facts)
        ):
            return "absent"
        return None

    def is_normal_region(self, region: str) -> bool:
        """A normal statement declares the region (or a region containing it) normal."""
        return region in self.normal_regions or any(a in self.normal_regions for a in region_ancestors(region))

    def normal_evidence(self, region: str) -> tuple[int, ...]:
        """The sentences of the normal statements that declare the region (or a region containing it) normal."""
        covering = [r for r in (region, *region_ancestors(region)) if r in self.normal_regions]
        return tuple(dict.fromkeys(i for r in covering for i in self.normal_at.get(r, ())))

    def present(self, abnormal_only: bool = False) -> list[Fact]:
        return [f for f in self.facts.values() if f.presence == "present" and (f.abnormal or not abnormal_only)]

    def leaf_present(self, abnormal_only: bool = True) -> list[Fact]:
        """Present findings that no other present finding refines (pneumonia, not also lung opacity)."""
        return [f for f in self.present(abnormal_only) if not f.derived]

    def evidence_text(self, sentence_ids: list[int]) -> str | None:
        """The evidence sentences joined (each text once), or None when there are none or one is not fit to
        quote: it holds de-identification tokens or a slip a reader marks as the dataset's grammar error (a
        fragment in lower case, "an retrocardiac", "There mild changes", "mediastinum.There"). Memoised: the
        templates of a finding quote the same sentences."""
        key = tuple(sentence_ids)
        if key not in self._evidence_texts:
            self._evidence_texts[key] = self._quoted(sentence_ids)
        return self._evidence_texts[key]

    def _quoted(self, sentence_ids: list[int]) -> str | None:
        if self.unquotable.intersection(sentence_ids):
            return None
        return _quote(tuple(self.sentences[i] for i in dict.fromkeys(sentence_ids) if i in self.sentences))

    def facts_in_region(self, region: str) -> list[Fact]:
        """Findings placed in ``region`` or any region below it (memoised: many templates ask)."""
        found = self._in_region.get(region)
        if found is None:
            inside = region_subtree(region)
            found = self._in_region[region] = [
                f for f in self.facts.values() if not f.derived and any(r in inside for r in f.places)
            ]
        return found


@lru_cache(maxsize=4096)
def _quote(cited: tuple[str, ...]) -> str | None:
    """StudyView.evidence_text of the cited sentence texts (in order, a text cited twice listed twice). Memoised by
    the texts, bounded: the same sentences are quoted across studies ("The lungs are clear.")."""
    texts = list(dict.fromkeys(cited))
    if not texts or (len(texts) < len(cited) and _repeat_before_anaphor(cited)) or not all(map(_quotable, texts)):
        return None
    folded = {t.strip().lower() for t in texts}
    if len(folded) < len(texts):  # "cardiomegaly." and "Cardiomegaly." from the findings and the impression
        return None
    return tidy(" ".join(_stopped(t) for t in texts))


@lru_cache(maxsize=8192)
def _quotable(text: str) -> bool:
    """A sentence without de-identification tokens or slips (_UNQUOTABLE). Memoised by the text, bounded: one
    sentence is cited alone and with others."""
    return not (deid_pattern().search(text) or _UNQUOTABLE.search(text))


#: A sentence that opens by speaking of the one before it (a capitalised anaphor).
ANAPHOR = re.compile(r"\s*(?:" + "|".join(sorted(w.capitalize() for w in ANAPHORS)) + r")\b")


def _repeat_before_anaphor(texts: tuple[str, ...]) -> bool:
    """Whether a sentence quoted once already comes again just before an anaphor: quoting each text once would give
    "This may reflect pulmonary hypertension" the sentence before the repeat ("Dilated pulmonary arteries.
    Moderate hyperinflation of the lungs. [Dilated pulmonary arteries.] This may reflect ...": round BC)."""
    return any(text in texts[:k] and ANAPHOR.match(after) for k, (text, after) in enumerate(zip(texts, texts[1:])))


#: Slips in a report sentence that make it unfit to quote as an answer (the template's sentence is used instead).
_UNQUOTABLE = re.compile(
    r"^\s*[a-z]|\b[Aa]n [b-df-hj-np-tv-z]|\bThere (?!is\b|are\b|has\b|have\b|was\b|were\b|may\b|"
    r"might\b|appears?\b|seems?\b|remains?\b|continues?\b|again\b|also\b|now\b|still\b)[a-z]+|[a-z]{2}\.[A-Z]"
    # two sentences run together ("granulomatous disease Lung volumes are low", "Lungs are
    # clear no effusions") and a word out of place ("The otherwise lungs are clear")
    r"|\b[a-z]{2,} (?:The|There|No|Lungs?|Heart|Left|Right|Within|In|Please|Stable|Normal|Mild|"
    r"Visualized|Bony|Osseous|Cardiac|Pulmonary|Abnormal|Abnormality|Findings|Impression|"
    r"Cardiomediastinal|Mediastinal|Trachea|Chronic|Degenerative|Small|Moderate|Large|Calcified|"
    r"Hyperexpanded|Low|Unchanged|Interval|Possible|Probable)\b"
    r"|\b(?:clear|normal|unremarkable|intact) no\b"
    r"|\b[Tt]he otherwise\b"
    # a word missing: "appear normal limits", "atelectasis the left lung base"
    r"|(?<!within )(?<!of )(?<!the )\bnormal limits\b"
    r"|\b(?:atelectasis|opacity|opacities|effusions?|consolidation|scarring|infiltrates?|granulomas?|"
    r"nodules?|thickening) the\b"
    # number: "There is severe degenerative changes"
    r"|\b[Tt]here is (?:[a-z]+ ){0,3}(?:changes|opacities|effusions|granulomas|nodules|markings|"
    r"calcifications|densities|fractures|infiltrates|findings|contours|volumes|structures)\b"
    # and the other way: "Calcified granuloma are present" (round AD)
    # (a subject of its own, not one of two: "Heart size and mediastinal contour are normal")
    r"|(?:^|[.;] )(?:(?!and\b|or\b)[A-Za-z-]+ ){0,2}(?:granuloma|nodule|opacity|density|effusion|"
    r"calcification|infiltrate|lesion|mass|scar|fracture) are\b"
    # "Deformity of multiple left anterior ribs are present" (round AJ)
    r"|(?:^|[.;] )(?:[A-Za-z-]+ ){0,2}(?:[Dd]eformity|[Ff]racture|[Tt]hickening|[Oo]pacity|"
    r"[Dd]ensity|[Cc]alcification|[Ee]nlargement|[Ww]idening|[Pp]rominence|[Bb]lunting|"
    r"[Ee]levation) of "
    r"(?:[a-z-]+ ){1,4}are\b"
    # a preposition or a word missing: "atelectasis is seen bibasilar region", "Normal heart size
    # mediastinal contours" (round AJ)
    r"|\b(?:is|are) (?:seen|noted|identified|present) (?:bibasilar|bibasal|biapical|basilar|"
    r"apical|perihilar|retrocardiac|bilateral)\b"
    r"|\bsize (?:mediastinal|cardiomediastinal|hilar|pulmonary)\b"
    # two clauses run together or a word missing, as quoted answers read wrong in the rounds up to BD: "Heart size is
    # normal in the lungs are clear", "within normal limits are in the pulmonary vasculature", "expanded and clear
    # airspace disease", "pleural effusion of pneumothorax", "left worse right", "a 9 mm nodule that not
    # definitively calcified", "has increased slightly in size the prior exam"
    r"|\b(?:normal|clear|unremarkable|stable|limits)(?: in)? the (?:lungs?|heart|cardiac|mediastin\w*|"
    r"cardiomediastinal|osseous|bony|pleural)\b"
    r"|\blimits are in\b|\band clear (?:airspace|focal|consolidation|effusion|pneumothorax|infiltrate)"
    r"|\beffusions? of pneumothorax\b|\b(?:left|right) (?:worse|greater|more) (?:left|right)\b|\bthat not\b"
    r"|\bin size the (?:prior|previous)\b"
)
_REPEATED_WORD = re.compile(r"\b(\w+) \1\b", re.IGNORECASE)
_SPACE_BEFORE_STOP = re.compile(r"\s+([.,;:])")
_REPEATED_STOP = re.compile(r"\.{2,}")


def _placed_elsewhere(observation: dict[str, Any], sites: Sites) -> bool:
    """A stated finding of finding_sites.yaml `placed_only` ("density") that the report places nowhere or only
    outside its sites ("bony density over the clavicle"): no finding of the lungs."""
    finding, side = observation["finding"], observation["laterality"] or ""
    return (
        finding in sites.placed_only
        and observation["presence"] != "absent"
        and not any(sites.allows(finding, sided_region(r, side)) for r in observation["regions"])
    )


def _stopped(sentence: str) -> str:
    """A quoted sentence with its full stop: an impression's numbered items have none ("1. Vascular congestion
    2. Stable cardiomegaly"), and run together they read as one ungrammatical sentence (round AJ)."""
    sentence = sentence.rstrip()
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def tidy(text: str) -> str:
    """Quoted report text without its typing slips ("in in", "pneumothorax..", "normal ."): answers
    quote the report, and a reader marks such slips as the dataset's grammar errors."""
    return _REPEATED_STOP.sub(".", _SPACE_BEFORE_STOP.sub(r"\1", _REPEATED_WORD.sub(r"\1", text)))


def plural_noun(word: str) -> str:
    """The regular English plural of a noun ("granuloma": "granulomas", "opacity": "opacities")."""
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def names_several(mention: str, finding: str) -> bool:
    """Whether a mention names a countable finding in the plural: its last word is the plural of the last
    word of the finding's name ("scattered calcified granulomas", "granulomata"; not "heart is large")."""
    entry = vocabulary().findings[finding]
    if entry["number"] != "singular" or not mention:
        return False
    last, head = mention.lower().rsplit(" ", 1)[-1], entry["name"].lower().rsplit(" ", 1)[-1]
    return last != head and last in (plural_noun(head), head + "ta", head[:-2] + "i")


def names_one(mention: str, finding: str) -> bool:
    """Whether a mention names one of a plural-named finding: its last word is the last word of the finding's
    `one` name (findings.yaml: "calcified right hilar lymph node"; not "hilar calcifications")."""
    one = vocabulary().findings[finding].get("one")
    return bool(one and mention) and mention.lower().rsplit(" ", 1)[-1] == one.lower().rsplit(" ", 1)[-1]


@lru_cache(maxsize=None)
def region_subtree(region: str) -> frozenset[str]:
    regions = vocabulary().regions
    return frozenset(r for r in regions if region in region_ancestors(r) or r == region)


def region_ancestors(region: str) -> tuple[str, ...]:
    return ancestors("regions", region)


def finding_ancestors(finding: str) -> tuple[str, ...]:
    return ancestors("findings", finding)


def _implied_region(fact: Fact) -> str | None:
    """The region a side alone implies for this finding ("left-sided opacity": left lung); none without a side."""
    sides = set(fact.lateralities)
    if len(sides) != 1 or not sides <= {"left", "right"}:
        return None
    return finding_sites().by_side.get(fact.finding, {}).get(next(iter(sides)))


def _severity_rank() -> dict[str, int]:
    return {s["id"]: s["rank"] for s in vocabulary().severity}


def study_view(graph: dict, patient_id: str, images: tuple[ImageView, ...] = ()) -> StudyView:
    """The view of one stored scene graph (its JSON as a dict)."""
    sites = finding_sites()
    observations = [
        o
        for o in graph["observations"]
        if not _UNUSABLE & set(o.get("modifiers", ())) and not _placed_elsewhere(o, sites)
    ]
    facts = _merged_facts(observations, sites)
    for finding in {o["finding"] for o in graph["observations"] if ATTRIBUTED_TO_ARTIFACT in o.get("modifiers", ())}:
        fact = facts.get(finding)  # "6 mm nodular opacity in the right upper lobe" ... "This may be artifactual
        if fact is not None and fact.presence == "present":  # secondary to overlapping vascular structures":
            fact.presence, fact.certainty = "uncertain", MIXED  # the report does not commit to it (round AL)
    _derive_parents(facts, sites)
    _mark_doubted(facts, sites)  # after the parents: the silhouette is enlarged whatever fills it
    hidden = [  # also a density or lucency that is no lung finding ("lucency in the right mid clavicle": what is it?)
        o["finding"]
        for o in graph["observations"]
        if o["presence"] != "absent" and (_NOT_UNDERSTOOD & set(o.get("modifiers", ())) or _placed_elsewhere(o, sites))
    ]
    for finding in (f for f in hidden if f is not None):  # "XXXX right perihilar density": the opacities are
        # not all placed
        for name in (finding, *finding_ancestors(finding)):
            if name in facts:
                facts[name].partial = True
    for fact in facts.values():  # "small left pleural effusion": the left pleura (a parent has its children's)
        if not fact.regions and not fact.derived and fact.presence != "absent":
            implied = _implied_region(fact)
            if implied is not None:
                fact.regions.append(implied)
    _drop_blurred_absences(facts, hidden, sites)
    sentences = {s["id"]: s["text"] for s in graph["sentences"]}
    statements = graph.get("statements", [])
    normal_at: dict[str, tuple[int, ...]] = {}
    for st in statements:
        for r in st["regions"]:
            normal_at[r] = (*normal_at.get(r, ()), st["sentence_id"])
    normal_regions = frozenset(normal_at)
    view = StudyView(
        graph["study_id"],
        patient_id,
        graph.get("indication"),
        sentences,
        facts,
        images,
        normal_regions=normal_regions - _regions_of_unread(graph["observations"], normal_regions, sites),
        normal_at=normal_at,
        read_all=_read_all(graph) and not hidden,  # a finding hidden by XXXX is not understood
        unnamed_change=_unnamed_change(graph, facts, sites),
        finding_sentences=frozenset(s["id"] for s in graph["sentences"] if s["section"] in FINDING_SECTIONS),
    )
    _mark_contradicted(view)
    return view


def _mark_doubted(facts: dict[str, Fact], sites: Sites) -> None:
    """A finding stated present while a finding that would explain it is only hedged is undecided (finding_sites.yaml
    `doubted_by`: "Enlarged cardiac silhouette ... differential includes pericardial effusion")."""
    for finding, by in sites.doubted_by.items():
        fact = facts.get(finding)
        if (
            fact is not None
            and fact.presence == "present"
            and any(facts[other].presence == "uncertain" for other in by if other in facts)
        ):
            fact.presence, fact.certainty = "uncertain", MIXED


def _read_all(graph: dict[str, Any]) -> bool:
    """Whether every finding or impression sentence with words was read: it holds an observation or a statement, and
    no finding the vocabulary does not name is said there (the LLM backend keeps "Bilateral cervical ribs are present"
    as an unnamed finding: no "normal chest", no complete list; synthetic rounds W and X)."""
    unnamed = {
        e["sentence_id"]
        for o in graph["observations"]
        if o["finding"] is None and o["presence"] != "absent"
        for e in o["evidence"]
    }
    read = {e["sentence_id"] for o in graph["observations"] for e in o["evidence"]} | {
        st["sentence_id"] for st in graph.get("statements", [])
    }
    read -= unnamed
    return all(
        s["id"] in read or not s["text"].strip(" .") for s in graph["sentences"] if s["section"] in FINDING_SECTIONS
    )


def _unnamed_change(graph: dict[str, Any], facts: dict[str, Fact], sites: Sites) -> bool:
    """Whether a finding sentence states an operation's changes (`unlisted_changes`) that no finding the study
    does not rule out cites."""
    words = sites.unlisted_changes
    if words is None:
        return False
    cited = {i for f in facts.values() if f.presence != "absent" for i in f.evidence}
    return any(
        s["section"] in FINDING_SECTIONS and s["id"] not in cited and words.search(s["text"].lower())
        for s in graph["sentences"]
    )


def _mark_contradicted(view: StudyView) -> None:
    """A finding placed where a normal statement says all is normal ("Left lung clear." beside "Left lower lobe
    airspace disease" of the impression, when the findings put it in the right lower lobe: round AF): where it
    is, is not understood (partial), and the sentences that place it are not quoted as an answer."""
    placing = set()
    for fact in view.facts.values():
        if fact.presence == "present" and not fact.derived and any(view.is_normal_region(r) for r in fact.regions):
            fact.partial = True
            placing.update(fact.evidence)
    view.unquotable = frozenset(placing)


def _merged_facts(observations: list[dict], sites: Sites) -> dict[str, Fact]:
    """One fact per finding: the strongest presence stated, MIXED where one sentence commits to what another
    hedges or denies, and the places, sides, severity, change and evidence of the observations that agree."""
    findings = vocabulary().findings
    merged: dict[str, str] = {}
    stated: dict[str, set[str]] = {}
    stated_absent = [o for o in observations if o["presence"] == "absent" and not o.get("derived_from")]
    denied = {o["finding"] for o in stated_absent if not o["laterality"] and not o["regions"]}  # "no effusion",
    # not "no left effusion"; but a finding stated present nowhere in particular beside one denied somewhere
    # ("pulmonary venous hypertension" beside "bibasilar ... venous engorgement have resolved") is both
    placed_denied = {o["finding"] for o in stated_absent if o["laterality"] or o["regions"]}
    denied |= {
        o["finding"]
        for o in observations
        if o["presence"] == "present" and o["finding"] in placed_denied and not o["laterality"] and not o["regions"]
    }
    for o in observations:
        finding = o["finding"]
        if finding is not None and _PRESENCE_RANK[o["presence"]] >= _PRESENCE_RANK[merged.get(finding, "absent")]:
            merged[finding] = o["presence"]
        if finding is not None:
            stated.setdefault(finding, set()).add(o["presence"])
    facts = {finding: Fact(finding, findings[finding]["category"], presence) for finding, presence in merged.items()}
    for finding, presences in stated.items():  # "mildly enlarged" in the findings, "borderline" in the impression
        if {"present", "uncertain"} <= presences or (presences & {"present", "uncertain"} and finding in denied):
            facts[finding].presence, facts[finding].certainty = "uncertain", MIXED
    ranks = _severity_rank()
    unplaced = _named_unplaced(observations, sites)
    for o in observations:
        fact = facts.get(o["finding"]) if o["finding"] is not None else None
        if fact is not None and o["presence"] == fact.presence:  # "no left effusion" says nothing about where
            if o["finding"] in unplaced and _names_sign(o, sites):
                o = {**o, "regions": [], "laterality": None}
            _add_observation(fact, o, sites, ranks)  # the present right one is
    for fact in facts.values():
        if fact.changed_apart:
            fact.change = None
        if "one" in findings[fact.finding]:  # a few plural-named findings: not a scan of the observations per fact
            fact.one = _one_only(fact, [o for o in observations if o["finding"] == fact.finding])
    return facts


def _one_only(fact: Fact, mentions: list[dict]) -> bool:
    """Whether the report names one of a plural-named finding (findings.yaml `one`): every mention that agrees
    with the fact names one, all on one side (not both), and no sentence names it twice ("Right atrial lead and
    right ventricular lead", "Calcified right hilar lymph node. Calcified left hilar lymph node.": two)."""
    agreeing = [o for o in mentions if o["presence"] == fact.presence]
    sentences = [o["evidence"][0]["sentence_id"] for o in agreeing if o["evidence"]]
    return (
        bool(agreeing)
        and all(names_one(o["name"], fact.finding) for o in agreeing)
        and len({o["laterality"] for o in agreeing}) == 1
        and agreeing[0]["laterality"] != "bilateral"
        and len(sentences) == len(set(sentences))
    )


def _names_sign(o: dict, sites: Sites) -> bool:
    """Whether the observation names its finding by a sign of it (finding_sites.yaml `signs`: "Kerley B lines")."""
    name = o["name"].lower()
    return any(word in name for word in sites.signs.get(o["finding"], ()))


def _named_unplaced(observations: list[dict], sites: Sites) -> frozenset[str]:
    """The findings with signs that the report names, not by a sign, in no region by their own words ("Interstitial
    prominence with Kerley B lines at the bases", "bilateral interstitial opacities": synthetic round AB's LLM build):
    a sign's place is then not theirs."""
    return frozenset(
        o["finding"]
        for o in observations
        if o["finding"] in sites.signs
        and o["presence"] != "absent"
        and (not o["regions"] or PLACE_FROM_CLAUSE in o.get("modifiers", ()))
        and not _names_sign(o, sites)
    )


def _add_observation(fact: Fact, o: dict, sites: Sites, ranks: dict[str, int]) -> None:
    """What one observation that agrees with its fact adds to it."""
    fact.certainty = fact.certainty or o.get("certainty")
    fact.several = fact.several or names_several(o["name"], fact.finding)
    placed = PLACE_FROM_CLAUSE not in o.get("modifiers", ()) and fact.finding not in sites.unlocated
    if not placed and o["laterality"] and o["laterality"] not in fact.clause_sides:
        fact.clause_sides.append(o["laterality"])
    if fact.finding in sites.unlocated and PLACE_FROM_CLAUSE not in o.get("modifiers", ()):
        fact.over.extend(r for r in o["regions"] if r not in fact.over)
    if placed and any(a in o["regions"] for r in o["regions"] for a in region_ancestors(r)):
        fact.nested_places = True  # "calcified bilateral lung and perihilar granulomas": where, in one word?
    for region in o["regions"] if placed else ():
        region = sided_region(region, o["laterality"] or "")  # "the perihilar right lung"
        if not sites.allows(fact.finding, region):
            if region not in fact.misplaced:
                fact.misplaced.append(region)
        else:
            if region not in fact.regions:
                fact.regions.append(region)
            at = fact.evidence_at.setdefault(region, [])
            at.extend(e["sentence_id"] for e in o["evidence"] if e["sentence_id"] not in at)
    if placed and sites.sided(fact.finding) and o["laterality"] and o["laterality"] not in fact.lateralities:
        fact.lateralities.append(o["laterality"])
    if o["severity"] and fact.severity is not None and o["severity"] != fact.severity:
        fact.graded_apart = True
    if placed and o["laterality"] in ("left", "right"):  # "focal right base airspace disease ... minimal airspace
        fact.side_grades.setdefault(o["laterality"], set()).add(o["severity"])  # disease in the left base" (BB)
        fact.graded_apart |= len(fact.side_grades) == 2 and len(set.union(*fact.side_grades.values())) > 1
    if o["severity"] and (fact.severity is None or ranks[o["severity"]] > ranks[fact.severity]):
        fact.severity = o["severity"]
    changes = {o["change"], fact.change}
    if o["change"] and fact.change is not None and len(changes) == 2 and not changes <= _NO_CHANGE:
        fact.changed_apart = True  # not "stable atelectasis" beside "atelectasis persists" (review of session 30)
    if placed and o["laterality"] in ("left", "right"):
        fact.side_changes.setdefault(o["laterality"], set()).add(o["change"])
        said = [(given - {None}) or {None} for given in fact.side_changes.values()]  # a repeat without one
        fact.changed_apart |= len(said) == 2 and said[0] != said[1]
    fact.change = fact.change or o["change"]
    fact.evidence.extend(e["sentence_id"] for e in o["evidence"] if e["sentence_id"] not in fact.evidence)


def _derive_parents(facts: dict[str, Fact], sites: Sites) -> None:
    """A present finding makes its parents present (derived, where and what the children say), and a stated
    finding whose present child is also listed is not a leaf."""
    findings = vocabulary().findings
    for fact in [f for f in facts.values() if f.presence == "present"]:
        for ancestor in finding_ancestors(fact.finding):
            if ancestor in sites.blurred_by and fact.finding in sites.blurred_by[ancestor][0]:
                continue  # a calcified nodule is no lung opacity (nor is it none: see _drop_blurred_absences)
            existing = facts.get(ancestor)
            regions = [r for r in fact.regions if sites.allows(ancestor, r)]  # cardiomegaly's heart is not
            if existing is None:  # in the mediastinum's sites
                facts[ancestor] = Fact(
                    ancestor,
                    findings[ancestor]["category"],
                    "present",
                    derived=True,
                    regions=regions,
                    lateralities=list(fact.lateralities),
                    evidence=list(fact.evidence),
                )
            elif existing.presence != "present":  # "no opacity" but a pneumonia: the child's facts replace it
                existing.presence, existing.derived, existing.certainty = "present", True, None
                existing.regions, existing.lateralities = regions, list(fact.lateralities)
                existing.evidence = list(fact.evidence)
            elif existing.derived:  # a second present child: the parent is where and what both say
                for attribute, values in (
                    ("regions", regions),
                    ("lateralities", fact.lateralities),
                    ("evidence", fact.evidence),
                ):
                    known = getattr(existing, attribute)
                    known.extend(v for v in values if v not in known)
    for fact in facts.values():
        if (
            fact.presence == "present"
            and not fact.derived
            and any(
                other.presence == "present" and fact.finding in finding_ancestors(other.finding)
                for other in facts.values()
            )
        ):
            fact.derived = True
    for fact in facts.values():  # "Borderline heart size, improved mediastinal widening": is the cardiomediastinal
        if (
            fact.derived
            and fact.presence == "present"
            and any(  # silhouette enlarged? Readers split (AI, AL)
                other.certainty == "borderline" and fact.finding in finding_ancestors(other.finding)
                for other in facts.values()
            )
        ):
            fact.presence, fact.certainty = "uncertain", MIXED


def _drop_blurred_absences(facts: dict[str, Fact], hidden: list[str], sites: Sites) -> None:
    """ "lungs clear" and a calcified granuloma: no lung opacity? (finding_sites.yaml `blurred_by`) The absence
    goes where a finding below it or a blurring one is stated, uncertain ("atelectasis versus scar") or hidden by
    a de-identified word ("XXXX scarring left base"), in the region or placed nowhere."""
    for finding, (blurring, region) in sites.blurred_by.items():
        fact = facts.get(finding)
        if fact is None or fact.presence != "absent":
            continue
        inside = region_subtree(region)
        if any(
            other.presence != "absent"
            and (other.finding in blurring or finding in finding_ancestors(other.finding))
            and (not other.regions or any(r in inside for r in other.regions))
            for other in facts.values()
        ) or any(f in blurring or finding in finding_ancestors(f) for f in hidden if f is not None):
            del facts[finding]


def _regions_of_unread(observations: list[dict], normal_regions: frozenset[str], sites: Sites) -> set[str]:
    """The regions a normal statement declares normal in which a finding stated beside a de-identified word
    may lie ("scattered calcified granulomas throughout both lung XXXX. Lungs are clear bilaterally"): the
    finding is there, unread, so no such region is called normal."""
    unread = [
        o["finding"]
        for o in observations
        if o["presence"] != "absent" and o["finding"] is not None and DEID_ADJACENT in o.get("modifiers", ())
    ]
    cut: set[str] = set()
    for finding in unread:
        roots = sites.regions.get(finding)
        cut |= {
            n
            for n in normal_regions
            if roots is None or any(n == r or n in region_ancestors(r) or r in region_ancestors(n) for r in roots)
        }
    return cut
