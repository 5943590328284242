"""The phrasebook of the synthetic report generator: `schemas/vocab/synth_phrases.yaml`, checked and compiled.

The file is checked against its JSON Schema and then against the vocabularies: every finding,
region, severity, change and side it names must exist, and every word that stands for one of
them must be one of its synonyms. Sentence frames are parsed once into pieces that the generator
joins without any string parsing per study.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxrvqa.core.resources import load_checked_yaml
from cxrvqa.core.text import section_rules
from cxrvqa.core.vocab import ancestors, vocabulary
from cxrvqa.errors import ResourceError

FILE = "schemas/vocab/synth_phrases.yaml"
SCHEMA = "synth_phrases.schema.json"
PRESENCES = ("present", "absent", "uncertain")
#: Own-frame groups: the presence they state, and the change (None: none stated).
OWN_GROUPS = {
    "present": ("present", None),
    "absent": ("absent", None),
    "uncertain": ("uncertain", None),
    "resolved": ("absent", "resolved"),
}
#: Slots of generic frames (per fact) and of own frames.
FACT_SLOTS = {"np", "a_np", "the_np", "term", "is", "has", "s"}
OWN_SLOTS = {"side", "sev_adv", "cm", "is", "s"}
TEXT_SLOTS = {"age", "sex", "complaint", "date"}
_SLOT = re.compile(r"\{([A-Za-z_]+?)(\d?)\}")
_MENTION = re.compile(r"\[([^\]]+)\](?:\(([a-z0-9_]+)\))?")
_PREPOSITIONS = ("in the ", "at the ", "at both ", "in both ", "within the ", "in ", "at ")

# Pieces of a compiled template: a str is literal text; tuples are
#   (SLOT, name, fact index, capitalise)   a slot
#   (OPEN, finding id or None)             start of a mention (own frames)
#   (CLOSE,)                               end of a mention
SLOT, OPEN, CLOSE = 0, 1, 2
Piece = str | tuple


@dataclass(frozen=True)
class Term:
    """A name of a finding as written, with the mention's span inside it ("displaced [rib fractures]")."""

    text: str
    start: int
    end: int
    plural: bool


@dataclass(frozen=True)
class Placement:
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class FindingPhrases:
    finding: str
    category: str
    topic: str
    weight: float
    negative: float
    device: float
    terms: tuple[Term, ...]
    plural: tuple[Term, ...]
    negative_terms: tuple[Term, ...]
    article: bool
    sides: tuple[str, ...]
    sites: tuple[str, ...]
    severity: dict[str, tuple[str, ...]] | None  # severity id -> words
    changes: tuple[str, ...]
    impression: bool
    hedge: bool  # may be reported as uncertain
    own: dict[str, tuple[tuple[Piece, ...], ...]]  # own-frame group -> compiled frames


@dataclass(frozen=True)
class Frame:
    id: str
    facts: tuple[str, ...]
    list_range: tuple[int, int] | None
    where: frozenset[str]
    change: str | None
    statement: str | None
    first: str | None
    second: str | None
    inherit: bool
    texts: tuple[tuple[Piece, ...], ...]


@dataclass(frozen=True)
class Statement:
    id: str
    absent: tuple[str, ...]
    topic: str
    texts: tuple[str, ...]
    blocked_by: frozenset[str]  # findings whose presence rules it out (absent ones, their descendants, blocked_by)


@dataclass(frozen=True)
class Phrasebook:
    mix: dict[str, Any]
    headers: dict[str, tuple[str, ...]]
    indications: tuple[tuple[tuple[Piece, ...], ...], ...]  # each a list of compiled sentences
    sexes: dict[str, tuple[str, ...]]
    complaints: dict[str, tuple[str, ...]]
    comparisons: dict[str, tuple[tuple[Piece, ...], ...]]
    techniques: dict[str, tuple[str, ...]]
    fillers: tuple[str, ...]
    statements: dict[str, Statement]
    sides: dict[str, Placement]
    regions: dict[str, Placement]
    adverbs: dict[str, tuple[str, ...]]
    topics: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    findings: dict[str, FindingPhrases]
    frames: dict[str, Frame]
    content_hash: str


def _fail(where: str, problem: str) -> None:
    raise ResourceError(FILE, f"{where}: {problem}")


def parse_template(text: str, where: str, allowed: set[str], mentions: bool = False) -> tuple[Piece, ...]:
    """A template as pieces: literal text, slots and (own frames) mention brackets."""
    pieces: list[Piece] = []
    position = 0
    pattern = re.compile(f"{_SLOT.pattern}|{_MENTION.pattern if mentions else '(?!)'}")
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.append(text[position : match.start()])
        if match.group(1) is not None:
            pieces.append(_slot(match.group(1), match.group(2), where, allowed))
        else:
            inner, finding = match.group(3), match.group(4)
            pieces.append((OPEN, finding))
            pieces.extend(parse_template(inner, where, allowed))
            pieces.append((CLOSE,))
        position = match.end()
    if position < len(text):
        pieces.append(text[position:])
    if not mentions and any(c in text for c in "[]"):
        _fail(where, f"brackets are only allowed in own frames: {text!r}")
    if mentions and not any(isinstance(p, tuple) and p[0] == OPEN for p in pieces):
        _fail(where, f"an own frame needs a [mention]: {text!r}")
    return tuple(pieces)


def _slot(name: str, digit: str, where: str, allowed: set[str]) -> tuple:
    capital = name == "NP" or name[0].isupper()
    base = "np" if name == "NP" else name[0].lower() + name[1:]
    if base not in allowed:
        _fail(where, f"unknown slot {{{name}{digit}}}; expected one of {sorted(allowed)}")
    return (SLOT, base, int(digit) - 1 if digit else 0, capital)


def _term(raw: str, where: str, synonyms: set[str], plural: bool) -> Term:
    match = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)", raw)
    text, start, end = (
        (raw, 0, len(raw))
        if match is None
        else (
            match.group(1) + match.group(2) + match.group(3),
            len(match.group(1)),
            len(match.group(1) + match.group(2)),
        )
    )
    if text[start:end] not in synonyms:
        _fail(where, f"{text[start:end]!r} is not a synonym of it in the vocabulary")
    return Term(text, start, end, plural)


def _contains_phrase(text: str, phrases: list[str]) -> bool:
    lowered = text.lower()
    return any(re.search(rf"(?<![a-z]){re.escape(p)}(?![a-z])", lowered) for p in phrases)


def _placements(data: dict[str, Any], synonyms: dict[str, set[str]], what: str) -> dict[str, Placement]:
    placed = {}
    for item_id, words in data.items():
        if item_id not in synonyms:
            _fail(f"{what}.{item_id}", f"not a {what[:-1]} of the vocabulary")
        for word in words["before"]:
            if word not in synonyms[item_id]:
                _fail(f"{what}.{item_id}", f"{word!r} is not a synonym of {item_id!r}")
        for word in words["after"]:
            bare = next(
                (word[len(p) :] for p in _PREPOSITIONS if word.startswith(p) and word[len(p) :] in synonyms[item_id]),
                word,
            )
            if bare not in synonyms[item_id]:
                _fail(f"{what}.{item_id}", f"{word!r} (without its preposition) is not a synonym of {item_id!r}")
        placed[item_id] = Placement(tuple(words["before"]), tuple(words["after"]))
    return placed


def _descendants(finding: str) -> set[str]:
    return {f for f in vocabulary().findings if finding in ancestors("findings", f)}


@lru_cache(maxsize=1)
def phrasebook() -> Phrasebook:
    """The packaged phrasebook, checked and compiled once per process."""
    return compile_phrasebook(*load_checked_yaml(FILE, SCHEMA))


def compile_phrasebook(data: dict[str, Any], digest: str) -> Phrasebook:
    """Check schema-valid phrasebook data against the vocabularies and compile its frames."""
    vocab = vocabulary()
    change_synonyms = {c["id"]: sorted(c["synonyms"]) for c in vocab.change}
    _check_headers(data)
    scales = _severity_scales(data, {s["id"]: set(s["synonyms"]) for s in vocab.severity})
    sides = _placements(data["sides"], {s["id"]: set(s["synonyms"]) for s in vocab.laterality}, "sides")
    regions = _placements(data["regions"], {rid: set(r["synonyms"]) for rid, r in vocab.regions.items()}, "regions")
    topics = tuple(data["topics"])
    statements = _statements(data, topics)
    findings: dict[str, FindingPhrases] = {}
    for entry in data["findings"]:
        findings[entry["finding"]] = _finding_phrases(entry, findings, regions, scales, change_synonyms, topics)
    groups = {}
    for name, members in data["groups"].items():
        for member in members:
            if member not in findings or not findings[member].terms:
                _fail(f"groups.{name}", f"{member!r} is not a finding with terms in this file")
        groups[name] = tuple(members)
    frames = {entry["id"]: _frame(entry, groups, statements, change_synonyms) for entry in data["frames"]}
    indications = tuple(
        tuple(
            parse_template(s if s.endswith(".") else s + ".", "indications", TEXT_SLOTS)
            for s in re.split(r"(?<=\.) ", text)
        )
        for text in data["indications"]
    )
    comparisons = {
        kind: tuple(parse_template(t, "comparisons", TEXT_SLOTS) for t in texts)
        for kind, texts in data["comparisons"].items()
    }
    return Phrasebook(
        mix=data["mix"],
        headers={k: tuple(v) for k, v in data["headers"].items()},
        indications=indications,
        sexes={k: tuple(v) for k, v in data["sexes"].items()},
        complaints={k: tuple(v) for k, v in data["complaints"].items()},
        comparisons=comparisons,
        techniques={k: tuple(v) for k, v in data["techniques"].items()},
        fillers=tuple(data["fillers"]),
        statements=statements,
        sides=sides,
        regions=regions,
        adverbs=scales["adverb"],
        topics=topics,
        groups=groups,
        findings=findings,
        frames=frames,
        content_hash=digest + vocab.content_hash,
    )


def _check_headers(data: dict[str, Any]) -> None:
    """Every header word is a header of its section in report_sections.yaml."""
    header_section = section_rules().header_section
    for section, words in data["headers"].items():
        for word in words:
            if header_section.get(word.upper()) != section:
                _fail(f"headers.{section}", f"{word!r} is not a {section} header in report_sections.yaml")


def _severity_scales(
    data: dict[str, Any], severity_synonyms: dict[str, set[str]]
) -> dict[str, dict[str, tuple[str, ...]]]:
    """The severity scales ({scale: {severity id: words}}), their words synonyms of their severity."""
    scales: dict[str, dict[str, tuple[str, ...]]] = {}
    for scale, levels in data["severity_scales"].items():
        for level, words in levels.items():
            if level not in severity_synonyms:
                _fail(f"severity_scales.{scale}", f"{level!r} is not a severity id")
            unknown = [w for w in words if w not in severity_synonyms[level]]
            if unknown:
                _fail(f"severity_scales.{scale}.{level}", f"{unknown} are not synonyms of {level!r}")
        scales[scale] = {level: tuple(words) for level, words in levels.items()}
    if "adverb" not in scales:
        _fail("severity_scales", "an 'adverb' scale is needed by own frames ({sev_adv})")
    return scales


def _statements(data: dict[str, Any], topics: tuple[str, ...]) -> dict[str, Statement]:
    """The normal statements, with the findings each one rules out (and their descendants)."""
    vocab = vocabulary()
    statements = {}
    for entry in data["statements"]:
        unknown = [f for f in entry["absent"] + entry.get("blocked_by", []) if f not in vocab.findings]
        if unknown:
            _fail(f"statements.{entry['id']}", f"unknown findings {unknown}")
        if entry["topic"] not in topics and entry["topic"] != "impression":
            _fail(f"statements.{entry['id']}", f"topic {entry['topic']!r} is not in topics")
        blocked = set(entry["absent"] + entry.get("blocked_by", [])).union(*(_descendants(f) for f in entry["absent"]))
        statements[entry["id"]] = Statement(
            entry["id"], tuple(entry["absent"]), entry["topic"], tuple(entry["texts"]), frozenset(blocked)
        )
    return statements


def _finding_phrases(
    entry: dict[str, Any],
    findings: dict[str, FindingPhrases],
    regions: dict[str, Any],
    scales: dict[str, dict[str, tuple[str, ...]]],
    change_synonyms: dict[str, list[str]],
    topics: tuple[str, ...],
) -> FindingPhrases:
    """One finding's phrases, checked against the vocabulary and the entries before it (``findings``)."""
    vocab = vocabulary()
    fid = entry["finding"]
    where = f"findings.{fid}"
    if fid not in vocab.findings:
        _fail(where, "not a finding of the vocabulary")
    if fid in findings:
        _fail(where, "listed twice")
    synonyms = set(vocab.findings[fid]["synonyms"])
    plural_names = set(entry.get("plural", []))
    terms, plural, negative_terms = (
        tuple(_term(t, where, synonyms, t in plural_names) for t in entry.get(key, []))
        for key in ("terms", "plural", "negative_terms")
    )
    for site in entry.get("sites", []):
        if site not in regions:
            _fail(where, f"site {site!r} has no words under regions")
    severity = _severity(entry, scales, where)
    for change in entry.get("changes", []):
        if change not in change_synonyms:
            _fail(where, f"unknown change {change!r}")
    own = _own_frames(entry, where)
    if (entry.get("weight", 0) or entry.get("negative", 0)) and not terms and not own:
        _fail(where, "a finding that is reported needs terms or own frames")
    if entry.get("negative", 0) and not negative_terms and "absent" not in own:
        _fail(where, "a negated finding needs negative_terms or own absent frames")
    category = vocab.findings[fid]["category"]
    topic = entry.get("topic", category)
    if topic not in topics:
        _fail(where, f"topic {topic!r} is not in topics")
    return FindingPhrases(
        finding=fid,
        category=category,
        topic=topic,
        weight=entry.get("weight", 0),
        negative=entry.get("negative", 0),
        device=entry.get("device", 0),
        terms=terms,
        plural=plural,
        negative_terms=negative_terms,
        article=entry.get("article", False),
        sides=tuple(entry.get("sides", [])),
        sites=tuple(entry.get("sites", [])),
        severity=severity,
        changes=tuple(entry.get("changes", [])),
        impression=entry.get("impression", True),
        hedge=entry.get("hedge", True),
        own=own,
    )


def _severity(
    entry: dict[str, Any], scales: dict[str, dict[str, tuple[str, ...]]], where: str
) -> dict[str, tuple[str, ...]] | None:
    """The severity scale a finding names, if any; it must be one of ``scales``."""
    if "severity" not in entry:
        return None
    if entry["severity"] not in scales:
        _fail(where, f"unknown severity scale {entry['severity']!r}")
    return scales[entry["severity"]]


def _own_frames(entry: dict[str, Any], where: str) -> dict[str, tuple]:
    """A finding's own frames ({group: compiled frames}); a finding with sides writes {side} in every one."""
    vocab = vocabulary()
    own = {}
    for group, texts in entry.get("frames", {}).items():
        compiled = []
        for text in texts:
            pieces = parse_template(text, where, OWN_SLOTS, mentions=True)
            for piece in pieces:
                if isinstance(piece, tuple) and piece[0] == OPEN and piece[1] and piece[1] not in vocab.findings:
                    _fail(where, f"unknown finding {piece[1]!r} in {text!r}")
                if isinstance(piece, tuple) and piece[0] == SLOT and piece[1] == "side" and not entry.get("sides"):
                    _fail(where, f"{text!r} has a {{side}} but the finding has no sides")
            compiled.append(pieces)
        own[group] = tuple(compiled)
    if entry.get("sides") and not all(
        any(isinstance(p, tuple) and p[0] == SLOT and p[1] == "side" for p in frame)
        for frames in own.values()
        for frame in frames
    ):
        _fail(where, "a finding with sides needs {side} in every own frame (its side must be written)")
    return own


def _frame(
    entry: dict[str, Any],
    groups: dict[str, tuple[str, ...]],
    statements: dict[str, Statement],
    change_synonyms: dict[str, list[str]],
) -> Frame:
    """One shared frame, its texts compiled and checked against its facts, list, change, groups and statement."""
    where = f"frames.{entry['id']}"
    facts = tuple(entry.get("facts", []))
    list_range = tuple(entry["list"]) if "list" in entry else None
    if not facts and list_range is None:
        _fail(where, "a frame needs facts or a list")
    compiled = []
    for text in entry["texts"]:
        pieces = parse_template(text, where, FACT_SLOTS | {"list"})
        used = {p[2] for p in pieces if isinstance(p, tuple) and p[1] != "list"}
        if used - set(range(len(facts))):
            _fail(where, f"{text!r} names a fact the frame does not have")
        if (list_range is not None) != any(isinstance(p, tuple) and p[1] == "list" for p in pieces):
            _fail(where, f"{text!r}: a frame with `list` needs {{list}} and only then")
        if entry.get("change") and not _contains_phrase(text, change_synonyms.get(entry["change"], [])):
            _fail(where, f"{text!r} says no synonym of change {entry['change']!r}")
        compiled.append(pieces)
    for key in ("first", "second"):
        if key in entry and entry[key] not in groups:
            _fail(where, f"unknown group {entry[key]!r}")
    if "statement" in entry and entry["statement"] not in statements:
        _fail(where, f"unknown statement {entry['statement']!r}")
    if entry.get("change") and entry["change"] not in change_synonyms:
        _fail(where, f"unknown change {entry['change']!r}")
    return Frame(
        id=entry["id"],
        facts=facts,
        list_range=list_range,  # type: ignore[arg-type]
        where=frozenset(entry.get("where", ["findings"])),
        change=entry.get("change"),
        statement=entry.get("statement"),
        first=entry.get("first"),
        second=entry.get("second"),
        inherit=entry.get("inherit", False),
        texts=tuple(compiled),
    )
