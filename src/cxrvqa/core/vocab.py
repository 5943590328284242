"""The findings, regions and modifiers vocabularies, and the enums generated from them.

The YAML files in `schemas/vocab/` are the one source of truth: code never lists a
finding, region or modifier itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cxrvqa.core.resources import compile_any, load_checked_yaml
from cxrvqa.errors import ResourceError

#: Categories whose findings do not make a study abnormal (labels14 `normal`, QA abnormality questions).
NOT_ABNORMAL = frozenset({"device", "technical", "normal"})

FILES = {
    "findings": ("schemas/vocab/findings.yaml", "findings_vocab.schema.json"),
    "regions": ("schemas/vocab/regions.yaml", "regions_vocab.schema.json"),
    "modifiers": ("schemas/vocab/modifiers.yaml", "modifiers_vocab.schema.json"),
}


@dataclass(frozen=True)
class Vocabulary:
    findings: dict[str, dict[str, Any]]
    categories: list[str]
    category_adjectives: dict[str, str]
    regions: dict[str, dict[str, Any]]
    severity: list[dict[str, Any]]
    change: list[dict[str, Any]]
    laterality: list[dict[str, Any]]
    content_hash: str  # of the three files together: goes into provenance


def _check_tree(items: dict[str, dict[str, Any]], file: str) -> None:
    for item_id, item in items.items():
        seen = {item_id}
        parent = item.get("parent")
        while parent is not None:
            if parent not in items:
                raise ResourceError(file, f"{item_id!r} has parent {parent!r}, which is not defined")
            if parent in seen:
                raise ResourceError(file, f"{item_id!r} is in a parent cycle")
            seen.add(parent)
            parent = items[parent].get("parent")


@lru_cache(maxsize=None)
def ancestors(tree: str, item_id: str) -> tuple[str, ...]:
    """The parents of a finding or region (``tree`` = "findings" or "regions"), nearest first."""
    items = getattr(vocabulary(), tree)
    chain, parent = [], items[item_id].get("parent")
    while parent is not None:
        chain.append(parent)
        parent = items[parent].get("parent")
    return tuple(chain)


def _unique_synonyms(items: list[dict[str, Any]], file: str) -> None:
    owner: dict[str, str] = {}
    for item in items:
        for phrase in item["synonyms"]:
            if owner.setdefault(phrase, item["id"]) != item["id"]:
                raise ResourceError(file, f"synonym {phrase!r} belongs to both {owner[phrase]!r} and {item['id']!r}")


def in_sentence(name: str) -> str:
    """A vocabulary name as it reads inside a sentence: lower case, unless it is an acronym ("COPD")."""
    return name if name[1:2].isupper() else name[0].lower() + name[1:]


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    loaded = {name: load_checked_yaml(path, schema) for name, (path, schema) in FILES.items()}
    findings_data, regions_data, modifiers_data = (loaded[n][0] for n in ("findings", "regions", "modifiers"))
    for name, items in (("findings", findings_data["findings"]), ("regions", regions_data["regions"])):
        ids = [item["id"] for item in items]
        if len(ids) != len(set(ids)):
            raise ResourceError(FILES[name][0], "ids are not unique")
        _unique_synonyms(items, FILES[name][0])
    findings = {f["id"]: f for f in findings_data["findings"]}
    unknown = sorted(({f["category"] for f in findings.values()} | NOT_ABNORMAL) - set(findings_data["categories"]))
    if unknown:
        raise ResourceError(FILES["findings"][0], f"categories {unknown} are used but not declared")
    adjectives = findings_data["category_adjectives"]
    if set(adjectives) != set(findings_data["categories"]):
        raise ResourceError(
            FILES["findings"][0],
            f"category_adjectives: expected one per category "
            f"{sorted(findings_data['categories'])}, found {sorted(adjectives)}",
        )
    regions = {r["id"]: r for r in regions_data["regions"]}
    _check_tree(findings, FILES["findings"][0])
    _check_tree(regions, FILES["regions"][0])
    digest = "".join(loaded[n][1] for n in ("findings", "regions", "modifiers"))
    return Vocabulary(
        findings,
        findings_data["categories"],
        adjectives,
        regions,
        modifiers_data["severity"],
        modifiers_data["change"],
        modifiers_data["laterality"],
        digest[:16],
    )


@dataclass(frozen=True)
class Sites:
    """schemas/vocab/finding_sites.yaml resolved per finding: where it can be, and what a side implies."""

    regions: dict[str, frozenset[str]]  # finding -> region roots it can be in (absent: anywhere)
    by_side: dict[str, dict[str, str]]  # finding -> {left|right: region}
    category_regions: dict[str, str]  # category -> the region its findings are in
    category_roots: dict[str, str]  # category -> the finding whose negation rules it all out
    normal_study_regions: tuple[str, ...]  # what a report must call normal for a "normal" study
    unlocated: frozenset[str]  # findings of a whole organ, devices: no location questions
    sized: frozenset[str]  # severity words said of them are sizes: no severity questions
    unsided: frozenset[str]  # midline or single organs: a side word is not theirs
    blurs: dict[str, frozenset[str]]  # finding -> regions whose questions it makes ambiguous
    placed_only: frozenset[str]  # findings that count only where placed in their sites
    signs: dict[str, tuple[str, ...]]  # finding -> words naming a sign of it, whose place is only the sign's
    blurred_by: dict[str, tuple[frozenset[str], str]]  # finding -> (present findings, region) that make its
    # absence ambiguous and do not imply it present
    overlapping: dict[str, frozenset[str]]  # finding -> the findings readers take for it (not itself)
    doubted_by: dict[str, frozenset[str]]  # finding -> findings whose hedged mention leaves it undecided
    apart: frozenset[str]  # regions on the film readers do not take for part of a region
    # containing them (the abdomen, for "the chest")
    unlisted: frozenset[str]  # findings (with those below them) no list of abnormal findings is made beside
    unlisted_changes: re.Pattern[str] | None  # words of an operation's changes the vocabulary does not name
    content_hash: str

    def allows(self, finding: str, region: str) -> bool:
        roots = self.regions.get(finding)
        return roots is None or region in roots or any(a in roots for a in ancestors("regions", region))

    def sided(self, finding: str) -> bool:
        return finding not in self.unsided

    def circular(self, finding: str, region: str) -> bool:
        """A location that only restates where the finding always is or its side ("cardiomegaly": heart;
        "degenerative changes of the spine": spine; "elevated hemidiaphragm": right hemidiaphragm)."""
        return (
            region in self.regions.get(finding, ())
            or region in self.by_side.get(finding, {}).values()
            or _names_region(finding, region)
        )


@lru_cache(maxsize=None)
def _names_region(finding: str, region: str) -> bool:
    """Whether the finding's name says the region ("spinal degenerative changes": the spine)."""
    name = vocabulary().findings[finding]["name"].lower()
    words = vocabulary().regions[region]
    return any(re.search(rf"\b{re.escape(w)}\b", name) for w in [words["name"].lower(), *words["synonyms"]])


@lru_cache(maxsize=1)
def finding_sites() -> Sites:
    file = "schemas/vocab/finding_sites.yaml"
    data, digest = load_checked_yaml(file, "finding_sites.schema.json")
    vocab = vocabulary()
    named = _named_groups(file, data)
    regions, by_side, unlocated, sized, unsided, blurs = {}, {}, set(), set(), set(), {}
    for finding in vocab.findings:
        group = next((named[f] for f in (finding, *ancestors("findings", finding)) if f in named), None)
        if group is not None:
            regions[finding] = frozenset(group["regions"])
            by_side[finding] = dict(group.get("by_side", {}))
            if group.get("unlocated"):
                unlocated.add(finding)
            if group.get("sized"):
                sized.add(finding)
            if group.get("sided") is False:
                unsided.add(finding)
            if group.get("blurs"):
                blurs[finding] = frozenset(group["blurs"])
    sized |= set(data.get("sized_only", ()))
    unknown = sorted(set(data["normal_study_regions"]) - set(vocab.regions)) or sorted(sized - set(vocab.findings))
    if unknown:
        raise ResourceError(file, f"normal_study_regions / sized_only: not in the vocabulary: {unknown}")
    placed_only, unlisted = frozenset(data.get("placed_only", ())), frozenset(data.get("unlisted", ()))
    if (placed_only | unlisted) - set(vocab.findings):
        unknown = sorted((placed_only | unlisted) - set(vocab.findings))
        raise ResourceError(file, f"placed_only / unlisted: not in the vocabulary: {unknown}")
    blurred = _blurred_by(file, data.get("blurred_by", {}))
    overlapping = _overlapping(file, data.get("overlapping", ()))
    doubted = {finding: frozenset(by) for finding, by in data.get("doubted_by", {}).items()}
    if unknown := sorted({f for finding, by in doubted.items() for f in (finding, *by)} - set(vocab.findings)):
        raise ResourceError(file, f"doubted_by: not in the vocabulary: {unknown}")
    signs = {finding: tuple(words) for finding, words in data.get("signs", {}).items()}
    if unknown := sorted(set(signs) - set(vocab.findings)):
        raise ResourceError(file, f"signs: not in the vocabulary: {unknown}")
    apart = frozenset(data.get("apart", ()))
    if apart - set(vocab.regions):
        raise ResourceError(file, f"apart: not in the vocabulary: {sorted(apart - set(vocab.regions))}")
    return Sites(
        regions,
        by_side,
        data["category_regions"],
        data["category_roots"],
        tuple(data["normal_study_regions"]),
        frozenset(unlocated),
        frozenset(sized),
        frozenset(unsided),
        blurs,
        placed_only,
        signs,
        blurred,
        overlapping,
        doubted,
        apart,
        frozenset(f for f in vocab.findings if unlisted & {f, *ancestors("findings", f)}),
        compile_any(data["unlisted_changes"], file, "unlisted_changes") if data.get("unlisted_changes") else None,
        digest,
    )


def _named_groups(file: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """finding -> the group that names it, once the categories' regions and roots and the groups are checked
    against the vocabulary (a finding is in one group at most)."""
    vocab, named = vocabulary(), {}
    for category, region in data["category_regions"].items():
        if category not in vocab.categories or region not in vocab.regions:
            raise ResourceError(
                file, f"category_regions: expected a category and a region, found {category!r}: {region!r}"
            )
    for category, finding in data["category_roots"].items():
        if category not in vocab.categories or vocab.findings.get(finding, {}).get("category") != category:
            raise ResourceError(
                file, f"category_roots: expected a category and one of its findings, found {category!r}: {finding!r}"
            )
    for group in data["groups"]:
        for region in [*group["regions"], *group.get("by_side", {}).values(), *group.get("blurs", [])]:
            if region not in vocab.regions:
                raise ResourceError(file, f"group {group['id']!r} names unknown region {region!r}")
        for finding in group["findings"]:
            if finding not in vocab.findings:
                raise ResourceError(file, f"group {group['id']!r} names unknown finding {finding!r}")
            if named.setdefault(finding, group) is not group:
                raise ResourceError(
                    file, f"finding {finding!r} is in groups {named[finding]['id']!r} and {group['id']!r}"
                )
    return named


def _blurred_by(file: str, entries: dict[str, dict[str, Any]]) -> dict[str, tuple[frozenset[str], str]]:
    """finding -> (the findings, with those below them, and the region) whose presence makes its absence
    ambiguous (finding_sites.yaml `blurred_by`)."""
    vocab, blurred = vocabulary(), {}
    for finding, entry in entries.items():
        unknown = sorted({finding, *entry["findings"]} - set(vocab.findings)) or (
            [entry["region"]] if entry["region"] not in vocab.regions else []
        )
        if unknown:
            raise ResourceError(file, f"blurred_by.{finding}: not in the vocabulary: {unknown}")
        members = frozenset(
            f for top in entry["findings"] for f in vocab.findings if f == top or top in ancestors("findings", f)
        )
        blurred[finding] = (members, entry["region"])
    return blurred


def _overlapping(file: str, sets: list[list[str]]) -> dict[str, frozenset[str]]:
    """finding -> the findings readers take for it (finding_sites.yaml `overlapping`), not itself."""
    vocab, overlapping = vocabulary(), {}
    for members in sets:
        unknown = sorted(set(members) - set(vocab.findings))
        if unknown:
            raise ResourceError(file, f"overlapping: not in the vocabulary: {unknown}")
        for finding in members:
            overlapping[finding] = overlapping.get(finding, frozenset()) | (frozenset(members) - {finding})
    return overlapping


@lru_cache(maxsize=None)
def sided_region(region: str, side: str) -> str:
    """The one-sided part of a both-sided region, when a side is said of it ("the perihilar right lung":
    the right perihilar region; "right basilar": the right base); the region itself when it has none.
    Found from the synonyms: the part on that side is named by the side word and one of the region's names
    (its first names first)."""
    regions = vocabulary().regions
    if side not in ("left", "right") or regions[region]["laterality"] != "bilateral":
        return region
    for synonym in regions[region]["synonyms"]:
        name = f"{side} {synonym}"
        for rid, candidate in regions.items():
            if candidate["laterality"] == side and name in candidate["synonyms"]:
                return rid
    return region


#: The study-level label of a study without findings in label files (labels14 layout), beside the findings' codes.
NORMAL = "normal"


def finding_labels() -> set[str]:
    """The ChestX-ray14 labels the vocabulary's findings map to (`codes.chestxray14`)."""
    return {f["codes"]["chestxray14"] for f in vocabulary().findings.values() if "chestxray14" in f.get("codes", {})}


def _enum(name: str, values: list[str]) -> type[StrEnum]:
    return StrEnum(name, {value: value for value in values})


_vocabulary = vocabulary()
FindingId = _enum("FindingId", list(_vocabulary.findings))
Category = _enum("Category", _vocabulary.categories)
RegionId = _enum("RegionId", list(_vocabulary.regions))
Severity = _enum("Severity", [s["id"] for s in sorted(_vocabulary.severity, key=lambda s: s["rank"])])
Change = _enum("Change", [c["id"] for c in _vocabulary.change])
Laterality = _enum("Laterality", [lat["id"] for lat in _vocabulary.laterality])
