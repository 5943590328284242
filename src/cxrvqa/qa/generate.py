"""Generation: one study's view + templates -> QA rows (pure, deterministic).

Every random choice (question variant, sampling, distractors, option order) comes from a
keyed hash of (seed, template, study, image, arguments), so the same inputs, templates and seed
give the same items whatever the batching, the worker count or the order of studies.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cxrvqa.core.vocab import vocabulary
from cxrvqa.qa.programs import (
    PROGRAMS,
    Answer,
    Ask,
    category_name,
    default_candidates,
    finding_name,
    finding_number,
    indefinite_finding,
    pool_key,
    region_name,
)
from cxrvqa.qa.study import ImageView, StudyView
from cxrvqa.qa.templates import AGREEMENT, Template

LETTERS = "ABCD"  # the default four options
ALL_LETTERS = "ABCDE"  # a template may ask with 2-5 options (`options`)


@dataclass(frozen=True)
class GenerationSettings:
    seed: int
    splits: tuple[tuple[str, float], ...]  # (name, share), shares summing to 1
    templates: tuple[tuple[Template, str], ...]  # (template, template_version)
    split_from: str = "hash"  # hash | manifest (the dataset's official split where it has one)
    program_modules: tuple[tuple[str, str], ...] = ()  # plugin (source, hash) the templates' programs come from

    def __setstate__(self, state: dict) -> None:
        """Unpickled in a worker process (process pool, Dask): import the plugins its templates need."""
        for key, value in state.items():
            object.__setattr__(self, key, value)
        if self.program_modules:
            from cxrvqa.qa.plugins import ensure_loaded

            ensure_loaded(self.program_modules)


@lru_cache(maxsize=16)
def _keyed_hash(seed: int) -> Any:
    """The seed's keyed blake2b, set up once: each digest copies it (keying costs a compression per digest)."""
    return hashlib.blake2b(digest_size=16, key=seed.to_bytes(8, "big", signed=True))


def _digest(seed: int, text: str) -> bytes:
    hasher = _keyed_hash(seed).copy()
    hasher.update(text.encode("utf-8"))
    return hasher.digest()


def study_split(study: StudyView, settings: GenerationSettings) -> str:
    """The official split of the study's images when asked for (`qa.split_from: manifest`) and known, else the
    patient's split by keyed hash."""
    official = next((image.split for image in study.images if image.split), None)
    if settings.split_from == "manifest" and official:
        return official
    return split_of(study.patient_id, settings.seed, settings.splits)


def split_of(patient_id: str, seed: int, splits: tuple[tuple[str, float], ...]) -> str:
    """Patient-level split by keyed hash: all of a patient's items land in one split."""
    u = int.from_bytes(_digest(seed, "split\x1f" + patient_id)[:8], "big") / 2**64
    cumulative = 0.0
    for name, share in splits:
        cumulative += share
        if u < cumulative:
            return name
    return splits[-1][0]


def names_of(args: dict[str, str]) -> dict[str, str]:
    """The display names of drawn arguments (vocabulary names), by placeholder; for a finding also
    `a_<key>` ("a nodule", "edema", "degenerative changes") and, for the template's one finding, the
    verbs that agree with it (AGREEMENT: {Is} there {a_finding}?). One dict per arguments, shared: read it only."""
    return _names(tuple(args.items()))


@lru_cache(maxsize=None)
def _names(args: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """names_of, memoised: a study asks many templates of the same arguments (bounded by the vocabulary)."""
    names = {}
    drawn = dict(args)
    for key, value in drawn.items():
        if key.startswith("finding"):
            names[key] = finding_name(value)
            names["a_" + key] = indefinite_finding(value)
        elif key.startswith("region"):
            names[key] = region_name(value)
        else:
            names[key] = category_name(value)
    if "finding" in drawn:
        plural = finding_number(drawn["finding"]) == "plural"
        names.update({word: forms[plural] for word, forms in AGREEMENT.items()})
    return names


def _prefix(template_id: str, study_id: str, image_id: str | None) -> str:
    """What an item's digest hashes before its arguments' text: its template, study and image."""
    return "\x1f".join((template_id, study_id, image_id or "", ""))


def item_digest(seed: int, template_id: str, study_id: str, image_id: str | None, args_text: str) -> bytes:
    """The keyed hash an item is made from: its id (`qa-` and the first 10 bytes), question variant, options and
    sample draw."""
    return _digest(seed, _prefix(template_id, study_id, image_id) + args_text)


def question_of(template: Template, names: dict[str, str], digest: bytes) -> str:
    """An item's question: the variant its digest draws, the names of its arguments (`names_of`) filled in. Only the
    template's wording (`qa.templates.WORDING_TEMPLATE_FIELDS`) and the item's arguments and digest make it."""
    variant = template.variants[digest[10] % len(template.variants)]
    return _capitalise(variant.format_map(names))


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = _capitalise(text.strip())
    return text if text.endswith((".", "?", "!")) else text + "."


@lru_cache(maxsize=1)
def _side_words() -> re.Pattern[str]:
    """The vocabulary's words for the left or the right side."""
    words = [w for side in vocabulary().laterality if side["id"] in ("left", "right") for w in side["synonyms"]]
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")\b", re.I)


#: Question types asked as yes/no: their full-sentence answers start with "Yes." or "No.".
YES_NO_QUESTIONS = frozenset({"yes_no", "is_there"})


def _template_sentence(template: Template, answer: Answer, names: dict[str, str]) -> str:
    key = "default" if answer.polarity is None else ("yes" if answer.polarity else "no")
    pattern = template.answer_sentence.get(key) or template.answer_sentence.get("default")
    return _sentence(pattern.format(answer=answer.text, **names) if pattern else answer.text)


def full_sentence(
    study: StudyView, template: Template, answer: Answer, names: dict[str, str], image: ImageView | None = None
) -> str:
    """The evidence sentences where they are usable (after "Yes."/"No." for yes/no questions), else the
    template's answer sentence, else the short answer as a sentence. On a lateral image evidence that names a
    left or right side is not usable: a lateral view shows no side."""
    evidence = study.evidence_text(list(answer.evidence))
    lateral = image is not None and image.view_plane == "lateral"
    if evidence is None or (lateral and _side_words().search(evidence)):
        return _template_sentence(template, answer, names)
    if template.question_type in YES_NO_QUESTIONS and answer.polarity is not None:
        return ("Yes. " if answer.polarity else "No. ") + evidence
    return evidence


def _options(answer: Answer, digest: bytes, n: int = 4) -> tuple[list[str], str] | None:
    """``n`` (the template's `options`, 2-5) distinct options with the correct one at a letter drawn from the
    item's hash (uniform over the dataset); None when fewer than n - 1 distinct distractors exist."""
    pool = [d for d in dict.fromkeys(answer.distractors) if d != answer.text]
    if len(pool) < n - 1:
        return None
    rng = random.Random(digest)
    options = rng.sample(pool, n - 1)
    letter = digest[9] % n
    options.insert(letter, answer.text)
    return options, ALL_LETTERS[letter]


def _candidates(study: StudyView, image: ImageView | None, template: Template) -> list[tuple[str, dict[str, str]]]:
    """The template's argument sets for this image as (their text, the set), each once: a finding the graph
    holds twice (two regions, two sentences) gave a pair template the same arguments twice, i.e. the same
    item twice. Memoised per study and draw (templates of one draw share it; a template that reads no image
    draws once per study): a shared list, to read only."""
    program = PROGRAMS[template.program]
    if program.candidates is None:  # default_candidates: the arguments' kind, the regions and the finding pool
        key: tuple = ("default", template.arguments, template.regions, *pool_key(template, image))
    else:
        reads_image = image is not None and (template.needs_image or template.needs_boxes)
        key = (template.id, template.content_hash, image.image_id if reads_image else None)
    found = study.candidates.get(key)
    if found is None:
        drawn = (program.candidates or default_candidates)(study, image, template)
        found = study.candidates[key] = list({_args_text(args): args for args in drawn}.items())
    return found


def _applies(template: Template, image: ImageView | None) -> bool:
    if image is None:
        return not (template.needs_image or template.needs_boxes)
    if image.view_plane not in template.views:
        return False
    if template.needs_boxes == "finding" and not image.finding_boxes:
        return False
    return not (template.needs_boxes == "region" and not image.region_boxes)


def _args_text(args: dict[str, str]) -> str:
    """The arguments as JSON (vocabulary ids need no escaping); also part of the item key."""
    if len(args) == 1:
        ((key, value),) = args.items()
        return f'{{"{key}": "{value}"}}'
    return "{" + ", ".join(f'"{k}": "{args[k]}"' for k in sorted(args)) + "}"


def generate_study(
    study: StudyView,
    settings: GenerationSettings,
    template_ids: frozenset[str] | None = None,
    item_ids: frozenset[str] | None = None,
) -> tuple[list[tuple], list[tuple], dict[str, int]]:
    """(item rows, answer-part rows, items per template id) of one study, for ``template_ids`` (None: all).
    ``item_ids``: the rows (and parts) of only these items (the validators' regeneration), and their counts; an
    item not asked for is still answered where it counts towards `max_per_image` (so the rows kept are those a
    full run makes), else not even answered.

    Items are made per image of the study (per study when it has none); a template asks only on
    the images it applies to. A template's `weight` keeps that share of its candidates; with
    `max_per_image`, candidates are tried in a seeded order until that many have an answer (the
    order is seeded by template, study and image, so it is the same on every run).
    Rows follow the records of cxrvqa.store.records (QA_ITEM / ANSWER_PART).
    """
    items: list[tuple] = []
    parts: list[tuple] = []
    counts: dict[str, int] = {}
    split = study_split(study, settings)
    for template, version in settings.templates:
        if template_ids is None or template.id in template_ids:
            counts[template.id] = _template_items(
                study, template, version, split, settings.seed, item_ids, items, parts
            )
    return items, parts, counts


def _template_items(
    study: StudyView,
    template: Template,
    version: str,
    split: str,
    seed: int,
    item_ids: frozenset[str] | None,
    items: list[tuple],
    parts: list[tuple],
) -> int:
    """One template's items (appended to ``items`` and ``parts``) on each image it applies to; how many."""
    targets: tuple[ImageView | None, ...] = study.images or (None,)
    program, cap, count = PROGRAMS[template.program].fn, template.max_per_image, 0
    # a template that reads no image answers alike on every image of the study: answer once
    shared = len(targets) > 1 and not (template.needs_image or template.needs_boxes)
    answers: dict[str, Answer | None] = {}
    for image in targets:
        if not _applies(template, image):
            continue
        prefix = _prefix(template.id, study.study_id, image.image_id if image is not None else None)
        made = 0
        for args_text, args in _drawn(_candidates(study, image, template), template, seed, prefix):
            digest = None
            if item_ids is not None and cap is None:
                digest = _digest(seed, prefix + args_text)
                if "qa-" + digest[:10].hex() not in item_ids:
                    continue  # not asked for, and nothing to count
            if not shared:
                answer = program(Ask(study, image, args, template))
            elif args_text in answers:
                answer = answers[args_text]
            else:
                answer = answers[args_text] = program(Ask(study, image, args, template))
            if answer is None:
                continue
            if digest is None:
                digest = _digest(seed, prefix + args_text)
            if item_ids is not None and "qa-" + digest[:10].hex() not in item_ids:
                # not asked for: it only counts (a multiple-choice item without enough options is not made)
                if template.answer_format != "multiple_choice" or _options(answer, digest, template.options):
                    made += 1
                    if made == cap:
                        break
                continue
            row = _item(study, image, template, version, split, digest, args_text, args, answer, parts)
            if row is None:
                continue
            items.append(row)
            count += 1
            made += 1
            if made == cap:
                break
    return count


#: The generator `_drawn` reseeds for each draw, one per thread (a generator built per template and image cost more
#: than reseeding one; per thread, so that a worker running several studies at once keeps each draw's sequence).
_DRAWS = threading.local()


def _draw_random(seed: int) -> random.Random:
    """This thread's draw generator, seeded: the sequence of ``random.Random(seed)``."""
    rng = getattr(_DRAWS, "rng", None)
    if rng is None:
        rng = _DRAWS.rng = random.Random()
    rng.seed(seed)
    return rng


def _drawn(
    candidates: list[tuple[str, dict[str, str]]], template: Template, seed: int, prefix: str
) -> list[tuple[str, dict[str, str]]]:
    """The candidates a template keeps: a `weight` share of them, in a seeded order when it has `max_per_image`
    (seeded by the seed and `prefix`: template, study and image)."""
    if template.weight < 1 or template.max_per_image is not None:
        rng = _draw_random(zlib.crc32(f"{seed}\x1f{prefix}".encode("utf-8")))
        # a new list either way: the study's candidates are shared
        kept = [c for c in candidates if rng.random() < template.weight] if template.weight < 1 else list(candidates)
        if template.max_per_image is not None:
            rng.shuffle(kept)
        return kept
    return candidates


def _item(
    study: StudyView,
    image: ImageView | None,
    template: Template,
    version: str,
    split: str,
    digest: bytes,
    args_text: str,
    args: dict[str, str],
    answer: Answer,
    parts: list[tuple],
) -> tuple | None:
    names = names_of(args)
    question = question_of(template, names, digest)
    options, correct = None, None
    fmt = template.answer_format
    if fmt == "multiple_choice":
        chosen = _options(answer, digest, template.options)
        if chosen is None:
            return None
        options, correct = chosen
        text = answer.text
    elif fmt == "full_sentence":
        text = full_sentence(study, template, answer, names, image)
    elif fmt == "multi_part":  # the main part states the answer; details and related parts carry the rest
        text = _template_sentence(template, answer, names)
    else:
        text = answer.text
    item_id = "qa-" + digest[:10].hex()
    if fmt == "multi_part":
        parts.append((item_id, 0, "main", text, list(answer.findings), list(answer.regions)))
        for index, part in enumerate((*answer.details, *answer.related), start=1):
            parts.append((item_id, index, part.kind, part.text, list(part.findings), list(part.regions)))
    return (
        item_id,
        template.id,
        version,
        study.study_id,
        study.patient_id,
        image.image_id if image else None,
        image.view_plane if image else None,
        template.question_type,
        template.strategy,
        template.skill,
        fmt,
        question,
        text,
        options,
        correct,
        list(dict.fromkeys(answer.findings)),
        list(dict.fromkeys(answer.regions)),
        [b.as_dict() for b in answer.boxes],
        list(dict.fromkeys(answer.evidence)),
        args_text,
        answer.polarity,
        int.from_bytes(digest[13:16], "big") / 2**24,
        split,
    )
