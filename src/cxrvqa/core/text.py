"""Report text: normalisation, sections and sentences with character offsets.

All patterns are linear-time (no nested quantifiers), so a 1 MB report costs a few ms.
Offsets refer to the normalised text stored in `reports.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cxrvqa.core.resources import load_checked_yaml

#: The canonical sections, in the order a composed report lists them.
SECTIONS = ("indication", "comparison", "technique", "findings", "impression", "other")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class SectionSpan:
    section: str
    start: int  # first character of the section body (after the header)
    end: int


@dataclass(frozen=True)
class SentenceSpan:
    section: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SectionRules:
    header: re.Pattern[str]
    header_section: dict[str, str]
    deid: re.Pattern[str]
    empty_values: frozenset[str]
    acronyms: frozenset[str]
    abbreviations: frozenset[str]
    unfinished_words: frozenset[str]  # a sentence does not end on them ("to suggest. active tuberculosis")
    indication_codes: re.Pattern[str]  # diagnosis codes and technique notes: not the reason for the examination
    indication_placeholders: frozenset[str]
    content_hash: str


@lru_cache(maxsize=1)
def section_rules() -> SectionRules:
    data, digest = load_checked_yaml("schemas/vocab/report_sections.yaml", "report_sections.schema.json")
    header_section = {word.upper(): section for section, words in data["sections"].items() for word in words}
    header_section.update({word.upper(): "other" for word in data["other_headers"]})
    words = sorted(header_section, key=len, reverse=True)  # longest first: "CLINICAL HISTORY" before "HISTORY"
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"[ \t]+") for w in words)
    # a header opens a line (any case), or follows a sentence's end in capitals: one-line exports
    # ("FINDINGS: Clear lungs. IMPRESSION: Normal.") keep their sections
    header = re.compile(
        rf"(?m)(?:^[ \t]*(?i:(?P<header>{alternatives}))|(?<=[.!?])[ \t]+(?P<inline>{alternatives}))[ \t]*:"
    )
    deid = re.compile("|".join(f"(?:{p})" for p in data["deid_tokens"]))
    empty = frozenset(value.upper() for value in data["empty_values"])
    codes = re.compile("|".join(f"(?:{p})" for p in [*data["indication_codes"], *data.get("indication_notes", ())]))
    placeholders = frozenset(value.upper() for value in data["indication_placeholders"])
    return SectionRules(
        header,
        header_section,
        deid,
        empty,
        frozenset(data["acronyms"]),
        frozenset(data["abbreviations"]),
        frozenset(data["unfinished_words"]),
        codes,
        placeholders,
        digest,
    )


def normalise(text: str) -> str:
    """Unix newlines, control characters as spaces: what is stored and what offsets refer to."""
    return _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))


def compose(sections: dict[str, str]) -> str:
    """One report text from per-section fields, with headers the section parser reads back."""
    parts = []
    for section in SECTIONS:
        body = normalise(sections.get(section) or "").strip()
        if body:
            parts.append(f"{section.upper()}: {body}" if section != "other" else body)
    return "\n".join(parts)


def split_sections(text: str) -> list[SectionSpan]:
    """Section spans in text order; text before the first header is 'other'. A section whose body is
    empty or an empty-field marker ("#NAME?") is left out."""
    rules = section_rules()
    spans: list[SectionSpan] = []
    position, current = 0, "other"
    for match in rules.header.finditer(text):
        if match.start() > position or current != "other":
            spans.append(SectionSpan(current, position, match.start()))
        name = match.group("header") or match.group("inline")
        current = rules.header_section[re.sub(r"[ \t]+", " ", name.upper())]
        position = match.end()
    spans.append(SectionSpan(current, position, len(text)))
    return [s for s in spans if (body := text[s.start : s.end].strip()) and body.upper() not in rules.empty_values]


# A sentence ends at . ! ? (then whitespace), at a blank line, or before a list number ("2. ").
_BOUNDARY = re.compile(r"(?<![.!?])[.!?]+(?=\s)|\n[ \t]*\n|(?<=\s)(?=\d{1,2}[.)][ \t]+\S)")
_LIST_NUMBER = re.compile(r"\d{1,2}[.)][ \t]+")
_ONLY_LIST_NUMBER = re.compile(r"\s*\d{1,2}[.)]?\s*")
_LAST_WORD = re.compile(r"([A-Za-z.]+)$")
_LOWER_NEXT = re.compile(r"[ \t]+[a-z]")


def split_sentences(text: str, sections: list[SectionSpan] | None = None) -> list[SentenceSpan]:
    """Sentences of every section with offsets into ``text``; list numbers are left out of the span."""
    rules = section_rules()
    sentences: list[SentenceSpan] = []
    for span in sections if sections is not None else split_sections(text):
        start = span.start
        cased = any(c.isupper() for c in text[span.start : span.end])
        for match in _BOUNDARY.finditer(text, span.start, span.end):
            end = match.end() if text[match.start()] in ".!?" else match.start()
            if _ONLY_LIST_NUMBER.fullmatch(text, start, end):
                continue  # "1." opens a list item, it does not end a sentence
            if text[match.start()] == ".":
                word = _LAST_WORD.search(text, max(start, match.start() - 12), match.start())
                last = word.group(1).lower().rstrip(".") if word else ""
                if last in rules.abbreviations:
                    continue
                if cased and last in rules.unfinished_words and _LOWER_NEXT.match(text, match.end(), span.end):
                    continue  # "No cavitary lesion to suggest. active tuberculosis.": a stray stop, in cased text
            _add(sentences, text, span.section, start, end)
            start = end
        _add(sentences, text, span.section, start, span.end)
    return sentences


def _add(sentences: list[SentenceSpan], text: str, section: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    number = _LIST_NUMBER.match(text, start, end)
    if number:
        start = number.end()
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start and any(c.isalnum() or c == "_" for c in text[start:end]):  # "___" is a de-id token
        sentences.append(SentenceSpan(section, start, end, text[start:end]))


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")

#: Words that open a sentence speaking of the sentence before it ("This may be artifact.", "This could indicate
#: cavitation."): the extractor revises that sentence's findings, a study description quotes it too.
ANAPHORS = frozenset({"this", "these", "it", "they", "which"})


def lower_form_field(text: str) -> str:
    """A field typed in capitals or with every word capitalised ("LUNG CANCER", "EVALUATE FOR metastatic
    DISEASE", "Lung Cancer": a form field, not a sentence) in lower case, its acronyms ("COPD") kept; any
    other text as written."""
    acronyms = section_rules().acronyms
    words = _WORD.findall(text)
    shouted = sum(1 for w in words if len(w) > 1 and w.isupper() and w not in acronyms)
    if shouted <= sum(1 for w in words if w.islower()) and not (len(words) > 1 and text.istitle()):
        return text
    return _WORD.sub(lambda m: m.group() if m.group() in acronyms else m.group().lower(), text)


def is_deid_only(text: str) -> bool:
    """True when a text has no content beyond de-identification placeholders and punctuation."""
    return not any(c.isalnum() for c in section_rules().deid.sub(" ", text))
