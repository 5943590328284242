"""Question templates: YAML files checked against `schemas/question_template.schema.json`.

The built-in library is `prompts/questions/*.yaml`; users add folders of their own
(`--templates DIR`). A bad file fails with its path and the problem; `lint` reports every
problem of every file instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cxrvqa.errors import TemplateError
from cxrvqa.provenance import stable_hash
from cxrvqa.resources import load_json_schema, resource

#: The placeholders each kind of argument fills in a question variant.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "finding": frozenset({"finding"}),
    "region": frozenset({"region"}),
    "category": frozenset({"category"}),
    "finding_region": frozenset({"finding", "region"}),
    "two_regions": frozenset({"region_a", "region_b"}),
    "two_findings": frozenset({"finding_a", "finding_b"}),
}
DEFAULT_EXCLUDED_CATEGORIES = ("normal", "technical")
#: Verbs a question or answer sentence may write as placeholders to agree with the template's finding
#: ("{Is} there {a_finding}?": "Is there a nodule?", "Are there degenerative changes?"): singular, plural.
AGREEMENT: dict[str, tuple[str, str]] = {"is": ("is", "are"), "Is": ("Is", "Are"), "has": ("has", "have"),
                                         "Has": ("Has", "Have"), "was": ("was", "were"), "does": ("does", "do"),
                                         "Does": ("Does", "Do")}


def _forms(placeholders: frozenset[str]) -> frozenset[str]:
    """What a template may write for its placeholders: each name, `a_<finding>` for a finding, and the
    agreeing verbs when it draws one finding."""
    forms = set(placeholders) | {"a_" + p for p in placeholders if p.startswith("finding")}
    if "finding" in placeholders:
        forms |= set(AGREEMENT)
    return frozenset(forms)


def _named(used: set[str]) -> set[str]:
    """The placeholders a text names (`a_finding` names `finding`; verbs name nothing)."""
    return {p.removeprefix("a_") for p in used if p not in AGREEMENT}


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    question_type: str
    strategy: str
    answer_format: str
    program: str
    arguments: str
    variants: tuple[str, ...]
    source: str                                  # "builtin:prompts/questions/<id>.yaml" or the file path
    content_hash: str                            # of the parsed definition
    skill: str | None = None
    description: str = ""
    negatives: str = "explicit"
    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = DEFAULT_EXCLUDED_CATEGORIES
    findings: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    views: tuple[str, ...] = ("frontal", "lateral", "unknown")
    needs_image: bool = False
    needs_boxes: str | None = None
    answer_sentence: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0
    max_per_image: int | None = None
    positive_share: float | None = None

    @property
    def closed_world(self) -> bool:
        return self.negatives == "closed_world"

    def definition(self) -> dict[str, Any]:
        """The template as stored with a run (`qa_templates.definition`)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("content_hash",)}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _pinned(data: dict[str, Any]) -> set[str]:
    """Placeholders a question may leave out because the draw fixes them to one value ("devices")."""
    draw = data.get("draw", {})
    return {name for name, key in (("category", "categories"), ("finding", "findings"), ("region", "regions"))
            if len(draw.get(key, [])) == 1}


def _problems(data: Any, stem: str) -> list[str]:
    """Every problem of one parsed template file (empty when it is valid)."""
    from cxrvqa.extraction.vocab import vocabulary
    from cxrvqa.qa.programs import PROGRAMS

    validator = jsonschema.Draft202012Validator(load_json_schema("question_template.schema.json"))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors]
    problems = []
    if data["id"] != stem:
        problems.append(f"id: expected the file name {stem!r}, found {data['id']!r}")
    program = PROGRAMS.get(data["program"])
    if program is None:
        problems.append(f"program: expected one of {sorted(PROGRAMS)}, found {data['program']!r}")
    else:
        if data["arguments"] not in program.arguments:
            problems.append(f"arguments: program {program.name!r} takes {list(program.arguments)}, "
                            f"found {data['arguments']!r}")
        if data["answer_format"] not in program.formats:
            problems.append(f"answer_format: program {program.name!r} answers in {list(program.formats)}, "
                            f"found {data['answer_format']!r}")
    allowed = PLACEHOLDERS[data["arguments"]]
    hidden = set(program.hidden) if program else set()
    for i, variant in enumerate(data["variants"]):
        try:
            written = _placeholders(variant)
        except ValueError as exc:
            problems.append(f"variants/{i}: {exc}")
            continue
        if written - _forms(allowed):
            problems.append(f"variants/{i}: placeholders {sorted(written - _forms(allowed))} are not filled by "
                            f"arguments {data['arguments']!r} (it fills {sorted(_forms(allowed)) or 'none'})")
        used = _named(written)
        if used & hidden:
            problems.append(f"variants/{i}: names {sorted(used & hidden)}, which is the answer of program "
                            f"{data['program']!r}: the question would give it away")
        if allowed - used - _pinned(data) - hidden:
            problems.append(f"variants/{i}: the question does not name {sorted(allowed - used)}")
    for key, text in data.get("answer_sentence", {}).items():
        unknown = _placeholders(text) - _forms(allowed) - {"answer"}
        if unknown:
            problems.append(f"answer_sentence/{key}: unknown placeholders {sorted(unknown)}")
    vocab = vocabulary()
    draw = data.get("draw", {})
    for key in ("categories", "exclude_categories"):
        unknown = sorted(set(draw.get(key, [])) - set(vocab.categories))
        if unknown:
            problems.append(f"draw/{key}: unknown categories {unknown}")
    unknown = sorted(set(draw.get("findings", [])) - set(vocab.findings))
    if unknown:
        problems.append(f"draw/findings: unknown findings {unknown}")
    unknown = sorted(set(draw.get("regions", [])) - set(vocab.regions))
    if unknown:
        problems.append(f"draw/regions: unknown regions {unknown}")
    if data.get("negatives") == "closed_world" and data["arguments"] in ("region", "two_regions") \
            and not draw.get("regions"):
        problems.append("draw/regions: a closed-world region template must list the regions it asks about")
    if data["answer_format"] == "box" and data.get("applies_to", {}).get("needs_boxes") is None:
        problems.append("applies_to/needs_boxes: a box template must say which boxes it needs (finding | region)")
    return problems


def parse_template(text: str, source: str, stem: str) -> Template:
    """One template from its YAML text; TemplateError names ``source`` and every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(source, [f"invalid YAML: {exc}"]) from exc
    problems = _problems(data, stem)
    if problems:
        raise TemplateError(source, problems)
    draw, applies = data.get("draw", {}), data.get("applies_to", {})
    return Template(
        id=data["id"], version=data["version"], question_type=data["question_type"], strategy=data["strategy"],
        answer_format=data["answer_format"], program=data["program"], arguments=data["arguments"],
        variants=tuple(data["variants"]), source=source, content_hash=stable_hash(data),
        skill=data.get("skill"), description=data.get("description", "").strip(),
        negatives=data.get("negatives", "explicit"), categories=tuple(draw.get("categories", ())),
        exclude_categories=tuple(draw.get("exclude_categories", DEFAULT_EXCLUDED_CATEGORIES)),
        findings=tuple(draw.get("findings", ())), regions=tuple(draw.get("regions", ())),
        views=tuple(applies.get("views", ("frontal", "lateral", "unknown"))),
        needs_image=applies.get("needs_image", False), needs_boxes=applies.get("needs_boxes"),
        answer_sentence=dict(data.get("answer_sentence", {})), weight=float(data.get("weight", 1.0)),
        max_per_image=data.get("max_per_image"), positive_share=data.get("positive_share"))


def load_template_file(path: Path) -> Template:
    if path.suffix != ".yaml":
        raise TemplateError(str(path), [f"expected a .yaml file, found {path.suffix or 'no suffix'}"])
    return parse_template(path.read_text(encoding="utf-8"), str(path), path.stem)


@lru_cache(maxsize=1)
def builtin_templates() -> tuple[Template, ...]:
    folder = resource("prompts", "questions")
    found = []
    for node in sorted(folder.iterdir(), key=lambda n: n.name):
        if node.name.endswith(".yaml"):
            found.append(parse_template(node.read_text(encoding="utf-8"), f"builtin:prompts/questions/{node.name}",
                                        node.name.removesuffix(".yaml")))
    return tuple(found)


def load_templates(dirs: tuple[Path, ...] = ()) -> tuple[Template, ...]:
    """The built-in templates plus every `*.yaml` in ``dirs``; an id defined twice is an error."""
    templates = list(builtin_templates())
    for folder in dirs:
        if not folder.is_dir():
            raise TemplateError(str(folder), ["expected a folder of template .yaml files, found no such folder"])
        templates.extend(load_template_file(path) for path in sorted(folder.glob("*.yaml")))
    seen: dict[str, str] = {}
    for template in templates:
        if template.id in seen:
            raise TemplateError(template.source, [f"id {template.id!r} is already defined by {seen[template.id]}"])
        seen[template.id] = template.source
    return tuple(sorted(templates, key=lambda t: t.id))


def lint_paths(paths: list[Path]) -> dict[str, list[str]]:
    """Problems per file (files without problems map to []); never raises for a bad template."""
    results: dict[str, list[str]] = {}
    for path in paths:
        try:
            load_template_file(path)
            results[str(path)] = []
        except TemplateError as exc:
            results[str(path)] = list(exc.problems)
    return results


@lru_cache(maxsize=1)
def generator_code_hash() -> str:
    """Digest of the generator's code: an edit re-generates every template's items."""
    digest = hashlib.sha256()
    for name in ("generate.py", "programs.py", "study.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def template_version(template: Template, seed: int, splits: tuple[tuple[str, float], ...],
                     split_from: str = "hash") -> str:
    """What a template's items depend on: its definition, the generator code, the vocabularies, and
    the seed, split shares and split source (they draw variants, distractors and splits)."""
    from cxrvqa.extraction.vocab import finding_sites, vocabulary

    return stable_hash({"template": template.content_hash, "code": generator_code_hash(),
                        "vocab": vocabulary().content_hash, "sites": finding_sites().content_hash, "seed": seed,
                        "splits": splits, **({"split_from": split_from} if split_from != "hash" else {})})
