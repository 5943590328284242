"""The dataset card (README.md) of a parquet or hf export: YAML front matter that the Hugging Face
loader reads (licence, split files), counts per split, question type, answer format and grade, the
fields (descriptions from schemas/qa_item.schema.json), the recipe (code, template, grading and image
versions, the build's config) and the sources' licences (schemas/vocab/export.yaml).

Everything on the card comes from the database and the written files: the same database gives the
same card, with no timestamp of the export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cxrvqa.core.prior import FORMAT_COLUMNS, format_rows, measure, strongest
from cxrvqa.core.resources import load_json_schema, resource
from cxrvqa.export.items import Selection, export_data, sql_literal
from cxrvqa.store import Store

#: Hugging Face Hub size categories: (upper bound, label).
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
_IMAGE_NOTE = {
    "parquet": "`image` is the PNG path relative to the build folder (the `--out` folder of `cxrvqa build`); "
    "null for report-only items.",
    "hf": "`image` is a `datasets` Image feature: {bytes: null, path: the absolute PNG path in the build "
    "folder}, decoded to a PIL image by `datasets` on the machine of the build; `push_to_hub` embeds "
    "the PNG bytes. Each file's schema metadata (`huggingface`) carries the features.",
}


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if n < bound), "n>1T")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _by_split(
    store: Store, files: str, name: str, splits: list[str], value: str | None = None, order: str = "1"
) -> str:
    """A table of item counts: one row per ``value`` (SQL, default the column ``name``), one column per split,
    then the total."""
    counts: dict[Any, dict[str, int]] = {}
    for key, split, n in store.query(
        f"SELECT {value or name} AS k, split, count(*) FROM read_parquet({files}) GROUP BY ALL ORDER BY {order}, split"
    ):
        counts.setdefault(key, {})[split] = n
    rows = [[key, *(row.get(s, 0) for s in splits), sum(row.values())] for key, row in counts.items()]
    return _table([name, *splits, "total"], rows)


def _paths(value: Any) -> list[Any]:
    """A config's manifest: one path in runs before several were allowed, a list since."""
    return value if isinstance(value, list) else [value]


def sources(store: Store, configs: list[dict[str, Any]], has_images: bool, has_boxes: bool) -> list[str]:
    """The source entries of schemas/vocab/export.yaml that the build's inputs fall under."""
    demo = Path(str(resource("demo"))).resolve()
    given = [
        Path(p)
        for c in configs
        for p in (c.get("images_dir"), c.get("reports"), *_paths(c.get("manifest")), *c.get("qa", {}).get("boxes", []))
        if p
    ]
    if given and all(p.resolve().is_relative_to(demo) for p in given):
        return ["demo"]
    known = export_data()["sources"]
    found = [
        fmt if fmt in known else "own"
        for (fmt,) in store.query("SELECT DISTINCT source_format FROM current_reports ORDER BY 1")
    ]
    if has_images or has_boxes:
        found.append("own")
    return list(dict.fromkeys(found)) or ["own"]


def dataset_card(store: Store, folder: Path, per_split: dict[str, int], selection: Selection, fmt: str) -> str:
    data = export_data()
    splits = list(per_split)
    paths = [str(folder / f"{s}.parquet") for s in splits]
    files = "[" + ", ".join(sql_literal(p) for p in paths) + "]"
    if paths:
        has_images, has_boxes, run_ids = store.query(
            f"SELECT count(image) > 0, count(*) FILTER (len(boxes) > 0) > 0, list(DISTINCT provenance.run_id) "
            f"FROM read_parquet({files})"
        )[0]
    else:
        has_images, has_boxes, run_ids = False, False, []
    runs = store.query("SELECT run_id, config, code_version FROM runs ORDER BY started_at")
    source_ids = sources(store, [json.loads(config) for _, config, _ in runs], has_images, has_boxes)
    out = _card_head(data, source_ids, per_split, selection, fmt)
    if paths:
        out += [
            "## Counts",
            "",
            "### Question types",
            "",
            _by_split(store, files, "question_type", splits),
            "",
            "### Answer formats",
            "",
            _by_split(store, files, "answer_format", splits),
            "",
            "### Grades",
            "",
            _by_split(
                store,
                files,
                "grade",
                splits,
                value="coalesce(grade, 'not graded')",
                order="coalesce(any_value(grade_code), -1) DESC",
            ),
            "",
        ]
    out += prior_section(store, f"read_parquet({files})" if paths else None, selection)
    out += _measured_accuracy(store, selection)
    out += _grades_section(store, data["card"], bool(paths) and not has_images)
    out += _fields_section(paths)
    out += _recipe(store, files if paths else None, run_ids, runs)
    out += [
        "## Sources and licences",
        "",
        "The items derive from these inputs; their terms apply to this dataset. cxrvqa itself is Apache-2.0.",
        "",
        _table(
            ["source", "licence"], [[data["sources"][s]["name"], data["sources"][s]["licence"]] for s in source_ids]
        ),
        "",
    ]
    return "\n".join(out)


def _card_head(
    data: dict[str, Any], source_ids: list[str], per_split: dict[str, int], selection: Selection, fmt: str
) -> list[str]:
    """The card's YAML front matter (licence, size, configs), its title and summary, and how to load the files."""
    card = data["card"]
    splits = list(per_split)
    total = sum(per_split.values())
    licences = {data["sources"][s]["license_id"] for s in source_ids}
    front = {
        "license": licences.pop() if len(licences) == 1 else "other",
        "pretty_name": card["pretty_name"],
        "task_categories": card["task_categories"],
        "language": card["language"],
        "tags": card["tags"],
        "size_categories": [size_category(total)],
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"{s}.parquet"} for s in splits]}],
    }
    return [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000).rstrip(),
        "---",
        "",
        f"# {card['pretty_name']}",
        "",
        card["summary"],
        "",
        f"Exported by `cxrvqa export --format {fmt}` from a cxrvqa build: {total} items ({selection.describe()}).",
        "",
        "## Files",
        "",
        _table(["split", "file", "items"], [[s, f"{s}.parquet", n] for s, n in per_split.items()]),
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("parquet", data_dir="path/to/this/folder")  # splits: train, validation, test',
        'ds = load_dataset("path/to/this/folder")                      # splits as named here (val)',
        "```",
        "",
        "```sql",
        "SELECT question, answer, grade FROM 'path/to/this/folder/*.parquet';  -- DuckDB",
        "```",
        "",
        _IMAGE_NOTE[fmt],
        "",
    ]


def _grades_section(store: Store, card: dict[str, Any], text_only: bool) -> list[str]:
    """What the grades mean (grade_levels); a text-VQA note when the exported items have no image."""
    levels = store.query("SELECT label, meaning FROM grade_levels ORDER BY grade DESC")
    if not levels:
        return []
    out = ["Grades are weakest-link grades (schemas/vocab/grades.yaml): " + card["grade_advice"], ""]
    if text_only:
        out += [TEXT_VQA, ""]
    return out + [_table(["grade", "meaning"], [list(level) for level in levels]), ""]


def _fields_section(paths: list[str]) -> list[str]:
    """The exported fields with their descriptions from the QA item's JSON Schema."""
    if not paths:
        return []
    import pyarrow.parquet as pq

    schema = load_json_schema("qa_item.schema.json")["properties"]
    names = pq.read_schema(paths[0]).names
    return [
        "## Fields",
        "",
        _table(["field", "description"], [[f"`{n}`", schema[n]["description"]] for n in names]),
        "",
    ]


def _measured_accuracy(store: Store, selection: Selection) -> list[str]:
    """What human review measured on the build's current items (`cxrvqa review`), with Wilson 95% intervals;
    nothing when no current item is reviewed."""
    from cxrvqa.review.accuracy import review_accuracy

    review = review_accuracy(store)
    if review is None:
        return []
    verdicts = ", ".join(f"{verdict} {n}" for verdict, n in review.verdicts.items())
    rows = [
        ["accuracy (judged correct)", review.accuracy.text()],
        ["grammar errors", review.grammar_errors.text()],
        ["checks' recall: faulty items the validators demoted", review.recall.text()],
        ["checks' false demotion: correct items the validators demoted", review.false_demotion.text()],
    ]
    if selection.min_grade is not None:
        kept = review_accuracy(store, min_grade=(selection.min_grade, selection.min_grade_label or ""))
        rows.append(
            [
                f"accuracy of the reviewed items graded {selection.min_grade_label} or better before their "
                "review (an estimate for this selection's unreviewed items)",
                kept.accuracy.text() if kept else "n/a (none reviewed)",
            ]
        )
    out = [
        "## Measured accuracy",
        "",
        f"{review.reviewed_items} current items of the build were read against their reports by "
        f"{len(review.reviewers)} reviewer(s) (`cxrvqa review`; {verdicts}); shares with Wilson 95% intervals. "
        "Faulty: judged wrong, unsupported or a bad question; the validators demote an item when a failed check "
        "set its grade before the review. Items reviewed as faulty are graded D (bad question: C) and so are "
        "left out of selections by grade.",
        "",
        _table(["measure", "share [Wilson 95%] (items)"], rows),
        "",
        "### Per template",
        "",
        _table(
            ["template", "accuracy [Wilson 95%] (correct/reviewed)", "verdicts"],
            [
                [t.template_id, t.accuracy.text(), ", ".join(f"{v} {n}" for v, n in t.verdicts.items())]
                for t in review.per_template
            ],
        ),
        "",
    ]
    if review.stale_verdicts:
        out += [f"{review.stale_verdicts} earlier verdict(s) do not count: their items changed since.", ""]
    return out


def _recipe(store: Store, files: str | None, run_ids: list[str], runs: list[tuple]) -> list[str]:
    out = ["## Recipe", ""]
    if files is None:
        return out + ["No items were exported.", ""]
    versions = store.query(
        f"SELECT provenance.code_version, provenance.backend, count(*) FROM read_parquet({files}) "
        "GROUP BY ALL ORDER BY ALL"
    )
    out += [
        "Generated by (cxrvqa code version, extraction backend, items):",
        "",
        _table(["code version", "backend", "items"], [list(v) for v in versions]),
        "",
    ]
    grading = store.query(
        "SELECT grading_version, validators_version, count(*) FROM current_qa_grades GROUP BY ALL ORDER BY ALL"
    )
    if grading:
        out += [
            "Validation of the build's current items:",
            "",
            _table(["grading version", "validators version", "items"], [list(g) for g in grading]),
            "",
        ]
    recipes = store.query(
        f"SELECT recipe_version, count(*) FROM current_images i SEMI JOIN read_parquet({files}) f "
        "ON f.image_id = i.image_id GROUP BY ALL ORDER BY ALL"
    )
    if recipes:
        out += ["PNG rendering recipe versions (images): " + ", ".join(f"`{r}` ({n})" for r, n in recipes), ""]
    templates = store.query(
        f"SELECT f.template_id, f.provenance.template_version, any_value(f.question_type), any_value(f.answer_format), "
        f"coalesce(any_value(t.source), ''), count(*) FROM read_parquet({files}) f "
        f"LEFT JOIN current_qa_templates t ON t.template_id = f.template_id "
        f"AND t.template_version = f.provenance.template_version GROUP BY ALL ORDER BY ALL"
    )
    out += [
        "Templates (prompts/questions/<id>.yaml unless another source is named):",
        "",
        _table(
            ["template", "version", "question type", "answer format", "source", "items"], [list(t) for t in templates]
        ),
        "",
    ]
    latest = [(run_id, config, version) for run_id, config, version in runs if run_id in set(run_ids)]
    if latest:
        run_id, config, version = latest[-1]
        shown = {k: v for k, v in json.loads(config).items() if k != "privacy"}
        out += [
            f"Config of run `{run_id}` (cxrvqa {version}), the latest that generated exported items "
            "(the pseudonymisation key's fingerprint is left out):",
            "",
            "```json",
            json.dumps(shown, indent=2, sort_keys=True),
            "```",
            "",
        ]
    return out


_BALANCE = {
    "per_question": "per question: for each template and arguments (e.g. each finding) the build keeps every item "
    "of the rarer answer and as many of the other as reach the target 'yes' share (qa.positive_share, "
    "0.4 by default), chosen by item hash; a question that never gets one of the answers keeps no "
    "yes/no item; a multiple-choice question (template and set of options) keeps each option as the "
    "answer as often as the rarest, so that an option's value does not tell the answer",
    "per_template": "per template: each yes/no template's side in excess is sampled down to the target 'yes' share; "
    "within a template, a question (e.g. 'Is there a pneumothorax?') keeps its real-world prevalence, "
    "which the question alone gives away",
}


def prior_section(store: Store, source: str | None, selection: Selection) -> list[str]:
    """'Question-only baseline': the figures of cxrvqa.core.prior on the exported items (``source``), how the build
    balanced its yes/no answers and the export's balance profile."""
    out = ["## Question-only baseline", ""]
    modes = [
        m for (m,) in store.query("SELECT DISTINCT coalesce(mode, 'per_template') FROM current_qa_balance ORDER BY 1")
    ]
    if modes:
        out += ["Balance of the build's yes/no answers: " + "; ".join(_BALANCE[m] for m in modes) + ".", ""]
    if selection.balance == "per-question":
        out += [
            "Export profile `--balance per-question` (an evaluation set): per split and question (template and "
            "arguments), as many 'yes' as 'no' of the build's current items; per split and multiple-choice "
            "question (template and set of options), each option as the answer as often as the rarest; a question "
            "missing an answer in a split keeps none of its items there; other items are kept as they are. The "
            "items are those below item-hash thresholds the build stores (`qa_eval_balance`), kept across "
            "rebuilds while a question's answers stay within the build's balance tolerance of an even split."
            + (
                ""
                if selection.min_grade is None
                else f" With `--min-grade {selection.min_grade_label}` the profile is balanced over the items graded "
                f"{selection.min_grade_label} or better: a question keeps the stored thresholds while the graded "
                "items below them stay within that tolerance, otherwise as many graded items of each answer as "
                "the rarest answer has (the lowest item hashes)."
            ),
            "",
        ]
    figures = measure(store, source) if source is not None else []
    if not figures:
        return out + ["Not measurable on this export: it needs items of the train split and of another split.", ""]
    out += [
        "A model that sees only the question and answers the majority answer of that question in this export's "
        "train split, scored on its other splits (VQA-CP's language prior): the question as its normalised text, "
        "or as its template and the arguments it shows; for multiple choice also reading the options (the "
        "option whose value was most often the answer among the times train showed it, per template and question "
        "text). Chance: 1/2 yes/no, 1/number of options multiple choice.",
        "",
        _table(list(FORMAT_COLUMNS), format_rows(figures)),
        "",
        "Templates with the strongest prior:",
        "",
        _table(
            ["template", "answer format", "held-out items", "accuracy", "chance", "best answered questions"],
            [
                [
                    f.template_id,
                    f.answer_format,
                    f.n_items,
                    f"{f.accuracy:.3f}",
                    "" if f.chance is None else f"{f.chance:.2f}",
                    "; ".join(f"{args} {acc:.2f} of {n}" for args, n, acc in f.worst[:3]),
                ]
                for f in strongest(figures, 5)
            ],
        ),
        "",
    ]
    return out


#: What a card says of an export without images (issue 17: a report-only build is a text-VQA dataset).
TEXT_VQA = (
    "This is a text-VQA dataset (its build had no images): its items are graded on their text criteria "
    "alone (report support, evidence, validators); a report-only item is no fault here, whereas in a build "
    "with images it is graded C."
)


def card_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".card.md")


def sidecar_card(
    store: Store, dest: Path, source: str, per_split: dict[str, int], selection: Selection, fmt: str
) -> str:
    """The card of a one-file export (jsonl, llava), written beside it as `<dest>.card.md`: what it holds and
    its question-only baseline."""
    card = export_data()["card"]
    total = sum(per_split.values())
    text_only = (
        total
        and store.query(f"SELECT count(image) = 0 FROM {source}")[0][0]
        and store.query("SELECT count(*) FROM grade_levels")[0][0]
    )
    return "\n".join(
        [
            f"# {card['pretty_name']}: {dest.name}",
            "",
            card["summary"],
            "",
            f"Exported by `cxrvqa export --format {fmt}` from a cxrvqa build: {total} items ({selection.describe()}).",
            "",
            _table(["split", "items"], [[s, n] for s, n in per_split.items()]),
            "",
            *([TEXT_VQA, ""] if text_only else []),
            *prior_section(store, source, selection),
        ]
    )
