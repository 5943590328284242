"""Validators: one signature, `check(item, context) -> Verdict`, stable snake_case reason codes.

An item is a dict in the layout of `schemas/qa_item.schema.json` (a `qa_items` row, or a line of
the jsonl export). The context holds what a check needs besides the item: the study's images,
its scene-graph view and the templates. Each validator has a version (bumped when its logic
changes: results of an older version are recomputed) and a default strictness.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import fastjsonschema
import jsonschema
import pyarrow as pa
import pyarrow.compute as pc

from cxrvqa.core.resources import load_json_schema
from cxrvqa.core.scene_graph import deid_pattern
from cxrvqa.core.vocab import vocabulary
from cxrvqa.qa.generate import ALL_LETTERS, GenerationSettings, generate_study, names_of, split_of, study_split
from cxrvqa.qa.programs import PROGRAMS, side_of
from cxrvqa.qa.study import StudyView
from cxrvqa.qa.templates import Template
from cxrvqa.store.records import ITEM_COLUMNS, answer_digest


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # stable snake_case code when not ok
    detail: str = ""


OK = Verdict(True)


@dataclass(frozen=True)
class ImageFacts:
    png_cols: int
    png_rows: int
    view_plane: str


@dataclass
class ValidationContext:
    """What the validators read besides the item, for one study."""

    images: dict[str, ImageFacts]
    templates: dict[str, tuple[Template, str]]  # id -> (template, version)
    settings: GenerationSettings
    #: the study's scene-graph view (`study`), or what makes it when a check first reads it (the stage's: a parse of
    #: the stored graph, which the checks of a reworded item that read its wording mostly never need); None: the study
    #: has no current scene graph
    view: StudyView | Callable[[], StudyView] | None = None
    text_only: bool = False  # a build without images (text VQA): no_image is no fault
    #: the ids of the items to validate, by template id: the answer program's regeneration makes only these
    #: (None: every item it makes)
    item_ids: dict[str, frozenset[str]] | None = None
    #: the answer digests the QA stage recorded for the items of this build, by item id (`qa_items.answer_digest`)
    answer_digests: dict[str, str] | None = None
    #: the backend of the study's scene graph ("rules": the rules' own re-reading of the evidence has nothing to add)
    graph_backend: str | None = None
    _regenerated: dict[tuple[str, bool], dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _all_asked: bool = field(default=False, repr=False)  # every template of item_ids regenerated
    _item: dict[str, Any] | None = field(default=None, repr=False)  # the item `check_item` is validating
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)  # what its checks share (claims, evidence)
    _split: tuple[StudyView, GenerationSettings, str] | None = field(default=None, repr=False)

    @property
    def study(self) -> StudyView | None:
        """The study's view, made on the first read (100k synthetic studies, the largest template reworded: its
        making was ~55% of the revalidation's worker time, and the 8 checks that read wording asked for almost none)."""
        if callable(self.view):
            self.view = self.view()
        return self.view

    @property
    def has_study(self) -> bool:
        """Whether the study has a current scene graph (its view is not made for this)."""
        return self.view is not None

    def study_split(self, study: StudyView) -> str:
        """The split of the study's items (`qa.generate.study_split`), computed once per study and settings, not
        once per item (it hashes the patient id: ~2% of validation)."""
        if self._split is None or self._split[0] is not study or self._split[1] is not self.settings:
            self._split = (study, self.settings, study_split(study, self.settings))
        return self._split[2]

    def memo(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """What the checks of this item share, while `check_item` validates it (items are not changed while
        their checks run); None when a check is called on its own (then it computes everything)."""
        return self._memo if item is self._item else None

    def regenerated(self, template_id: str, item_id: str | None = None) -> dict[str, dict[str, Any]]:
        """The items the template's answer program makes on the stored graph now, by item id (cached); only those
        of `item_ids` when the item asked about is one of them."""
        wanted = self.item_ids.get(template_id) if self.item_ids is not None else None
        if wanted is not None and item_id not in wanted:
            wanted = None
        key = (template_id, wanted is not None)
        if key not in self._regenerated and wanted is not None and not self._all_asked:
            self._regenerate_asked()
        if key not in self._regenerated:
            self._regenerated[key] = self._regenerate_one(template_id, wanted)
        return self._regenerated[key]

    def _regenerate_asked(self) -> None:
        """The first ask: the items to validate of every template at once (the templates are independent); where
        that fails nothing is kept, and each template is regenerated on its own (so that only the items of a
        failing one fail)."""
        self._all_asked = True
        if self.study is None or self.item_ids is None:
            return
        ids = [t for t in self.item_ids if t in self.templates]
        every = replace(self.settings, templates=tuple(self.templates[t] for t in ids))
        try:
            rows, _, _ = generate_study(self.study, every, item_ids=frozenset().union(*self.item_ids.values()))
        except Exception:  # noqa: BLE001 - asked again template by template
            return
        made: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.item_ids}
        for row in rows:
            made[row[1]][row[0]] = dict(zip(ITEM_COLUMNS, row, strict=True))
        self._regenerated.update({(t, True): items for t, items in made.items()})

    def _regenerate_one(self, template_id: str, wanted: frozenset[str] | None) -> dict[str, dict[str, Any]]:
        """The items one template makes now (only ``wanted`` ones when given), by item id."""
        if self.study is None or template_id not in self.templates:
            return {}
        one = replace(self.settings, templates=(self.templates[template_id],))
        rows, _, _ = generate_study(self.study, one, item_ids=wanted)
        return {row[0]: dict(zip(ITEM_COLUMNS, row, strict=True)) for row in rows}


CheckFn = Callable[[dict[str, Any], ValidationContext], Verdict]


#: The wording of an item: what a template's rewording (a question variant added or changed) changes of its items.
WORDING_ITEM_FIELDS = ("question",)


@dataclass(frozen=True)
class Validator:
    name: str
    version: int
    strictness: str  # default: ignore | warn | reject
    kind: str  # structural | content
    check: CheckFn
    #: Whether the check reads the wording (`WORDING_ITEM_FIELDS` of the item, `qa.templates.WORDING_TEMPLATE_FIELDS`
    #: of its template). One that reads neither gives an item the verdict it gave the item's earlier version when only
    #: the wording changed, which the validation stage then takes instead of checking again (`stage.REUSE_SQL`);
    #: tests/validation/test_stage.py holds each such check to it on every item of the demo build.
    reads_wording: bool = True


VALIDATORS: dict[str, Validator] = {}


def validator(
    name: str, *, version: int = 1, strictness: str = "reject", kind: str = "structural", reads_wording: bool = True
) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if name in VALIDATORS:
            raise ValueError(f"validator {name!r} is registered twice")
        VALIDATORS[name] = Validator(name, version, strictness, kind, fn, reads_wording)
        return fn

    return register


def fail(reason: str, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


# -- structural -------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _item_schema() -> jsonschema.protocols.Validator:
    """Compiled once: building a validator per item costs more than validating."""
    return jsonschema.Draft202012Validator(load_json_schema("qa_item.schema.json"))


@lru_cache(maxsize=1)
def _fast_item_check() -> Callable[[Any], Any]:
    """The same schema compiled to Python code (~20x faster); a rejection is explained by jsonschema."""
    schema = {k: v for k, v in load_json_schema("qa_item.schema.json").items() if k not in ("$schema", "$id")}
    return fastjsonschema.compile(schema)


@validator("schema", version=2)
def check_schema(item: dict[str, Any], context: ValidationContext) -> Verdict:
    try:
        _fast_item_check()(item)
        return OK
    except fastjsonschema.JsonSchemaValueException as fast_error:
        error = next(iter(sorted(_item_schema().iter_errors(item), key=lambda e: list(e.absolute_path))), None)
        if error is None:
            return fail("schema_violation", str(fast_error)[:500])
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return fail("schema_violation", f"{where}: {error.message}"[:500])


def schema_passes(items: pa.Table) -> list[bool]:
    """Per row of an Arrow table of items (the columns of their dicts): whether it surely meets
    qa_item.schema.json, read in one vectorised pass over the columns instead of `check_schema` per item (~9 of the
    ~100 us an item costs the stage). False is no verdict: that item's `check_schema` runs as ever, so a keyword,
    type, null or pattern this pass does not read leaves every verdict as it was."""
    return _meets(items.to_struct_array().combine_chunks(), load_json_schema("qa_item.schema.json")).to_pylist()


#: JSON Schema keywords `_meets` reads (besides annotations), and the Arrow types a JSON type's values come from.
_READ = {"type", "enum", "pattern", "minLength", "minimum", "items", "required", "properties", "oneOf"}
_ANNOTATIONS = {"$schema", "$id", "title", "description"}
_ARROW_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "integer": pa.types.is_integer,
    "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t),
    "boolean": pa.types.is_boolean,
    "array": lambda t: pa.types.is_list(t) or pa.types.is_large_list(t),
    "object": pa.types.is_struct,
}


def _meets(values: pa.Array, rule: dict[str, Any]) -> pa.Array:
    """Per value, as its Python value (`as_py`): surely valid under the schema ``rule`` (False where unsure)."""
    rule = _without_null_branch(rule)
    unsure = pa.repeat(False, len(values))
    if rule is None or set(rule) - _READ - _ANNOTATIONS or not ("type" in rule or "enum" in rule):
        return unsure
    types = [rule["type"]] if isinstance(rule.get("type"), str) else rule.get("type", [None])
    nullable = ("null" in types or None in types) and None in rule.get("enum", [None])
    if "type" in rule and not any(_ARROW_TYPES.get(t, lambda _: False)(values.type) for t in types):
        return pc.if_else(values.is_valid(), unsure, nullable)
    met = values.is_valid()
    for check in _value_checks(values, rule):
        met = pc.and_(met, check)
    return pc.if_else(values.is_valid(), met.fill_null(False), nullable)


def _without_null_branch(rule: dict[str, Any]) -> dict[str, Any] | None:
    """``rule`` with a `oneOf` of null and one typed schema that excludes null read as that schema or null (just
    one branch holds for any value); None for any other `oneOf`."""
    if "oneOf" not in rule:
        return rule
    typed = [b for b in rule["oneOf"] if b != {"type": "null"}]
    if len(rule["oneOf"]) != 2 or len(typed) != 1 or typed[0].get("type") in (None, "null"):
        return None
    if set(rule) - {"oneOf"} - _ANNOTATIONS or not isinstance(typed[0]["type"], str):
        return None
    return {**typed[0], "type": [typed[0]["type"], "null"]}


def _value_checks(values: pa.Array, rule: dict[str, Any]) -> list[pa.Array]:
    """The rule's keywords other than type, each as a per-value mask of the non-null values."""
    is_string = _ARROW_TYPES["string"](values.type)
    checks = []
    if "enum" in rule:
        allowed = [v for v in rule["enum"] if v is not None]
        if not is_string or not all(isinstance(v, str) for v in allowed):
            return [pa.repeat(False, len(values))]
        checks.append(pc.is_in(values, value_set=pa.array(allowed, pa.string())))
    for keyword, check in (("pattern", _pattern_met), ("minLength", _length_met)):
        if keyword in rule:
            checks.append(check(values, rule[keyword]) if is_string else pa.repeat(False, len(values)))
    if "minimum" in rule:
        numeric = _ARROW_TYPES["number"](values.type)
        checks.append(pc.greater_equal(values, rule["minimum"]) if numeric else pa.repeat(False, len(values)))
    if "items" in rule:
        checks.append(_items_met(values, rule["items"]))
    if "required" in rule or "properties" in rule:
        checks.append(_fields_met(values, rule))
    return checks


def _pattern_met(values: pa.Array, pattern: str) -> pa.Array:
    """RE2's search, as fastjsonschema's (which reads `$` as `\\Z`, the end of the text, as RE2 does), for a pattern
    of literals, ranges, counts and anchors only (an escape or any other syntax the two might read otherwise:
    unsure)."""
    if not _PLAIN_PATTERN.fullmatch(pattern):
        return pa.repeat(False, len(values))
    return pc.match_substring_regex(values, pattern)


_PLAIN_PATTERN = re.compile(r"[\^$\[\]{}*+?|,_a-zA-Z0-9-]*")


def _length_met(values: pa.Array, least: int) -> pa.Array:
    return pc.greater_equal(pc.utf8_length(values), least)


def _items_met(values: pa.Array, rule: dict[str, Any]) -> pa.Array:
    """Per list: every element meets ``rule``."""
    if not _ARROW_TYPES["array"](values.type):
        return pa.repeat(False, len(values))
    elements, parents = pc.list_flatten(values), pc.list_parent_indices(values)
    if len(elements) != len(parents):  # a null list over elements: unsure of the whole column
        return pa.repeat(False, len(values))
    failing = pc.filter(parents, pc.invert(_meets(elements, rule)))
    return pc.invert(pc.is_in(pa.array(range(len(values)), parents.type), value_set=failing))


def _fields_met(values: pa.Array, rule: dict[str, Any]) -> pa.Array:
    """Per object: its required fields there (as keys of its dict) and each field meeting its property's rule."""
    names = (
        {values.type.field(i).name for i in range(values.type.num_fields)} if pa.types.is_struct(values.type) else set()
    )
    if not set(rule.get("required", [])) <= names:
        return pa.repeat(False, len(values))
    met = pa.repeat(True, len(values))
    for name, field_rule in rule.get("properties", {}).items():
        if name in names:
            met = pc.and_(met, _meets(pc.struct_field(values, name), field_rule))
    return met


@validator("image", strictness="warn", reads_wording=False)
def check_image(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """An image item's image is current. An item without one is report-only: a fault in an image dataset
    (graded C), none in a build without images (a text-VQA dataset, graded on its text criteria)."""
    image_id = item.get("image_id")
    if image_id is None:
        if context.text_only:
            return OK
        return fail("no_image", f"study {item.get('study_id')!r} has no current image: the item is report-only")
    if image_id not in context.images:
        return fail("missing_image", f"expected a current image {image_id!r}, found none")
    return OK


@validator("boxes", reads_wording=False)
def check_boxes(item: dict[str, Any], context: ValidationContext) -> Verdict:
    image = context.images.get(item.get("image_id") or "")
    for box in item.get("boxes") or []:
        x0, y0, x1, y1 = (box.get(k) for k in ("x_min", "y_min", "x_max", "y_max"))
        if not all(isinstance(v, (int, float)) for v in (x0, y0, x1, y1)):
            return fail("invalid_box", f"box {box}: expected four numbers")
        if x1 <= x0 or y1 <= y0:
            return fail("degenerate_box", f"box {box}: expected x_max > x_min and y_max > y_min")
        if image is None:
            return fail("box_without_image", f"box {box} on an item without a current image")
        if x0 < 0 or y0 < 0 or x1 > image.png_cols + 0.5 or y1 > image.png_rows + 0.5:
            return fail("box_outside_image", f"box {box}: expected inside the {image.png_cols}x{image.png_rows} PNG")
    return OK


@validator("multiple_choice", reads_wording=False)
def check_multiple_choice(item: dict[str, Any], context: ValidationContext) -> Verdict:
    options, correct = item.get("options"), item.get("correct_option")
    if item.get("answer_format") != "multiple_choice":
        if options is not None or correct is not None:
            return fail("options_without_multiple_choice", f"a {item.get('answer_format')} item has options")
        return OK
    found = context.templates.get(item.get("template_id") or "")
    n = found[0].options if found else 4  # a template may ask with 2-5 options (`options`)
    if not isinstance(options, list) or len(options) != n:
        return fail("mcq_option_count", f"expected {n} options, found {options!r}")
    if len(set(options)) != n:
        return fail("mcq_duplicate_options", f"expected {n} distinct options, found {options}")
    if correct not in ALL_LETTERS[:n]:
        return fail(
            "mcq_correct_letter", f"expected the correct option as one of A-{ALL_LETTERS[n - 1]}, found {correct!r}"
        )
    if options.count(item.get("answer")) != 1:
        return fail("mcq_answer_not_one_option", f"expected the answer {item.get('answer')!r} once among {options}")
    if options[ALL_LETTERS.index(correct)] != item.get("answer"):
        return fail(
            "mcq_correct_mismatch",
            f"option {correct} is {options[ALL_LETTERS.index(correct)]!r}, the answer is {item.get('answer')!r}",
        )
    return OK


@validator("answer_format", reads_wording=False)
def check_answer_format(item: dict[str, Any], context: ValidationContext) -> Verdict:
    found = context.templates.get(item.get("template_id") or "")
    if found is None:
        return fail("unknown_template", f"expected a loaded template, found {item.get('template_id')!r}")
    template = found[0]
    if item.get("answer_format") != template.answer_format:
        return fail(
            "format_mismatch",
            f"template {template.id} answers in {template.answer_format}, found {item.get('answer_format')}",
        )
    if template.answer_format == "yes_no" and item.get("answer") not in ("yes", "no"):
        return fail("invalid_yes_no", f"expected 'yes' or 'no', found {item.get('answer')!r}")
    return OK


@validator("vocabulary", reads_wording=False)
def check_vocabulary(item: dict[str, Any], context: ValidationContext) -> Verdict:
    vocab = vocabulary()
    unknown = [f for f in item.get("findings") or [] if f not in vocab.findings]
    unknown += [r for r in item.get("regions") or [] if r not in vocab.regions]
    return fail("unknown_vocabulary", f"tags not in the vocabularies: {unknown}") if unknown else OK


_PLACEHOLDER = re.compile(r"\{[a-z_]*\}")


@validator("unrendered_variable")
def check_unrendered(item: dict[str, Any], context: ValidationContext) -> Verdict:
    for key in ("question", "answer"):
        match = _PLACEHOLDER.search(str(item.get(key) or ""))
        if match:
            return fail("unrendered_variable", f"{key} holds the template variable {match.group(0)}")
    return OK


@validator("deid_token")
def check_deid(item: dict[str, Any], context: ValidationContext) -> Verdict:
    for key in ("question", "answer"):
        token = _deid_token(str(item.get(key) or ""))
        if token is not None:
            return fail("deid_token", f"{key} holds the de-identification token {token!r}")
    return OK


@lru_cache(maxsize=16384)
def _deid_token(text: str) -> str | None:
    """The first de-identification token of a text, if any (cached: items share questions and answers, and the
    tokens' pattern has no literal start to skip ahead by: ~0.7 us a search, ~2% of validation)."""
    match = deid_pattern().search(text)
    return match.group(0) if match else None


# -- content ----------------------------------------------------------------------------------
@validator("answer_program", version=2, kind="content")
def check_answer_program(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """The item is what its template's answer program makes on the stored graph. An item of this build whose
    answer fields still have the digest the QA stage recorded when the program made them is (its template version
    and input hash fix what the program makes: tests/qa/test_generate.py holds generation deterministic); any
    other (edited after generation, read from a file, made before migration 0022) is regenerated and compared."""
    if not context.has_study:
        return fail("missing_scene_graph", f"study {item.get('study_id')!r} has no current scene graph")
    recorded = context.answer_digests.get(item.get("item_id") or "") if context.answer_digests else None
    if recorded is not None and recorded == answer_digest(item):
        return OK
    expected = context.regenerated(item.get("template_id") or "", item.get("item_id")).get(item.get("item_id") or "")
    if expected is None:
        return fail("not_reproducible", "the template's answer program makes no such item on the stored graph")
    for key in ("question", "answer", "options", "correct_option", "findings", "regions"):
        if expected[key] != item.get(key):
            return fail(
                "answer_mismatch", f"{key}: the answer program gives {expected[key]!r}, found {item.get(key)!r}"
            )
    return OK


def _evidence_texts(item: dict[str, Any], study: StudyView) -> tuple[str, ...]:
    return tuple(study.sentences[i] for i in item.get("evidence_ids") or [] if i in study.sentences)


def clear_caches() -> None:
    """Forget the evidence re-read by the rules, and the rules' own sentence memo (after each chunk of studies:
    `validation.stage`). The rules are not imported for it: a process whose checks never read with them (a rebuild
    that takes every sentence's reading from the store) need not build their pipeline."""
    import sys

    _presence_in.cache_clear()
    rules = sys.modules.get("cxrvqa.extraction.rules")
    if rules is not None:
        rules.clear_sentence_memo()


@lru_cache(maxsize=65536)
def _presence_in(sentences: tuple[str, ...]) -> StudyView:
    """What the rules extractor reads in these sentences alone (cached: items share evidence)."""
    from cxrvqa.core.scene_graph import Sentence
    from cxrvqa.extraction.rules import extract_scene_graph
    from cxrvqa.qa.study import study_view

    rows, offset = [], 0
    for i, text in enumerate(sentences):
        rows.append(Sentence(id=i, section="findings", text=text, start=offset, end=offset + len(text)))
        offset += len(text) + 1
    graph = extract_scene_graph("evidence", rows)
    return study_view(graph.model_dump(mode="json"), "evidence")


@validator("report_support", kind="content", version=3, reads_wording=False)
def check_report_support(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """A yes/no answer about one finding, re-read from its evidence sentences alone by the rules: the
    cross-check of an LLM graph. Not of a rules graph, whose answers the same rules made (0 of the 33,386 items of
    the IU dev build differed; the check was ~15% of validation's compute). Evidence the rules read nothing of in
    but the independent reader does (a mention, or a normal statement covering it) is left to the independent checks:
    there it was the rules' vocabulary that fell short ("no suspicious pulmonary opacity", "osseous structures
    intact"), not the answer."""
    if context.graph_backend == "rules":
        return OK
    found = context.templates.get(item.get("template_id") or "")
    program = PROGRAMS.get(found[0].program) if found else None
    if (
        program is None
        or program.yes_when is None
        or item.get("answer") not in ("yes", "no")
        or len(item.get("findings") or []) != 1
        or item["findings"][0] not in vocabulary().findings
        or context.study is None
    ):
        return OK  # not a yes/no about one known finding (the vocabulary validator judges unknown ones)
    texts = _evidence_texts(item, context.study)
    if not texts:
        return OK if found[0].closed_world else fail("unsupported_by_report", "no evidence sentence to check")
    finding = item["findings"][0]
    presence = _presence_in(texts).presence(finding)
    if presence is None:
        if _independent.speaks_of(finding, texts):
            return OK  # the rules' vocabulary fell short: how the evidence reads it is the independent checks' to judge
        return fail("unsupported_by_report", f"the evidence {' '.join(texts)!r} does not mention {finding}")
    expected = "yes" if presence == program.yes_when else "no"
    if item["answer"] != expected:
        return fail(
            "contradicts_report",
            f"the evidence {' '.join(texts)!r} reads {finding} as {presence}: "
            f"expected {expected!r}, found {item['answer']!r}",
        )
    return OK


_SIDES = re.compile(r"\b(left|right|bilateral|both sides)\b", re.IGNORECASE)


@validator("laterality_support", kind="content", version=2, reads_wording=False)
def check_laterality_support(item: dict[str, Any], context: ValidationContext) -> Verdict:
    """The side an answer gives for one finding agrees with the side the rules read in its evidence sentences (of an
    LLM graph: a rules graph's sides are the rules' own, as for `report_support`)."""
    if context.graph_backend == "rules" or item.get("answer_format") != "short":
        return OK  # longer answers quote report sentences whose side words may describe other things
    answer_sides = {m.lower() for m in _SIDES.findall(str(item.get("answer") or ""))}
    findings = item.get("findings") or []
    if not answer_sides or len(findings) != 1 or findings[0] not in vocabulary().findings or context.study is None:
        return OK
    texts = _evidence_texts(item, context.study)
    fact = _presence_in(texts).facts.get(findings[0]) if texts else None
    if fact is None or fact.presence == "absent":
        return OK  # whether the finding is there at all is report_support's question
    side = side_of(fact)
    if side in (None, "bilateral") or answer_sides <= {side}:
        return OK
    return fail(
        "laterality_mismatch",
        f"the answer says {sorted(answer_sides)} of {findings[0]}, the evidence {' '.join(texts)!r} says {[side]}",
    )


_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)


@validator("left_right_view", kind="content")
def check_left_right_view(item: dict[str, Any], context: ValidationContext) -> Verdict:
    image = context.images.get(item.get("image_id") or "")
    if image is None or image.view_plane == "frontal":
        return OK
    text = f"{item.get('question', '')} {item.get('answer', '')}"
    if _SIDE.search(text):
        return fail("left_right_not_frontal", f"a left/right question or answer on a {image.view_plane} image")
    return OK


def _argument_names(item: dict[str, Any]) -> tuple[str, ...]:
    """The names the question was rendered with (a question names its subject, e.g. both findings of
    'which of A and B'); unreadable arguments name nothing. Read once per distinct arguments text (an odd item's
    arguments of another type on their own)."""
    arguments = item.get("arguments") or "{}"
    return _names_in(arguments) if type(arguments) is str else _names_in.__wrapped__(arguments)


@lru_cache(maxsize=4096)
def _names_in(arguments: Any) -> tuple[str, ...]:
    try:
        args = json.loads(arguments)
        return tuple(name.lower() for name in names_of(args).values())
    except (ValueError, KeyError, AttributeError):
        return ()


@validator("answer_leak", version=2, kind="content")
def check_answer_leak(item: dict[str, Any], context: ValidationContext) -> Verdict:
    answer = str(item.get("answer") or "").strip().lower()
    if item.get("answer_format") != "short" or len(answer) < 4:
        return OK
    if any(answer in name for name in _argument_names(item)):
        return OK
    found = context.templates.get(item.get("template_id") or "")
    if found is not None and _in_wording(answer, found[0].variants):
        return OK  # the template's own wording ("How severe is ...?" -> "severe") gives nothing away
    if _has_word(answer, str(item.get("question") or "").lower()):
        return fail("answer_in_question", f"the question contains its answer {answer!r}")
    return OK


def _has_word(word: str, text: str) -> bool:
    r"""Whether the text holds the word whole, as `re.search(rf"\b{re.escape(word)}\b", text)` finds it: an
    occurrence with a word boundary (Unicode word characters) at both ends. Without a pattern per answer: a build
    has more answers than `re`'s cache holds, and compiling one was ~50 us (~1% of validation)."""
    start = text.find(word)
    while start >= 0:
        if _boundary(text, start) and _boundary(text, start + len(word)):
            return True
        start = text.find(word, start + 1)
    return False


def _boundary(text: str, at: int) -> bool:
    r"""`re`'s `\b` at a position of the text: a word character on one side only (none beyond either end)."""
    return (at > 0 and _is_word(text[at - 1])) != (at < len(text) and _is_word(text[at]))


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


@lru_cache(maxsize=8192)
def _in_wording(answer: str, variants: tuple[str, ...]) -> bool:
    """Whether a question variant of the template holds the answer as a word (the same for every item of the
    template with this answer)."""
    return any(_has_word(answer, variant.lower()) for variant in variants)


@validator("split", kind="content", reads_wording=False)
def check_split(item: dict[str, Any], context: ValidationContext) -> Verdict:
    expected = (
        context.study_split(context.study)
        if context.study is not None
        else split_of(str(item.get("patient_id")), context.settings.seed, context.settings.splits)
    )
    if item.get("split") != expected:
        return fail(
            "split_mismatch",
            f"patient {item.get('patient_id')!r} belongs to {expected}, "
            f"found {item.get('split')!r}: the patient would be in two splits",
        )
    return OK


#: (the validators' identities, the strictness) -> the active validators: hashing every Validator record per
#: item cost more than several checks do; the values keep the records alive, so an identity is never reused.
_ACTIVE: dict[tuple[tuple[int, ...], tuple[tuple[str, str], ...]], tuple[tuple[Validator, str], ...]] = {}


def _active(
    validators: tuple[Validator, ...], strictness: tuple[tuple[str, str], ...]
) -> tuple[tuple[Validator, str], ...]:
    key = (tuple(map(id, validators)), strictness)
    found = _ACTIVE.get(key)
    if found is None:
        if len(_ACTIVE) >= 16:
            _ACTIVE.clear()
        levels = dict(strictness)
        found = _ACTIVE[key] = tuple(
            (v, level) for v in validators if (level := levels.get(v.name, v.strictness)) != "ignore"
        )
    return found


def active_validators(strictness: dict[str, str]) -> tuple[tuple[Validator, str], ...]:
    """(validator, strictness) of every validator whose strictness is not `ignore`, in registration order."""
    return _active(tuple(VALIDATORS.values()), tuple(sorted(strictness.items())))


def check_item(
    item: dict[str, Any], context: ValidationContext, active: tuple[tuple[Validator, str], ...]
) -> list[Verdict]:
    """The verdict of each of the active validators (`active_validators`), in their order; a check that raises
    becomes a `validator_error` verdict naming the item. The checks run in one comprehension, and only an item one
    of them raises on is checked again one by one (the checks are pure: the same verdicts)."""
    context._item, context._memo = item, {}
    try:
        try:
            return [v.check(item, context) for v, _ in active]
        except Exception:  # noqa: BLE001 - an odd item must never stop the run
            return [_checked(v, item, context) for v, _ in active]
    finally:
        context._item, context._memo = None, {}


def _checked(v: Validator, item: dict[str, Any], context: ValidationContext) -> Verdict:
    try:
        return v.check(item, context)
    except Exception as exc:  # noqa: BLE001 - an odd item must never stop the run
        return fail("validator_error", f"item {item.get('item_id')!r}: {type(exc).__name__}: {exc}"[:500])


def with_schema_passed(active: tuple[tuple[Validator, str], ...]) -> tuple[tuple[Validator, str], ...]:
    """The active validators for an item `schema_passes` found valid: its schema verdict is OK, not computed again."""
    return tuple((replace(v, check=_passed) if v.check is check_schema else v, level) for v, level in active)


def _passed(item: dict[str, Any], context: ValidationContext) -> Verdict:
    return OK


def run_validators(
    item: dict[str, Any], context: ValidationContext, strictness: dict[str, str]
) -> list[tuple[Validator, Verdict, str]]:
    """(validator, verdict, strictness) for every validator whose strictness is not `ignore`; a check
    that raises becomes a `validator_error` verdict naming the item."""
    active = active_validators(strictness)
    return [(v, verdict, level) for (v, level), verdict in zip(active, check_item(item, context, active), strict=True)]


# -- independent checks: registered by their module (rules shared with neither the extractor nor the programs)
from cxrvqa.validation import independent as _independent  # noqa: E402
