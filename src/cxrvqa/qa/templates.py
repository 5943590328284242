"""Question templates: YAML files checked against `schemas/question_template.schema.json`.

The built-in library is `prompts/questions/*.yaml`; users add folders of their own
(`--templates DIR`). A bad file fails with its path and the problem; `lint` reports every
problem of every file instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cxrvqa.errors import TemplateError
from cxrvqa.core.provenance import stable_hash
from cxrvqa.core.resources import load_json_schema, load_yaml, resource

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
#: The wording of a template (`Template.definition`): its variants, its worked examples (questions and answers of
#: its own) and its version number: what only an item's question is made from (`qa.generate.question_of`), so that a
#: template changed in no other field (`qa.stage.reworded`) makes the items of its earlier version asked in other
#: words. (Variants a user file adds to a built-in template by `extends` change its `source` too: not a rewording.)
WORDING_TEMPLATE_FIELDS = ("version", "variants", "examples")
#: Verbs a question or answer sentence may write as placeholders to agree with the template's finding
#: ("{Is} there {a_finding}?": "Is there a nodule?", "Are there degenerative changes?"): singular, plural.
AGREEMENT: dict[str, tuple[str, str]] = {
    "is": ("is", "are"),
    "Is": ("Is", "Are"),
    "has": ("has", "have"),
    "Has": ("Has", "Have"),
    "was": ("was", "were"),
    "does": ("does", "do"),
    "Does": ("Does", "Do"),
}


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
    source: str  # "builtin:prompts/questions/<id>.yaml" or the file path
    content_hash: str  # of the parsed definition
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
    complementary_pairs: bool = False
    hidden_arguments: tuple[str, ...] = ()  # the program's answer among the arguments: not in the question
    options: int = 4  # multiple choice: options per question (2-5)
    examples: tuple[dict[str, Any], ...] = ()  # worked examples (cxrvqa.qa.examples); not in content_hash
    extends: str | None = None  # a user file that adds wordings to this (built-in) template

    @property
    def closed_world(self) -> bool:
        return self.negatives == "closed_world"

    def definition(self) -> dict[str, Any]:
        """The template as stored with a run (`qa_templates.definition`)."""
        from cxrvqa.qa.programs import PROGRAMS

        found = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("content_hash",)}
        program = PROGRAMS.get(self.program)
        if program is not None and not program.builtin:  # the plugin it came from, as it was
            found.update(program_source=program.source, program_hash=program.source_hash)
        return found


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _pinned(data: dict[str, Any]) -> set[str]:
    """Placeholders a question may leave out because the draw fixes them to one value ("devices")."""
    draw = data.get("draw", {})
    return {
        name
        for name, key in (("category", "categories"), ("finding", "findings"), ("region", "regions"))
        if len(draw.get(key, [])) == 1
    }


#: Words a yes/no question must contain when its program answers 'yes' for an absent or a hedged finding
#: ("Is there a pneumothorax?" with `finding_ruled_out` answers 'yes' where the report rules it out).
YES_WHEN_WORDS: dict[str, tuple[str, ...]] = {
    "absent": (
        "no",
        "not",
        "n't",
        "ruled out",
        "rule out",
        "exclud",
        "absen",
        "negative",
        "without",
        "free of",
        "den",
        "lack",
    ),
    "uncertain": (
        "suspect",
        "uncertain",
        "possib",
        "probab",
        "may",
        "might",
        "question",
        "equivocal",
        "hedg",
        "unclear",
        "indetermin",
        "doubt",
    ),
}


def _says(variant: str, words: tuple[str, ...]) -> bool:
    """Whether the question contains one of ``words`` at the start of a word ("not", "excluded", "isn't")."""
    text = variant.lower()
    return any(
        re.search(("" if w.startswith("n't") else r"\b") + re.escape(w) + (r"\b" if len(w) <= 3 else ""), text)
        for w in words
    )


def _unused_keys(data: dict[str, Any], program: Any) -> list[str]:
    """Keys the template sets that its program never reads (declared with the program: `uses`)."""
    given = [f"draw.{key}" for key in data.get("draw", {})]
    if data.get("negatives") == "closed_world":
        given.append("negatives")
    if "options" in data:
        given.append("options")
    problems = []
    for key in given:
        if key not in program.uses:
            where = key.replace(".", "/")
            uses = ", ".join(k.replace(".", "/") for k in program.uses) or "none of the optional keys"
            what = "negatives: closed_world" if key == "negatives" else where
            problems.append(
                f"{where}: program {program.name!r} does not use {what} (it uses {uses}); the key would "
                "be ignored: remove it or choose a program that reads it"
            )
    return problems


def _problems(data: Any, stem: str) -> list[str]:
    """Every problem of one parsed template file (empty when it is valid)."""
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
        problems += _program_problems(data, program)
    if "options" in data and data["answer_format"] != "multiple_choice":
        problems.append(
            f"options: only a multiple_choice template has options, found answer_format {data['answer_format']!r}"
        )
    problems += _wording_problems(data, program)
    problems += _draw_problems(data)
    if data["answer_format"] == "box" and data.get("applies_to", {}).get("needs_boxes") is None:
        problems.append("applies_to/needs_boxes: a box template must say which boxes it needs (finding | region)")
    return problems


def _program_problems(data: Any, program: Any) -> list[str]:
    """What the template asks of its answer program that the program does not do."""
    problems = []
    if data["arguments"] not in program.arguments:
        problems.append(
            f"arguments: program {program.name!r} takes {list(program.arguments)}, found {data['arguments']!r}"
        )
    if data["answer_format"] not in program.formats:
        problems.append(
            f"answer_format: program {program.name!r} answers in {list(program.formats)}, "
            f"found {data['answer_format']!r}"
        )
    problems += _unused_keys(data, program)
    if "options" in data and "options" in program.uses and data["answer_format"] == "multiple_choice":
        low, high = program.options or (4, 4)
        if not low <= data["options"] <= high:
            problems.append(f"options: program {program.name!r} fills {low}-{high} options, found {data['options']}")
    if program.yes_when in YES_WHEN_WORDS and data["answer_format"] in ("yes_no", "full_sentence", "multi_part"):
        words = YES_WHEN_WORDS[program.yes_when]
        for i, variant in enumerate(data["variants"]):
            if not _says(variant, words):
                problems.append(
                    f"variants/{i}: program {program.name!r} answers 'yes' when the finding is "
                    f"{program.yes_when}, but the question {variant!r} does not say so (none of "
                    f"{[w.strip() for w in words]}): its 'yes' would contradict the wording"
                )
    return problems


def _wording_problems(data: Any, program: Any | None) -> list[str]:
    """Placeholders of the question variants and answer sentences: filled by the arguments, naming every
    argument, never naming the answer."""
    problems = []
    allowed = PLACEHOLDERS[data["arguments"]]
    hidden = set(program.hidden) if program else set()
    for i, variant in enumerate(data["variants"]):
        try:
            written = _placeholders(variant)
        except ValueError as exc:
            problems.append(f"variants/{i}: {exc}")
            continue
        if written - _forms(allowed):
            problems.append(
                f"variants/{i}: placeholders {sorted(written - _forms(allowed))} are not filled by "
                f"arguments {data['arguments']!r} (it fills {sorted(_forms(allowed)) or 'none'})"
            )
        used = _named(written)
        if used & hidden:
            problems.append(
                f"variants/{i}: names {sorted(used & hidden)}, which is the answer of program "
                f"{data['program']!r}: the question would give it away"
            )
        if allowed - used - _pinned(data) - hidden:
            problems.append(f"variants/{i}: the question does not name {sorted(allowed - used)}")
    for key, text in data.get("answer_sentence", {}).items():
        unknown = _placeholders(text) - _forms(allowed) - {"answer"}
        if unknown:
            problems.append(f"answer_sentence/{key}: unknown placeholders {sorted(unknown)}")
    return problems


def _draw_problems(data: Any) -> list[str]:
    """What the template draws from (categories, findings, regions) that the vocabulary does not have."""
    from cxrvqa.core.vocab import vocabulary

    problems = []
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
    if (
        data.get("negatives") == "closed_world"
        and data["arguments"] in ("region", "two_regions")
        and not draw.get("regions")
    ):
        problems.append("draw/regions: a closed-world region template must list the regions it asks about")
    return problems


def parse_template(text: str, source: str, stem: str) -> Template:
    """One template from its YAML text; TemplateError names ``source`` and every problem."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise TemplateError(source, [f"invalid YAML: {exc}"]) from exc
    from cxrvqa.qa.programs import PROGRAMS

    problems = _problems(data, stem)
    if problems:
        raise TemplateError(source, problems)
    draw, applies = data.get("draw", {}), data.get("applies_to", {})
    return Template(
        id=data["id"],
        version=data["version"],
        question_type=data["question_type"],
        strategy=data["strategy"],
        answer_format=data["answer_format"],
        program=data["program"],
        arguments=data["arguments"],
        variants=tuple(data["variants"]),
        source=source,
        content_hash=_content_hash(data),
        skill=data.get("skill"),
        description=data.get("description", "").strip(),
        negatives=data.get("negatives", "explicit"),
        categories=tuple(draw.get("categories", ())),
        exclude_categories=tuple(draw.get("exclude_categories", DEFAULT_EXCLUDED_CATEGORIES)),
        findings=tuple(draw.get("findings", ())),
        regions=tuple(draw.get("regions", ())),
        views=tuple(applies.get("views", ("frontal", "lateral", "unknown"))),
        needs_image=applies.get("needs_image", False),
        needs_boxes=applies.get("needs_boxes"),
        answer_sentence=dict(data.get("answer_sentence", {})),
        weight=float(data.get("weight", 1.0)),
        max_per_image=data.get("max_per_image"),
        positive_share=data.get("positive_share"),
        complementary_pairs=data.get("complementary_pairs", data.get("skill") == "presence"),
        hidden_arguments=PROGRAMS[data["program"]].hidden,
        options=data.get("options", 4),
        examples=tuple(data.get("examples", ())),
    )


def _content_hash(data: dict[str, Any]) -> str:
    """Of what makes items: worked examples change no item, so editing them regenerates nothing."""
    return stable_hash({key: value for key, value in data.items() if key != "examples"})


def load_template_file(path: Path) -> Template:
    """A template file; a file with `extends:` (a wording added to a built-in template) comes back as the
    built-in template with its variants (and examples) added."""
    if path.suffix != ".yaml":
        raise TemplateError(str(path), [f"expected a .yaml file, found {path.suffix or 'no suffix'}"])
    text = path.read_text(encoding="utf-8")
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise TemplateError(str(path), [f"invalid YAML: {exc}"]) from exc
    if isinstance(data, dict) and "extends" in data:
        return _extension(data, path)
    return parse_template(text, str(path), path.stem)


def _extension(data: dict[str, Any], path: Path) -> Template:
    """A user file `extends: <built-in id>` with `variants:` (more wordings) and optional `examples:`."""
    validator = jsonschema.Draft202012Validator(load_json_schema("question_template_extension.schema.json"))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise TemplateError(
            str(path), [f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors]
        )
    base = {t.id: t for t in builtin_templates()}.get(data["extends"])
    if base is None:
        raise TemplateError(str(path), [f"extends: expected a built-in template id, found {data['extends']!r}"])
    if path.stem != base.id:
        raise TemplateError(
            str(path),
            [
                f"extends: the file of an extension is named after the template it extends "
                f"({base.id}.yaml), found {path.name}"
            ],
        )
    node = resource("prompts", "questions", f"{base.id}.yaml")
    merged = load_yaml(node.read_text(encoding="utf-8"))
    added = [v for v in data["variants"] if v not in merged["variants"]]
    merged["variants"] = [*merged["variants"], *added]
    merged["examples"] = [*merged.get("examples", []), *data.get("examples", [])]
    problems = [p.replace("variants/", "variants (with the built-in ones)/") for p in _problems(merged, base.id)]
    if problems:
        raise TemplateError(str(path), problems)
    template = parse_template(yaml.safe_dump(merged, sort_keys=False), f"{base.source}+{path}", base.id)
    return replace(template, extends=base.id)


@lru_cache(maxsize=1)
def builtin_templates() -> tuple[Template, ...]:
    folder = resource("prompts", "questions")
    found = []
    for node in sorted(folder.iterdir(), key=lambda n: n.name):
        if node.name.endswith(".yaml"):
            found.append(
                parse_template(
                    node.read_text(encoding="utf-8"),
                    f"builtin:prompts/questions/{node.name}",
                    node.name.removesuffix(".yaml"),
                )
            )
    return tuple(found)


def load_templates(dirs: tuple[Path, ...] = (), errors: list[TemplateError] | None = None) -> tuple[Template, ...]:
    """The built-in templates plus every `*.yaml` in ``dirs``; an id defined twice is an error. A file that
    `extends:` a built-in template replaces it by the built-in one with the file's wordings added.

    ``errors``: collect each bad file's TemplateError there and load the good ones (previews, lists)
    instead of raising at the first."""

    def failed(exc: TemplateError) -> None:
        if errors is None:
            raise exc
        errors.append(exc)

    templates = {t.id: t for t in builtin_templates()}
    seen = {t.id: t.source for t in templates.values()}
    for folder in dirs:
        if not folder.is_dir():
            failed(TemplateError(str(folder), ["expected a folder of template .yaml files, found no such folder"]))
            continue
        for path in sorted(folder.glob("*.yaml")):
            try:
                template = load_template_file(path)
                if template.extends is not None:
                    if templates[template.id].extends is not None:
                        raise TemplateError(
                            str(path),
                            [
                                f"extends: {template.id!r} is already extended by "
                                f"{templates[template.id].source.split('+', 1)[1]}"
                            ],
                        )
                elif template.id in seen:
                    raise TemplateError(
                        template.source,
                        [
                            f"id {template.id!r} is already defined by "
                            f"{seen[template.id]} (to add wordings to a built-in "
                            f"template, write `extends: {template.id}`)"
                        ],
                    )
            except TemplateError as exc:
                failed(exc)
                continue
            templates[template.id] = template
            seen[template.id] = template.source
    return tuple(sorted(templates.values(), key=lambda t: t.id))


def lint_paths(paths: list[Path], examples: bool = True) -> dict[str, list[str]]:
    """Problems per file (files without problems map to []); never raises for a bad template. A template
    whose definition is valid also has its worked examples run (``examples``; cxrvqa.qa.examples)."""
    from cxrvqa.qa.examples import example_problems

    results: dict[str, list[str]] = {}
    for path in paths:
        try:
            template = load_template_file(path)
            results[str(path)] = example_problems(template) if examples else []
        except TemplateError as exc:
            results[str(path)] = list(exc.problems)
    return results


def check_examples(templates: tuple[Template, ...]) -> None:
    """What a build does before it generates: every template's worked examples must hold (TemplateError
    naming the template's file and each failing example otherwise)."""
    from cxrvqa.qa.examples import example_problems

    for template in templates:
        problems = example_problems(template)
        if problems:
            raise TemplateError(
                template.source,
                [
                    *problems,
                    "the build generates nothing with a template whose "
                    "worked examples fail: fix the wording, the program or the "
                    "example (cxrvqa templates lint shows them all)",
                ],
            )


@lru_cache(maxsize=1)
def generator_code_hash() -> str:
    """Digest of the generator's code: an edit re-generates every template's items."""
    digest = hashlib.sha256()
    for name in ("generate.py", "programs.py", "study.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def generation_environment(
    seed: int, splits: tuple[tuple[str, float], ...], split_from: str = "hash"
) -> dict[str, Any]:
    """What every template's items depend on besides the template: the generator code, the vocabularies, and the
    seed, split shares (in order) and split source (they draw variants, distractors and splits)."""
    from cxrvqa.core.vocab import finding_sites, vocabulary

    return {
        "code": generator_code_hash(),
        "vocab": vocabulary().content_hash,
        "sites": finding_sites().content_hash,
        "seed": seed,
        "splits": splits,
        **({"split_from": split_from} if split_from != "hash" else {}),
    }


def template_version(
    template: Template, seed: int, splits: tuple[tuple[str, float], ...], split_from: str = "hash"
) -> str:
    """What a template's items depend on: its definition and its `generation_environment`."""
    from cxrvqa.qa.programs import PROGRAMS

    parts: dict[str, Any] = {"template": template.content_hash, **generation_environment(seed, splits, split_from)}
    program = PROGRAMS.get(template.program)
    if program is not None and not program.builtin:  # an edited plugin regenerates its templates' items
        parts["program"] = [program.source, program.source_hash]
    return stable_hash(parts)
